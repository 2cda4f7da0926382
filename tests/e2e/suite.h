#pragma once
// The whole suite, started once per end-to-end test binary: each domain service migrated into
// its own fresh schema on the harness's MariaDB, the four services and the gateway on free
// loopback ports. Everything is ended when the binary exits, even when a test fails.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "process.h"

namespace grassroots::testing {

struct Endpoint {
  int grpc_port = 0;
  int metrics_port = 0;
};

// A valid resident ID number: 17 digits with the ISO 7064 MOD 11-2 check character.
std::string IdNumber(const std::string& seventeen);

class Suite final {
 public:
  static Suite& Get();  // started on first use
  ~Suite();

  const std::string& dir() const { return dir_; }
  int http_port() const { return http_port_; }
  const Endpoint& endpoint(const std::string& name) const { return endpoints_.at(name); }
  std::string GrpcAddress(const std::string& name) const;
  std::shared_ptr<grpc::Channel> Channel(const std::string& name) const;
  // The database settings every service of this suite uses (for extra instances in tests).
  std::map<std::string, std::string> DbEnv(const std::string& service) const;
  // Runs build/bin/grassroots against this suite's gateway.
  int Cli(const std::vector<std::string>& args, std::string* output) const;
  // Waits until `grassroots health` says SERVING (true) or the time is up (false).
  static bool WaitHealthy(const std::string& address, int seconds);

  static const std::vector<std::string>& DomainServices();
  // The small tree E2E-C > E2E-T > E2E-V every test may rely on (imported once, idempotently).
  void EnsureBaseTree();

 private:
  Suite();
  std::string dir_;
  std::string run_id_;
  int http_port_ = 0;
  std::map<std::string, Endpoint> endpoints_;
  std::vector<std::unique_ptr<Process>> processes_;
  bool tree_loaded_ = false;
};

}  // namespace grassroots::testing
