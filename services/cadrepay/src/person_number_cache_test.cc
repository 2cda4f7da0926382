#include "person_number_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace grassroots::cadrepay {
namespace {

PersonNumberCache::Key K(int n) { return PersonNumberCache::KeyOf(std::string(16, static_cast<char>('a' + n))); }

std::vector<int64_t> FindAll(const PersonNumberCache& cache, const std::vector<PersonNumberCache::Key>& keys) {
  std::vector<int64_t> out;
  cache.Find(keys, out);
  return out;
}

TEST(PersonNumberCache, FindsWhatWasAddedAndZeroForTheRest) {
  PersonNumberCache cache(10);
  EXPECT_TRUE(cache.Add(K(1), 7));
  EXPECT_TRUE(cache.Add(K(2), 9));
  EXPECT_EQ(FindAll(cache, {K(2), K(3), K(1)}), (std::vector<int64_t>{9, 0, 7}));
  // A number once held is not replaced (committed numbers never change).
  EXPECT_TRUE(cache.Add(K(1), 8));
  EXPECT_EQ(FindAll(cache, {K(1)}), (std::vector<int64_t>{7}));
}

TEST(PersonNumberCache, KeyIsTheFirstSixteenBytes) {
  EXPECT_EQ(PersonNumberCache::KeyOf(std::string(16, 'x') + "tail"), PersonNumberCache::KeyOf(std::string(16, 'x')));
  EXPECT_NE(PersonNumberCache::KeyOf("short"), PersonNumberCache::KeyOf("shorT"));
}

TEST(PersonNumberCache, StopsAddingAtCapacity) {
  PersonNumberCache cache(2);
  EXPECT_TRUE(cache.Add(K(1), 1));
  EXPECT_TRUE(cache.Add(K(2), 2));
  EXPECT_FALSE(cache.Add(K(3), 3));
  EXPECT_TRUE(cache.Add(K(2), 2));  // held already
  EXPECT_EQ(cache.size(), 2u);
  PersonNumberCache::Map more{{K(4), 4}, {K(5), 5}};
  cache.AddAll(std::move(more));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(FindAll(cache, {K(4), K(5), K(3)}), (std::vector<int64_t>{0, 0, 0}));
}

TEST(PersonNumberCache, DisabledHoldsNothing) {
  PersonNumberCache cache(0);
  EXPECT_FALSE(cache.Add(K(1), 1));
  cache.AddAll(PersonNumberCache::Map{{K(2), 2}});
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(FindAll(cache, {K(1), K(2)}), (std::vector<int64_t>{0, 0}));
}

TEST(PersonNumberCache, AddAllTakesAWholeMapIntoAnEmptyCacheAndMergesOtherwise) {
  PersonNumberCache cache(100);
  PersonNumberCache::Map first{{K(1), 1}, {K(2), 2}};
  cache.AddAll(std::move(first));
  EXPECT_TRUE(first.empty());
  PersonNumberCache::Map second{{K(2), 20}, {K(3), 3}};
  cache.AddAll(std::move(second));
  EXPECT_EQ(FindAll(cache, {K(1), K(2), K(3)}), (std::vector<int64_t>{1, 2, 3}));
}

TEST(PersonNumberCache, ADatabaseThatWentBackClearsIt) {
  PersonNumberCache cache(100);
  cache.AddAll(PersonNumberCache::Map{{K(1), 5}, {K(2), 65536}});
  cache.Validate(65537);  // the counter is past every number held: still true
  EXPECT_EQ(cache.size(), 2u);
  cache.Validate(65536);  // a number held has not been handed out by this database
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(FindAll(cache, {K(1), K(2)}), (std::vector<int64_t>{0, 0}));
  // Emptied by tests: counter back to 1.
  cache.Add(K(3), 1);
  cache.Validate(1);
  EXPECT_EQ(cache.size(), 0u);
  // After clearing, the highest number starts again.
  cache.Add(K(4), 3);
  cache.Validate(4);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(PersonNumberCache, ConcurrentReadersAndWritersSeeOnlyTheNumbersAdded) {
  PersonNumberCache cache(100000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 20000; ++i) {
        std::string h(16, '\0');
        h[0] = static_cast<char>(t);
        h[1] = static_cast<char>(i & 0xff);
        h[2] = static_cast<char>(i >> 8);
        cache.Add(PersonNumberCache::KeyOf(h), t * 100000 + i + 1);
      }
    });
  }
  threads.emplace_back([&cache] {
    for (int round = 0; round < 200; ++round) {
      std::vector<PersonNumberCache::Key> keys;
      for (int i = 0; i < 100; ++i) {
        std::string h(16, '\0');
        h[0] = static_cast<char>(round % 2);
        h[1] = static_cast<char>(i);
        keys.push_back(PersonNumberCache::KeyOf(h));
      }
      std::vector<int64_t> numbers;
      cache.Find(keys, numbers);
      for (int i = 0; i < 100; ++i) {
        if (numbers[i] != 0) ASSERT_EQ(numbers[i], (round % 2) * 100000 + i + 1);
      }
    }
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(cache.size(), 40000u);
}

}  // namespace
}  // namespace grassroots::cadrepay
