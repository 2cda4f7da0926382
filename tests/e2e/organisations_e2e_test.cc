// End to end: the real binaries, a real MariaDB, real gRPC and HTTP through the gateway.
#include <gtest/gtest.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grassroots/membership/v1/membership.grpc.pb.h"
#include "http_client.h"
#include "process.h"
#include "suite.h"
#include "test_env.h"

namespace grassroots::testing {
namespace {

namespace v1 = membership::v1;
using google::protobuf::Struct;

Struct Json(const std::string& body) {
  Struct s;
  auto st = google::protobuf::util::JsonStringToMessage(body, &s);
  EXPECT_TRUE(st.ok()) << "not JSON: " << body;
  return s;
}

std::string Field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  if (it == s.fields().end()) return "";
  if (it->second.has_string_value()) return it->second.string_value();
  if (it->second.has_number_value()) return absl::StrCat(static_cast<int64_t>(it->second.number_value()));
  return "";
}

// The field named by the first BadRequest violation of an error body, if any.
std::string ViolationField(const Struct& s) {
  auto it = s.fields().find("details");
  if (it == s.fields().end() || it->second.list_value().values_size() == 0) return "";
  const Struct& d = it->second.list_value().values(0).struct_value();
  auto fv = d.fields().find("fieldViolations");
  if (fv == d.fields().end() || fv->second.list_value().values_size() == 0) return "";
  return Field(fv->second.list_value().values(0).struct_value(), "field");
}

class OrganisationsE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Suite& s = Suite::Get();
    direct_ = v1::OrganisationService::NewStub(s.Channel("membership")).release();
    via_gateway_ = v1::OrganisationService::NewStub(s.Channel("gateway")).release();
    s.EnsureBaseTree();
  }
  int http() { return Suite::Get().http_port(); }
  static inline v1::OrganisationService::Stub* direct_ = nullptr;
  static inline v1::OrganisationService::Stub* via_gateway_ = nullptr;

  // Asserts the org does not exist, both ways.
  void ExpectAbsent(const std::string& code) {
    EXPECT_EQ(Http("GET", http(), "/v1/organisations/" + code).status, 404) << code;
    grpc::ClientContext ctx;
    v1::GetOrganisationRequest req;
    req.set_org_code(code);
    v1::Organisation o;
    EXPECT_EQ(direct_->GetOrganisation(&ctx, req, &o).error_code(), grpc::StatusCode::NOT_FOUND) << code;
  }

  // A bad create through the gateway (HTTP) and directly (gRPC): same code, the field named.
  void ExpectRefused(const std::string& json, int http_status, grpc::StatusCode code, const std::string& field,
                     const std::string& code_written) {
    HttpResponse r = Http("POST", http(), "/v1/organisations", json);
    EXPECT_EQ(r.status, http_status) << r.body;
    Struct body = Json(r.body);
    EXPECT_EQ(Field(body, "code"), std::to_string(static_cast<int>(code))) << r.body;
    EXPECT_NE(Field(body, "message").find(field), std::string::npos) << r.body;
    v1::Organisation org;
    if (google::protobuf::util::JsonStringToMessage(json, &org).ok()) {
      v1::CreateOrganisationRequest req;
      *req.mutable_organisation() = org;
      for (auto* stub : {direct_, via_gateway_}) {
        grpc::ClientContext ctx;
        v1::Organisation out;
        grpc::Status s = stub->CreateOrganisation(&ctx, req, &out);
        EXPECT_EQ(s.error_code(), code) << s.error_message();
        EXPECT_NE(s.error_message().find(field), std::string::npos) << s.error_message();
      }
    }
    if (!code_written.empty()) ExpectAbsent(code_written);
  }
};

