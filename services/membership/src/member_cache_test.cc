// MemberCache: freshness, invalidation against racing fills, memory bound (no database).
#include "member_cache.h"
#include "grassroots/membership/v1/members.pb.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

namespace grassroots::membership {
namespace {

std::shared_ptr<const CachedMember> Member(int64_t id, int version, const std::string& name = "张三") {
  v1::Member m;
  m.set_member_id(id);
  m.set_version(version);
  m.set_name(name);
  m.set_id_number("3207**********123X");
  auto c = std::make_shared<CachedMember>();
  c->member_id = id;
  m.SerializeToString(&c->record);
  c->id_sealed = std::string(40, 's');
  return c;
}
int Version(const std::shared_ptr<const CachedMember>& c) {
  v1::Member m;
  EXPECT_TRUE(m.ParseFromString(c->record));
  return m.version();
}

struct FakeClock {
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  MemberCache::Clock fn() {
    return [this] { return now; };
  }
};

TEST(MemberCache, ServesNothingUntilTheFollowerHasCaughtUpAndStopsWhenItFallsBehind) {
  FakeClock clock;
  MemberCache cache({1 << 20, absl::Seconds(2)}, clock.fn());
  cache.Fill(Member(7, 1), cache.Generation(7));
  EXPECT_EQ(cache.Get(7), nullptr);  // never fresh: not even filled
  EXPECT_EQ(cache.stats().entries, 0u);
  cache.MarkFresh(clock.now);
  cache.Fill(Member(7, 1), cache.Generation(7));
  ASSERT_NE(cache.Get(7), nullptr);
  EXPECT_EQ(Version(cache.Get(7)), 1);
  clock.now += absl::Milliseconds(1999);
  EXPECT_NE(cache.Get(7), nullptr);
  clock.now += absl::Milliseconds(2);  // the follower's last success is now too old
  EXPECT_EQ(cache.Get(7), nullptr);
  cache.MarkFresh(clock.now);
  EXPECT_NE(cache.Get(7), nullptr);  // kept through the gap: the follower invalidates what changed in it
  const auto st = cache.stats();
  EXPECT_EQ(st.hits, 4u);
  EXPECT_EQ(st.bypassed, 2u);
}

TEST(MemberCache, DisabledWithNoMemory) {
  MemberCache cache({0, absl::Seconds(2)});
  cache.MarkFresh(absl::Now());
  EXPECT_FALSE(cache.enabled());
  cache.Fill(Member(1, 1), cache.Generation(1));
  EXPECT_EQ(cache.Get(1), nullptr);
}

TEST(MemberCache, AFillThatReadBeforeAnInvalidationIsRefused) {
  MemberCache cache({1 << 20, absl::Hours(1)});
  cache.MarkFresh(absl::Now());
  cache.Fill(Member(5, 1), cache.Generation(5));
  ASSERT_NE(cache.Get(5), nullptr);
  // A reader takes the generation and reads version 1; a writer commits version 2 and invalidates;
  // the reader's late fill must not bring version 1 back.
  const uint64_t before = cache.Generation(5);
  cache.Invalidate({5});
  EXPECT_EQ(cache.Get(5), nullptr);
  cache.Fill(Member(5, 1), before);
  EXPECT_EQ(cache.Get(5), nullptr);
  EXPECT_EQ(cache.stats().refused_fills, 1u);
  cache.Fill(Member(5, 2), cache.Generation(5));
  ASSERT_NE(cache.Get(5), nullptr);
  EXPECT_EQ(Version(cache.Get(5)), 2);
  cache.Clear();
  EXPECT_EQ(cache.Get(5), nullptr);
}

TEST(MemberCache, StaysWithinItsMemoryEvictingTheOldest) {
  const size_t budget = 256 * 1024;
  MemberCache cache({budget, absl::Hours(1)});
  cache.MarkFresh(absl::Now());
  for (int64_t id = 1; id <= 20000; ++id) cache.Fill(Member(id, 1, std::string(100, 'x')), cache.Generation(id));
  const auto st = cache.stats();
  EXPECT_LE(st.bytes, budget);
  EXPECT_GT(st.entries, 100u);
  EXPECT_LT(st.entries, 20000u);
  EXPECT_EQ(st.evictions + st.entries, 20000u);
  EXPECT_NE(cache.Get(20000), nullptr);  // the newest stay
  EXPECT_EQ(cache.Get(1), nullptr);      // the oldest went
}

// Writers bump a member's version in the "database" and invalidate; readers take the generation,
// read the database and fill. Once everyone stops, whatever the cache holds is the latest version.
TEST(MemberCache, RacingReadersNeverLeaveAnOldVersionBehind) {
  constexpr int kMembers = 8;
  MemberCache cache({1 << 20, absl::Hours(1)});
  cache.MarkFresh(absl::Now());
  std::atomic<int> db[kMembers];
  for (auto& v : db) v = 1;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937 rng(r);
      while (!stop) {
        const int id = static_cast<int>(rng() % kMembers);
        if (cache.Get(id)) continue;
        const uint64_t g = cache.Generation(id);
        const int version = db[id].load();
        std::this_thread::yield();  // widen the window between the read and the fill
        cache.Fill(Member(id, version), g);
      }
    });
  }
  threads.emplace_back([&] {
    std::mt19937 rng(99);
    for (int i = 0; i < 20000; ++i) {
      const int id = static_cast<int>(rng() % kMembers);
      db[id].fetch_add(1);  // the commit
      cache.Invalidate({id});
    }
    stop = true;
  });
  for (auto& t : threads) t.join();
  for (int id = 0; id < kMembers; ++id) {
    if (auto held = cache.Get(id)) EXPECT_EQ(Version(held), db[id].load()) << id;
  }
}

}  // namespace
}  // namespace grassroots::membership
