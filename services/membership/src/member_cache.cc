#include "member_cache.h"

#include <utility>

#include "change_feed.h"
#include "grassroots/common/log.h"

namespace grassroots::membership {

MemberCache::MemberCache(Options options, Clock clock)
    : options_(options), clock_(clock ? std::move(clock) : Clock([] { return absl::Now(); })) {}

size_t MemberCache::SizeOf(const CachedMember& m) {
  // The entry, its strings' heap blocks, the shared pointer's control block, the map's slot and
  // the eviction ring's pair: an estimate that errs high.
  return sizeof(CachedMember) + m.record.capacity() + m.id_sealed.capacity() + 48 + 32 + 16;
}

bool MemberCache::Usable() {
  if (!enabled()) return false;
  return absl::ToUnixNanos(clock_()) < fresh_until_ns_.load(std::memory_order_acquire);
}

std::shared_ptr<const CachedMember> MemberCache::Get(int64_t member_id) {
  if (!Usable()) {
    bypassed_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  Shard& s = ShardOf(member_id);
  std::shared_ptr<const CachedMember> found;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (auto it = s.map.find(member_id); it != s.map.end()) found = it->second.member;
  }
  (found ? hits_ : misses_).fetch_add(1, std::memory_order_relaxed);
  return found;
}

uint64_t MemberCache::Generation(int64_t member_id) const {
  const Shard& s = ShardOf(member_id);
  std::lock_guard<std::mutex> lock(s.mu);
  return s.generation;
}

void MemberCache::EvictOne(Shard& s) {
  while (s.fifo_head < s.fifo.size()) {
    auto [id, stamp] = s.fifo[s.fifo_head++];
    auto it = s.map.find(id);
    if (it == s.map.end() || it->second.stamp != stamp) continue;  // invalidated or refilled since
    s.bytes -= it->second.bytes;
    s.map.erase(it);
    evictions_.fetch_add(1, std::memory_order_relaxed);
    break;
  }
  // Compact the ring's consumed prefix once it is half of it.
  if (s.fifo_head > 1024 && s.fifo_head * 2 > s.fifo.size()) {
    s.fifo.erase(s.fifo.begin(), s.fifo.begin() + static_cast<std::ptrdiff_t>(s.fifo_head));
    s.fifo_head = 0;
  }
}

void MemberCache::Fill(std::shared_ptr<const CachedMember> member, uint64_t generation) {
  if (!member || !Usable()) return;
  const int64_t id = member->member_id;
  const size_t bytes = SizeOf(*member);
  const size_t shard_budget = options_.max_bytes / kShards;
  if (bytes > shard_budget) return;
  Shard& s = ShardOf(id);
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.generation != generation) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (auto it = s.map.find(id); it != s.map.end()) {
    s.bytes -= it->second.bytes;
    s.map.erase(it);
  }
  while (s.bytes + bytes > shard_budget && !s.map.empty()) EvictOne(s);
  const uint64_t stamp = ++s.next_stamp;
  s.map.emplace(id, Entry{std::move(member), bytes, stamp});
  s.fifo.emplace_back(id, stamp);
  s.bytes += bytes;
  fills_.fetch_add(1, std::memory_order_relaxed);
}

void MemberCache::Invalidate(const std::vector<int64_t>& member_ids) {
  if (!enabled()) return;
  for (int64_t id : member_ids) {
    Shard& s = ShardOf(id);
    std::lock_guard<std::mutex> lock(s.mu);
    ++s.generation;
    if (auto it = s.map.find(id); it != s.map.end()) {
      s.bytes -= it->second.bytes;
      s.map.erase(it);
    }
  }
  invalidations_.fetch_add(member_ids.size(), std::memory_order_relaxed);
}

void MemberCache::MarkFresh(absl::Time at) {
  fresh_until_ns_.store(absl::ToUnixNanos(at + options_.max_staleness), std::memory_order_release);
}

void MemberCache::Clear() {
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    ++s.generation;
    s.map.clear();
    s.fifo.clear();
    s.fifo_head = 0;
    s.bytes = 0;
  }
}

MemberCache::Stats MemberCache::stats() const {
  Stats st;
  st.hits = hits_.load();
  st.misses = misses_.load();
  st.bypassed = bypassed_.load();
  st.fills = fills_.load();
  st.refused_fills = refused_.load();
  st.evictions = evictions_.load();
  st.invalidations = invalidations_.load();
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    st.entries += s.map.size();
    st.bytes += s.bytes;
  }
  return st;
}

MemberCacheFollower::MemberCacheFollower(common::ConnectionPool& pool, MemberCache& cache, absl::Duration interval,
                                         std::function<void()> after_poll)
    : pool_(pool), cache_(cache), interval_(interval), after_poll_(std::move(after_poll)) {}

MemberCacheFollower::~MemberCacheFollower() { Stop(); }

absl::Status MemberCacheFollower::PollOnce() {
  const absl::Time started = absl::Now();  // changes committed after this may not be seen yet
  auto conn = pool_.Acquire(started + absl::Seconds(5));
  if (!conn.ok()) return conn.status();
  ChangeFeedRepository feed;
  // Every number up to the last committed one is committed (n + 1 is handed out only after the
  // transaction holding n committed): that is how far this poll can vouch for.
  auto last = common::Track(*conn, feed.LastCommitted(**conn));
  if (!last.ok()) return last.status();
  if (cursor_ < 0) {
    cache_.Clear();  // nothing cached before this point can be vouched for
  } else {
    constexpr int kPage = 5000;
    while (cursor_ < *last) {
      auto changed = common::Track(*conn, feed.MemberChangesAfter(**conn, cursor_, *last, kPage));
      if (!changed.ok()) return changed.status();
      std::vector<int64_t> ids;
      ids.reserve(changed->size());
      for (const auto& [seq, member_id] : *changed) ids.push_back(member_id);
      cache_.Invalidate(ids);
      if (changed->size() < static_cast<size_t>(kPage)) break;
      cursor_ = changed->back().first;
    }
  }
  cursor_ = *last;
  cache_.MarkFresh(started);
  return absl::OkStatus();
}

void MemberCacheFollower::Start() {
  if (!cache_.enabled()) return;
  thread_ = std::thread([this] { Run(); });
}

void MemberCacheFollower::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MemberCacheFollower::Run() {
  bool failing = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    auto s = PollOnce();
    if (!s.ok() && !failing) {
      // Lookups bypass the cache once it is older than its staleness bound; say so once.
      common::LogWarning("member cache: cannot follow the change feed; reads go to the database",
                         {{"error", s.ToString()}});
    } else if (s.ok() && failing) {
      common::LogInfo("member cache: following the change feed again", {});
    }
    failing = !s.ok();
    if (after_poll_) after_poll_();
    lock.lock();
    cv_.wait_for(lock, absl::ToChronoNanoseconds(interval_), [this] { return stop_; });
  }
}

}  // namespace grassroots::membership
