// End to end: the member registry through the gateway (CLI over gRPC, HTTP/JSON).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grassroots/membership/v1/members.grpc.pb.h"
#include "http_client.h"
#include "process.h"
#include "suite.h"

namespace grassroots::testing {
namespace {

namespace mv1 = grassroots::membership::v1;

std::string Id(const std::string& seventeen) {
  static const int kWeights[] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (seventeen[i] - '0') * kWeights[i];
  return seventeen + "10X98765432"[sum % 11];
}

bool HasError(const std::string& errors, const std::string& line_column_code) {
  return errors.find("\n" + line_column_code + ",") != std::string::npos;
}

TEST(MembersE2E, ImportRefusesBadRowsExportsMaskedAndReportsTypeFit) {
  Suite& s = Suite::Get();
  s.EnsureBaseTree();
  const std::string good = Id("32072319700315101"), full = Id("32072319750601202");
  std::string wrong_check = Id("32072319800101303");
  wrong_check.back() = wrong_check.back() == '0' ? '1' : '0';
  const std::string header =
      "id_number,name,gender,ethnicity,birth_date,education,occupation,phone,org_code,status,applied_on,joined_on,"
      "full_on,monthly_income_fen,is_mobile\r\n";
  const std::string csv =
      "\xEF\xBB\xBF" + header +
      good + ",张三明,M,汉族,1970-03-15,junior_high,\"农民, 种植\",13800000001,E2E-V,full,1995-03-01,1996-07-01,"
             "1997-07-01,300000,0\r\n" +
      full + ",李𠮷,F,汉族,1975-06-01,college,,,E2E-V,probationary,2024-01-10,2025-12-01,,,0\r\n" +
      wrong_check + ",王五,M,,1980-01-01,,,,E2E-V,applicant,2020-01-01,,,,0\r\n" +       // line 4: check digit
      Id("32072320100101404") + ",少年,M,,2010-01-01,,,,E2E-V,applicant,2026-01-01,,,,0\r\n" +  // 5: aged 15
      Id("32072319800101505") + ",孙七,M,,1980-01-01,,,,NOWHERE,applicant,2020-01-01,,,,0\r\n" +  // 6: org
      Id("32072319800101606") + ",周八,M,,1980-01-01,,,,E2E-V,applicant,2023-02-30,,,,0\r\n" +    // 7: 30 Feb
      Id("32072319800101707") + ",吴九,M,,1980-01-01,,,,E2E-V,applicant,2020-01-01,,,1200.00,0\r\n" +  // 8: fen
      Id("32072319800101808") + ",郑十,M,,1981-01-01,,,,E2E-V,applicant,2020-01-01,,,,0\r\n";     // 9: birth date
  WriteFile(s.dir() + "/members.csv", csv);
  std::string out;
  EXPECT_EQ(s.Cli({"import", "members", s.dir() + "/members.csv", "--errors", s.dir() + "/members.errors"}, &out), 1)
      << out;
  const std::string errors = ReadFile(s.dir() + "/members.errors");
  EXPECT_TRUE(HasError(errors, "4,id_number,INVALID_ID_NUMBER")) << errors;
  EXPECT_TRUE(HasError(errors, "5,applied_on,UNDER_AGE")) << errors;
  EXPECT_TRUE(HasError(errors, "6,org_code,UNKNOWN_ORGANISATION")) << errors;
  EXPECT_TRUE(HasError(errors, "7,applied_on,INVALID_DATE")) << errors;
  EXPECT_TRUE(HasError(errors, "8,monthly_income_fen,INVALID_MONEY")) << errors;
  EXPECT_TRUE(HasError(errors, "9,birth_date,BIRTH_DATE_MISMATCH")) << errors;
  EXPECT_EQ(errors.find(good), std::string::npos);
  // Re-import: nothing changes.
  EXPECT_EQ(s.Cli({"import", "members", s.dir() + "/members.csv"}, &out), 1) << out;
  EXPECT_NE(out.find("inserted 0, updated 0, unchanged 2"), std::string::npos) << out;

  // Masked export shows no full ID number; the names and 𠮷 survive.
  EXPECT_EQ(s.Cli({"export", "members", "--org", "E2E-V", "--out", s.dir() + "/members-out.csv"}, &out), 0) << out;
  const std::string exported = ReadFile(s.dir() + "/members-out.csv");
  EXPECT_EQ(exported.find(good), std::string::npos) << exported;
  EXPECT_NE(exported.find("李𠮷"), std::string::npos) << exported;
  EXPECT_NE(exported.find("3207**********"), std::string::npos) << exported;

  // Type-fit: the village branch has 1 full member, no sub-organisations: BELOW_MINIMUM.
  EXPECT_EQ(s.Cli({"report", "type-fit", "--org", "E2E-C", "--out", s.dir() + "/typefit.csv"}, &out), 0) << out;
  const std::string typefit = ReadFile(s.dir() + "/typefit.csv");
  EXPECT_EQ(typefit.rfind("org_code,org_type,full_members,members,code\n", 0), 0u) << typefit;
  EXPECT_NE(typefit.find("E2E-V,branch,1,2,BELOW_MINIMUM"), std::string::npos) << typefit;
  HttpResponse r = Http("GET", s.http_port(), "/v1/organisations/E2E-C/type-fit");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("BELOW_MINIMUM"), std::string::npos) << r.body;

