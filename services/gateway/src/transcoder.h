#pragma once
// HTTP/JSON <-> protobuf for one matched route, with no I/O: request parts become the request
// message; response messages and statuses become JSON; gRPC codes become HTTP statuses.
//
// Decisions:
// - JSON out: lowerCamelCase, default values emitted, 64-bit integers as strings (proto3 JSON).
// - JSON in: strict RFC 8259 (strict_json.h) first, then protobuf's parser, which refuses
//   unknown fields and wrong types; either field-name form is accepted.
// - Query parameters fill the fields not bound by the path or the body; dotted paths reach
//   sub-messages; repeated fields take repeated parameters; an unknown parameter, a parameter
//   naming a field bound elsewhere, or a singular field given twice is INVALID_ARGUMENT.
// - Path variables win over the body for the same field.
// - PATCH with a google.protobuf.FieldMask field `update_mask` left empty: the mask is filled
//   with the top-level keys of the JSON body (proto field names), as grpc-gateway does. With
//   body "field" the paths are relative to that field's message (e.g. "name", "population");
//   with body "*" they are request fields, leaving out update_mask and path-bound fields.
// - A method without a body refuses a non-blank body; a blank body is an empty message.
// - Every success is HTTP 200; errors follow HttpStatusFromGrpcCode (Envoy's table).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <google/protobuf/message.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/rpc/status.pb.h"
#include "route_table.h"

namespace grassroots::gateway {

using Bindings = std::vector<std::pair<std::string, std::string>>;

// Fills `request` (an empty message of route.method->input_type()) from the path bindings, the
// raw query string (without '?', form-encoded) and the body.
absl::Status BuildRequestMessage(const Route& route, const Bindings& bindings,
                                 std::string_view query, std::string_view body,
                                 google::protobuf::Message* request);

// The JSON of a response message (or of its response_body field when the route names one).
absl::StatusOr<std::string> ResponseToJson(const Route& route,
                                           const google::protobuf::Message& response);

// The google.rpc.Status of a gRPC status: its binary error details when they parse, else one
// built from the code and message. Code and message always follow the gRPC status.
google::rpc::Status RpcStatusFromGrpc(const grpc::Status& status);
// The same for the gateway's own errors (payloads such as BadRequest become details).
google::rpc::Status RpcStatusFromAbsl(const absl::Status& status);

// {"code": <int>, "message": "...", "details": [...]}. Details whose type is not linked into the
// binary are written as {"@type": url, "value": base64} rather than dropped.
std::string StatusToJson(const google::rpc::Status& status);

// One line of a server stream: {"result": <message>}\n, or {"error": <status>}\n.
std::string StreamResultLine(std::string_view message_json);
std::string StreamErrorLine(const google::rpc::Status& status);

// The HTTP status for a gRPC code (Envoy's / grpc-gateway's table; OK is 200).
int HttpStatusFromGrpcCode(int code);

}  // namespace grassroots::gateway
