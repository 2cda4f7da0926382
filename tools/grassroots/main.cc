// grassroots: the operator CLI (formats.md, "The operator command line and the local run").
//   grassroots VERB NOUN [ARGS] [--flags]
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "cli_support.h"
#include "commands.h"
#include "grassroots/common/config.h"
#include "grassroots/common/log.h"
#include "grassroots/common/validate.h"

namespace {

using Command = std::function<int(const std::vector<std::string>&)>;

// grassroots health HOST:PORT [SERVICE]: exit 0 when the process reports SERVING.
int Health(const std::vector<std::string>& args) {
  if (args.empty() || args.size() > 2) {
    std::fprintf(stderr, "usage: grassroots health HOST:PORT [SERVICE]\n");
    return grassroots::cli::kExitUsage;
  }
  auto channel = grpc::CreateChannel(args[0], grpc::InsecureChannelCredentials());
  grpc::ByteBuffer request_buf, response_buf;
  // grpc.health.v1.HealthCheckRequest{service}: field 1, string. Encoded by hand to avoid
  // compiling health.proto next to gRPC's own copy.
  std::string service = args.size() == 2 ? args[1] : "";
  std::string wire;
  if (!service.empty()) {
    wire.push_back(0x0a);
    wire.push_back(static_cast<char>(service.size()));
    wire += service;
  }
  grpc::Slice slice(wire);
  request_buf = grpc::ByteBuffer(&slice, 1);
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_buf, &response_buf,
                 [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = std::move(s);
                   done = true;
                   cv.notify_one();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", args[0].c_str(), status.error_message().c_str());
    return 1;
  }
  std::vector<grpc::Slice> slices;
  response_buf.Dump(&slices);
  std::string body;
  for (auto& s : slices) body.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // HealthCheckResponse{status = 1 (SERVING)}: bytes 0x08 0x01.
  const bool serving = body.size() == 2 && body[0] == 0x08 && body[1] == 0x01;
  std::printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
  return serving ? 0 : 1;
}

void Usage(std::FILE* to = stderr) {
  std::fprintf(to,
               "usage: grassroots COMMAND ...\n"
               "  health HOST:PORT [SERVICE]\n"
               "  import organisations FILE [--errors F]\n"
               "  export organisations --org CODE [--out F]\n"
               "  import members FILE [--errors F]\n"
               "  export members --org CODE [--out F] [--unmasked]\n"
               "  report type-fit --org CODE [--out F]\n"
               "  ingest programmes|enrolments|recipients|payments|batches|civil-events FILE [--errors F]\n"
               "  check disbursements [--program CODE] [--period P] [--as-of YYYY-MM-DD]\n"
               "  findings export [--run ID] [--out F] [--unmasked]\n"
               "common flags: --gateway HOST:PORT (default: var/local/endpoints.env)\n"
               "exit: 0 file taken whole, 1 some rows refused (good rows kept), 2 file refused as a whole,\n"
               "      3 suite not found or unavailable, or output not written, 64 usage\n");
}

}  // namespace

