#pragma once
// SQL for the organisations table. Every method works on a connection the caller borrowed
// (so the caller decides the transaction) and turns Connector/C++ exceptions into statuses.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grassroots/membership/v1/membership.pb.h"

namespace sql {
class Connection;
}

namespace grassroots::membership {

// An organisation as stored, with its materialised path ('/top/.../self/').
struct StoredOrganisation {
  v1::Organisation org;
  std::string path;
};

class OrganisationRepository final {
 public:
  // The organisation with this code, or nullopt. `for_update` locks the row.
  absl::StatusOr<std::optional<StoredOrganisation>> Find(sql::Connection& conn, const std::string& code,
                                                         bool for_update = false) const;
  // Those of `codes` that exist (any order).
  absl::StatusOr<std::vector<StoredOrganisation>> FindMany(sql::Connection& conn,
                                                           const std::vector<std::string>& codes) const;
  absl::Status Insert(sql::Connection& conn, const v1::Organisation& org, const std::string& path,
                      int depth) const;
  // Writes the descriptive fields (not parent, path or depth).
  absl::Status UpdateFields(sql::Connection& conn, const v1::Organisation& org) const;
  absl::Status Delete(sql::Connection& conn, const std::string& code) const;
  absl::StatusOr<int64_t> CountChildren(sql::Connection& conn, const std::string& code) const;
  // The length of the longest path in the subtree whose root has `path` (that path's own at least).
  absl::StatusOr<int64_t> LongestPathUnder(sql::Connection& conn, const std::string& path) const;
  // Direct children with org_code > after, ordered by org_code, at most limit.
  absl::StatusOr<std::vector<v1::Organisation>> ListChildren(sql::Connection& conn, const std::string& parent,
                                                             const std::string& after, int limit) const;
  // Re-parents `code` and rewrites the paths and depths of its whole subtree.
  absl::Status MoveSubtree(sql::Connection& conn, const std::string& code, const std::string& new_parent,
                           const std::string& old_path, const std::string& new_path, int depth_delta) const;
  // One page of the subtree whose top has `path_prefix` (the top included): the organisations
  // with org_code > after, ordered by org_code, at most limit (path LIKE prefix: the path index).
  absl::StatusOr<std::vector<v1::Organisation>> ListSubtree(sql::Connection& conn, const std::string& path_prefix,
                                                            const std::string& after, int limit) const;
  // One page of a subtree in (depth, org_code) order after the given key.
  absl::StatusOr<std::vector<StoredOrganisation>> ScanSubtree(sql::Connection& conn, const std::string& path_prefix,
                                                              int after_depth, const std::string& after_code,
                                                              int limit) const;
};

}  // namespace grassroots::membership
