#pragma once
// Coalesces concurrent blocking reads into batches, off the gRPC threads.
//
// A callback-API handler Submits its request and returns; a few reader threads each take every
// request waiting (up to max_batch) and answer them with one call of the batch function (one
// query, one database round trip for the lot), then hand each result to its callback. Requests
// that arrive while a batch is being read wait for the next one, so under load the batches grow
// and the round trips, wake-ups and per-query costs are shared; alone, a request is read at
// once. The destructor answers everything already submitted, then stops the threads.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace grassroots::common {

template <typename Request, typename Result>
class Coalescer final {
 public:
  // Must return one result per request, in the order given.
  using BatchFn = std::function<std::vector<Result>(const std::vector<Request>&)>;
  using Done = std::function<void(Result)>;

  Coalescer(int threads, size_t max_batch, BatchFn batch)
      : max_batch_(max_batch < 1 ? 1 : max_batch), batch_(std::move(batch)) {
    for (int i = 0; i < (threads < 1 ? 1 : threads); ++i) threads_.emplace_back([this] { Run(); });
  }
  ~Coalescer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  Coalescer(const Coalescer&) = delete;
  Coalescer& operator=(const Coalescer&) = delete;

  void Submit(Request request, Done done) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(Item{std::move(request), std::move(done)});
    }
    cv_.notify_one();
  }

 private:
  struct Item {
    Request request;
    Done done;
  };

  void Run() {
    std::vector<Item> items;
    std::vector<Request> requests;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and nothing left to answer
        const size_t n = std::min(queue_.size(), max_batch_);
        for (size_t i = 0; i < n; ++i) {
          items.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        // More than one batch waiting: let another reader start on the rest meanwhile.
        if (!queue_.empty()) cv_.notify_one();
      }
      requests.reserve(items.size());
      for (auto& item : items) requests.push_back(std::move(item.request));
      std::vector<Result> results = batch_(requests);
      for (size_t i = 0; i < items.size(); ++i) items[i].done(std::move(results[i]));
      items.clear();
      requests.clear();
    }
  }

  const size_t max_batch_;
  const BatchFn batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace grassroots::common
