#pragma once
// Which organisations a read "by village subtree" covers: the organisation asked for and every
// organisation under it in the member registry's tree (county -> township -> village). The
// registry is membership's; cadrepay keeps no copy of the tree.
//
// MembershipOrganisationTree asks membership (OrganisationService.ListChildren over gRPC) level
// by level. Without a membership address (SingleOrganisation) an organisation stands for itself
// only: the roll of that one village, and an empty list for a code nobody registered.
//
// The walk (paging, levels, errors) is a plain class over a call function, so it is tested with a
// fake; GrpcListChildren makes the real call.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grassroots/membership/v1/membership.pb.h"

namespace grassroots::cadrepay {

class OrganisationTree {
 public:
  virtual ~OrganisationTree() = default;
  // The codes of `org_code` and of every organisation under it, sorted and distinct. NOT_FOUND
  // (naming the field org_code) when the registry has no such organisation; UNAVAILABLE when the
  // registry cannot be asked (a partial subtree is never returned).
  virtual absl::StatusOr<std::vector<std::string>> Subtree(const std::string& org_code) = 0;
  // OK when the registry knows `org_code`; NOT_FOUND and UNAVAILABLE as Subtree.
  virtual absl::Status Known(const std::string& org_code) = 0;
};

// No member registry configured: the organisation alone.
class SingleOrganisation final : public OrganisationTree {
 public:
  absl::StatusOr<std::vector<std::string>> Subtree(const std::string& org_code) override {
    return std::vector<std::string>{org_code};
  }
  absl::Status Known(const std::string&) override { return absl::OkStatus(); }
};

// One ListChildren call: membership's answer or the status the call ended with.
using ListChildrenCall = std::function<absl::StatusOr<membership::v1::ListChildrenResponse>(
    const membership::v1::ListChildrenRequest&)>;

class MembershipOrganisationTree final : public OrganisationTree {
 public:
  // Children asked for per call (ListChildren's maximum page).
  static constexpr int kPageSize = 1000;
  // A subtree larger than this is refused (FAILED_PRECONDITION): a province has some tens of
  // thousands of organisations; more would mean a tree gone wrong.
  static constexpr size_t kMaxOrganisations = 500'000;

  // `target` names membership in errors ("membership at host:port").
  MembershipOrganisationTree(ListChildrenCall call, std::string target, size_t max_organisations = kMaxOrganisations);

  absl::StatusOr<std::vector<std::string>> Subtree(const std::string& org_code) override;
  // One call (a page of one child).
  absl::Status Known(const std::string& org_code) override;

 private:
  // The status of a failed call about `org_code`, as the caller should see it.
  absl::Status Failure(const std::string& org_code, const absl::Status& status, bool asked_for) const;
  ListChildrenCall call_;
  std::string target_;
  size_t max_organisations_;
};

// Calls OrganisationService.ListChildren over `channel`, each call with its own `timeout`.
ListChildrenCall GrpcListChildren(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout);

}  // namespace grassroots::cadrepay
