#pragma once
// A bounded in-process cache of current member records for GetMember, kept coherent by
// invalidation: this replica's own writes invalidate after they commit, and every replica follows
// the change feed (MemberCacheFollower) to invalidate what other replicas changed.
//
// Coherence rules (docs/member-registry.md, "Member cache"):
// - A fill is refused when its shard was invalidated after the filler took its generation
//   (Generation() before the database read): a read that saw the row before a concurrent write
//   committed can never put the old row back after that write's invalidation.
// - Misses are not cached (a member created elsewhere is found at once).
// - Entries are served only while the follower keeps up: when its last successful poll is older
//   than `max_staleness`, lookups bypass the cache (and it is emptied) until it catches up again.
//   So a change made through another replica is seen here within the follower's interval; one
//   made here, at once.
// The cache holds protected identity only as stored (keyed hash, sealed, masked): never clear.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <mutex>
#include <thread>
#include <condition_variable>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "grassroots/common/db.h"

namespace grassroots::membership {

// A member as the cache holds it: compact (about a quarter of the parsed record's memory).
struct CachedMember {
  int64_t member_id = 0;
  std::string record;     // v1::Member wire form; id_number masked, id_hash in hex, phone clear
  std::string id_sealed;  // to open for callers with the personal-data right
};

class MemberCache final {
 public:
  using Clock = std::function<absl::Time()>;
  struct Options {
    size_t max_bytes = 128u << 20;                    // 0 disables the cache
    absl::Duration max_staleness = absl::Seconds(2);  // longest the follower may fall behind
  };
  explicit MemberCache(Options options, Clock clock = nullptr);

  bool enabled() const { return options_.max_bytes > 0; }

  // The cached record of `member_id`, or null (miss, or the cache is not usable now).
  std::shared_ptr<const CachedMember> Get(int64_t member_id);
  // The shard generation to pass to Fill; take it before reading the database.
  uint64_t Generation(int64_t member_id) const;
  // Caches `member` unless its shard was invalidated since `generation` or the cache is not usable.
  void Fill(std::shared_ptr<const CachedMember> member, uint64_t generation);
  // Forgets these members (call after the transaction that changed them committed).
  void Invalidate(const std::vector<int64_t>& member_ids);
  // The follower caught up at `at` (its last successful poll).
  void MarkFresh(absl::Time at);
  // Drops everything (the follower lost track, e.g. the database was unreachable).
  void Clear();

  struct Stats {
    uint64_t hits = 0, misses = 0, bypassed = 0, fills = 0, refused_fills = 0, evictions = 0, invalidations = 0;
    size_t entries = 0, bytes = 0;
  };
  Stats stats() const;

 private:
  static constexpr size_t kShards = 16;
  struct Entry {
    std::shared_ptr<const CachedMember> member;
    size_t bytes = 0;
    uint64_t stamp = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<int64_t, Entry> map;
    std::vector<std::pair<int64_t, uint64_t>> fifo;  // insertion order (id, stamp); ring from fifo_head
    size_t fifo_head = 0;
    size_t bytes = 0;
    uint64_t generation = 0;
    uint64_t next_stamp = 0;
  };
  Shard& ShardOf(int64_t id) { return shards_[static_cast<uint64_t>(id) % kShards]; }
  const Shard& ShardOf(int64_t id) const { return shards_[static_cast<uint64_t>(id) % kShards]; }
  bool Usable();
  static size_t SizeOf(const CachedMember& m);
  void EvictOne(Shard& s);  // s.mu held

  Options options_;
  Clock clock_;
  Shard shards_[kShards];
  std::atomic<int64_t> fresh_until_ns_{0};  // absl::ToUnixNanos(last fresh + max_staleness)
  std::atomic<uint64_t> hits_{0}, misses_{0}, bypassed_{0}, fills_{0}, refused_{0}, evictions_{0}, invalidations_{0};
};

// Follows the change feed for the cache: every `interval`, reads which members changed after its
// cursor (all replicas' writes) and invalidates them; marks the cache fresh after each successful
// poll. Starts from the last committed change (the cache is empty then).
class MemberCacheFollower final {
 public:
  // `after_poll` (optional) runs on the follower's thread after every poll (metrics).
  MemberCacheFollower(common::ConnectionPool& pool, MemberCache& cache, absl::Duration interval,
                      std::function<void()> after_poll = nullptr);
  ~MemberCacheFollower();
  void Start();
  void Stop();
  // One poll now (the thread's body; public for tests). OK when the cache is now fresh.
  absl::Status PollOnce();

 private:
  void Run();
  common::ConnectionPool& pool_;
  MemberCache& cache_;
  absl::Duration interval_;
  std::function<void()> after_poll_;
  int64_t cursor_ = -1;  // -1: not positioned yet
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace grassroots::membership
