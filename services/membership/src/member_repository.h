#pragma once
// SQL for members, member_events and member_kin, and the read side of the type-fit report and
// the date-rule run. Every method works on a connection the caller borrowed (the caller
// decides the transaction) and turns Connector/C++ exceptions into statuses.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grassroots/common/load_pipe.h"
#include "grassroots/membership/v1/members.pb.h"

namespace sql {
class Connection;
}
namespace grassroots::common {
class PooledConnection;
}

namespace grassroots::membership {

// A member as stored. m.id_number is empty here: the ID lives in id_hash / id_sealed / id_masked.
struct StoredMember {
  v1::Member m;
  std::string id_hash;     // 16 bytes
  std::string id_sealed;   // PiiProtector::Seal
  std::string id_masked;
  std::string last_effective;  // effective_on of the latest event (Find only)
};

// One row of member_events.
struct EventRow {
  int64_t change_seq = 0;
  int64_t member_id = 0;
  int version = 0;
  std::string kind;
  std::string status_after;
  std::string org_code;
  std::string effective_on;
  std::string deciding_org;
  std::string recorded_by;
  std::string recorded_at;  // RFC 3339 with the +08:00 offset (GR_SQL_RFC3339)
  std::string details;  // JSON object
};

// SQL that renders a TIMESTAMP column as RFC 3339. Connections run with time_zone '+08:00'
// (common/db.cc), so the offset written is that one, never "Z".
#define GR_SQL_RFC3339(c) "DATE_FORMAT(" c ", '%Y-%m-%dT%H:%i:%s.%f+08:00')"

// The event as the API shows it.
void ToMemberEvent(const EventRow& row, v1::MemberEvent& out);

struct OrgCount {
  std::string org_code;
  int64_t full = 0;
  int64_t members = 0;  // full + probationary
};

struct SubtreeOrg {
  std::string org_code;
  std::string org_type;
  std::string parent_code;
};

struct KinRow {
  int64_t member_id = 0;
  std::string id_hash;
  int64_t kin_member_id = 0;
  std::string kin_id_hash;
  std::string kin_id_masked;
  std::string kin_id_sealed;
  std::string kin_name;
  std::string relation;
  std::string source;
};

// MemberEvent.details as stored: the JSON the API shows ({"field":"value",...}), or the compact
// form the bulk import writes for a new member (a third of the bytes: one key letter per field,
// the value, then 0x1F; the phone number as "(changed)" like the JSON). DetailsJson turns either
// into the JSON; CompactCreatedDetails(m) gives what DetailsJson turns into exactly the JSON of
// every non-empty fact of a new member (as MemberLogic's "created" events show them), or that
// JSON itself when a value holds a 0x1F byte.
std::string CompactCreatedDetails(const v1::Member& m);
std::string DetailsJson(std::string_view stored);

// The bulk import's "created" events, stored compactly (migration V005): one row of
// member_created_events per run of up to kCreatedEventsPerRow consecutive events. An event there
// has version 1, kind "created", deciding_org its org_code; EncodeCreatedEvents writes what
// DecodeCreatedEvents reads back (change_seq first_seq, first_seq + 1, ... in order; details as
// stored, for DetailsJson). Decode fails on anything malformed.
inline constexpr size_t kCreatedEventsPerRow = 500;
void EncodeCreatedEvents(const EventRow* begin, const EventRow* end, std::string& out);
// With only_member_id, only that member's event is added (the others are checked and skipped).
absl::Status DecodeCreatedEvents(std::string_view blob, int64_t first_seq, int64_t last_seq,
                                 const std::string& recorded_by, std::vector<EventRow>& out,
                                 int64_t only_member_id = 0);

// The import's bulk loads go through common::LoadPipe (no file holds the rows).
using common::LoadPipe;
using common::LoadResult;

// A new member as the import loads it: member_id set, version 1, no activist_on, target_on or
// extension (a new record has none); id_number is not read.
struct NewMemberRow {
  const v1::Member* m = nullptr;
  std::string_view id_hash, id_sealed, id_masked;
};

// What one LOAD DATA stored: rows inserted and warnings raised (a skipped duplicate is one).
class MemberRepository final {
 public:
  absl::StatusOr<std::optional<StoredMember>> Find(sql::Connection& conn, int64_t member_id,
                                                   bool for_update = false) const;
  // The read path of GetMember: the current records of `ids` (those that exist, any order;
  // last_effective left empty) in one query, on statements prepared once per pooled connection.
  absl::StatusOr<std::vector<StoredMember>> FindCurrent(common::PooledConnection& conn,
                                                        const std::vector<int64_t>& ids) const;
  absl::StatusOr<std::optional<StoredMember>> FindByHash(sql::Connection& conn, const std::string& hash,
                                                         bool for_update = false) const;
  // Those of `hashes` that are registered (any order), locked FOR UPDATE when asked.
  absl::StatusOr<std::vector<StoredMember>> FindByHashes(sql::Connection& conn, const std::vector<std::string>& hashes,
                                                         bool for_update) const;
  // Hands out n member ids (returns the first) from member_id_counter, in a transaction of its
  // own: call it outside the caller's transaction (ids of a rolled-back insert stay unused).
  // Every insert of a member takes its id from here, never from AUTO_INCREMENT.
  absl::StatusOr<int64_t> AllocateMemberIds(sql::Connection& conn, int64_t n) const;
  // Inserts new members (member_id set) in one multi-row statement; a registered id_hash is an error.
  absl::Status InsertMembers(sql::Connection& conn, const std::vector<const StoredMember*>& rows) const;
  // Overwrites registered members in one multi-row statement.
  absl::Status UpdateMembers(sql::Connection& conn, const std::vector<const StoredMember*>& rows) const;
  // The member_ids in [first, last] that exist (in this transaction's view).
  absl::StatusOr<std::vector<int64_t>> IdsBetween(sql::Connection& conn, int64_t first, int64_t last) const;
  // member_id of each registered hash.
  absl::StatusOr<std::unordered_map<std::string, int64_t>> IdsOf(sql::Connection& conn,
                                                                 const std::vector<std::string>& hashes) const;
  absl::Status InsertEvents(sql::Connection& conn, const std::vector<EventRow>& events) const;
  // The import's "created" events of new members, compactly (V005): `created` in sequence order
  // (consecutive change_seq from the first, ascending member_id, version 1, kind "created",
  // deciding_org the org_code, one recorded_by), in rows of kCreatedEventsPerRow, one statement.
  absl::Status InsertCreatedEvents(sql::Connection& conn, const std::vector<EventRow>& created) const;
  // The "created" event of member_id when the import stored it compactly (details as JSON).
  absl::StatusOr<std::optional<EventRow>> FindCreatedEvent(sql::Connection& conn, int64_t member_id) const;
  // Bulk forms for the import, through LOAD DATA LOCAL INFILE reading `pipe`. New members:
  // a row whose id_hash is registered is skipped with a warning (the caller reconciles); the
  // file is sent as binary (the raw hash and sealed bytes; every text was checked to be UTF-8).
  absl::StatusOr<LoadResult> LoadNewMembers(sql::Connection& conn, const std::vector<NewMemberRow>& rows,
                                            LoadPipe& pipe) const;
  // Events: fails, so that the caller's transaction rolls back, unless every row was stored
  // exactly, without a warning.
  absl::Status LoadEvents(sql::Connection& conn, const std::vector<EventRow>& events, LoadPipe& pipe) const;
  absl::StatusOr<std::vector<EventRow>> ListEvents(sql::Connection& conn, int64_t member_id) const;
  // Members of a subtree with member_id > after, by member_id, at most limit.
  absl::StatusOr<std::vector<StoredMember>> ListSubtree(sql::Connection& conn, const std::string& path_prefix,
                                                        const std::vector<std::string>& statuses, int64_t after,
                                                        int limit) const;
  // Members registered directly in one organisation with member_id > after, by member_id.
  absl::StatusOr<std::vector<StoredMember>> ScanOrganisation(sql::Connection& conn, const std::string& org_code,
                                                             int64_t after, int limit) const;
  // Organisations of a subtree, ordered by path (parents first).
  absl::StatusOr<std::vector<SubtreeOrg>> SubtreeOrganisations(sql::Connection& conn,
                                                               const std::string& path_prefix) const;
  // One aggregate over the subtree: full and full+probationary members per organisation.
  absl::StatusOr<std::vector<OrgCount>> CountByOrganisation(sql::Connection& conn, const std::string& path_prefix) const;
  absl::StatusOr<int64_t> CountInOrganisation(sql::Connection& conn, const std::string& org_code) const;
  // Probationary members of a subtree whose probation ended before `as_of`.
  absl::StatusOr<std::vector<StoredMember>> Overdue(sql::Connection& conn, const std::string& path_prefix,
                                                    const std::string& as_of) const;
  // Probationary members of the whole registry whose probation ended before `as_of`.
  absl::StatusOr<int64_t> CountOverdue(sql::Connection& conn, const std::string& as_of) const;
  // Inserts a relation; false when it was already recorded.
  absl::StatusOr<bool> InsertKin(sql::Connection& conn, int64_t member_id, int64_t kin_member_id,
                                 const std::string& relation, const std::string& source,
                                 const std::string& recorded_by) const;
  absl::StatusOr<std::vector<KinRow>> ListKin(sql::Connection& conn, const std::vector<int64_t>& member_ids) const;
};

}  // namespace grassroots::membership
