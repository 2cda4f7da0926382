#pragma once
// The HTTP/JSON front door: routes a request (route_table.h), transcodes it (transcoder.h),
// calls the backend asynchronously through the callback GenericStub and answers on the
// connection's strand. Unary methods answer one JSON document; server-streaming methods answer
// newline-delimited JSON chunks ({"result": ...} per message, {"error": status} last on a
// failure after the first message; a failure before any message is an ordinary error reply).
//
// Decisions:
// - Unknown path: 404, code NOT_FOUND. Known path, wrong method: 405 with an Allow header and
//   code UNIMPLEMENTED (as grpc-gateway). Request errors: 400 INVALID_ARGUMENT before any
//   backend is called. Body over the limit: 413, code RESOURCE_EXHAUSTED. Backend package with
//   no address: 503 UNAVAILABLE naming the flag.
// - Every response carries X-Request-Id (the caller's, or a new one) which is also sent to the
//   backend as x-request-id metadata, with Authorization, X-Forwarded-For and any
//   Grpc-Metadata-<key> header (as <key>). A Grpc-Timeout header sets the deadline; otherwise
//   CallPolicy does (unary and streaming apart).

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "backends.h"
#include "http_server.h"
#include "metrics.h"
#include "route_table.h"
#include "transcoder.h"

namespace grassroots::gateway {

class HttpGateway final {
 public:
  // All pointers must outlive the gateway and every exchange it handles.
  HttpGateway(const RouteTable* routes, const Backends* backends, GatewayMetrics* metrics,
              CallPolicy policy);

  void Handle(std::shared_ptr<HttpExchange> exchange);

  // Renders an error the HTTP server detected itself (413, 431, 400, 503) as JSON.
  HttpResponse ServerError(int http_status, const absl::Status& status, const HttpRequest& request);

 private:
  const RouteTable* routes_;
  const Backends* backends_;
  GatewayMetrics* metrics_;
  CallPolicy policy_;
};

// The request id to use: the caller's X-Request-Id when it is 1 to 128 visible ASCII
// characters, else a new one.
std::string RequestIdFor(const HttpRequest& request);

// Parses a gRPC-style timeout ("5S", "250m", "1H", ...); returns false when malformed.
bool ParseGrpcTimeout(std::string_view text, absl::Duration* out);

// An error reply: JSON google.rpc.Status, HTTP status from the code (or `http_status` when not
// 0), Content-Type, X-Request-Id, and WWW-Authenticate for UNAUTHENTICATED.
HttpResponse ErrorReply(const google::rpc::Status& status, const std::string& request_id,
                        int http_status = 0);

}  // namespace grassroots::gateway