TEST_F(OrganisationsE2E, CreateThroughTheGatewayAndReadEverywhere) {
  HttpResponse r = Http("POST", http(), "/v1/organisations",
                        R"({"orgCode":"E2E-V2","name":"𠮷村党支部","orgType":"branch","parentCode":"E2E-T",)"
                        R"("divisionCode":"320723100202","population":"3100"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.headers["x-request-id"].empty());
  Struct created = Json(r.body);
  EXPECT_EQ(Field(created, "name"), "𠮷村党支部");
  EXPECT_EQ(Field(created, "orgKind"), "village");
  EXPECT_EQ(Field(created, "depth"), "2");

  r = Http("GET", http(), "/v1/organisations/E2E-V2");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Field(Json(r.body), "name"), "𠮷村党支部");

  for (auto* stub : {direct_, via_gateway_}) {
    grpc::ClientContext ctx;
    v1::GetOrganisationRequest req;
    req.set_org_code("E2E-V2");
    v1::Organisation o;
    ASSERT_TRUE(stub->GetOrganisation(&ctx, req, &o).ok());
    EXPECT_EQ(o.name(), "𠮷村党支部");
    EXPECT_EQ(o.population(), 3100);
  }

  r = Http("PATCH", http(), "/v1/organisations/E2E-V2", R"({"name":"新𠮷村党支部"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Field(Json(r.body), "name"), "新𠮷村党支部");
  EXPECT_EQ(Field(Json(r.body), "divisionCode"), "320723100202");

  r = Http("GET", http(), "/v1/organisations/E2E-T/children?pageSize=1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(Field(Json(r.body), "nextPageToken").empty()) << r.body;

  r = Http("GET", http(), "/v1/organisations/E2E-V2/ancestry");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("E2E-C"), std::string::npos);

  r = Http("DELETE", http(), "/v1/organisations/E2E-T");
  EXPECT_EQ(r.status, 400) << r.body;  // FAILED_PRECONDITION: still has sub-organisations
  EXPECT_EQ(Field(Json(r.body), "code"), "9");
  r = Http("DELETE", http(), "/v1/organisations/E2E-V2");
  EXPECT_EQ(r.status, 200) << r.body;
  ExpectAbsent("E2E-V2");
}

TEST_F(OrganisationsE2E, MalformedJsonIsRefused) {
  for (const std::string bad : {R"({"orgCode": "X1",)", R"({orgCode: "X1"})", R"({'orgCode': 'X1'})",
                                R"({"orgCode":"X1"} trailing)", R"({"orgCode":"X1","orgCode":"X2"})"}) {
    HttpResponse r = Http("POST", http(), "/v1/organisations", bad);
    EXPECT_EQ(r.status, 400) << bad << " -> " << r.body;
    EXPECT_EQ(Field(Json(r.body), "code"), "3") << r.body;
  }
  ExpectAbsent("X1");
}

TEST_F(OrganisationsE2E, UnknownFieldIsRefused) {
  HttpResponse r = Http("POST", http(), "/v1/organisations",
                        R"({"orgCode":"X2","name":"村","orgType":"branch","divisionCode":"320723100201","colour":"red"})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(Field(Json(r.body), "code"), "3");
  EXPECT_NE(r.body.find("colour"), std::string::npos) << r.body;
  ExpectAbsent("X2");
}

TEST_F(OrganisationsE2E, StringWhereANumberGoesIsRefused) {
  HttpResponse r = Http("POST", http(), "/v1/organisations",
                        R"({"orgCode":"X3","name":"村","orgType":"branch","divisionCode":"320723100201","population":"many"})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(Field(Json(r.body), "code"), "3");
  EXPECT_NE(r.body.find("population"), std::string::npos) << r.body;
  ExpectAbsent("X3");
}

TEST_F(OrganisationsE2E, ElevenDigitDivisionCode) {
  ExpectRefused(R"({"orgCode":"X4","name":"村","orgType":"branch","parentCode":"E2E-T","divisionCode":"32072310020"})",
                400, grpc::StatusCode::INVALID_ARGUMENT, "division_code", "X4");
  HttpResponse r = Http("POST", http(), "/v1/organisations",
                        R"({"orgCode":"X4","name":"村","orgType":"branch","divisionCode":"32072310020"})");
  EXPECT_EQ(ViolationField(Json(r.body)), "organisation.division_code") << r.body;
}

TEST_F(OrganisationsE2E, UnknownOrgType) {
  ExpectRefused(R"({"orgCode":"X5","name":"村","orgType":"cell","parentCode":"E2E-T","divisionCode":"320723100201"})",
                400, grpc::StatusCode::INVALID_ARGUMENT, "org_type", "X5");
}

TEST_F(OrganisationsE2E, ParentThatDoesNotExist) {
  ExpectRefused(R"({"orgCode":"X6","name":"村","orgType":"branch","parentCode":"NOPE","divisionCode":"320723100201"})",
                404, grpc::StatusCode::NOT_FOUND, "parent_code", "X6");
}

TEST_F(OrganisationsE2E, NameOfThreeHundredCharacters) {
  std::string name;
  for (int i = 0; i < 300; ++i) name += "村";
  ExpectRefused(absl::StrCat(R"({"orgCode":"X7","name":")", name,
                             R"(","orgType":"branch","parentCode":"E2E-T","divisionCode":"320723100201"})"),
                400, grpc::StatusCode::INVALID_ARGUMENT, "name", "X7");
}

TEST_F(OrganisationsE2E, MoveUnderItsOwnDescendant) {
  HttpResponse r = Http("POST", http(), "/v1/organisations/E2E-T:move", R"({"newParentCode":"E2E-V"})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(Field(Json(r.body), "code"), "9") << r.body;
  EXPECT_NE(Field(Json(r.body), "message").find("new_parent_code"), std::string::npos);
  grpc::ClientContext ctx;
  v1::MoveOrganisationRequest req;
  req.set_org_code("E2E-T");
  req.set_new_parent_code("E2E-V");
  v1::Organisation o;
  EXPECT_EQ(direct_->MoveOrganisation(&ctx, req, &o).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  r = Http("GET", http(), "/v1/organisations/E2E-T");
  EXPECT_EQ(Field(Json(r.body), "parentCode"), "E2E-C");  // nothing written
}

TEST_F(OrganisationsE2E, UnknownRoute) {
  HttpResponse r = Http("GET", http(), "/v1/nowhere/at/all");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(Field(Json(r.body), "code"), "5");
  EXPECT_EQ(r.headers["content-type"].find("application/json"), 0u);
}

TEST_F(OrganisationsE2E, CliImportExportRoundTripAndExitCodes) {
  Suite& s = Suite::Get();
  const std::string file = s.dir() + "/orgs.csv";
  WriteFile(file,
            "\xEF\xBB\xBForg_code,name,org_type,org_kind,parent_code,division_code,established_on,population\r\n"
            "RT-V1,\"村, 一\",branch,village,RT-T,320723200201,,1200\r\n"
            "RT-T,\"镇\"\"𠮷\"\"\",committee,township,E2E-C,320723200000,1958-09-01,\r\n"
            "RT-BAD,坏,branch,village,RT-T,3207232002,,\r\n");
  std::string out;
  EXPECT_EQ(s.Cli({"import", "organisations", file, "--errors", s.dir() + "/errors.csv"}, &out), 1) << out;
  const std::string errors = ReadFile(s.dir() + "/errors.csv");
  EXPECT_NE(errors.find("line,column,code,message\n4,division_code,INVALID_DIVISION_CODE,"), std::string::npos)
      << errors;
  EXPECT_EQ(s.Cli({"import", "organisations", file}, &out), 1) << out;  // re-run: same refusal, nothing new
  EXPECT_NE(out.find("inserted 0, updated 0, unchanged 2, refused 1"), std::string::npos) << out;

  EXPECT_EQ(s.Cli({"export", "organisations", "--org", "RT-T", "--out", s.dir() + "/export.csv"}, &out), 0) << out;
  const std::string exported = ReadFile(s.dir() + "/export.csv");
  EXPECT_EQ(exported,
            "org_code,name,org_type,org_kind,parent_code,division_code,established_on,population\n"
            "RT-T,\"镇\"\"𠮷\"\"\",committee,township,E2E-C,320723200000,1958-09-01,\n"
            "RT-V1,\"村, 一\",branch,village,RT-T,320723200201,,1200\n");
  EXPECT_EQ(s.Cli({"import", "organisations", s.dir() + "/export.csv"}, &out), 0) << out;
  EXPECT_NE(out.find("unchanged 2"), std::string::npos) << out;

  WriteFile(s.dir() + "/nohead.csv", "org_code,name\nA,B\n");
  EXPECT_EQ(s.Cli({"import", "organisations", s.dir() + "/nohead.csv"}, &out), 2) << out;
  EXPECT_EQ(s.Cli({"export", "organisations", "--org", "NOPE"}, &out), 2) << out;
}

// Files that are not UTF-8 (a UTF-16 header, a stray byte in a value) are answered with their
// refusals, which never repeat the bad bytes (a header cell not named like a column is named by
// its position; a refused value is not echoed; what a report does repeat is made valid UTF-8),
// instead of a report the CLI cannot read (it aborted); an empty file is refused on line 1, where
// its header belongs.
TEST_F(OrganisationsE2E, CliReportsFilesThatAreNotUtf8OrEmpty) {
  Suite& s = Suite::Get();
  s.EnsureBaseTree();
  const std::string errors_path = s.dir() + "/not-utf8.errors.csv";
  std::string out;

  WriteFile(s.dir() + "/utf16.csv", std::string("\xFF\xFEo\0r\0g\0", 8));
  EXPECT_EQ(s.Cli({"import", "organisations", s.dir() + "/utf16.csv", "--errors", errors_path}, &out), 2) << out;
  std::string errors = ReadFile(errors_path);
  EXPECT_EQ(errors.rfind("line,column,code,message\n1,", 0), 0u) << errors;
  EXPECT_NE(errors.find(",BAD_HEADER,"), std::string::npos) << errors;
  EXPECT_NE(errors.find("is the header row missing?"), std::string::npos) << errors;
  EXPECT_EQ(errors.find('\xFF'), std::string::npos) << errors;

  WriteFile(s.dir() + "/bad-byte.csv",
            "org_code,name,org_type,org_kind,parent_code,division_code\n"
            "U8-V1,村一,branch,village,E2E-T,320723100201\n"
            "U8-V2,村二,br\xFF" "anch,village,E2E-T,320723100201\n");
  EXPECT_EQ(s.Cli({"import", "organisations", s.dir() + "/bad-byte.csv", "--errors", errors_path}, &out), 1) << out;
  errors = ReadFile(errors_path);
  EXPECT_NE(errors.find("\n3,org_type,UNKNOWN_ORG_TYPE,"), std::string::npos) << errors;
  EXPECT_EQ(errors.find('\xFF'), std::string::npos) << errors;
  EXPECT_NE(out.find("inserted 1"), std::string::npos) << out;

  WriteFile(s.dir() + "/members-bad-header.csv", "id_number,n\xFF" "ame\n");
  EXPECT_EQ(s.Cli({"import", "members", s.dir() + "/members-bad-header.csv", "--errors", errors_path}, &out), 2)
      << out;
  EXPECT_NE(ReadFile(errors_path).find("1,,BAD_HEADER,column 2 is not named like a column"), std::string::npos)
      << ReadFile(errors_path);
  WriteFile(s.dir() + "/payments-bad-header.csv", "payment_id,\xC0\xAF\n");
  EXPECT_EQ(s.Cli({"ingest", "payments", s.dir() + "/payments-bad-header.csv", "--errors", errors_path}, &out), 2)
      << out;
  EXPECT_NE(ReadFile(errors_path).find("1,,BAD_HEADER,column 2 is not named like a column"), std::string::npos)
      << ReadFile(errors_path);

  WriteFile(s.dir() + "/empty.csv", "");
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"import", "organisations"}, {"import", "members"}, {"ingest", "payments"}}) {
    EXPECT_EQ(s.Cli({command[0], command[1], s.dir() + "/empty.csv", "--errors", errors_path}, &out), 2) << out;
    EXPECT_EQ(ReadFile(errors_path), "line,column,code,message\n1,,EMPTY_FILE,the file has no header row\n")
        << command[1];
  }
}

