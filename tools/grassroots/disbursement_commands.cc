// grassroots ingest programmes|enrolments|recipients|payments|batches|civil-events FILE [--errors F]
// grassroots check disbursements [--program CODE] [--period P] [--as-of YYYY-MM-DD]
// grassroots findings export [--run ID] [--out F] [--unmasked]
#include <unistd.h>

#include <cstdio>
#include <map>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "cli_support.h"
#include "commands.h"
#include "grassroots/cadrepay/v1/cadrepay.grpc.pb.h"

ABSL_DECLARE_FLAG(std::string, errors);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_FLAG(std::string, program, "", "check disbursements: only this programme");
ABSL_FLAG(std::string, period, "", "check disbursements: only this period (YYYY-MM or YYYY)");
ABSL_FLAG(std::string, as_of, "", "check disbursements: the run's as-of date (YYYY-MM-DD; default today)");
ABSL_FLAG(std::string, run, "", "findings export: the check run (default: the latest)");
ABSL_FLAG(bool, unmasked, false, "findings export: full ID numbers (requires the right to see them)");

namespace grassroots::cli {
namespace {

namespace v1 = cadrepay::v1;
using Stub = v1::DisbursementService::Stub;
using Writer = std::unique_ptr<grpc::ClientWriter<exchange::v1::FileChunk>>;

int Ingest(const std::vector<std::string>& args, const char* noun,
           Writer (Stub::*start)(grpc::ClientContext*, exchange::v1::ImportReport*)) {
  if (args.size() != 1) {
    std::fprintf(stderr, "usage: grassroots ingest %s FILE [--errors F]\n", noun);
    return kExitUsage;
  }
  auto stub = v1::DisbursementService::NewStub(GatewayChannel());
  auto ctx = NewContext();
  exchange::v1::ImportReport report;
  Writer writer = ((*stub).*start)(ctx.get(), &report);
  return SendFile(args[0], noun, *ctx, *writer, report, [&](const auto& request, auto* page) {
    auto page_ctx = NewContext(60);
    return stub->ListImportErrors(page_ctx.get(), request, page);
  });
}

}  // namespace

int IngestProgrammes(const std::vector<std::string>& args) { return Ingest(args, "programmes", &Stub::IngestProgrammes); }
int IngestEnrolments(const std::vector<std::string>& args) { return Ingest(args, "enrolments", &Stub::IngestEnrolments); }
int IngestRecipients(const std::vector<std::string>& args) { return Ingest(args, "recipients", &Stub::IngestRecipients); }
int IngestPayments(const std::vector<std::string>& args) { return Ingest(args, "payments", &Stub::IngestPayments); }
int IngestBatches(const std::vector<std::string>& args) { return Ingest(args, "batches", &Stub::IngestBatches); }
int IngestCivilEvents(const std::vector<std::string>& args) {
  return Ingest(args, "civil-events", &Stub::IngestCivilEvents);
}

int CheckDisbursements(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "usage: grassroots check disbursements [--program CODE] [--period P] [--as-of YYYY-MM-DD]\n");
    return kExitUsage;
  }
  auto stub = v1::DisbursementService::NewStub(GatewayChannel());
  auto ctx = NewContext();
  v1::RunCheckRequest request;
  request.set_program_code(absl::GetFlag(FLAGS_program));
  request.set_period(absl::GetFlag(FLAGS_period));
  request.set_as_of(absl::GetFlag(FLAGS_as_of));
  v1::CheckRun run;
  grpc::Status status = stub->RunCheck(ctx.get(), request, &run);
  if (!status.ok()) return ReportFailure(status);
  // A run still going is followed to its end (its progress on a terminal).
  const bool tty = isatty(STDERR_FILENO) != 0;
  while (run.state() == checks::v1::RUNNING) {
    auto watch_ctx = NewContext(3600);
    v1::GetCheckRunRequest get;
    get.set_run_id(run.run_id());
    auto reader = stub->WatchCheckRun(watch_ctx.get(), get);
    v1::CheckRun next;
    while (reader->Read(&next)) {
      run = next;
      if (tty && run.state() == checks::v1::RUNNING) {
        const auto& p = run.progress();
        std::fprintf(stderr, "\rcheck %s: %s %lld/%lld   ", run.run_id().c_str(), p.phase().c_str(),
                     static_cast<long long>(p.done()), static_cast<long long>(p.total()));
      }
    }
    status = reader->Finish();
    if (!status.ok() && status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) return ReportFailure(status);
  }
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (run.state() == checks::v1::FAILED) {
    std::fprintf(stderr, "check run %s failed: %s\n", run.run_id().c_str(), run.error().c_str());
    return kExitUnavailable;
  }
  std::printf("run %s\n", run.run_id().c_str());
  std::printf("scope program=%s period=%s as_of=%s\n", run.program_code().empty() ? "*" : run.program_code().c_str(),
              run.period().empty() ? "*" : run.period().c_str(), run.as_of().c_str());
  std::printf("payments_checked %lld\nentitlements_checked %lld\n", static_cast<long long>(run.payments_checked()),
              static_cast<long long>(run.entitlements_checked()));
  int64_t total = 0;
  for (const auto& c : run.counts()) {
    std::printf("%s %lld\n", c.rule().c_str(), static_cast<long long>(c.count()));
    total += c.count();
  }
  std::printf("findings %lld\n", static_cast<long long>(total));
  for (const auto& w : run.warnings()) std::fprintf(stderr, "warning: %s\n", w.c_str());
  return kExitOk;
}

int ExportFindings(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "usage: grassroots findings export [--run ID] [--out F] [--unmasked]\n");
    return kExitUsage;
  }
  auto stub = v1::DisbursementService::NewStub(GatewayChannel());
  auto ctx = NewContext();
  v1::ExportFindingsRequest request;
  request.set_run_id(absl::GetFlag(FLAGS_run).empty() ? "latest" : absl::GetFlag(FLAGS_run));
  request.set_unmasked(absl::GetFlag(FLAGS_unmasked));
  if (absl::GetFlag(FLAGS_unmasked)) AskForPersonalData(*ctx);
  auto reader = stub->ExportFindings(ctx.get(), request);
  return ReceiveFile(*reader);
}

}  // namespace grassroots::cli
