#pragma once
// The change feed: a transactional outbox for organisations and members.
//
// Sequence numbers come from the one-row table change_counter: a writer runs
// `UPDATE change_counter SET seq = seq + n` inside its own transaction and uses the n numbers
// below the new value. The row lock is held until commit, so numbers are handed out in commit
// order and a rollback gives them back: the sequence is gap-free and commit-ordered, which
// auto-increment ids are not under concurrent writers. Member changes are the rows of
// member_events (the event log is the members' outbox) and, for members the bulk import
// registered, the compact rows of member_created_events (one row per run of consecutive
// "created" events, expanded here into one change per member); organisation changes are rows of
// organisation_changes; kinship changes rows of kin_changes. The feed reads all four after a
// cursor in one snapshot and merges them by sequence.

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grassroots/common/db.h"
#include "grassroots/membership/v1/members.pb.h"
#include "grassroots/membership/v1/membership.pb.h"

namespace sql {
class Connection;
}

namespace grassroots::membership {

class ChangeFeedRepository final {
 public:
  // Takes the counter's row lock first thing in a transaction, so that writers queue on it
  // before locking anything else (no deadlocks between writers of members).
  absl::Status Lock(sql::Connection& conn) const;
  // Reserves n sequence numbers in the caller's transaction; returns the first.
  absl::StatusOr<int64_t> Reserve(sql::Connection& conn, int64_t n) const;
  // The last committed sequence number.
  absl::StatusOr<int64_t> LastCommitted(sql::Connection& conn) const;
  // Records one change of an organisation (reserves its number), in the caller's transaction.
  absl::Status AppendOrganisation(sql::Connection& conn, const std::string& org_code, const std::string& kind,
                                  const v1::Organisation& after) const;
  // Records that a kinship relation was added (reserves its number), in the caller's
  // transaction, which must hold Lock().
  absl::Status AppendKin(sql::Connection& conn, const std::string& kind, int64_t member_id, int64_t kin_member_id,
                         const std::string& relation, const std::string& source,
                         const std::string& recorded_by) const;
  // Which existing members changed in (after, upto]: (change_seq, member_id) of member events
  // other than a member's first, in sequence order, at most limit (the member cache's follower;
  // `upto` a LastCommitted() read before, so every number up to it is committed).
  absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> MemberChangesAfter(sql::Connection& conn, int64_t after,
                                                                              int64_t upto, int limit) const;
  // Changes with seq > after, in sequence order, at most limit.
  absl::StatusOr<std::vector<v1::Change>> Read(sql::Connection& conn, int64_t after, int limit) const;
};

class ChangeFeed final {
 public:
  explicit ChangeFeed(common::ConnectionPool& pool) : pool_(pool) {}
  // Delivers every change after `after_seq` to `sink` in order; with `follow`, keeps polling
  // every `poll` until `sink` returns false or `cancelled` says so. A cursor above the last
  // committed change is OUT_OF_RANGE; a negative one INVALID_ARGUMENT.
  absl::Status Watch(int64_t after_seq, bool follow, const std::function<bool(const v1::Change&)>& sink,
                     const std::function<bool()>& cancelled, absl::Duration poll = absl::Milliseconds(500));

 private:
  common::ConnectionPool& pool_;
  ChangeFeedRepository repo_;
};

}  // namespace grassroots::membership