// The CLI as an agency's script drives it (formats.md, "The operator command line"): it finds the
// suite through var/local/endpoints.env from the repository root or from anywhere else (beside
// build/bin), and its exit codes never say "some rows refused" (1) or "file refused" (2) for a
// mistyped flag (64) or a suite it cannot find or reach (3).
TEST_F(OrganisationsE2E, CliFindsTheSuiteAndKeepsItsExitCodesApart) {
  Suite& s = Suite::Get();
  s.EnsureBaseTree();
  // A repository of its own: build/bin/grassroots, var/local/endpoints.env as deploy/local/up writes it.
  const std::string repo = s.dir() + "/repo";
  std::filesystem::create_directories(repo + "/build/bin");
  std::filesystem::create_directories(repo + "/var/local");
  std::filesystem::copy_file(BinPath("grassroots"), repo + "/build/bin/grassroots",
                             std::filesystem::copy_options::overwrite_existing);
  const std::string endpoints = repo + "/var/local/endpoints.env";
  WriteFile(endpoints, "# Written by deploy/local/up\nGATEWAY_HTTP=127.0.0.1:" + std::to_string(s.http_port()) +
                           "\nGATEWAY_GRPC=" + s.GrpcAddress("gateway") + "\n");
  const std::string csv = s.dir() + "/found.csv";
  WriteFile(csv, "org_code,name,org_type,org_kind,parent_code,division_code\nFOUND-V,村,branch,village,E2E-T,"
                 "320723100201\n");
  auto in = [](const std::string& dir, const std::string& command) {
    return std::vector<std::string>{"/bin/sh", "-c", "cd '" + dir + "' && exec " + command};
  };
  std::string out;
  EXPECT_EQ(RunCommand(in(repo, "build/bin/grassroots import organisations " + csv), &out), 0) << out;
  EXPECT_EQ(RunCommand(in("/", repo + "/build/bin/grassroots export organisations --org FOUND-V"), &out), 0) << out;
  EXPECT_EQ(out, "org_code,name,org_type,org_kind,parent_code,division_code,established_on,population\n"
                 "FOUND-V,村,branch,village,E2E-T,320723100201,,\n");
  // A script gets the program's usage on --help, with exit 0.
  EXPECT_EQ(RunCommand(in("/", repo + "/build/bin/grassroots --help"), &out), 0) << out;
  EXPECT_NE(out.find("import organisations FILE"), std::string::npos) << out;

  // Mistyped: 64, and nothing is sent.
  EXPECT_EQ(RunCommand(in(repo, "build/bin/grassroots import organisations " + csv + " --error x.csv"), &out), 64)
      << out;
  EXPECT_NE(out.find("unknown flag '--error'"), std::string::npos) << out;
  EXPECT_EQ(s.Cli({"export", "members", "--org", "E2E-V", "--unmasked=maybe"}, &out), 64) << out;
  EXPECT_EQ(s.Cli({"import", "organisations", csv, "--errors"}, &out), 64) << out;
  EXPECT_EQ(s.Cli({"import", "organisations"}, &out), 64) << out;
  EXPECT_EQ(s.Cli({"export", "organisations", "--org", "\xD5\xC5"}, &out), 64) << out;  // GBK, not UTF-8
  // A file that is not there is refused as a whole.
  EXPECT_EQ(s.Cli({"import", "organisations", s.dir() + "/not-there.csv"}, &out), 2) << out;
  // An --errors file that cannot be written: 3, and nothing is imported.
  const std::string unsent = s.dir() + "/unsent.csv";
  WriteFile(unsent, "org_code,name,org_type,org_kind,parent_code,division_code\nUNSENT-V,村,branch,village,E2E-T,"
                    "320723100201\n");
  EXPECT_EQ(s.Cli({"import", "organisations", unsent, "--errors", s.dir() + "/no/such/dir/errors.csv"}, &out), 3)
      << out;
  EXPECT_NE(out.find("cannot write"), std::string::npos) << out;
  EXPECT_EQ(s.Cli({"export", "organisations", "--org", "UNSENT-V"}, &out), 2) << out;
  // A refused export leaves the file --out names as it was (not emptied), and no file beside it.
  const std::string kept = s.dir() + "/kept/organisations.csv";
  std::filesystem::create_directories(s.dir() + "/kept");
  WriteFile(kept, "what was there\n");
  EXPECT_EQ(s.Cli({"export", "organisations", "--org", "UNSENT-V", "--out", kept}, &out), 2) << out;
  EXPECT_EQ(ReadFile(kept), "what was there\n");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(s.dir() + "/kept"), std::filesystem::directory_iterator()),
            1);
  EXPECT_EQ(s.Cli({"export", "organisations", "--org", "E2E-C", "--out", kept}, &out), 0) << out;
  EXPECT_TRUE(absl::StartsWith(ReadFile(kept), "org_code,")) << ReadFile(kept);
  // The --errors file has its header even when the file could not be sent.
  const std::string errors_of_missing = s.dir() + "/errors-of-missing.csv";
  EXPECT_EQ(s.Cli({"import", "organisations", s.dir() + "/not-there.csv", "--errors", errors_of_missing}, &out), 2)
      << out;
  EXPECT_EQ(ReadFile(errors_of_missing), "line,column,code,message\n");
  // Output that is lost (a full disk) is never exit 0: to --out, to stdout, the --errors file.
  EXPECT_EQ(s.Cli({"export", "organisations", "--org", "E2E-C", "--out", "/dev/full"}, &out), 3) << out;
  EXPECT_NE(out.find("cannot write /dev/full"), std::string::npos) << out;
  EXPECT_EQ(s.Cli({"report", "type-fit", "--org", "E2E-C", "--out", "/dev/full"}, &out), 3) << out;
  EXPECT_EQ(RunCommand({"/bin/sh", "-c",
                        "exec '" + BinPath("grassroots") + "' --gateway " + s.GrpcAddress("gateway") +
                            " export organisations --org E2E-C >/dev/full"},
                       &out),
            3)
      << out;
  EXPECT_NE(out.find("cannot write standard output"), std::string::npos) << out;
  EXPECT_EQ(s.Cli({"import", "organisations", csv, "--errors", "/dev/full"}, &out), 3) << out;

  // No suite: 3, with the address or the reason.
  const std::string nobody = "127.0.0.1:" + std::to_string(FreePort());
  EXPECT_EQ(RunCommand({"grassroots", "--gateway", nobody, "import", "organisations", csv}, &out), 3) << out;
  EXPECT_NE(out.find("unavailable through the gateway at " + nobody + ":"), std::string::npos) << out;
  std::filesystem::remove(endpoints);
  EXPECT_EQ(RunCommand(in("/", repo + "/build/bin/grassroots import organisations " + csv), &out), 3) << out;
  EXPECT_NE(out.find("cannot find the suite"), std::string::npos) << out;
}

