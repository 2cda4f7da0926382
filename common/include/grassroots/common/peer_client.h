#pragma once
// How one service calls another: the one place for deadlines, cancellation, request ids, extra
// metadata, retries and the metrics of calls between services.
//
//   PeerClient membership("membership", PeerChannel(addr), &registry, {.call_timeout = absl::Seconds(10)});
//   auto stub = v1::OrganisationService::NewStub(membership.channel());
//   auto answer = membership.Call(*stub, &v1::OrganisationService::Stub::ListSubtree,
//                                 "/grassroots.membership.v1.OrganisationService/ListSubtree", request,
//                                 {.deadline = caller_deadline});
//
// A call:
// - ends by the earlier of the caller's deadline (CallOptions::deadline, and the deadline of the
//   incoming call given as `parent`) and call_timeout after it began: retries included;
// - is cancelled with the incoming call it serves when that call is given as `parent`;
// - carries x-request-id: the request id of the work on this thread (RequestScope), else the
//   parent's, else a new one (the same for every attempt of the call);
// - carries the metadata asked for (personal_data: `x-grassroots-pii: allow`);
// - is tried again only when it ended UNAVAILABLE (the peer could not be reached or shed the
//   call), at most RetryPolicy::max_attempts times in all, after an exponential backoff with
//   jitter, and never when the wait would reach the deadline. Any other code is the answer. Use
//   it for reads and for writes the peer makes idempotent; a write that must not be sent twice
//   sets max_attempts = 1;
// - is counted in the service's registry: grassroots_peer_calls_total{peer,method,code} (one per
//   call, with the code it ended with), grassroots_peer_call_seconds{peer,method} (the whole
//   call, retries included) and grassroots_peer_call_retries_total{peer,method}. `method` is
//   MethodLabel of the full name ("/package.Service/Method"): never text from a request.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace grassroots::common {

// When and how often a call that ended UNAVAILABLE is tried again (also the pace of anything
// that reconnects to a peer, such as a change-feed follower).
struct RetryPolicy {
  // Attempts in all, the first included (1: never again).
  int max_attempts = 3;
  // The wait before the second attempt; each later wait is `multiplier` times the one before,
  // up to max_backoff.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  double multiplier = 2.0;
  // Each wait is drawn uniformly from [w * (1 - jitter), w * (1 + jitter)] (0 to 1), so that
  // callers that failed together do not come back together.
  double jitter = 0.2;
};

// The waits of one series of attempts under a RetryPolicy.
class Backoff final {
 public:
  // `uniform01` draws from [0, 1); empty: a random generator of its own.
  explicit Backoff(RetryPolicy policy, std::function<double()> uniform01 = nullptr);
  // The wait before the next attempt (grows with each call, up to the policy's maximum).
  absl::Duration Next();
  // Back to the initial wait (after an attempt that succeeded).
  void Reset() { attempts_ = 0; }

 private:
  RetryPolicy policy_;
  std::function<double()> uniform01_;
  int attempts_ = 0;
};

struct PeerClientOptions {
  // The longest a call may take, retries included, when the caller's deadline is later or none.
  absl::Duration call_timeout = absl::Seconds(10);
  RetryPolicy retry;
  // For tests: the clock, the wait between attempts and the jitter's draw (defaults: absl::Now,
  // absl::SleepFor, a random generator).
  std::function<absl::Time()> now;
  std::function<void(absl::Duration)> sleep;
  std::function<double()> uniform01;
};

struct CallOptions {
  // The caller's deadline (the deadline of the work the call is part of); InfiniteFuture: none,
  // the call is bounded by call_timeout alone.
  absl::Time deadline = absl::InfiniteFuture();
  // The incoming call this call serves: its deadline bounds the call and its cancellation
  // cancels it (gRPC's propagation), and its request id is used when no RequestScope is set.
  // Must outlive the call (it does inside the handler of that incoming call).
  const grpc::ServerContextBase* parent = nullptr;
  // Sends `x-grassroots-pii: allow`: the answer may carry clear personal data (kPiiMetadata).
  bool personal_data = false;
  // Any other metadata (lower-case keys).
  std::vector<std::pair<std::string, std::string>> metadata;
  // 0: the policy's max_attempts; 1: a single attempt (a call that must not be repeated).
  int max_attempts = 0;
};

// One peer (another service): its name in metrics and logs, its channel, and Call.
// Thread-safe: one PeerClient per peer is shared by everything in the process that calls it.
class PeerClient final {
 public:
  // `registry` may be null (no metrics).
  PeerClient(std::string peer, std::shared_ptr<grpc::Channel> channel, prometheus::Registry* registry,
             PeerClientOptions options = {});
  ~PeerClient();
  PeerClient(const PeerClient&) = delete;
  PeerClient& operator=(const PeerClient&) = delete;

  const std::string& peer() const { return peer_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const PeerClientOptions& options() const { return options_; }

  // One unary call through a generated stub's blocking method, e.g.
  // Call(*stub, &Service::Stub::GetThing, "/pkg.Service/GetThing", request, {.deadline = d}).
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Call(Stub& stub,
                                grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
                                std::string_view method, const Request& request, const CallOptions& options = {}) {
    Response response;
    absl::Status status = Run(method, options, [&](grpc::ClientContext& context) {
      response.Clear();
      return (stub.*rpc)(&context, request, &response);
    });
    if (!status.ok()) return status;
    return response;
  }

  // The policy itself, over any unary call: `attempt` makes one attempt on the context it is
  // given (deadline, cancellation and metadata set) and returns how it ended. The status is
  // converted once (FromGrpcStatus).
  absl::Status Run(std::string_view method, const CallOptions& options,
                   absl::FunctionRef<grpc::Status(grpc::ClientContext&)> attempt);

  // A context set up as Call sets up one attempt, for a call Call does not make (a stream):
  // `deadline` is used as given (InfiniteFuture: none, e.g. a stream that follows a feed).
  std::unique_ptr<grpc::ClientContext> NewContext(const CallOptions& options, absl::Time deadline) const;

 private:
  struct Metrics;
  std::unique_ptr<grpc::ClientContext> MakeContext(const CallOptions& options, absl::Time deadline,
                                                   const std::string& request_id) const;
  absl::Time Now() const;

  std::string peer_;
  std::shared_ptr<grpc::Channel> channel_;
  PeerClientOptions options_;
  std::unique_ptr<Metrics> metrics_;
};

// A channel to a peer at `target` (host:port) that reconnects within a few seconds once the peer
// is back (gRPC's default reconnect backoff grows to two minutes) and takes answers of up to
// 16 MiB, as the servers of the suite take requests (gRPC's default is 4 MiB).
std::shared_ptr<grpc::Channel> PeerChannel(const std::string& target);

}  // namespace grassroots::common
