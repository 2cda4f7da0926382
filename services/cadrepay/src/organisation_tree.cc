#include "organisation_tree.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "grassroots/common/log.h"
#include "grassroots/common/status.h"
#include "grassroots/membership/v1/membership.grpc.pb.h"

namespace grassroots::cadrepay {

namespace mv1 = grassroots::membership::v1;

MembershipOrganisationTree::MembershipOrganisationTree(ListChildrenCall call, std::string target,
                                                       size_t max_organisations)
    : call_(std::move(call)), target_(std::move(target)), max_organisations_(max_organisations) {}

absl::StatusOr<std::vector<std::string>> MembershipOrganisationTree::Subtree(const std::string& org_code) {
  absl::flat_hash_set<std::string> seen = {org_code};
  std::vector<std::string> out = {org_code};
  // Level by level: `out` holds every code found so far; [next, out.size()) still to be asked.
  for (size_t next = 0; next < out.size(); ++next) {
    const std::string parent = out[next];  // a copy: `out` grows below
    mv1::ListChildrenRequest request;
    request.set_org_code(parent);
    request.set_page_size(kPageSize);
    while (true) {
      auto page = call_(request);
      if (!page.ok()) {
        // An organisation found on the way down and deleted since has no children to add.
        if (next > 0 && page.status().code() == absl::StatusCode::kNotFound) break;
        return Failure(org_code, page.status(), next == 0);
      }
      for (const auto& child : page->organisations()) {
        // A code met twice (a move while we walk) is taken once; a cycle cannot loop.
        if (!seen.insert(child.org_code()).second) continue;
        out.push_back(child.org_code());
        if (out.size() > max_organisations_) {
          return absl::FailedPreconditionError(absl::StrCat("org_code: the subtree of ", org_code, " has more than ",
                                                            max_organisations_, " organisations"));
        }
      }
      if (page->next_page_token().empty()) break;
      request.set_page_token(page->next_page_token());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status MembershipOrganisationTree::Known(const std::string& org_code) {
  mv1::ListChildrenRequest request;
  request.set_org_code(org_code);
  request.set_page_size(1);
  auto page = call_(request);
  return page.ok() ? absl::OkStatus() : Failure(org_code, page.status(), true);
}

absl::Status MembershipOrganisationTree::Failure(const std::string& org_code, const absl::Status& status,
                                                 bool asked_for) const {
  if (asked_for && status.code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("org_code: no organisation ", org_code, " in the member registry"));
  }
  const bool transient =
      status.code() == absl::StatusCode::kUnavailable || status.code() == absl::StatusCode::kDeadlineExceeded;
  const std::string message =
      absl::StrCat("the member registry (membership at ", target_, ") could not be asked about organisation ", org_code,
                   " and the organisations under it: ", absl::StatusCodeToString(status.code()), ": ", status.message());
  return transient ? absl::UnavailableError(message) : absl::InternalError(message);
}

ListChildrenCall GrpcListChildren(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout) {
  std::shared_ptr<mv1::OrganisationService::Stub> stub = mv1::OrganisationService::NewStub(std::move(channel));
  return [stub, timeout](const mv1::ListChildrenRequest& request) -> absl::StatusOr<mv1::ListChildrenResponse> {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    if (const std::string_view id = common::CurrentRequestId(); !id.empty()) {
      ctx.AddMetadata("x-request-id", std::string(id));
    }
    mv1::ListChildrenResponse response;
    grpc::Status status = stub->ListChildren(&ctx, request, &response);
    if (!status.ok()) return common::FromGrpcStatus(status);
    return response;
  };
}

}  // namespace grassroots::cadrepay