// Calls a method by name over gRPC with an empty message: its status code.
grpc::StatusCode CallByName(const std::string& address, const std::string& method) {
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1), response;
  auto call = stub.PrepareUnaryCall(&ctx, method, request, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status.error_code();
}

TEST_F(OrganisationsE2E, EveryMetricsEndpointPassesPromtool) {
  Suite& s = Suite::Get();
  // Make sure request metrics exist.
  Http("GET", http(), "/v1/organisations/E2E-C");
  // Methods no service has: UNIMPLEMENTED, counted under method="unknown", never under a name
  // the caller made up (a label value per made-up name would let any caller grow the series
  // without bound, and put text of its choosing in labels and logs).
  for (const std::string name : {"membership", "cadrepay"}) {
    EXPECT_EQ(CallByName(s.GrpcAddress(name), "/made.Up/Method1"), grpc::StatusCode::UNIMPLEMENTED) << name;
    EXPECT_EQ(CallByName(s.GrpcAddress(name), "/grassroots.membership.v1.MemberService/MadeUp320723198001010011"),
              grpc::StatusCode::UNIMPLEMENTED)
        << name;
    const std::string body = Http("GET", s.endpoint(name).metrics_port, "/metrics").body;
    EXPECT_EQ(body.find("made.Up"), std::string::npos) << name << ": " << body;
    EXPECT_EQ(body.find("MadeUp"), std::string::npos) << name << ": " << body;
    EXPECT_NE(body.find("grassroots_grpc_server_handled_total{code=\"UNIMPLEMENTED\",method=\"unknown\"} 2"),
              std::string::npos)
        << name << ": " << body;
  }
  // Nor does the gateway's proxy write a made-up name into its log.
  EXPECT_EQ(CallByName(s.GrpcAddress("gateway"), "/made.Up/Method1"), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(CallByName(s.GrpcAddress("gateway"), "/grassroots.membership.v1.MemberService/MadeUp2"),
            grpc::StatusCode::UNIMPLEMENTED);
  const std::string gateway_log = ReadFile(s.dir() + "/gateway.log");
  EXPECT_EQ(gateway_log.find("made.Up"), std::string::npos) << gateway_log;
  EXPECT_EQ(gateway_log.find("MadeUp2"), std::string::npos) << gateway_log;
  for (const std::string name : {"membership", "cadrepay", "assets", "mobility", "gateway"}) {
    int port = s.endpoint(name).metrics_port;
    HttpResponse r = Http("GET", port, "/metrics");
    ASSERT_EQ(r.status, 200) << name;
    const std::string file = absl::StrCat(s.dir(), "/", name, ".prom");
    WriteFile(file, r.body);
    std::string out;
    int rc = RunCommand({"/usr/bin/sh", "-c", absl::StrCat("promtool check metrics < ", file)}, &out);
    EXPECT_EQ(rc, 0) << name << ": " << out;
    // Every family of ours is named grassroots_* (prometheus-cpp's own exposer_* aside), so one
    // prefix finds the suite's series on a shared Prometheus.
    for (size_t at = r.body.find("# TYPE "); at != std::string::npos; at = r.body.find("# TYPE ", at + 1)) {
      const std::string family = r.body.substr(at + 7, r.body.find(' ', at + 7) - (at + 7));
      EXPECT_TRUE(family.starts_with("grassroots_") || family.starts_with("exposer_")) << name << ": " << family;
    }
    if (name == "membership") {
      EXPECT_NE(r.body.find("grassroots_grpc_server_handled_total"), std::string::npos);
      EXPECT_NE(r.body.find("grassroots_db_pool_connections"), std::string::npos);
    }
    if (name == "gateway") {
      EXPECT_NE(r.body.find("grassroots_gateway_http_requests_total"), std::string::npos);
    }
  }
}

// A TCP forwarder that can be switched on after the service started: the database "returns".
class Forwarder final {
 public:
  Forwarder(int listen_port, int target_port) : listen_port_(listen_port), target_port_(target_port) {}
  ~Forwarder() {
    stop_ = true;
    if (listener_ >= 0) shutdown(listener_, SHUT_RDWR), close(listener_);
    if (accept_thread_.joinable()) accept_thread_.join();
    for (auto& t : pumps_) t.detach();
  }
  void Start() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = Addr(listen_port_);
    ASSERT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    listen(listener_, 64);
    accept_thread_ = std::thread([this] {
      while (!stop_) {
        int client = accept(listener_, nullptr, nullptr);
        if (client < 0) return;
        int upstream = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in t = Addr(target_port_);
        if (connect(upstream, reinterpret_cast<sockaddr*>(&t), sizeof t) != 0) {
          close(client);
          close(upstream);
          continue;
        }
        pumps_.emplace_back(Pump, client, upstream);
        pumps_.emplace_back(Pump, upstream, client);
      }
    });
  }

 private:
  static sockaddr_in Addr(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    return a;
  }
  static void Pump(int from, int to) {
    char buf[16384];
    while (true) {
      ssize_t n = read(from, buf, sizeof buf);
      if (n <= 0 || write(to, buf, static_cast<size_t>(n)) != n) break;
    }
    shutdown(to, SHUT_WR);
  }
  int listen_port_, target_port_;
  int listener_ = -1;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  std::vector<std::thread> pumps_;
};

