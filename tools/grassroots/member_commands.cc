// Member registry commands:
//   grassroots import members FILE [--errors F]
//   grassroots export members --org CODE [--out F] [--unmasked]
//   grassroots report type-fit --org CODE [--out F]
#include <cstdio>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "cli_support.h"
#include "commands.h"
#include "grassroots/common/csv.h"
#include "grassroots/membership/v1/members.grpc.pb.h"

// Shared flags, defined with the organisation and disbursement commands.
ABSL_DECLARE_FLAG(std::string, errors);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_DECLARE_FLAG(std::string, org);
ABSL_DECLARE_FLAG(bool, unmasked);

namespace grassroots::cli {

namespace v1 = membership::v1;

int ImportMembers(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "usage: grassroots import members FILE [--errors F]\n");
    return kExitUsage;
  }
  auto stub = v1::MemberService::NewStub(GatewayChannel());
  auto ctx = NewContext();
  exchange::v1::ImportReport report;
  auto writer = stub->ImportMembers(ctx.get(), &report);
  auto errors_stub = v1::MemberService::NewStub(GatewayChannel());  // membership keeps both imports' errors
  return SendFile(args[0], "members", *ctx, *writer, report, [&](const auto& request, auto* page) {
    auto page_ctx = NewContext(60);
    return errors_stub->ListImportErrors(page_ctx.get(), request, page);
  });
}

int ExportMembers(const std::vector<std::string>& args) {
  const std::string org = absl::GetFlag(FLAGS_org);
  if (!args.empty() || org.empty()) {
    std::fprintf(stderr, "usage: grassroots export members --org CODE [--out F] [--unmasked]\n");
    return kExitUsage;
  }
  auto stub = v1::MemberService::NewStub(GatewayChannel());
  auto ctx = NewContext();
  // Asks for clear ID numbers; the gateway grants it only to callers with the right.
  if (absl::GetFlag(FLAGS_unmasked)) AskForPersonalData(*ctx);
  v1::ExportMembersRequest request;
  request.set_org_code(org);
  auto reader = stub->ExportMembers(ctx.get(), request);
  return ReceiveFile(*reader);
}

int ReportTypeFit(const std::vector<std::string>& args) {
  const std::string org = absl::GetFlag(FLAGS_org);
  if (!args.empty() || org.empty()) {
    std::fprintf(stderr, "usage: grassroots report type-fit --org CODE [--out F]\n");
    return kExitUsage;
  }
  auto stub = v1::MemberService::NewStub(GatewayChannel());
  auto ctx = NewContext(600);
  v1::GetTypeFitReportRequest request;
  request.set_org_code(org);
  v1::TypeFitReport report;
  grpc::Status status = stub->GetTypeFitReport(ctx.get(), request, &report);
  if (!status.ok()) return ReportFailure(status);
  std::FILE* out = OpenOutput(absl::GetFlag(FLAGS_out));
  if (out == nullptr) return kExitUnavailable;
  std::string text;
  common::AppendCsvRecord(text, {"org_code", "org_type", "full_members", "members", "code"});
  for (const auto& e : report.entries()) {
    common::AppendCsvRecord(text, {e.org_code(), e.org_type(), std::to_string(e.full_members()),
                                   std::to_string(e.members()), e.code()});
  }
  std::fwrite(text.data(), 1, text.size(), out);
  return CloseOutput(out, absl::GetFlag(FLAGS_out)) ? kExitOk : kExitUnavailable;
}

}  // namespace grassroots::cli
