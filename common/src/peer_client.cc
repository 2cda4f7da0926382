#include "grassroots/common/peer_client.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "grassroots/common/log.h"
#include "grassroots/common/server.h"
#include "grassroots/common/status.h"

namespace grassroots::common {
namespace {

constexpr int kCodes = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED

int CodeIndex(grpc::StatusCode code) {
  const int c = static_cast<int>(code);
  return c >= 0 && c < kCodes ? c : static_cast<int>(grpc::StatusCode::UNKNOWN);
}

// The request id a call carries: the work's on this thread, else the incoming call's, else new.
std::string RequestIdFor(const CallOptions& options) {
  if (const std::string_view current = CurrentRequestId(); !current.empty()) return std::string(current);
  return options.parent != nullptr ? RequestIdOf(*options.parent) : NewRequestId();
}

}  // namespace

Backoff::Backoff(RetryPolicy policy, std::function<double()> uniform01)
    : policy_(policy), uniform01_(std::move(uniform01)) {
  if (!uniform01_) {
    auto gen = std::make_shared<absl::BitGen>();
    uniform01_ = [gen] { return absl::Uniform<double>(*gen, 0.0, 1.0); };
  }
}

absl::Duration Backoff::Next() {
  const double base_seconds = absl::ToDoubleSeconds(policy_.initial_backoff) *
                              std::pow(std::max(1.0, policy_.multiplier), attempts_);
  ++attempts_;
  const absl::Duration base = std::min(absl::Seconds(base_seconds), policy_.max_backoff);
  const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  const double factor = 1.0 - jitter + 2.0 * jitter * std::clamp(uniform01_(), 0.0, 1.0);
  return std::max(absl::ZeroDuration(), base * factor);
}

// The families are registered once per registry (prometheus-cpp merges a family registered again
// with the same name), the series of a method once per client.
struct PeerClient::Metrics {
  Metrics(prometheus::Registry& r, std::string peer)
      : peer(std::move(peer)),
        calls(prometheus::BuildCounter()
                  .Name("grassroots_peer_calls_total")
                  .Help("Calls to other services of the suite, by peer, method and the status code they ended with")
                  .Register(r)),
        seconds(prometheus::BuildHistogram()
                    .Name("grassroots_peer_call_seconds")
                    .Help("Time of a call to another service, retries included")
                    .Register(r)),
        retries(prometheus::BuildCounter()
                    .Name("grassroots_peer_call_retries_total")
                    .Help("Attempts made again after UNAVAILABLE, by peer and method")
                    .Register(r)) {}

  struct Series {
    std::array<prometheus::Counter*, kCodes> calls{};
    prometheus::Histogram* seconds = nullptr;
    prometheus::Counter* retries = nullptr;
  };

  Series& Of(std::string_view method) {  // under mu
    auto it = methods.find(method);
    if (it != methods.end()) return it->second;
    const std::string label(method);
    Series s;
    s.seconds = &seconds.Add({{"peer", peer}, {"method", label}},
                             prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                     0.5, 1, 2.5, 5, 10, 30});
    s.retries = &retries.Add({{"peer", peer}, {"method", label}});
    return methods.emplace(label, s).first->second;
  }

  void Record(std::string_view method, grpc::StatusCode code, int retried, double elapsed) {
    prometheus::Counter* counter;
    prometheus::Histogram* histogram;
    prometheus::Counter* retry_counter;
    {
      std::lock_guard<std::mutex> lock(mu);
      Series& s = Of(method);
      const int c = CodeIndex(code);
      if (s.calls[c] == nullptr) {
        s.calls[c] = &calls.Add({{"peer", peer},
                                 {"method", std::string(method)},
                                 {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(c))}});
      }
      counter = s.calls[c];
      histogram = s.seconds;
      retry_counter = s.retries;
    }
    counter->Increment();
    histogram->Observe(elapsed);
    if (retried > 0) retry_counter->Increment(retried);
  }

  const std::string peer;
  prometheus::Family<prometheus::Counter>& calls;
  prometheus::Family<prometheus::Histogram>& seconds;
  prometheus::Family<prometheus::Counter>& retries;
  std::mutex mu;
  std::map<std::string, Series, std::less<>> methods;
};

