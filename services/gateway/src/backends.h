#pragma once
// Which backend serves which package, and one channel per backend. A method
// "/grassroots.membership.v1.OrganisationService/GetOrganisation" belongs to the backend of
// package grassroots.membership.v1.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/channel.h>
#include <grpcpp/generic/generic_stub.h>

#include "absl/time/time.h"

namespace grassroots::gateway {

struct BackendConfig {
  std::string name;     // "membership": metrics label and log field
  std::string package;  // "grassroots.membership.v1"
  std::string address;  // host:port; empty when not configured
  std::string flag;     // the flag that sets the address, for error messages
};

// Deadlines the gateway applies when the caller sets none.
struct CallPolicy {
  absl::Duration unary_timeout = absl::Seconds(30);
  // Streaming calls (exports, imports) may run long; 0 means no deadline.
  absl::Duration stream_timeout = absl::Minutes(10);
};

class Backends final {
 public:
  struct Backend {
    BackendConfig config;
    std::shared_ptr<grpc::Channel> channel;  // null when not configured
    std::unique_ptr<grpc::GenericStub> stub;  // null when not configured
    std::shared_ptr<grpc::Channel> probe_channel;  // the readiness probe's (ReachableBackends)
  };

  // Creates the channels (insecure; the suite runs inside one trust zone) lazily connecting.
  explicit Backends(std::vector<BackendConfig> configs, int max_message_bytes = 16 * 1024 * 1024);

  // The backend of the package of `rpc_path` ("/pkg.Service/Method"), or null.
  const Backend* ForMethod(std::string_view rpc_path) const;

  const std::vector<std::unique_ptr<Backend>>& all() const { return backends_; }

 private:
  std::vector<std::unique_ptr<Backend>> backends_;
};

// For each configured backend, whether its channel connects within `wait` (READY).
std::map<std::string, bool> ReachableBackends(const Backends& backends, absl::Duration wait);

// "grassroots.membership.v1" for "/grassroots.membership.v1.OrganisationService/Get"; empty
// when `rpc_path` is not of that form.
std::string PackageOfMethod(std::string_view rpc_path);

// The default set: membership, cadrepay, assets, mobility with the given addresses.
std::vector<BackendConfig> DefaultBackendConfigs(const std::string& membership_addr,
                                                 const std::string& cadrepay_addr,
                                                 const std::string& assets_addr,
                                                 const std::string& mobility_addr);

}  // namespace grassroots::gateway
