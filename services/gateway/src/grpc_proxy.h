#pragma once
// The gRPC front door: a generic service that relays any method (unary and every streaming
// kind) of the domain services, as raw bytes, to the backend owning the method's package.
// Each call is a full-duplex pump: caller messages are written to the backend one at a time,
// backend messages to the caller one at a time (each next read waits for the previous write,
// which gives flow control end to end); the caller's half-close becomes WritesDone; the
// backend's status (with its binary error details) and trailing metadata end the call.
// Deadline, cancellation and metadata (x-request-id, authorization, ...) follow the call.
// Unknown services are UNIMPLEMENTED; a backend without an address is UNAVAILABLE.

#include <grpcpp/generic/async_generic_service.h>

#include "backends.h"
#include "metrics.h"

namespace grassroots::gateway {

class GrpcProxy final : public grpc::CallbackGenericService {
 public:
  // `backends` and `metrics` must outlive the server.
  GrpcProxy(const Backends* backends, GatewayMetrics* metrics, CallPolicy policy)
      : backends_(backends), metrics_(metrics), policy_(policy) {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* context) override;

 private:
  const Backends* backends_;
  GatewayMetrics* metrics_;
  CallPolicy policy_;
};

// True when `rpc_path` names a method in the linked descriptors that is unary
// (neither side streams). Unknown methods count as streaming.
bool IsUnaryMethod(std::string_view rpc_path);

}  // namespace grassroots::gateway
