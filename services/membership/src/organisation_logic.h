#pragma once
// The organisation use cases: create, read, change, delete, list, ancestry, move, import and
// export. Plain class over a connection pool; the gRPC handler is a thin adapter around it.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grassroots/common/db.h"
#include "grassroots/exchange/v1/exchange.pb.h"
#include "grassroots/membership/v1/membership.pb.h"
#include "organisation_repository.h"

namespace grassroots::membership {

class OrganisationLogic final {
 public:
  explicit OrganisationLogic(common::ConnectionPool& pool) : pool_(pool) {}

  absl::StatusOr<v1::Organisation> Create(v1::Organisation org, absl::Time deadline);
  absl::StatusOr<v1::Organisation> Get(const std::string& code, absl::Time deadline);
  absl::StatusOr<v1::Organisation> Update(const v1::UpdateOrganisationRequest& request, absl::Time deadline);
  absl::Status Delete(const std::string& code, absl::Time deadline);
  absl::StatusOr<v1::ListChildrenResponse> ListChildren(const v1::ListChildrenRequest& request, absl::Time deadline);
  // The organisation and everything under it, by org_code, paged (ListSubtreeRequest), with the
  // change feed's position the page reflects.
  absl::StatusOr<v1::ListSubtreeResponse> ListSubtree(const v1::ListSubtreeRequest& request, absl::Time deadline);
  absl::StatusOr<v1::GetAncestryResponse> Ancestry(const std::string& code, absl::Time deadline);
  absl::StatusOr<v1::Organisation> Move(const std::string& code, const std::string& new_parent, absl::Time deadline);

  // Streams a subtree as organisations.csv in chunks of about `chunk_bytes`, parents first.
  // `sink` returns false to stop (client gone).
  absl::Status Export(const std::string& code, const std::function<bool(std::string_view)>& sink,
                      size_t chunk_bytes = 64 * 1024);

  // Reads organisations.csv fed in chunks, then writes it on Finish().
  class Import;
  std::unique_ptr<Import> StartImport();

 private:
  common::ConnectionPool& pool_;
  OrganisationRepository repo_;
};

class OrganisationLogic::Import final {
 public:
  explicit Import(OrganisationLogic& logic);
  ~Import();
  void Feed(std::string_view chunk);
  // Validates the whole file, orders parents before children, writes; returns the report.
  absl::StatusOr<exchange::v1::ImportReport> Finish();

 private:
  struct State;
  OrganisationLogic& logic_;
  std::unique_ptr<State> state_;
};

// Column layout of organisations.csv (formats.md).
const std::vector<std::string>& OrganisationCsvColumns();

}  // namespace grassroots::membership
