#include "grassroots/common/server.h"

#include "grassroots/common/validate.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <google/protobuf/descriptor.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grassroots/common/log.h"

namespace grassroots::common {
namespace {

const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  int i = static_cast<int>(code);
  return (i >= 0 && i <= 16) ? kNames[i] : "UNKNOWN";
}

// Per-method metrics, declared in one place. The series of a method are looked up once, then
// found by one map lookup under one lock per call, with no allocation.
struct RpcMetrics {
  explicit RpcMetrics(prometheus::Registry& r)
      : handled(prometheus::BuildCounter()
                    .Name("grassroots_grpc_server_handled_total")
                    .Help("RPCs completed on the server, by method and status code")
                    .Register(r)),
        latency(prometheus::BuildHistogram()
                    .Name("grassroots_grpc_server_handling_seconds")
                    .Help("Time from receiving an RPC to sending its status")
                    .Register(r)) {}
  prometheus::Family<prometheus::Counter>& handled;
  prometheus::Family<prometheus::Histogram>& latency;

  static constexpr int kCodes = 17;
  // Records a finished call; returns the method's label (MethodLabel; valid as long as this
  // lives). A name a caller made up (gRPC answers it UNIMPLEMENTED itself) counts as "unknown".
  std::string_view Record(std::string_view method, grpc::StatusCode code, double seconds) {
    const int c = static_cast<int>(code) >= 0 && static_cast<int>(code) < kCodes ? static_cast<int>(code)
                                                                                  : static_cast<int>(grpc::StatusCode::UNKNOWN);
    prometheus::Histogram* histogram;
    prometheus::Counter* counter;
    std::string_view label;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = methods.find(method);
      if (it == methods.end()) {
        method = MethodLabel(method);
        it = methods.find(method);
      }
      if (it == methods.end()) {
        Series series;
        series.latency = &latency.Add({{"method", std::string(method)}},
                                      prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                                              0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
        it = methods.emplace(std::string(method), series).first;
      }
      Series& series = it->second;
      if (series.handled[c] == nullptr) {
        series.handled[c] = &handled.Add({{"method", std::string(method)}, {"code", CodeName(static_cast<grpc::StatusCode>(c))}});
      }
      histogram = series.latency;
      counter = series.handled[c];
      label = it->first;
    }
    counter->Increment();
    histogram->Observe(seconds);
    return label;
  }

  struct Series {
    prometheus::Histogram* latency = nullptr;
    std::array<prometheus::Counter*, kCodes> handled{};
  };
  std::mutex mu;
  std::map<std::string, Series, std::less<>> methods;
};

class ObservingInterceptor final : public grpc::experimental::Interceptor {
 public:
  ObservingInterceptor(grpc::experimental::ServerRpcInfo* info, RpcMetrics* metrics)
      : info_(info), metrics_(metrics), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      const std::string_view method = info_->method() != nullptr ? info_->method() : "unknown";
      const std::string_view label = metrics_->Record(method, status.error_code(), seconds);
      // The access log: failures at info (client errors) or error (server faults), successes at
      // debug. Its request id is read only when the line is written.
      const bool server_fault = status.error_code() == grpc::StatusCode::INTERNAL ||
                                status.error_code() == grpc::StatusCode::UNKNOWN ||
                                status.error_code() == grpc::StatusCode::DATA_LOSS;
      const LogLevel level = status.ok() ? LogLevel::kDebug : server_fault ? LogLevel::kError : LogLevel::kInfo;
      if (LogEnabled(level)) {
        std::string request_id;
        if (info_->server_context() != nullptr) request_id = RequestIdOf(*info_->server_context());
        RequestScope scope(request_id);
        Log(level, "rpc", {{"method", label}, {"code", CodeName(status.error_code())},
                           {"duration_ms", seconds * 1000.0}});
      }
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* info_;
  RpcMetrics* metrics_;
  std::chrono::steady_clock::time_point start_;
};

class ObservingInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ObservingInterceptorFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new ObservingInterceptor(info, metrics_);
  }
 private:
  RpcMetrics* metrics_;
};

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSignals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(const std::string& host, int port) {
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(absl::StrCat(host, ":", port));
    return std::make_unique<MetricsEndpoint>(std::make_shared<prometheus::Registry>(), std::move(exposer));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", host, ":", port, ": ", e.what()));
  }
}

