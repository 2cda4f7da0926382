#pragma once
// The gRPC server bootstrap every process uses: health (grpc.health.v1), reflection,
// per-method metrics and access logs through an interceptor, Prometheus on its own port,
// readiness driven by a probe, graceful drain on SIGTERM/SIGINT.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace prometheus {
class Registry;
class Exposer;
}  // namespace prometheus

namespace grassroots::common {

// Must be the first thing main() does: blocks SIGTERM/SIGINT in every thread started later,
// so the one waiting thread (WaitForTerminationSignal) receives them.
void BlockTerminationSignals();
// Blocks until SIGTERM or SIGINT arrives; returns the signal number.
int WaitForTerminationSignal();

// Prometheus registry and exposer of one process.
class MetricsEndpoint final {
 public:
  // Serves /metrics on host:port (port 0 picks a free one). UNAVAILABLE when it cannot bind.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& host, int port);
  MetricsEndpoint(std::shared_ptr<prometheus::Registry> registry, std::unique_ptr<prometheus::Exposer> exposer);
  ~MetricsEndpoint();
  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }
  int port() const;
 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

struct ServerOptions {
  std::string service_name;  // e.g. "membership", used in logs
  std::string host = "0.0.0.0";
  int port = 0;
  // Readiness: called every `probe_interval`; the health service says SERVING only while it
  // returns OK. A failure is logged once when it starts and once when it ends.
  std::function<absl::Status()> readiness_probe;
  // Optional, called right after each readiness probe: the health status of named services
  // (the gateway's: each backend it can reach), set as given.
  std::function<std::map<std::string, bool>()> service_probe;
  absl::Duration probe_interval = absl::Seconds(1);
  absl::Duration drain_timeout = absl::Seconds(10);
  int max_receive_message_bytes = 16 * 1024 * 1024;
  // Threads polling for synchronous-API calls (each runs the handler of the call it picked);
  // gRPC adds threads up to the maximum while handlers are busy (server.cc has the figures).
  int sync_min_pollers = 2;
  int sync_max_pollers = 16;
};

// Builds and runs one gRPC server.
class GrpcServer final {
 public:
  GrpcServer(ServerOptions options, prometheus::Registry* registry);
  ~GrpcServer();
  // Services must outlive the server.
  void AddService(grpc::Service* service);
  void AddCallbackGenericService(grpc::CallbackGenericService* service);
  // Starts listening; returns the bound port.
  absl::StatusOr<int> Start();
  // Waits for SIGTERM/SIGINT, then drains: health NOT_SERVING, stop accepting, finish
  // in-flight calls up to drain_timeout.
  void RunUntilSignal();
  void Shutdown();
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The request id of an incoming call: the x-request-id metadata when present, else new.
std::string RequestIdOf(const grpc::ServerContextBase& context);

// The deadline of an incoming call as absl::Time (InfiniteFuture when none).
absl::Time DeadlineOf(const grpc::ServerContextBase& context);

// The personal-data right: the metadata `x-grassroots-pii: allow` (set by the gateway's callers
// that may see personal data, and by service peers that need clear ID numbers, such as
// cadrepay's kinship lookup). Without it, ID numbers and other personal data are masked.
inline constexpr char kPiiMetadata[] = "x-grassroots-pii";
bool MaySeePersonalData(const grpc::ServerContextBase& context);

// Who is calling: the metadata `x-grassroots-principal` (set by the gateway's authentication;
// until it lands, by the caller), trimmed; "" when absent, blank, not printable ASCII or UTF-8, or
// over 100 bytes. It names the reviewer of a finding and who asked for a check run.
inline constexpr char kPrincipalMetadata[] = "x-grassroots-principal";
std::string CallerOf(const grpc::ServerContextBase& context);

// How metrics and logs name a called gRPC method ("/package.Service/Method"): by its name when
// this binary's protos have it (or it is the health service's), "unknown" otherwise, so that no
// caller can add series without bound, or put text of its choosing in labels and logs, by
// calling made-up methods.
std::string_view MethodLabel(std::string_view method);

}  // namespace grassroots::common
