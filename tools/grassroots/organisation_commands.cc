#include <cstdio>

#include "absl/flags/flag.h"
#include "cli_support.h"
#include "commands.h"
#include "grassroots/membership/v1/members.grpc.pb.h"
#include "grassroots/membership/v1/membership.grpc.pb.h"

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
  auto errors_stub = v1::MemberService::NewStub(GatewayChannel());  // membership keeps both imports' errors
  return SendFile(args[0], "organisations", *ctx, *writer, report, [&](const auto& request, auto* page) {
    auto page_ctx = NewContext(60);
    return errors_stub->ListImportErrors(page_ctx.get(), request, page);
  });
}

int ExportOrganisations(const std::vector<std::string>& args) {
  const std::string org = absl::GetFlag(FLAGS_org);
  if (!args.empty() || org.empty()) {
    std::fprintf(stderr, "usage: grassroots export organisations --org CODE [--out F]\n");
    return kExitUsage;
  }
  auto stub = v1::OrganisationService::NewStub(GatewayChannel());
  auto ctx = NewContext();
  v1::ExportOrganisationsRequest request;
  request.set_org_code(org);
  auto reader = stub->ExportOrganisations(ctx.get(), request);
  return ReceiveFile(*reader);
}

}  // namespace grassroots::cli