  // Over HTTP: members of the village, masked.
  r = Http("GET", s.http_port(), "/v1/organisations/E2E-V/members");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("张三明"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(good), std::string::npos) << r.body;
  // A lookup with a wrong check digit names the field, and does not echo the number.
  r = Http("POST", s.http_port(), "/v1/members:lookup", absl::StrCat(R"({"idNumber":")", wrong_check, R"("})"));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("id_number"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(wrong_check), std::string::npos) << r.body;
  // A kinship relation recorded over HTTP is a change in the feed, after the members' own.
  r = Http("GET", s.http_port(), "/v1/organisations/E2E-V/members");
  std::vector<std::string> ids;
  for (size_t at = r.body.find("\"memberId\":\""); at != std::string::npos;
       at = r.body.find("\"memberId\":\"", at + 1)) {
    const size_t start = at + 12;
    ids.push_back(r.body.substr(start, r.body.find('"', start) - start));
  }
  ASSERT_GE(ids.size(), 2u) << r.body;
  r = Http("POST", s.http_port(), absl::StrCat("/v1/members/", ids[0], "/kin"),
           absl::StrCat(R"({"kinMemberId":")", ids[1], R"(","relation":"spouse","source":"户口簿","recordedBy":"e2e"})"));
  ASSERT_EQ(r.status, 200) << r.body;
  r = Http("GET", s.http_port(), "/v1/changes?afterSeq=0");
  ASSERT_EQ(r.status, 200) << r.body;
  const size_t kin = r.body.find("\"entity\":\"kin\"");
  ASSERT_NE(kin, std::string::npos) << r.body.substr(r.body.size() > 2000 ? r.body.size() - 2000 : 0);
  EXPECT_NE(r.body.find(absl::StrCat(ids[0], ":", ids[1], ":spouse")), std::string::npos);
  EXPECT_GT(kin, r.body.find("\"entity\":\"member\""));
  // A change-feed cursor from the future.
  r = Http("GET", s.http_port(), "/v1/changes?afterSeq=999999999");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("\"code\":11"), std::string::npos) << r.body;
  // members.csv over HTTP: the raw file is the body (BOM and CRLF as spreadsheets write them);
  // the report comes back as JSON, the bad row with its line and column.
  const std::string file = absl::StrCat(
      "\xEF\xBB\xBFid_number,name,gender,birth_date,org_code,status,applied_on\r\n", IdNumber("32072319900101772"),
      ",经由网关,F,1990-01-01,E2E-V,applicant,2024-01-01\r\n", IdNumber("32072319900101773"),
      ",二月三十,F,1990-02-30,E2E-V,applicant,2024-01-01\r\n");
  r = Http("POST", s.http_port(), "/v1/members:import", file, "text/csv");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"("inserted":"1")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("line":"3","column":"birth_date")"), std::string::npos) << r.body;
}