TEST_F(OrganisationsE2E, DatabaseDownAtStartUpThenBackRecoversWithoutRestart) {
  Suite& s = Suite::Get();
  const int db_port = FreePort();
  auto env = s.DbEnv("membership");
  env["GRASSROOTS_DB_PORT"] = std::to_string(db_port);  // nothing listens there yet
  const int grpc_port = FreePort();
  const std::string log = s.dir() + "/membership-dbdown.log";
  Process p("membership",
            {"serve", "--listen_host=127.0.0.1", absl::StrCat("--grpc_port=", grpc_port), "--metrics_port=0"}, env,
            log);
  const std::string address = absl::StrCat("127.0.0.1:", grpc_port);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_TRUE(p.Running()) << ReadFile(log);
  std::string out;
  EXPECT_NE(RunCommand({"grassroots", "health", address}, &out), 0) << out;
  EXPECT_EQ(RunCommand({"grassroots", "health", address, "liveness"}, &out), 0) << out;
  EXPECT_NE(ReadFile(log).find("not ready"), std::string::npos) << ReadFile(log);
  // A request meanwhile fails cleanly with UNAVAILABLE, not a hang.
  {
    auto stub = v1::OrganisationService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::GetOrganisationRequest req;
    req.set_org_code("E2E-C");
    v1::Organisation o;
    EXPECT_EQ(stub->GetOrganisation(&ctx, req, &o).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  Forwarder db(db_port, std::atoi(Env("GRASSROOTS_TEST_DB_PORT", "3306").c_str()));
  db.Start();
  EXPECT_TRUE(Suite::WaitHealthy(address, 20)) << ReadFile(log);
  {
    auto stub = v1::OrganisationService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::GetOrganisationRequest req;
    req.set_org_code("E2E-C");
    v1::Organisation o;
    EXPECT_TRUE(stub->GetOrganisation(&ctx, req, &o).ok());
    EXPECT_EQ(o.name(), "灌云县委");
  }
  EXPECT_EQ(p.Terminate(), 0) << ReadFile(log);  // graceful drain on SIGTERM
  EXPECT_NE(ReadFile(log).find("draining"), std::string::npos);
}

}  // namespace
}  // namespace grassroots::testing
