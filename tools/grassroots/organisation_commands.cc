#include <cstdio>

#include "absl/flags/flag.h"
#include "cli_support.h"
#include "commands.h"
#include "grassroots/membership/v1/membership.grpc.pb.h"

ABSL_FLAG(std::string, errors, "", "write refused rows to this file as line,column,code,message");
ABSL_FLAG(std::string, out, "", "output file (default: standard output)");
ABSL_FLAG(std::string, org, "", "organisation code: top of the subtree");

namespace grassroots::cli {

namespace v1 = membership::v1;

int ImportOrganisations(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "usage: grassroots import organisations FILE [--errors F]\n");
    return kExitUsage;
  }
  auto stub = v1::OrganisationService::NewStub(GatewayChannel());
  auto ctx = NewContext();
  exchange::v1::ImportReport report;
  auto writer = stub->ImportOrganisations(ctx.get(), &report);
  std::string error;
  const bool read_ok =
      UploadFile(args[0], "organisations", [&](const exchange::v1::FileChunk& c) { return writer->Write(c); }, &error);
  if (!read_ok) {
    ctx->TryCancel();
    writer->Finish();
    std::fprintf(stderr, "error: %s\n", error.c_str());
    return kExitFileRefused;
  }
  writer->WritesDone();
  return FinishImport(writer->Finish(), report, absl::GetFlag(FLAGS_errors));
}

int ExportOrganisations(const std::vector<std::string>& args) {
  const std::string org = absl::GetFlag(FLAGS_org);
  if (!args.empty() || org.empty()) {
    std::fprintf(stderr, "usage: grassroots export organisations --org CODE [--out F]\n");
    return kExitUsage;
  }
  std::FILE* out = OpenOutput(absl::GetFlag(FLAGS_out));
  if (out == nullptr) return kExitUnavailable;
  auto stub = v1::OrganisationService::NewStub(GatewayChannel());
  auto ctx = NewContext();
  v1::ExportOrganisationsRequest request;
  request.set_org_code(org);
  auto reader = stub->ExportOrganisations(ctx.get(), request);
  exchange::v1::FileChunk chunk;
  while (reader->Read(&chunk)) std::fwrite(chunk.data().data(), 1, chunk.data().size(), out);
  grpc::Status status = reader->Finish();
  if (out != stdout) std::fclose(out); else std::fflush(stdout);
  if (!status.ok()) return ReportFailure(status);
  return kExitOk;
}

}  // namespace grassroots::cli
