#include "metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace grassroots::gateway {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return *buckets;
}

}  // namespace

std::string HttpMethodLabel(std::string_view method) {
  static constexpr std::string_view kKnown[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
  for (std::string_view k : kKnown) {
    if (method == k) return std::string(k);
  }
  return "OTHER";
}

GatewayMetrics::GatewayMetrics(prometheus::Registry& registry)
    : http_requests_(prometheus::BuildCounter()
                         .Name("grassroots_gateway_http_requests_total")
                         .Help("HTTP requests answered, by route template, method and HTTP status.")
                         .Register(registry)),
      http_duration_(prometheus::BuildHistogram()
                         .Name("grassroots_gateway_http_request_duration_seconds")
                         .Help("Time from a complete HTTP request to the end of its response, by route template.")
                         .Register(registry)),
      http_connections_(prometheus::BuildGauge()
                            .Name("grassroots_gateway_http_connections")
                            .Help("Open HTTP connections.")
                            .Register(registry)
                            .Add({})),
      http_connections_refused_(prometheus::BuildCounter()
                                    .Name("grassroots_gateway_http_connections_refused_total")
                                    .Help("HTTP connections refused because the connection limit was reached.")
                                    .Register(registry)
                                    .Add({})),
      http_body_budget_refused_(prometheus::BuildCounter()
                                    .Name("grassroots_gateway_http_body_budget_refused_total")
                                    .Help("HTTP requests answered 503 because the request bodies held would pass the budget.")
                                    .Register(registry)
                                    .Add({})),
      proxy_calls_(prometheus::BuildCounter()
                       .Name("grassroots_gateway_grpc_proxy_calls_total")
                       .Help("gRPC calls proxied to a backend, by backend and gRPC status code.")
                       .Register(registry)),
      proxy_duration_(prometheus::BuildHistogram()
                          .Name("grassroots_gateway_grpc_proxy_call_duration_seconds")
                          .Help("Duration of proxied gRPC calls, by backend.")
                          .Register(registry)),
      proxy_in_flight_(prometheus::BuildGauge()
                           .Name("grassroots_gateway_grpc_proxy_calls_in_flight")
                           .Help("Proxied gRPC calls in progress.")
                           .Register(registry)
                           .Add({})),
      proxy_messages_(prometheus::BuildCounter()
                          .Name("grassroots_gateway_grpc_proxy_messages_total")
                          .Help("Messages relayed by the gRPC proxy, by backend and direction.")
                          .Register(registry)) {}

void GatewayMetrics::HttpRequestDone(std::string_view route, std::string_view method,
                                     int http_status, absl::Duration elapsed) {
  http_requests_
      .Add({{"route", std::string(route)}, {"method", HttpMethodLabel(method)},
            {"code", std::to_string(http_status)}})
      .Increment();
  http_duration_.Add({{"route", std::string(route)}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(elapsed));
}

void GatewayMetrics::HttpConnectionsChanged(int delta) {
  if (delta > 0) http_connections_.Increment(delta);
  else http_connections_.Decrement(-delta);
}

void GatewayMetrics::HttpConnectionRefused() { http_connections_refused_.Increment(); }

void GatewayMetrics::HttpBodyBudgetRefused() { http_body_budget_refused_.Increment(); }

void GatewayMetrics::ProxyCallStarted() { proxy_in_flight_.Increment(); }

void GatewayMetrics::ProxyCallDone(std::string_view backend, int grpc_code, absl::Duration elapsed) {
  proxy_in_flight_.Decrement();
  proxy_calls_.Add({{"backend", std::string(backend)}, {"code", std::string(GrpcCodeName(grpc_code))}})
      .Increment();
  proxy_duration_.Add({{"backend", std::string(backend)}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(elapsed));
}

void GatewayMetrics::ProxyMessage(std::string_view backend, std::string_view direction) {
  proxy_messages_.Add({{"backend", std::string(backend)}, {"direction", std::string(direction)}})
      .Increment();
}

std::string_view GrpcCodeName(int code) {
  static constexpr std::string_view kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  if (code < 0 || code >= static_cast<int>(std::size(kNames))) return "UNKNOWN";
  return kNames[code];
}

}  // namespace grassroots::gateway
