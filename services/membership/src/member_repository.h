#pragma once
// SQL for members, member_events and member_kin, and the read side of the type-fit report and
// the date-rule run. Every method works on a connection the caller borrowed (the caller
// decides the transaction) and turns Connector/C++ exceptions into statuses.

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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
  std::string details;  // JSON object
};

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
  // Writes rows in one multi-row statement: member_id 0 inserts, otherwise overwrites that member.
  absl::Status WriteBatch(sql::Connection& conn, const std::vector<const StoredMember*>& rows) const;
  // member_id of each registered hash.
  absl::StatusOr<std::unordered_map<std::string, int64_t>> IdsOf(sql::Connection& conn,
                                                                 const std::vector<std::string>& hashes) const;
  absl::Status InsertEvents(sql::Connection& conn, const std::vector<EventRow>& events) const;
  // The highest member_id (0 when there is none), and hash -> member_id of the members above
  // `after` (at most limit): with the change-feed lock held nobody else inserts members, so
  // after a bulk insert this is a primary-key range read of exactly the rows just written.
  absl::StatusOr<int64_t> MaxMemberId(sql::Connection& conn) const;
  absl::StatusOr<std::unordered_map<std::string, int64_t>> IdsAfter(sql::Connection& conn, int64_t after,
                                                                    size_t limit) const;
  // Bulk forms for the import: new members (member_id 0) and events through LOAD DATA LOCAL
  // INFILE of `scratch_file` (a private file the caller owns; overwritten). Fails, so that the
  // caller's transaction rolls back, unless every row was stored exactly, without a warning.
  absl::Status LoadNewMembers(sql::Connection& conn, const std::vector<const StoredMember*>& rows,
                              const std::string& scratch_file) const;
  absl::Status LoadEvents(sql::Connection& conn, const std::vector<EventRow>& events,
                          const std::string& scratch_file) const;
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
