#pragma once
// The person numbers this process has seen committed, by keyed hash of the ID number, shared by
// every ingest (see V003__person_numbers.sql).
//
// Why it is correct: a committed person is never renumbered or removed, so a (hash -> number)
// pair read from committed rows, or written by a transaction that has committed, stays true for
// as long as the database it came from. Numbers still being written (an ingest not yet committed)
// are never added. A database that went back (restored from a backup, or emptied by tests) is
// noticed by its number counter: Validate() with the counter's next value clears the cache when
// that value is not above every number held (restoring the database behind a running cadrepay
// and writing new persons into it before the next ingest would not be noticed: restart cadrepay
// after a restore, as after any schema change).
//
// Why it exists: an ingest of enrolments or payments names millions of persons, and each one not
// met yet in the file was looked up in `persons` by hash (a random probe of its hash index, about
// 2.6 server CPU-seconds per million, with the round trips in the parsing thread's path).
//
// Bounded: holds at most `capacity` entries (about 25 bytes each); past it, nothing more is
// added and ingests look the rest up as before. Thread-safe.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace grassroots::cadrepay {

class PersonNumberCache {
 public:
  using Key = std::array<char, 16>;  // the 16-byte keyed hash
  using Map = absl::flat_hash_map<Key, int64_t>;
  static Key KeyOf(std::string_view id_hash);

  explicit PersonNumberCache(size_t capacity) : capacity_(capacity) {}

  // For each key, its number, or 0 when not held. One lock for the whole batch.
  void Find(const std::vector<Key>& keys, std::vector<int64_t>& numbers) const;
  // Adds a committed number while below capacity (a key held already keeps its number). False
  // when the cache is full (or disabled) and did not take it.
  bool Add(const Key& key, int64_t number);
  // Adds every committed number of `numbers` while below capacity; takes the map whole when the
  // cache is empty and it fits. `numbers` is left empty.
  void AddAll(Map&& numbers);
  // `counter_next`: the database's next person number now. Clears the cache when the database
  // has gone back (its counter is not above the highest number held).
  void Validate(int64_t counter_next);

  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  bool AddLocked(const Key& key, int64_t number) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const size_t capacity_;
  mutable absl::Mutex mu_;
  Map map_ ABSL_GUARDED_BY(mu_);
  int64_t highest_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace grassroots::cadrepay