// Two membership replicas on one database, each with its member cache: what one writes the other
// answers within its follow interval, what a replica writes itself it answers at once, and the
// cache's series are on /metrics.
TEST(MembersE2E, ReplicasSeeEachOthersWritesThroughTheirCaches) {
  Suite& s = Suite::Get();
  s.EnsureBaseTree();
  const int grpc_port = FreePort(), metrics_port = FreePort();
  const std::string log = s.dir() + "/membership-replica.log";
  Process replica("membership",
                  {"serve", "--listen_host=127.0.0.1", absl::StrCat("--grpc_port=", grpc_port),
                   absl::StrCat("--metrics_port=", metrics_port), "--member_cache_refresh_ms=100"},
                  s.DbEnv("membership"), log);
  const std::string address = absl::StrCat("127.0.0.1:", grpc_port);
  ASSERT_TRUE(Suite::WaitHealthy(address, 30)) << ReadFile(log);
  auto a = mv1::MemberService::NewStub(s.Channel("membership"));
  auto b = mv1::MemberService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));

  mv1::CreateMemberRequest create;
  create.set_recorded_by("e2e");
  mv1::Member* m = create.mutable_member();
  m->set_id_number(IdNumber("32072319850305771"));
  m->set_name("赵一");
  m->set_gender("F");
  m->set_birth_date("1985-03-05");
  m->set_org_code("E2E-V");
  m->set_status("applicant");
  m->set_applied_on("2020-01-01");
  mv1::Member created;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(a->CreateMember(&ctx, create, &created).ok());
  }
  auto get = [&](mv1::MemberService::Stub& stub) {
    grpc::ClientContext ctx;
    mv1::GetMemberRequest r;
    r.set_member_id(created.member_id());
    mv1::Member out;
    grpc::Status st = stub.GetMember(&ctx, r, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  };
  auto step = [&](mv1::MemberService::Stub& stub, const std::string& to, const std::string& on) {
    grpc::ClientContext ctx;
    mv1::StepMemberRequest r;
    r.set_member_id(created.member_id());
    r.set_step(to);
    r.set_effective_on(on);
    r.set_deciding_org_code("E2E-V");
    r.set_recorded_by("e2e");
    mv1::Member out;
    grpc::Status st = stub.StepMember(&ctx, r, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
  };
  for (int i = 0; i < 3; ++i) EXPECT_EQ(get(*b).status(), "applicant");  // read, then from the cache

  step(*a, "activist", "2021-01-01");  // written through the other replica
  const auto written = std::chrono::steady_clock::now();
  std::string seen;
  while (std::chrono::steady_clock::now() - written < std::chrono::seconds(5)) {
    seen = get(*b).status();
    if (seen == "activist") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(seen, "activist");
  EXPECT_LT(std::chrono::steady_clock::now() - written, std::chrono::seconds(2)) << "beyond the staleness bound";

  step(*b, "development_target", "2022-01-01");  // written through this replica: at once
  EXPECT_EQ(get(*b).status(), "development_target");
  EXPECT_EQ(get(*b).version(), 3);

  const std::string metrics = Http("GET", metrics_port, "/metrics").body;
  EXPECT_NE(metrics.find("grassroots_membership_member_cache_lookups_total{result=\"hit\"}"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("grassroots_membership_member_cache_lookups_total{result=\"hit\"} 0\n"), std::string::npos)
      << "no read was answered from the cache";
  EXPECT_EQ(replica.Terminate(), 0) << ReadFile(log);
}

}  // namespace
}  // namespace grassroots::testing
