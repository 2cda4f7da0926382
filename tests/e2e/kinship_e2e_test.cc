// End to end: CADRE_KIN across services. A cadre's kin recorded in membership (AddKin) is paid
// under a programme that excludes cadre households; cadrepay asks membership over gRPC and the
// check reports CADRE_KIN. With membership unreachable the run still completes and its warnings
// name what was not checked.
#include <gtest/gtest.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "grassroots/cadrepay/v1/cadrepay.grpc.pb.h"
#include "grassroots/membership/v1/members.grpc.pb.h"
#include "process.h"
#include "suite.h"

namespace grassroots::testing {
namespace {

namespace cv1 = grassroots::cadrepay::v1;
namespace mv1 = grassroots::membership::v1;

// Registers a member of E2E-KV directly with membership; returns its member_id (0 on failure).
int64_t CreateMember(mv1::MemberService::Stub& stub, const std::string& id, const std::string& name,
                     const std::string& birth) {
  mv1::CreateMemberRequest r;
  r.set_recorded_by("e2e");
  mv1::Member* m = r.mutable_member();
  m->set_id_number(id);
  m->set_name(name);
  m->set_gender("M");
  m->set_birth_date(birth);
  m->set_org_code("E2E-KV");
  m->set_status("applicant");
  m->set_applied_on("2020-01-01");
  grpc::ClientContext ctx;
  mv1::Member out;
  grpc::Status s = stub.CreateMember(&ctx, r, &out);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return out.member_id();
}

int64_t Count(const cv1::CheckRun& run, const std::string& rule) {
  for (const auto& c : run.counts()) {
    if (c.rule() == rule) return c.count();
  }
  return 0;
}

int Ingest(const std::string& noun, const std::string& content, std::string* out) {
  Suite& s = Suite::Get();
  const std::string path = absl::StrCat(s.dir(), "/kin-", noun, ".csv");
  WriteFile(path, content);
  return s.Cli({"ingest", noun, path}, out);
}

TEST(KinshipE2E, RecordedKinOfACadreIsFoundThroughMembershipAndAnOutageIsSaid) {
  Suite& s = Suite::Get();
  s.EnsureBaseTree();
  std::string out;
  // An organisation of its own, so that other tests' member counts stay as they are.
  WriteFile(s.dir() + "/kin-tree.csv",
            "org_code,name,org_type,org_kind,parent_code,division_code\n"
            "E2E-KV,城头二村党支部,branch,village,E2E-T,320723100202\n");
  ASSERT_EQ(s.Cli({"import", "organisations", s.dir() + "/kin-tree.csv"}, &out), 0) << out;

  const std::string cadre = IdNumber("32072319700101701"), kin = IdNumber("32072319950101702"),
                    other = IdNumber("32072319800101703");
  auto members = mv1::MemberService::NewStub(s.Channel("membership"));
  const int64_t cadre_id = CreateMember(*members, cadre, "钱村官", "1970-01-01");
  const int64_t kin_id = CreateMember(*members, kin, "钱小亲", "1995-01-01");
  ASSERT_GT(cadre_id, 0);
  ASSERT_GT(kin_id, 0);
  {
    mv1::AddKinRequest r;
    r.set_member_id(cadre_id);
    r.set_kin_member_id(kin_id);
    r.set_relation("child");
    r.set_source("户口簿");
    r.set_recorded_by("e2e");
    grpc::ClientContext ctx;
    mv1::KinRelation rel;
    grpc::Status st = members->AddKin(&ctx, r, &rel);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  // The cadre and the kin live in different households: only the recorded kinship links them.
  ASSERT_EQ(Ingest("programmes",
                   "program_code,name,unit,frequency,amount_fen,valid_from,valid_to,excludes_cadre_households,"
                   "grace_days\nKINB,农村低保金,person,monthly,10000,2026-01,,1,5\n",
                   &out),
            0)
      << out;
  ASSERT_EQ(Ingest("recipients",
                   "id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n" +
                       cadre + ",钱村官,E2E-V,HK1,1,622848000000000701,2020-01-01,1\n" + kin +
                       ",钱小亲,E2E-V,HK2,1,622848000000000702,2020-01-01,0\n" + other +
                       ",孙邻居,E2E-V,HK3,1,622848000000000703,2020-01-01,0\n",
                   &out),
            0)
      << out;
  ASSERT_EQ(Ingest("enrolments",
                   "program_code,id_number,amount_fen,from_period,to_period\nKINB," + kin + ",,2026-01,\nKINB," +
                       other + ",,2026-01,\n",
                   &out),
            0)
      << out;
  ASSERT_EQ(Ingest("batches",
                   "batch_id,program_code,period,declared_count,declared_total_fen,scheduled_on\n"
                   "BK1,KINB,2026-05,2,20000,2026-05-20\n",
                   &out),
            0)
      << out;
  ASSERT_EQ(Ingest("payments",
                   "payment_id,batch_id,program_code,period,id_number,account_no,amount_fen,paid_at,reverses\n"
                   "PK1,BK1,KINB,2026-05," + kin + ",622848000000000702,10000,2026-05-20T10:00:00+08:00,\n"
                   "PK2,BK1,KINB,2026-05," + other + ",622848000000000703,10000,2026-05-20T10:00:00+08:00,\n",
                   &out),
            0)
      << out;

  // membership reachable: the payment to the cadre's child is CADRE_KIN, nothing else fires.
  ASSERT_EQ(s.Cli({"check", "disbursements", "--program", "KINB", "--period", "2026-05", "--as-of", "2026-06-30"},
                  &out),
            0)
      << out;
  EXPECT_NE(out.find("CADRE_KIN 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("findings 1\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("warning"), std::string::npos) << out;
  ASSERT_EQ(s.Cli({"findings", "export", "--out", s.dir() + "/kin-findings.csv"}, &out), 0) << out;
  const std::string findings = ReadFile(s.dir() + "/kin-findings.csv");
  EXPECT_NE(findings.find("CADRE_KIN,KINB,2026-05,3207**********702"), std::string::npos) << findings;
  EXPECT_NE(findings.find(",PK1,"), std::string::npos) << findings;
  EXPECT_EQ(findings.find(kin), std::string::npos) << findings;

  // membership unreachable: a second cadrepay on the same schema, pointed at a port where nothing
  // listens. The run completes, CADRE_KIN cannot see the kin, and the warning says so.
  const int grpc_port = FreePort();
  const std::string log = s.dir() + "/cadrepay-nomembership.log";
  Process lone("cadrepay",
               {"serve", "--listen_host=127.0.0.1", absl::StrCat("--grpc_port=", grpc_port), "--metrics_port=0",
                "--check_interval_seconds=0", absl::StrCat("--membership_addr=127.0.0.1:", FreePort()),
                "--membership_timeout_ms=3000"},
               s.DbEnv("cadrepay"), log);
  const std::string address = absl::StrCat("127.0.0.1:", grpc_port);
  ASSERT_TRUE(Suite::WaitHealthy(address, 30)) << ReadFile(log);
  auto checks = cv1::DisbursementService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  cv1::RunCheckRequest request;
  request.set_program_code("KINB");
  request.set_period("2026-05");
  request.set_as_of("2026-06-30");
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  cv1::CheckRun run;
  const auto started = std::chrono::steady_clock::now();
  grpc::Status st = checks->RunCheck(&ctx, request, &run);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10)) << "the outage cost a hang";
  EXPECT_EQ(Count(run, "CADRE_KIN"), 0);
  bool said = false;
  for (const auto& w : run.warnings()) {
    EXPECT_EQ(w.find(cadre), std::string::npos) << "a clear ID number in a warning: " << w;
    if (w.find("CADRE_KIN") == std::string::npos) continue;
    said = true;
    EXPECT_NE(w.find("could not be asked"), std::string::npos) << w;
    EXPECT_NE(w.find("UNAVAILABLE"), std::string::npos) << w;
    EXPECT_NE(w.find("3207**********701"), std::string::npos) << w;  // the cadre whose kin went unchecked
  }
  EXPECT_TRUE(said) << "the run did not say that kinship could not be looked up";
  EXPECT_EQ(lone.Terminate(), 0) << ReadFile(log);
  EXPECT_EQ(ReadFile(log).find(cadre), std::string::npos) << "an ID number in cadrepay's log";
}

}  // namespace
}  // namespace grassroots::testing
