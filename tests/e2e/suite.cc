#include "suite.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "absl/strings/str_cat.h"
#include "test_env.h"

namespace grassroots::testing {

std::string IdNumber(const std::string& seventeen) {
  static const int kWeights[] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (seventeen[i] - '0') * kWeights[i];
  return seventeen + "10X98765432"[sum % 11];
}

const std::vector<std::string>& Suite::DomainServices() {
  static const auto* s = new std::vector<std::string>{"membership", "cadrepay", "assets", "mobility"};
  return *s;
}

Suite& Suite::Get() {
  static Suite* suite = [] {
    auto* s = new Suite();
    std::atexit([] { delete &Suite::Get(); });
    return s;
  }();
  return *suite;
}

std::map<std::string, std::string> Suite::DbEnv(const std::string& service) const {
  return {{"GRASSROOTS_DB_HOST", Env("GRASSROOTS_TEST_DB_HOST", "127.0.0.1")},
          {"GRASSROOTS_DB_PORT", Env("GRASSROOTS_TEST_DB_PORT", "3306")},
          {"GRASSROOTS_DB_USER", Env("GRASSROOTS_TEST_DB_USER", "grassroots")},
          {"GRASSROOTS_DB_PASSWORD", Env("GRASSROOTS_TEST_DB_PASSWORD", "grassroots")},
          {"GRASSROOTS_DB_NAME", absl::StrCat("e2e_", service, "_", run_id_)},
          // A service holding ID numbers does not start without its key.
          {"GRASSROOTS_PII_KEY", "7465737473206f6e6c793a206e6f742061206b6579206f6620612070726f7669"}};
}

Suite::Suite() {
  char tmpl[] = "/tmp/grassroots-e2e-XXXXXX";
  dir_ = mkdtemp(tmpl);
  run_id_ = std::to_string(getpid());
  for (const std::string& name : DomainServices()) {
    std::string out;
    int rc = RunCommand({name, "migrate"}, &out, DbEnv(name));
    if (rc != 0) throw std::runtime_error(absl::StrCat(name, " migrate failed: ", out));
  }
  for (const std::string& name : DomainServices()) endpoints_[name] = Endpoint{FreePort(), FreePort()};
  for (const std::string& name : DomainServices()) {
    const Endpoint& e = endpoints_[name];
    std::vector<std::string> args = {"serve", "--listen_host=127.0.0.1", absl::StrCat("--grpc_port=", e.grpc_port),
                                     absl::StrCat("--metrics_port=", e.metrics_port)};
    // cadrepay asks membership for cadres' recorded kin (CADRE_KIN), as deploy/local/up sets it up.
    if (name == "cadrepay") args.push_back(absl::StrCat("--membership_addr=", GrpcAddress("membership")));
    processes_.push_back(
        std::make_unique<Process>(name, args, DbEnv(name), absl::StrCat(dir_, "/", name, ".log")));
  }
  http_port_ = FreePort();
  Endpoint g{FreePort(), FreePort()};
  endpoints_["gateway"] = g;
  std::vector<std::string> gw_args = {"--listen_host=127.0.0.1", absl::StrCat("--http_port=", http_port_),
                                      absl::StrCat("--grpc_port=", g.grpc_port),
                                      absl::StrCat("--metrics_port=", g.metrics_port)};
  for (const std::string& name : DomainServices()) {
    gw_args.push_back(absl::StrCat("--", name, "_addr=", GrpcAddress(name)));
  }
  processes_.push_back(std::make_unique<Process>("gateway", gw_args, std::map<std::string, std::string>{},
                                                 absl::StrCat(dir_, "/gateway.log")));
  for (const auto& [name, e] : endpoints_) {
    if (!WaitHealthy(GrpcAddress(name), 30)) {
      throw std::runtime_error(absl::StrCat(name, " did not become healthy; see ", dir_, "/", name, ".log"));
    }
  }
}

Suite::~Suite() {
  processes_.clear();  // each ends its process
}

std::string Suite::GrpcAddress(const std::string& name) const {
  return absl::StrCat("127.0.0.1:", endpoints_.at(name).grpc_port);
}

std::shared_ptr<grpc::Channel> Suite::Channel(const std::string& name) const {
  return grpc::CreateChannel(GrpcAddress(name), grpc::InsecureChannelCredentials());
}

int Suite::Cli(const std::vector<std::string>& args, std::string* output) const {
  std::vector<std::string> argv = {"grassroots", absl::StrCat("--gateway=", GrpcAddress("gateway"))};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, output);
}

void Suite::EnsureBaseTree() {
  if (tree_loaded_) return;
  WriteFile(dir_ + "/tree.csv",
            "org_code,name,org_type,org_kind,parent_code,division_code\n"
            "E2E-C,灌云县委,committee,county,,320723000000\n"
            "E2E-T,城头镇党委,committee,township,E2E-C,320723100000\n"
            "E2E-V,城头村党支部,branch,village,E2E-T,320723100201\n");
  std::string out;
  if (Cli({"import", "organisations", dir_ + "/tree.csv"}, &out) != 0) {
    throw std::runtime_error("cannot import the base tree: " + out);
  }
  tree_loaded_ = true;
}

bool Suite::WaitHealthy(const std::string& address, int seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (RunCommand({"grassroots", "health", address}, nullptr) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

}  // namespace grassroots::testing
