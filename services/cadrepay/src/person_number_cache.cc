#include "person_number_cache.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace grassroots::cadrepay {

PersonNumberCache::Key PersonNumberCache::KeyOf(std::string_view id_hash) {
  Key k{};
  std::memcpy(k.data(), id_hash.data(), std::min(k.size(), id_hash.size()));
  return k;
}

void PersonNumberCache::Find(const std::vector<Key>& keys, std::vector<int64_t>& numbers) const {
  numbers.assign(keys.size(), 0);
  if (capacity_ == 0) return;
  absl::ReaderMutexLock lock(&mu_);
  if (map_.empty()) return;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (auto it = map_.find(keys[i]); it != map_.end()) numbers[i] = it->second;
  }
}

bool PersonNumberCache::AddLocked(const Key& key, int64_t number) {
  if (map_.size() >= capacity_) return map_.contains(key);
  if (map_.try_emplace(key, number).second) highest_ = std::max(highest_, number);
  return true;
}

bool PersonNumberCache::Add(const Key& key, int64_t number) {
  if (capacity_ == 0) return false;
  absl::MutexLock lock(&mu_);
  return AddLocked(key, number);
}

void PersonNumberCache::AddAll(Map&& numbers) {
  Map taken = std::move(numbers);
  numbers.clear();
  if (capacity_ == 0 || taken.empty()) return;
  absl::MutexLock lock(&mu_);
  if (map_.empty() && taken.size() <= capacity_) {
    for (const auto& [key, no] : taken) highest_ = std::max(highest_, no);
    map_.swap(taken);
    return;
  }
  for (const auto& [key, no] : taken) {
    if (map_.size() >= capacity_) break;
    AddLocked(key, no);
  }
}

void PersonNumberCache::Validate(int64_t counter_next) {
  absl::MutexLock lock(&mu_);
  if (map_.empty() || counter_next > highest_) return;
  Map().swap(map_);  // frees the table, not only its entries
  highest_ = 0;
}

size_t PersonNumberCache::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return map_.size();
}

}  // namespace grassroots::cadrepay
