#pragma once
// Every metric of the gateway, declared in one list. Labels are bounded: `route` is the path
// template ("unmatched" for requests that matched none), `method` one of the HTTP methods or
// "OTHER", `code` the HTTP status (HTTP side) or the gRPC code name (proxy side), `backend`
// one of the configured backends or "unknown".

#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace prometheus {
class Registry;
class Gauge;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace grassroots::gateway {

// An HTTP method as metrics and logs show it: one of the standard methods, else "OTHER" (a client
// may send any token there; it is never repeated).
std::string HttpMethodLabel(std::string_view method);

class GatewayMetrics final {
 public:
  explicit GatewayMetrics(prometheus::Registry& registry);

  // One HTTP request answered.
  void HttpRequestDone(std::string_view route, std::string_view method, int http_status,
                       absl::Duration elapsed);
  void HttpConnectionsChanged(int delta);
  void HttpConnectionRefused();
  void HttpBodyBudgetRefused();

  // One proxied gRPC call started / finished.
  void ProxyCallStarted();
  void ProxyCallDone(std::string_view backend, int grpc_code, absl::Duration elapsed);
  // A message relayed: direction "to_backend" or "to_caller".
  void ProxyMessage(std::string_view backend, std::string_view direction);

 private:
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_duration_;
  prometheus::Gauge& http_connections_;
  prometheus::Counter& http_connections_refused_;
  prometheus::Counter& http_body_budget_refused_;
  prometheus::Family<prometheus::Counter>& proxy_calls_;
  prometheus::Family<prometheus::Histogram>& proxy_duration_;
  prometheus::Gauge& proxy_in_flight_;
  prometheus::Family<prometheus::Counter>& proxy_messages_;
};

// "OK", "NOT_FOUND", ... for a gRPC code number.
std::string_view GrpcCodeName(int code);

}  // namespace grassroots::gateway