int main(int argc, char** argv) {
  // formats.md spells one flag with a hyphen (--as-of); flags are declared with underscores.
  std::vector<std::string> storage(argv, argv + argc);
  std::vector<char*> argv2;
  for (std::string& a : storage) {
    if (a == "--") break;
    if (a.rfind("--as-of", 0) == 0) a.replace(0, 7, "--as_of");
  }
  for (std::string& a : storage) argv2.push_back(a.data());
  argv2.push_back(nullptr);
  // A flag the CLI does not know, or a bad value of a boolean flag, is a usage error (64): left to
  // Abseil it would exit 1, which scripts read as "some rows were refused". --help is not an error.
  for (size_t i = 1; i < storage.size(); ++i) {
    const std::string& a = storage[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    const size_t dashes = a[1] == '-' ? 2 : 1;
    const size_t eq = a.find('=');
    std::string name = a.substr(dashes, eq == std::string::npos ? std::string::npos : eq - dashes);
    if (name == "help" || name == "h") {
      Usage(stdout);
      return 0;
    }
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    bool negated = false;
    if (flag == nullptr && name.rfind("no", 0) == 0) {  // --noFLAG for a boolean FLAG
      flag = absl::FindCommandLineFlag(name.substr(2));
      negated = flag != nullptr && flag->IsOfType<bool>();
      if (!negated) flag = nullptr;
    }
    if (flag == nullptr || name.empty()) {
      std::fprintf(stderr, "unknown flag '%s'\n", a.c_str());
      Usage(stderr);
      return grassroots::cli::kExitUsage;
    }
    if (flag->IsOfType<bool>()) {
      bool value = false;
      std::string error;
      if (eq != std::string::npos && (negated || !absl::ParseFlag(a.substr(eq + 1), &value, &error))) {
        std::fprintf(stderr, "bad value in '%s' (a switch: --%s or --%s=true|false)\n", a.c_str(),
                     std::string(flag->Name()).c_str(), std::string(flag->Name()).c_str());
        return grassroots::cli::kExitUsage;
      }
    } else if (eq == std::string::npos) {
      if (i + 1 == storage.size()) {
        std::fprintf(stderr, "flag '%s' needs a value\n", a.c_str());
        return grassroots::cli::kExitUsage;
      }
      ++i;  // its value, whatever it looks like
    }
  }
  std::vector<std::string> args =
      grassroots::common::ParseFlags(argc, argv2.data(), "grassroots COMMAND ... (see --help)");
  grassroots::common::InitLogging("grassroots-cli", "warning");
  // Values that go into a request as text must be UTF-8 (protobuf refuses to send them otherwise).
  for (const char* name : {"org", "program", "period", "as_of", "run"}) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag != nullptr && grassroots::common::Utf8Length(flag->CurrentValue()) < 0) {
      std::fprintf(stderr, "--%s is not UTF-8 text\n", name);
      return grassroots::cli::kExitUsage;
    }
  }
  const std::map<std::string, Command> commands = {
      {"health", Health},
      {"import organisations", grassroots::cli::ImportOrganisations},
      {"export organisations", grassroots::cli::ExportOrganisations},
      {"import members", grassroots::cli::ImportMembers},
      {"export members", grassroots::cli::ExportMembers},
      {"report type-fit", grassroots::cli::ReportTypeFit},
      {"ingest programmes", grassroots::cli::IngestProgrammes},
      {"ingest enrolments", grassroots::cli::IngestEnrolments},
      {"ingest recipients", grassroots::cli::IngestRecipients},
      {"ingest payments", grassroots::cli::IngestPayments},
      {"ingest batches", grassroots::cli::IngestBatches},
      {"ingest civil-events", grassroots::cli::IngestCivilEvents},
      {"check disbursements", grassroots::cli::CheckDisbursements},
      {"findings export", grassroots::cli::ExportFindings},
  };
  if (args.size() < 2) {
    Usage();
    return grassroots::cli::kExitUsage;
  }
  if (args[1] == "health") return Health({args.begin() + 2, args.end()});
  if (args.size() < 3) {
    Usage();
    return grassroots::cli::kExitUsage;
  }
  auto it = commands.find(absl::StrCat(args[1], " ", args[2]));
  if (it == commands.end()) {
    std::fprintf(stderr, "unknown command '%s %s'\n", args[1].c_str(), args[2].c_str());
    Usage();
    return grassroots::cli::kExitUsage;
  }
  const int rc = it->second({args.begin() + 3, args.end()});
  // What went to stdout (a report, an export without --out, the summary) must have been written.
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) {
    std::fprintf(stderr, "error: cannot write standard output\n");
    using grassroots::cli::kExitOk, grassroots::cli::kExitSomeRefused, grassroots::cli::kExitUnavailable;
    if (rc == kExitOk || rc == kExitSomeRefused) return kExitUnavailable;
  }
  return rc;
}
