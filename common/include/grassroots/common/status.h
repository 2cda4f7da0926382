#pragma once
// One place that maps domain errors (absl::Status) to gRPC statuses, with
// google.rpc.BadRequest field violations for invalid input.

#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grassroots::common {

// A field that failed validation: `field` is the proto field path (snake_case, e.g.
// "organisation.division_code"), `description` says why.
struct FieldViolation {
  std::string field;
  std::string description;
};

// INVALID_ARGUMENT naming the field and why; carries a BadRequest payload.
absl::Status InvalidField(std::string_view field, std::string_view description);
// INVALID_ARGUMENT for several fields at once; message names the first.
absl::Status InvalidFields(const std::vector<FieldViolation>& violations);

// Page tokens that name the listing they continue: web-safe base64 of `scope` (the listing and
// the request's own filters, e.g. "members:B1/full") and the position. ReadPageToken answers the
// position of a token made for `scope`, and INVALID_ARGUMENT on page_token for one made for
// another scope (another organisation or filter) or not made here.
std::string MakePageToken(std::string_view scope, std::string_view position);
absl::StatusOr<std::string> ReadPageToken(std::string_view token, std::string_view scope);
// The field violations carried by a status, if any.
std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status);

// The single conversion used at every RPC edge. The returned status carries a serialized
// google.rpc.Status (with BadRequest details where present) as its binary error details.
grpc::Status ToGrpcStatus(const absl::Status& status);
// Sets a unary response from a StatusOr and converts the status once, at the RPC edge.
template <typename T, typename R>
grpc::Status Reply(absl::StatusOr<T> result, R* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

// The inverse, for clients (gateway, CLI) that want absl inside.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace grassroots::common