PeerClient::PeerClient(std::string peer, std::shared_ptr<grpc::Channel> channel, prometheus::Registry* registry,
                       PeerClientOptions options)
    : peer_(std::move(peer)), channel_(std::move(channel)), options_(std::move(options)) {
  if (!options_.now) options_.now = [] { return absl::Now(); };
  if (!options_.sleep) options_.sleep = [](absl::Duration d) { absl::SleepFor(d); };
  if (registry != nullptr) metrics_ = std::make_unique<Metrics>(*registry, peer_);
}

PeerClient::~PeerClient() = default;

absl::Time PeerClient::Now() const { return options_.now(); }

std::unique_ptr<grpc::ClientContext> PeerClient::MakeContext(const CallOptions& options, absl::Time deadline,
                                                             const std::string& request_id) const {
  // From the incoming call: its cancellation (and deadline) reach this one.
  std::unique_ptr<grpc::ClientContext> context = options.parent != nullptr
                                                     ? grpc::ClientContext::FromServerContext(*options.parent)
                                                     : std::make_unique<grpc::ClientContext>();
  if (deadline != absl::InfiniteFuture()) context->set_deadline(absl::ToChronoTime(deadline));
  context->AddMetadata("x-request-id", request_id);
  if (options.personal_data) context->AddMetadata(kPiiMetadata, "allow");
  for (const auto& [key, value] : options.metadata) context->AddMetadata(key, value);
  return context;
}

std::unique_ptr<grpc::ClientContext> PeerClient::NewContext(const CallOptions& options, absl::Time deadline) const {
  return MakeContext(options, deadline, RequestIdFor(options));
}

absl::Status PeerClient::Run(std::string_view method, const CallOptions& options,
                             absl::FunctionRef<grpc::Status(grpc::ClientContext&)> attempt) {
  const absl::Time start = Now();
  absl::Time deadline = std::min(options.deadline, start + options_.call_timeout);
  if (options.parent != nullptr) deadline = std::min(deadline, DeadlineOf(*options.parent));
  const std::string request_id = RequestIdFor(options);
  const int max_attempts = std::max(1, options.max_attempts > 0 ? options.max_attempts : options_.retry.max_attempts);

  Backoff backoff(options_.retry, options_.uniform01);
  grpc::Status status;
  int attempts = 0;
  while (true) {
    if (options.parent != nullptr && options.parent->IsCancelled()) {
      status = grpc::Status(grpc::StatusCode::CANCELLED, "the call this one serves was cancelled");
      break;
    }
    if (Now() >= deadline) {
      // Not even one attempt fits (the caller's time is up); after attempts, the last answer stands.
      if (attempts == 0) status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded");
      break;
    }
    ++attempts;
    std::unique_ptr<grpc::ClientContext> context = MakeContext(options, deadline, request_id);
    status = attempt(*context);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || attempts >= max_attempts) break;
    const absl::Duration wait = backoff.Next();
    if (Now() + wait >= deadline) break;  // the next attempt would start too late: this answer stands
    options_.sleep(wait);
  }

  const std::string_view label = MethodLabel(method);
  if (metrics_) {
    metrics_->Record(label, status.error_code(), std::max(0, attempts - 1), absl::ToDoubleSeconds(Now() - start));
  }
  if (attempts > 1 && LogEnabled(LogLevel::kDebug)) {
    Log(LogLevel::kDebug, "peer call retried", {{"peer", peer_},
                                                {"method", label},
                                                {"attempts", static_cast<int64_t>(attempts)},
                                                {"code", absl::StatusCodeToString(
                                                             static_cast<absl::StatusCode>(CodeIndex(status.error_code())))}});
  }
  return FromGrpcStatus(status);
}

std::shared_ptr<grpc::Channel> PeerChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  args.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

}  // namespace grassroots::common
