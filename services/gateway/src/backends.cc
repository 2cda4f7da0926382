#include "backends.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

namespace grassroots::gateway {

std::string PackageOfMethod(std::string_view rpc_path) {
  if (rpc_path.size() < 4 || rpc_path[0] != '/') return "";
  size_t slash = rpc_path.find('/', 1);
  if (slash == std::string_view::npos || slash + 1 >= rpc_path.size()) return "";
  std::string_view service = rpc_path.substr(1, slash - 1);
  size_t dot = service.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return "";
  return std::string(service.substr(0, dot));
}

Backends::Backends(std::vector<BackendConfig> configs, int max_message_bytes) {
  for (auto& config : configs) {
    auto backend = std::make_unique<Backend>();
    backend->config = std::move(config);
    if (!backend->config.address.empty()) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(max_message_bytes);
      args.SetMaxSendMessageSize(max_message_bytes);
      // A backend that was down is tried again within a second or two, not after gRPC's default
      // backoff of up to two minutes (during which every call fails at once).
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 250);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
      backend->channel = grpc::CreateCustomChannel(
          backend->config.address, grpc::InsecureChannelCredentials(), args);
      backend->stub = std::make_unique<grpc::GenericStub>(backend->channel);
      // The readiness probe's own connection: its attempts (and their backoff) never touch the
      // connection the calls use.
      grpc::ChannelArguments probe_args = args;
      probe_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      backend->probe_channel = grpc::CreateCustomChannel(
          backend->config.address, grpc::InsecureChannelCredentials(), probe_args);
    }
    backends_.push_back(std::move(backend));
  }
}

const Backends::Backend* Backends::ForMethod(std::string_view rpc_path) const {
  std::string package = PackageOfMethod(rpc_path);
  if (package.empty()) return nullptr;
  for (const auto& b : backends_) {
    if (b->config.package == package) return b.get();
  }
  return nullptr;
}

std::vector<BackendConfig> DefaultBackendConfigs(const std::string& membership_addr,
                                                 const std::string& cadrepay_addr,
                                                 const std::string& assets_addr,
                                                 const std::string& mobility_addr) {
  return {
      {"membership", "grassroots.membership.v1", membership_addr, "--membership_addr"},
      {"cadrepay", "grassroots.cadrepay.v1", cadrepay_addr, "--cadrepay_addr"},
      {"assets", "grassroots.assets.v1", assets_addr, "--assets_addr"},
      {"mobility", "grassroots.mobility.v1", mobility_addr, "--mobility_addr"},
  };
}

std::map<std::string, bool> ReachableBackends(const Backends& backends, absl::Duration wait) {
  std::map<std::string, bool> out;
  const auto deadline = std::chrono::system_clock::now() + absl::ToChronoMilliseconds(wait);
  for (const auto& b : backends.all()) {
    if (b->probe_channel == nullptr) continue;  // not configured: not this gateway's to reach
    grpc_connectivity_state state = b->probe_channel->GetState(/*try_to_connect=*/true);
    while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
           state != GRPC_CHANNEL_SHUTDOWN && b->probe_channel->WaitForStateChange(state, deadline)) {
      state = b->probe_channel->GetState(true);
    }
    out[b->config.name] = state == GRPC_CHANNEL_READY;
  }
  return out;
}

}  // namespace grassroots::gateway
