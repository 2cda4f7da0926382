// End to end: subsidy files ingested through the gateway with the operator CLI, the check run,
// findings exported, HTTP routes of cadrepay through the gateway.
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "grassroots/common/validate.h"
#include "http_client.h"
#include "process.h"
#include "suite.h"

namespace grassroots::testing {
namespace {

// A valid resident ID number: 17 digits with the ISO 7064 MOD 11-2 check character.
std::string Id(const std::string& seventeen) {
  static const int kWeights[] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (seventeen[i] - '0') * kWeights[i];
  return seventeen + "10X98765432"[sum % 11];
}

class DisbursementE2E : public ::testing::Test {
 protected:
  static std::string Path(const std::string& name) { return Suite::Get().dir() + "/" + name; }
  static int Ingest(const std::string& noun, const std::string& file, const std::string& content, std::string* errors,
                    std::string* out) {
    WriteFile(Path(file), content);
    const std::string errors_path = Path(file + ".errors");
    int rc = Suite::Get().Cli({"ingest", noun, Path(file), "--errors", errors_path}, out);
    *errors = ReadFile(errors_path);
    return rc;
  }
  // The refused rows of an errors file as "line,column,code" prefixes.
  static bool HasError(const std::string& errors, const std::string& line_column_code) {
    return errors.find("\n" + line_column_code + ",") != std::string::npos;
  }
};

TEST_F(DisbursementE2E, FilesIngestRefuseBadRowsAndTheCheckFindsTheAnomalies) {
  const std::string a = Id("32072319800101001"), b = Id("32072319800101002"), c = Id("32072319800101003"),
                    d = Id("32072319800101004");
  std::string errors, out;
  Suite::Get().EnsureBaseTree();

  ASSERT_EQ(Ingest("programmes", "programmes.csv",
                   "program_code,name,unit,frequency,amount_fen,valid_from,valid_to,excludes_cadre_households,grace_days\n"
                   "GDLB,耕地地力保护补贴,person,monthly,12000,2026-01,,1,5\n",
                   &errors, &out),
            0)
      << out << errors;

  // Two heads in one household; an account number of 30 digits.
  int rc = Ingest("recipients", "recipients.csv",
                  "id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n" +
                      a + ",张三明,E2E-V,H1,1,622848000000000001,2020-01-01,0\n" + b +
                      ",李四,E2E-V,H1,1,622848000000000002,2020-01-01,0\n" + c +
                      ",王五,E2E-V,H2,1,622848000000000000000000000003,2020-01-01,0\n" + d +
                      ",赵六,E2E-V,H3,1,622848000000000004,2020-01-01,0\n",
                  &errors, &out);
  EXPECT_EQ(rc, 1) << out << errors;
  EXPECT_TRUE(HasError(errors, "3,is_household_head,SECOND_HEAD")) << errors;
  EXPECT_TRUE(HasError(errors, "4,account_no,INVALID_ACCOUNT")) << errors;

  // The rolls by village subtree through the gateway: the county's covers its village E2E-V
  // (cadrepay asks membership for the tree); an organisation nobody registered is 404.
  {
    HttpResponse roll = Http("GET", Suite::Get().http_port(), "/v1/organisations/E2E-C/recipients?page_size=1000");
    ASSERT_EQ(roll.status, 200) << roll.body;
    EXPECT_NE(roll.body.find("\"orgCode\":\"E2E-V\""), std::string::npos) << roll.body;
    EXPECT_NE(roll.body.find("张*明"), std::string::npos) << roll.body;
    EXPECT_NE(roll.body.find(common::MaskIdNumber(a)), std::string::npos) << roll.body;
    EXPECT_EQ(roll.body.find(a), std::string::npos) << "unmasked without the right";
    roll = Http("GET", Suite::Get().http_port(), "/v1/organisations/E2E-NOWHERE/recipients");
    EXPECT_EQ(roll.status, 404) << roll.body;
    EXPECT_NE(roll.body.find("E2E-NOWHERE"), std::string::npos) << roll.body;
  }

  // An enrolment for a programme that does not exist.
  rc = Ingest("enrolments", "enrolments.csv",
              "program_code,id_number,amount_fen,from_period,to_period\nGDLB," + a + ",,2026-01,\nGDLB," + d +
                  ",,2026-01,\nNOPE," + a + ",,2026-01,\n",
              &errors, &out);
  EXPECT_EQ(rc, 1) << out << errors;
  EXPECT_TRUE(HasError(errors, "4,program_code,UNKNOWN_PROGRAMME")) << errors;
  {
    // The enrolments of the county's rolls through the gateway (masked), by programme.
    HttpResponse enrolled =
        Http("GET", Suite::Get().http_port(), "/v1/organisations/E2E-C/enrolments?programCode=GDLB&pageSize=1000");
    ASSERT_EQ(enrolled.status, 200) << enrolled.body;
    EXPECT_NE(enrolled.body.find(common::MaskIdNumber(d)), std::string::npos) << enrolled.body;
    EXPECT_NE(enrolled.body.find("\"fromPeriod\":\"2026-01\""), std::string::npos) << enrolled.body;
    EXPECT_EQ(enrolled.body.find(d), std::string::npos) << "unmasked without the right";
    enrolled = Http("GET", Suite::Get().http_port(), "/v1/organisations/E2E-C/enrolments?programCode=NOPE");
    EXPECT_EQ(enrolled.status, 404) << enrolled.body;
    HttpResponse events = Http("GET", Suite::Get().http_port(), "/v1/organisations/E2E-NOWHERE/civil-events");
    EXPECT_EQ(events.status, 404) << events.body;
  }

  ASSERT_EQ(Ingest("batches", "batches.csv",
                   "batch_id,program_code,period,declared_count,declared_total_fen,scheduled_on\n"
                   "B1,GDLB,2026-03,3,36000,2026-03-20\n",
                   &errors, &out),
            0)
      << out << errors;

  // Every bad payment refused on its row with its column; the good ones kept.
  const std::string payments =
      "payment_id,batch_id,program_code,period,id_number,account_no,amount_fen,paid_at,reverses\n"
      "P1,B1,GDLB,2026-03," + a + ",622848000000000001,12000,2026-03-20T10:00:00+08:00,\n"   // fine
      "P2,B1,GDLB,2026-03," + a + ",622848000000000001,12000,2026-03-21T10:00:00+08:00,\n"   // DUPLICATE
      "P3,B1,NOPE,2026-03," + d + ",622848000000000004,12000,2026-03-20T10:00:00+08:00,\n"   // unknown programme
      "P4,B1,GDLB,2026-03," + d + ",622848000000000004,120.00,2026-03-20T10:00:00+08:00,\n"  // decimal point
      "P5,B1,GDLB,2026-03," + d + ",622848000000000004,-12000,2026-03-20T10:00:00+08:00,\n"  // negative, no reverses
      "P6,B1,GDLB,2026-03," + d + ",622848000000000004,12000,2026-03-20T10:00:00,\n"         // no offset
      "P1,B1,GDLB,2026-03," + d + ",622848000000000004,12000,2026-03-20T10:00:00+08:00,\n";  // duplicated payment_id
  rc = Ingest("payments", "payments.csv", payments, &errors, &out);
  EXPECT_EQ(rc, 1) << out << errors;
  EXPECT_TRUE(HasError(errors, "4,program_code,UNKNOWN_PROGRAMME")) << errors;
  EXPECT_TRUE(HasError(errors, "5,amount_fen,INVALID_MONEY")) << errors;
  EXPECT_TRUE(HasError(errors, "6,amount_fen,NEGATIVE_AMOUNT")) << errors;
  EXPECT_TRUE(HasError(errors, "7,paid_at,INVALID_TIMESTAMP")) << errors;
  EXPECT_TRUE(HasError(errors, "8,payment_id,DUPLICATE_IN_FILE")) << errors;
  EXPECT_EQ(errors.find(a), std::string::npos) << "an ID number leaked into an error message";
  // Re-ingesting the same file changes nothing.
  rc = Ingest("payments", "payments.csv", payments, &errors, &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("inserted 0, updated 0, unchanged 2"), std::string::npos) << out;

  // The check: DUPLICATE for P2, UNPAID for d, BATCH_MISMATCH for B1 (2 rows, 24000 against 3, 36000).
  ASSERT_EQ(Suite::Get().Cli({"check", "disbursements", "--program", "GDLB", "--period", "2026-03", "--as-of",
                              "2026-04-30"},
                             &out),
            0)
      << out;
  EXPECT_NE(out.find("run "), std::string::npos) << out;
  EXPECT_NE(out.find("DUPLICATE 1"), std::string::npos) << out;
  EXPECT_NE(out.find("UNPAID 1"), std::string::npos) << out;
  EXPECT_NE(out.find("BATCH_MISMATCH 1"), std::string::npos) << out;

  ASSERT_EQ(Suite::Get().Cli({"findings", "export", "--out", Path("findings1.csv")}, &out), 0) << out;
  ASSERT_EQ(Suite::Get().Cli({"check", "disbursements", "--program", "GDLB", "--period", "2026-03", "--as-of",
                              "2026-04-30"},
                             &out),
            0)
      << out;
  ASSERT_EQ(Suite::Get().Cli({"findings", "export", "--out", Path("findings2.csv")}, &out), 0) << out;
  const std::string f1 = ReadFile(Path("findings1.csv"));
  EXPECT_EQ(f1, ReadFile(Path("findings2.csv")));  // byte-identical across runs
  EXPECT_EQ(f1.rfind("rule,program_code,period,id_number,payment_id,expected_fen,actual_fen,detail\n", 0), 0u) << f1;
  EXPECT_NE(f1.find("BATCH_MISMATCH,GDLB,2026-03,,,36000,24000,"), std::string::npos) << f1;
  EXPECT_NE(f1.find("DUPLICATE,GDLB,2026-03,3207**********"), std::string::npos) << f1;
  EXPECT_EQ(f1.find(a), std::string::npos) << "masked export shows a full ID number";
  // Clear ID numbers only with the personal-data right: the CLI's --unmasked carries it, a bare
  // request for them over HTTP does not.
  ASSERT_EQ(Suite::Get().Cli({"findings", "export", "--unmasked", "--out", Path("findings_clear.csv")}, &out), 0)
      << out;
  EXPECT_NE(ReadFile(Path("findings_clear.csv")).find(a), std::string::npos);
  HttpResponse clear =
      Http("GET", Suite::Get().http_port(), "/v1/disbursement-checks/latest/findings:export?unmasked=true");
  ASSERT_EQ(clear.status, 200) << clear.body;
  std::string csv;  // the chunks' data (bytes: base64 in JSON)
  for (size_t at = clear.body.find("\"data\":\""); at != std::string::npos;
       at = clear.body.find("\"data\":\"", at + 1)) {
    const size_t begin = at + 8, end = clear.body.find('"', begin);
    std::string piece;
    ASSERT_TRUE(absl::Base64Unescape(clear.body.substr(begin, end - begin), &piece)) << clear.body;
    csv += piece;
  }
  EXPECT_NE(csv.find("3207**********"), std::string::npos) << csv;
  EXPECT_EQ(csv.find(a), std::string::npos) << "unmasked without the right";

  // Over HTTP through the gateway: the run, its findings, the public disclosure (masked).
  HttpResponse r = Http("GET", Suite::Get().http_port(), "/v1/disbursement-checks/latest/findings?rule=UNPAID");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"rule\":\"UNPAID\""), std::string::npos) << r.body;
  r = Http("GET", Suite::Get().http_port(), "/v1/public/organisations/E2E-V/disclosure/2026-03");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("张*明"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(a), std::string::npos) << r.body;
  r = Http("GET", Suite::Get().http_port(), "/v1/public/organisations/E2E-NOWHERE/disclosure/2026-03");
  EXPECT_EQ(r.status, 404) << r.body;
  // A run as an operation: started over HTTP, then followed to its end (newline-delimited JSON,
  // the last line SUCCEEDED) and read by id with its state.
  r = Http("POST", Suite::Get().http_port(), "/v1/disbursement-checks",
           R"({"programCode":"GDLB","period":"2026-03","asOf":"2026-04-20"})");
  ASSERT_EQ(r.status, 200) << r.body;
  const size_t id_at = r.body.find("\"runId\":\"");
  ASSERT_NE(id_at, std::string::npos) << r.body;
  const std::string run_id = r.body.substr(id_at + 9, r.body.find('"', id_at + 9) - id_at - 9);
  HttpResponse watched = Http("GET", Suite::Get().http_port(), "/v1/disbursement-checks/" + run_id + ":watch");
  ASSERT_EQ(watched.status, 200) << watched.body;
  EXPECT_NE(watched.body.rfind("\"state\":\"SUCCEEDED\""), std::string::npos) << watched.body;
  HttpResponse read = Http("GET", Suite::Get().http_port(), "/v1/disbursement-checks/" + run_id);
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_NE(read.body.find("\"state\":\"SUCCEEDED\""), std::string::npos) << read.body;
  EXPECT_NE(read.body.find("\"phase\":\"done\""), std::string::npos) << read.body;
  r = Http("POST", Suite::Get().http_port(), "/v1/disbursement-checks", R"({"period":"2026-13"})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("period"), std::string::npos) << r.body;

  // A file over HTTP: the raw file is the request body, the report comes back as JSON (bad rows
  // with line and column, good rows kept; sent again, nothing changes).
  const std::string programmes =
      "program_code,name,unit,frequency,amount_fen,valid_from,valid_to,excludes_cadre_households,grace_days\r\n"
      "HTTP1,经由网关,person,monthly,100,2026-01,,0,5\r\n"
      "HTTP2,坏金额,person,monthly,1.00,2026-01,,0,5\r\n";
  r = Http("POST", Suite::Get().http_port(), "/v1/programmes:ingest", programmes, "text/csv");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"("inserted":"1")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("line":"3","column":"amount_fen","code":"INVALID_MONEY")"), std::string::npos) << r.body;
  r = Http("POST", Suite::Get().http_port(), "/v1/programmes:ingest", programmes, "text/csv");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"("unchanged":"1")"), std::string::npos) << r.body;
  r = Http("POST", Suite::Get().http_port(), "/v1/programmes:ingest", "name\nx\n", "text/csv");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"("fileRefused":true)"), std::string::npos) << r.body;
  // An upload takes no query parameters: one is refused, not silently ignored (a "dry run" that
  // writes), and nothing is written.
  const std::string another =
      "program_code,name,unit,frequency,amount_fen,valid_from,valid_to,excludes_cadre_households,grace_days\n"
      "HTTP3,试运行,person,monthly,100,2026-01,,0,5\n";
  r = Http("POST", Suite::Get().http_port(), "/v1/programmes:ingest?dryRun=true", another, "text/csv");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("dryRun"), std::string::npos) << r.body;
  r = Http("GET", Suite::Get().http_port(), "/v1/programmes", "", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find("HTTP3"), std::string::npos) << r.body;
  // A number the caller put in a path comes back masked, even right after an encoded line break.
  r = Http("GET", Suite::Get().http_port(), "/v1/nosuch/%0A320723198001010010", "", "");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(r.body.find("320723198001010010"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace grassroots::testing
