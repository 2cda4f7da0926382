// End to end: every refused row of a large file reaches the caller and --errors, past what one
// report carries (the 16 MiB message cap once ended such an import with RESOURCE_EXHAUSTED).
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "http_client.h"
#include "process.h"
#include "suite.h"

namespace grassroots::testing {
namespace {

TEST(ImportErrorsE2E, EveryRefusedRowReachesTheErrorsFileInLineOrder) {
  Suite& s = Suite::Get();
  s.EnsureBaseTree();
  constexpr int kBad = 12500;  // more than the 10,000 a report carries
  std::string csv = "org_code,name,org_type,org_kind,parent_code,division_code\n";
  for (int i = 0; i < kBad; ++i) absl::StrAppend(&csv, "BAD", i, ",坏,cell,village,E2E-T,320723100201\n");
  csv += "IMP-OK,好支部,branch,village,E2E-T,320723100299\n";
  const std::string path = s.dir() + "/many-bad.csv", errors = s.dir() + "/many-bad.errors.csv";
  WriteFile(path, csv);
  std::string out;
  EXPECT_EQ(s.Cli({"import", "organisations", path, "--errors", errors}, &out), 1) << out;
  EXPECT_NE(out.find(absl::StrCat("refused ", kBad)), std::string::npos) << out;
  std::vector<std::string> lines = absl::StrSplit(ReadFile(errors), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kBad) + 1);  // the header and one error a row
  EXPECT_EQ(lines[0], "line,column,code,message");
  for (int i = 0; i < kBad; i += 997) {
    EXPECT_TRUE(absl::StartsWith(lines[i + 1], absl::StrCat(i + 2, ",org_type,"))) << lines[i + 1];
  }
  EXPECT_TRUE(absl::StartsWith(lines.back(), absl::StrCat(kBad + 1, ",org_type,"))) << lines.back();
  // Over HTTP: the report carries 10,000 and its report_id; the rest are one GET away.
  HttpResponse r = Http("POST", s.http_port(), "/v1/organisations:import", csv, "text/csv");
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  const size_t at = r.body.find("\"reportId\":\"");
  ASSERT_NE(at, std::string::npos) << r.body.substr(0, 300);
  const std::string id = r.body.substr(at + 12, 32);
  EXPECT_NE(r.body.find(absl::StrCat("\"errorsTotal\":\"", kBad, "\"")), std::string::npos);
  HttpResponse page = Http("GET", s.http_port(), absl::StrCat("/v1/member-imports/", id, "/errors?offset=10000&pageSize=5000"));
  ASSERT_EQ(page.status, 200) << page.body.substr(0, 300);
  EXPECT_NE(page.body.find(absl::StrCat("\"line\":\"", 10002, "\"")), std::string::npos) << page.body.substr(0, 300);
  EXPECT_EQ(Http("GET", s.http_port(), absl::StrCat("/v1/member-imports/", std::string(32, 'a'), "/errors")).status, 404);
}

}  // namespace
}  // namespace grassroots::testing
