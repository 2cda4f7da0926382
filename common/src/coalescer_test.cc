#include "grassroots/common/coalescer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>

namespace grassroots::common {
namespace {

TEST(Coalescer, EachCallerGetsTheResultOfItsOwnRequest) {
  Coalescer<int, std::string> c(2, 8, [](const std::vector<int>& in) {
    std::vector<std::string> out;
    for (int v : in) out.push_back(std::to_string(v * 10));
    return out;
  });
  std::vector<std::promise<std::string>> answers(100);
  for (int i = 0; i < 100; ++i) c.Submit(i, [&answers, i](std::string r) { answers[i].set_value(std::move(r)); });
  for (int i = 0; i < 100; ++i) EXPECT_EQ(answers[i].get_future().get(), std::to_string(i * 10));
}

TEST(Coalescer, RequestsArrivingDuringABatchAreReadTogetherUpToTheLimit) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> first_started;
  std::vector<size_t> sizes;
  std::mutex mu;
  Coalescer<int, int> c(1, 3, [&](const std::vector<int>& in) {
    {
      std::lock_guard<std::mutex> lock(mu);
      sizes.push_back(in.size());
    }
    if (in.front() == 0) {
      first_started.set_value();
      released.wait();  // the first batch is slow: the others queue meanwhile
    }
    return in;
  });
  std::atomic<int> done{0};
  std::promise<void> all_done;
  auto on_done = [&](int) {
    if (++done == 6) all_done.set_value();
  };
  c.Submit(0, on_done);
  first_started.get_future().wait();
  for (int i = 1; i < 6; ++i) c.Submit(i, on_done);
  release.set_value();
  all_done.get_future().wait();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(sizes, (std::vector<size_t>{1, 3, 2}));
}

TEST(Coalescer, DestructionAnswersEverythingSubmitted) {
  std::atomic<int> answered{0};
  {
    Coalescer<int, int> c(2, 4, [](const std::vector<int>& in) { return in; });
    for (int i = 0; i < 50; ++i) c.Submit(i, [&answered](int) { ++answered; });
  }
  EXPECT_EQ(answered.load(), 50);
}

}  // namespace
}  // namespace grassroots::common