MetricsEndpoint::MetricsEndpoint(std::shared_ptr<prometheus::Registry> registry,
                                 std::unique_ptr<prometheus::Exposer> exposer)
    : registry_(std::move(registry)), exposer_(std::move(exposer)) {
  exposer_->RegisterCollectable(registry_);
}
MetricsEndpoint::~MetricsEndpoint() = default;
int MetricsEndpoint::port() const {
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

struct GrpcServer::Impl {
  ServerOptions options;
  RpcMetrics metrics;
  std::vector<grpc::Service*> services;
  std::vector<grpc::CallbackGenericService*> generic_services;
  std::unique_ptr<grpc::Server> server;
  std::thread prober;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool shut_down = false;

  Impl(ServerOptions o, prometheus::Registry* registry) : options(std::move(o)), metrics(*registry) {}

  void ProbeLoop() {
    bool last_ok = false;
    bool first = true;
    while (true) {
      absl::Status s = options.readiness_probe ? options.readiness_probe() : absl::OkStatus();
      std::map<std::string, bool> services;
      if (options.service_probe) services = options.service_probe();
      {
        std::unique_lock<std::mutex> lock(mu);
        if (stopping) return;
        if (s.ok() != last_ok || first) {
          if (s.ok()) {
            LogInfo("ready", {{"service", options.service_name}});
          } else {
            LogError("not ready", {{"reason", s.ToString()}});
          }
          server->GetHealthCheckService()->SetServingStatus(s.ok());
          server->GetHealthCheckService()->SetServingStatus("liveness", true);
          last_ok = s.ok();
          first = false;
        }
        // After the overall status, which gRPC applies to every service name it knows.
        for (const auto& [name, serving] : services) {
          server->GetHealthCheckService()->SetServingStatus(name, serving);
        }
        if (!services.empty()) server->GetHealthCheckService()->SetServingStatus("liveness", true);
        cv.wait_for(lock, absl::ToChronoNanoseconds(options.probe_interval));
        if (stopping) return;
      }
    }
  }
};

GrpcServer::GrpcServer(ServerOptions options, prometheus::Registry* registry)
    : impl_(std::make_unique<Impl>(std::move(options), registry)) {}

GrpcServer::~GrpcServer() { Shutdown(); }

void GrpcServer::AddService(grpc::Service* service) { impl_->services.push_back(service); }
void GrpcServer::AddCallbackGenericService(grpc::CallbackGenericService* service) {
  impl_->generic_services.push_back(service);
}

absl::StatusOr<int> GrpcServer::Start() {
  // gRPC locks absl::Mutex on every call; Debian's Abseil keeps its deadlock detection (a lock
  // graph updated on each lock, seen in the server's profile) switched on. Our own code uses
  // std::mutex, and the tests, not production, are where lock-order bugs are to be found.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::StrCat(impl_->options.host, ":", impl_->options.port),
                           grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(impl_->options.max_receive_message_bytes);
  // Synchronous handlers run on the poller threads. With gRPC's default of 1 to 2 pollers a
  // handler blocked on the database makes gRPC start a thread for the next call and end one
  // after it: a thread per call under concurrency (measured here: a synchronous GetMember rose
  // from 6,300 to 10,200 calls/s with 8 to 16 pollers). Idle pollers are not free either: every
  // one takes part in the hand-offs of the network poller, so the callback-API GetMember (cache
  // hits) went from about 38,000 to 40,000-43,000 calls/s with 2 instead of 8 minimum pollers.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, impl_->options.sync_min_pollers);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              std::max(impl_->options.sync_min_pollers, impl_->options.sync_max_pollers));
  for (auto* s : impl_->services) builder.RegisterService(s);
  for (auto* g : impl_->generic_services) builder.RegisterCallbackGenericService(g);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<ObservingInterceptorFactory>(&impl_->metrics));
  builder.experimental().SetInterceptorCreators(std::move(creators));
  impl_->server = builder.BuildAndStart();
  if (impl_->server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", impl_->options.host, ":", impl_->options.port));
  }
  impl_->server->GetHealthCheckService()->SetServingStatus(false);
  impl_->server->GetHealthCheckService()->SetServingStatus("liveness", true);
  impl_->prober = std::thread([this] { impl_->ProbeLoop(); });
  LogInfo("grpc listening", {{"address", impl_->options.host}, {"port", int64_t{port}}});
  return port;
}

void GrpcServer::RunUntilSignal() {
  int sig = WaitForTerminationSignal();
  LogInfo("draining", {{"signal", int64_t{sig}}});
  Shutdown();
}

void GrpcServer::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->shut_down) return;
    impl_->shut_down = true;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->prober.joinable()) impl_->prober.join();
  if (impl_->server != nullptr) {
    impl_->server->GetHealthCheckService()->SetServingStatus(false);
    impl_->server->Shutdown(absl::ToChronoTime(absl::Now() + impl_->options.drain_timeout));
    impl_->server->Wait();
    LogInfo("stopped");
  }
}

std::string RequestIdOf(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("x-request-id");
  if (it != md.end() && it->second.size() > 0 && it->second.size() <= 64) {
    return std::string(it->second.data(), it->second.size());
  }
  return NewRequestId();
}

std::string_view MethodLabel(std::string_view method) {
  // The health service is implemented by gRPC without protobuf's generated code.
  if (method.starts_with("/grpc.health.v1.Health/")) return method;
  const size_t slash = method.size() > 1 && method[0] == '/' ? method.find('/', 1) : std::string_view::npos;
  if (slash != std::string_view::npos) {
    std::string full(method.substr(1));
    full[slash - 1] = '.';
    if (google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full) != nullptr) return method;
  }
  return "unknown";
}

bool MaySeePersonalData(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto it = md.find(kPiiMetadata);
  return it != md.end() && std::string_view(it->second.data(), it->second.size()) == "allow";
}

std::string CallerOf(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto it = md.find(kPrincipalMetadata);
  if (it == md.end()) return "";
  std::string v(it->second.data(), it->second.size());
  const size_t b = v.find_first_not_of(" \t"), e = v.find_last_not_of(" \t");
  if (b == std::string::npos || e - b + 1 > 100) return "";
  v = v.substr(b, e - b + 1);
  for (unsigned char c : v) {
    if (c < 0x20 || c == 0x7f) return "";
  }
  return Utf8Length(v) < 0 ? "" : v;
}

absl::Time DeadlineOf(const grpc::ServerContextBase& context) {
  auto d = context.deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

}  // namespace grassroots::common

