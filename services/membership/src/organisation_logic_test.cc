// OrganisationLogic and its repository against the real MariaDB started by tests/run.
#include "organisation_logic.h"

#include "grassroots/common/import_errors.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "grassroots/common/migrations.h"
#include "grassroots/common/status.h"
#include "test_env.h"

namespace grassroots::generated {
const std::vector<common::Migration>& membership_migrations();
}

namespace grassroots::membership {
namespace {

const absl::Time kNoDeadline = absl::InfiniteFuture();

class OrganisationLogicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_ = testing::TestDb("org");
    testing::DropSchema(options_);
    ASSERT_TRUE(common::ApplyMigrations(options_, generated::membership_migrations()).ok());
    pool_ = std::make_unique<common::ConnectionPool>(options_, nullptr);
    logic_ = std::make_unique<OrganisationLogic>(*pool_);
  }
  void TearDown() override {
    logic_.reset();
    pool_.reset();
    testing::DropSchema(options_);
  }

  v1::Organisation Make(const std::string& code, const std::string& parent, const std::string& type = "branch") {
    v1::Organisation o;
    o.set_org_code(code);
    o.set_name(absl::StrCat(code, "党组织"));
    o.set_org_type(type);
    o.set_parent_code(parent);
    o.set_division_code("320723100201");
    return o;
  }
  void MustCreate(const std::string& code, const std::string& parent, const std::string& type = "branch") {
    auto r = logic_->Create(Make(code, parent, type), kNoDeadline);
    ASSERT_TRUE(r.ok()) << r.status();
  }

  exchange::v1::ImportReport Import(const std::string& csv, size_t chunk = 7) {
    auto import = logic_->StartImport();
    for (size_t i = 0; i < csv.size(); i += chunk) import->Feed(std::string_view(csv).substr(i, chunk));
    auto report = import->Finish();
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : exchange::v1::ImportReport();
  }

  std::string Export(const std::string& code) {
    std::string out;
    auto s = logic_->Export(code, [&](std::string_view c) { out += c; return true; }, 64);
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  common::DbOptions options_;
  std::unique_ptr<common::ConnectionPool> pool_;
  std::unique_ptr<OrganisationLogic> logic_;
};

TEST_F(OrganisationLogicTest, CreateGetAndDefaults) {
  MustCreate("C", "", "committee");
  MustCreate("T1", "C", "committee");
  auto t1 = logic_->Get("T1", kNoDeadline);
  ASSERT_TRUE(t1.ok());
  EXPECT_EQ(t1->org_kind(), "village");
  EXPECT_EQ(t1->depth(), 1);
  EXPECT_EQ(logic_->Get("C", kNoDeadline)->child_count(), 1);
  EXPECT_EQ(logic_->Get("nope", kNoDeadline).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(OrganisationLogicTest, CreateRefusesBadInputAndWritesNothing) {
  MustCreate("C", "", "committee");
  auto bad = Make("X", "C");
  bad.set_division_code("32072310020");
  auto r = logic_->Create(bad, kNoDeadline);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(common::FieldViolationsOf(r.status())[0].field, "organisation.division_code");
  EXPECT_EQ(logic_->Create(Make("Y", "missing"), kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(logic_->Create(Make("C", ""), kNoDeadline).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(logic_->Get("X", kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(logic_->Get("Y", kNoDeadline).status().code(), absl::StatusCode::kNotFound);
}

// A move that would take the subtree's deepest organisation past the path limit is refused
// whole (it failed as INTERNAL after a partial rewrite), through the RPC and the import.
TEST_F(OrganisationLogicTest, AMoveIsAsDeepAsItsDeepestDescendant) {
  auto code = [](char chain, int level) { return absl::StrCat(std::string(1, chain), std::string(29, 'x'), level < 10 ? "0" : "", level); };
  for (char chain : {'S', 'T'}) {
    for (int level = 0; level < 11; ++level) {
      MustCreate(code(chain, level), level == 0 ? "" : code(chain, level - 1), "committee");
    }
  }
  auto moved = logic_->Move(code('T', 0), code('S', 10), kNoDeadline);
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kFailedPrecondition) << moved.status();
  EXPECT_EQ(logic_->Get(code('T', 0), kNoDeadline)->parent_code(), "");
  EXPECT_EQ(logic_->Get(code('T', 10), kNoDeadline)->depth(), 10);
  auto r = Import(absl::StrCat("org_code,name,org_type,parent_code,division_code\n", code('T', 0), ",深,committee,",
                               code('S', 10), ",320723100201\n"));
  ASSERT_EQ(r.errors_size(), 1) << r.DebugString();
  EXPECT_EQ(r.errors(0).code(), "TOO_DEEP");
  EXPECT_TRUE(logic_->Move(code('T', 0), code('S', 3), kNoDeadline).ok());  // 4 + 11 levels fit
}

// domain.md: a party group sits inside a party branch, and holds members, not organisations.
// Create, move, a change of type and the import all keep to it.
TEST_F(OrganisationLogicTest, AGroupSitsInsideABranch) {
  MustCreate("C", "", "committee");
  MustCreate("V", "C", "branch");
  MustCreate("G", "V", "group");
  auto rule = [](const absl::Status& s) {
    return s.code() == absl::StatusCode::kFailedPrecondition ? std::string(s.message().substr(0, s.message().find(':')))
                                                             : s.ToString();
  };
  EXPECT_EQ(rule(logic_->Create(Make("G2", "C", "group"), kNoDeadline).status()), "GROUP_OUTSIDE_BRANCH");
  EXPECT_EQ(rule(logic_->Create(Make("G3", "", "group"), kNoDeadline).status()), "GROUP_OUTSIDE_BRANCH");
  EXPECT_EQ(rule(logic_->Create(Make("B2", "G", "branch"), kNoDeadline).status()), "UNDER_A_GROUP");
  MustCreate("W", "C", "branch");
  MustCreate("T", "C", "committee");
  EXPECT_EQ(rule(logic_->Move("G", "T", kNoDeadline).status()), "GROUP_OUTSIDE_BRANCH");
  EXPECT_TRUE(logic_->Move("G", "W", kNoDeadline).ok());  // from one branch to another
  v1::UpdateOrganisationRequest change;
  change.set_org_code("W");  // a branch with a group in it
  change.mutable_organisation()->set_org_type("general_branch");
  change.mutable_update_mask()->add_paths("org_type");
  EXPECT_EQ(rule(logic_->Update(change, kNoDeadline).status()), "GROUP_OUTSIDE_BRANCH");
  change.set_org_code("T");  // a committee at the top level's child cannot become a group there
  change.mutable_organisation()->set_org_type("group");
  EXPECT_EQ(rule(logic_->Update(change, kNoDeadline).status()), "GROUP_OUTSIDE_BRANCH");
  EXPECT_EQ(logic_->Get("W", kNoDeadline)->org_type(), "branch");
  // The import: rows in any order, the parent as the file leaves it.
  auto r = Import("org_code,name,org_type,parent_code,division_code\n"
                  "G4,组,group,B4,320723100201\nB4,支部,branch,C,320723100201\n"
                  "G5,组,group,C,320723100201\nX5,支部,branch,G4,320723100201\n");
  EXPECT_EQ(r.inserted(), 2) << r.DebugString();
  ASSERT_EQ(r.errors_size(), 2) << r.DebugString();
  EXPECT_EQ(r.errors(0).line(), 4);
  EXPECT_EQ(r.errors(0).column(), "parent_code");
  EXPECT_EQ(r.errors(0).code(), "GROUP_OUTSIDE_BRANCH");
  EXPECT_EQ(r.errors(1).line(), 5);
  EXPECT_EQ(r.errors(1).code(), "UNDER_A_GROUP");
}

TEST_F(OrganisationLogicTest, UpdateChangesOnlyMaskedFields) {
  MustCreate("C", "", "committee");
  v1::UpdateOrganisationRequest req;
  req.set_org_code("C");
  req.mutable_organisation()->set_name("新名字𠮷");
  req.mutable_organisation()->set_division_code("bad");
  req.mutable_update_mask()->add_paths("name");
  auto r = logic_->Update(req, kNoDeadline);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(logic_->Get("C", kNoDeadline)->name(), "新名字𠮷");
  EXPECT_EQ(logic_->Get("C", kNoDeadline)->division_code(), "320723100201");
  req.mutable_update_mask()->add_paths("division_code");
  EXPECT_EQ(logic_->Update(req, kNoDeadline).status().code(), absl::StatusCode::kInvalidArgument);
  req.mutable_update_mask()->Clear();
  req.mutable_update_mask()->add_paths("parent_code");
  EXPECT_EQ(logic_->Update(req, kNoDeadline).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(OrganisationLogicTest, ListChildrenPagesInAStableOrder) {
  MustCreate("C", "", "committee");
  for (int i = 0; i < 25; ++i) MustCreate(absl::StrCat("V", 100 + i), "C");
  std::vector<std::string> seen;
  v1::ListChildrenRequest req;
  req.set_org_code("C");
  req.set_page_size(10);
  int pages = 0;
  do {
    auto page = logic_->ListChildren(req, kNoDeadline);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& o : page->organisations()) seen.push_back(o.org_code());
    req.set_page_token(page->next_page_token());
    ++pages;
  } while (!req.page_token().empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  req.set_page_token("!!");
  EXPECT_EQ(logic_->ListChildren(req, kNoDeadline).status().code(), absl::StatusCode::kInvalidArgument);
  // A token continues the children of the organisation it was issued for, no other's.
  req.set_page_token("");
  auto first = logic_->ListChildren(req, kNoDeadline);
  ASSERT_TRUE(first.ok() && !first->next_page_token().empty());
  MustCreate("D", "", "committee");
  req.set_org_code("D");
  req.set_page_token(first->next_page_token());
  auto other = logic_->ListChildren(req, kNoDeadline);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument) << other.status();
  EXPECT_EQ(common::FieldViolationsOf(other.status())[0].field, "page_token");
  req.set_org_code("C");
  req.set_page_token("");
  req.set_page_size(5000);
  EXPECT_EQ(logic_->ListChildren(req, kNoDeadline).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(OrganisationLogicTest, AncestryAndMoveWithoutCycles) {
  MustCreate("C", "", "committee");
  MustCreate("T1", "C", "committee");
  MustCreate("T2", "C", "committee");
  MustCreate("V1", "T1");
  MustCreate("G1", "V1", "group");
  auto chain = logic_->Ancestry("G1", kNoDeadline);
  ASSERT_TRUE(chain.ok());
  ASSERT_EQ(chain->organisations_size(), 4);
  EXPECT_EQ(chain->organisations(0).org_code(), "C");
  EXPECT_EQ(chain->organisations(3).org_code(), "G1");

  EXPECT_EQ(logic_->Move("T1", "G1", kNoDeadline).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(logic_->Move("T1", "T1", kNoDeadline).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(logic_->Move("T1", "nope", kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  auto moved = logic_->Move("V1", "T2", kNoDeadline);
  ASSERT_TRUE(moved.ok()) << moved.status();
  chain = logic_->Ancestry("G1", kNoDeadline);
  EXPECT_EQ(chain->organisations(1).org_code(), "T2");
  EXPECT_EQ(logic_->Get("G1", kNoDeadline)->depth(), 3);
  // Under a deeper parent, depths of the whole subtree follow.
  ASSERT_TRUE(logic_->Move("T2", "T1", kNoDeadline).ok());
  EXPECT_EQ(logic_->Get("G1", kNoDeadline)->depth(), 4);
  EXPECT_EQ(logic_->Ancestry("G1", kNoDeadline)->organisations_size(), 5);
}

TEST_F(OrganisationLogicTest, DeleteOnlyWhenEmpty) {
  MustCreate("C", "", "committee");
  MustCreate("V", "C");
  EXPECT_EQ(logic_->Delete("C", kNoDeadline).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(logic_->Delete("V", kNoDeadline).ok());
  EXPECT_TRUE(logic_->Delete("C", kNoDeadline).ok());
  EXPECT_EQ(logic_->Delete("C", kNoDeadline).code(), absl::StatusCode::kNotFound);
}

TEST_F(OrganisationLogicTest, ImportTakesParentsAfterChildrenAndIsIdempotent) {
  const std::string csv =
      "\xEF\xBB\xBForg_code,name,org_type,org_kind,parent_code,division_code,established_on,population\r\n"
      "V1,\"城头村党支部, 第一\",branch,village,T1,320723100201,1998-07-01,2800\r\n"
      "T1,城头镇党委,committee,township,C,320723100000,,\r\n"
      "C,灌云县委,committee,county,,320723000000,,\r\n"
      "G1,\"第一党小组\"\"𠮷\"\"\",group,,V1,320723100201,,\r\n";
  auto r = Import(csv);
  EXPECT_EQ(r.rows(), 4);
  EXPECT_EQ(r.inserted(), 4);
  EXPECT_EQ(r.refused(), 0) << r.DebugString();
  EXPECT_EQ(logic_->Get("G1", kNoDeadline)->name(), "第一党小组\"𠮷\"");
  EXPECT_EQ(logic_->Get("G1", kNoDeadline)->depth(), 3);
  auto again = Import(csv, 3);
  EXPECT_EQ(again.unchanged(), 4);
  EXPECT_EQ(again.inserted() + again.updated(), 0);
}

TEST_F(OrganisationLogicTest, ImportReportsEveryBadRowAndKeepsTheGoodOnes) {
  const std::string csv =
      "org_code,name,org_type,parent_code,division_code\n"
      "C,县委,committee,,320723000000\n"
      "A,甲,cell,C,320723000000\n"           // line 3: unknown type
      "B,乙,branch,C,32072300000\n"          // line 4: 11 digits
      "D,丁,branch,nowhere,320723000000\n"   // line 5: unknown parent
      "E,戊,branch,F,320723000000\n"         // line 6: cycle with F
      "F,己,branch,E,320723000000\n"         // line 7
      "C,重复,committee,,320723000000\n"     // line 8: duplicate
      "H,庚,branch,A,320723000000\n"         // line 9: parent refused
      "I,\"辛\"x,branch,C,320723000000\n"    // line 10: stray quote
      "J,壬,branch,C,320723000000\n";
  auto r = Import(csv);
  EXPECT_EQ(r.inserted(), 2) << r.DebugString();  // C and J
  EXPECT_EQ(r.refused(), 8) << r.DebugString();
  std::vector<std::pair<int64_t, std::string>> got;
  for (const auto& e : r.errors()) got.push_back({e.line(), e.column()});
  EXPECT_NE(std::find(got.begin(), got.end(), std::make_pair(int64_t{3}, std::string("org_type"))), got.end());
  EXPECT_NE(std::find(got.begin(), got.end(), std::make_pair(int64_t{4}, std::string("division_code"))), got.end());
  EXPECT_NE(std::find(got.begin(), got.end(), std::make_pair(int64_t{5}, std::string("parent_code"))), got.end());
  EXPECT_NE(std::find(got.begin(), got.end(), std::make_pair(int64_t{8}, std::string("org_code"))), got.end());
  EXPECT_NE(std::find(got.begin(), got.end(), std::make_pair(int64_t{9}, std::string("parent_code"))), got.end());
  bool line10 = false;
  for (const auto& e : r.errors()) line10 |= e.line() == 10;
  EXPECT_TRUE(line10);
  EXPECT_TRUE(std::is_sorted(r.errors().begin(), r.errors().end(),
                             [](const auto& a, const auto& b) { return a.line() < b.line(); }));
  EXPECT_TRUE(logic_->Get("J", kNoDeadline).ok());
  EXPECT_EQ(logic_->Get("A", kNoDeadline).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(OrganisationLogicTest, ImportRefusesAFileWithoutRequiredColumns) {
  auto r = Import("org_code,name,parent_code\nC,县委,\n");
  EXPECT_TRUE(r.file_refused());
  EXPECT_EQ(r.inserted(), 0);
  std::vector<std::string> columns;
  for (const auto& e : r.errors()) columns.push_back(absl::StrCat(e.line(), ",", e.column(), ",", e.code()));
  EXPECT_EQ(columns, (std::vector<std::string>{"1,org_type,BAD_HEADER", "1,division_code,BAD_HEADER"}));
  r = Import("org_code,name,org_type,division_code,colour\nC,县委,committee,320723000000,red\n");
  EXPECT_TRUE(r.file_refused());
  ASSERT_EQ(r.errors_size(), 1);
  EXPECT_EQ(r.errors(0).column(), "colour");
  EXPECT_EQ(logic_->Get("C", kNoDeadline).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(OrganisationLogicTest, ExportImportsBackUnchanged) {
  const std::string csv =
      "org_code,name,org_type,org_kind,parent_code,division_code,established_on,population\n"
      "C,灌云县委,committee,county,,320723000000,1949-10-01,\n"
      "T1,\"镇党委, 新\",committee,township,C,320723100000,,\n"
      "V1,\"村\n支部\",branch,village,T1,320723100201,,2800\n"
      "V2,𠮷村,branch,community,T1,320723100202,,0\n";
  auto r = Import(csv);
  ASSERT_EQ(r.inserted(), 4) << r.DebugString();
  const std::string exported = Export("C");
  EXPECT_EQ(exported, csv);  // parents first, then by code: the same order as written here
  auto back = Import(exported);
  EXPECT_EQ(back.unchanged(), 4);
  const std::string sub = Export("T1");
  EXPECT_EQ(sub.find("C,灌云县委"), std::string::npos);
  EXPECT_NE(sub.find("V2,𠮷村"), std::string::npos);
}

TEST_F(OrganisationLogicTest, ImportMovesAnExistingOrganisation) {
  Import("org_code,name,org_type,parent_code,division_code\nC,县,committee,,320723000000\n"
         "T1,镇1,committee,C,320723100000\nT2,镇2,committee,C,320723200000\nV,村,branch,T1,320723100201\n"
         "G,组,group,V,320723100201\n");
  auto r = Import("org_code,name,org_type,parent_code,division_code\nV,村,branch,T2,320723100201\n");
  EXPECT_EQ(r.updated(), 1) << r.DebugString();
  EXPECT_EQ(logic_->Ancestry("G", kNoDeadline)->organisations(1).org_code(), "T2");
  // A move that would make a cycle is refused on its row.
  r = Import("org_code,name,org_type,parent_code,division_code\nT2,镇2,committee,V,320723200000\n");
  EXPECT_EQ(r.refused(), 1);
  ASSERT_EQ(r.errors_size(), 1);
  EXPECT_EQ(r.errors(0).code(), "CYCLE");
}

// formats.md: "A parent must appear in the same file or already exist." A registered parent
// whose own row in the file is refused still exists: its children in the file are taken.
TEST_F(OrganisationLogicTest, ImportPlacesChildrenUnderARegisteredParentWhoseRowIsRefused) {
  MustCreate("C", "", "committee");
  MustCreate("T", "C", "committee");
  auto r = Import("org_code,name,org_type,parent_code,division_code\n"
                  "V,村,branch,C,320723100201\n"           // line 2: parent registered
                  "C,县委,committee,,32072300\n"           // line 3: refused (division code)
                  "W,村2,branch,T,320723100202\n"          // line 4: parent registered
                  "T,镇,committee,nowhere,320723100000\n"); // line 5: refused (unknown parent)
  EXPECT_EQ(r.inserted(), 2) << r.DebugString();
  EXPECT_EQ(r.refused(), 2) << r.DebugString();
  std::vector<std::pair<int64_t, std::string>> got;
  for (const auto& e : r.errors()) got.emplace_back(e.line(), e.column());
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, std::string>>{{3, "division_code"}, {5, "parent_code"}}));
  auto v = logic_->Get("V", kNoDeadline);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->parent_code(), "C");
  EXPECT_EQ(logic_->Get("W", kNoDeadline)->parent_code(), "T");
  EXPECT_EQ(logic_->Get("T", kNoDeadline)->parent_code(), "C");
  EXPECT_EQ(logic_->Get("C", kNoDeadline)->division_code(), "320723100201");
}

// A row refused while the file is written (here: the tree would be too deep) refuses the rows
// below it in the file, precisely, and the import goes on.
TEST_F(OrganisationLogicTest, ImportRefusesTheChildrenOfARowRefusedWhileWriting) {
  std::string csv = "org_code,name,org_type,parent_code,division_code\n";
  std::string parent;
  int levels = 0;
  // 32-character codes: every level adds 33 characters to the path; the 22nd is too deep.
  for (; levels < 22; ++levels) {
    const std::string code = absl::StrCat("L", std::string(29, 'x'), levels < 10 ? "0" : "", levels);
    csv += absl::StrCat(code, ",层", levels, ",committee,", parent, ",320723000000\n");
    parent = code;
  }
  csv += absl::StrCat("KID,下级,branch,", parent, ",320723100201\n");
  csv += "OTHER,另一个,committee,,320723000000\n";
  auto r = Import(csv);
  EXPECT_EQ(r.inserted(), 22) << r.DebugString();
  EXPECT_EQ(r.refused(), 2) << r.DebugString();
  std::vector<std::pair<int64_t, std::string>> got;
  for (const auto& e : r.errors()) got.emplace_back(e.line(), e.code());
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, std::string>>{{23, "TOO_DEEP"}, {24, "PARENT_REFUSED"}}));
  EXPECT_EQ(logic_->Get("KID", kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(logic_->Get("OTHER", kNoDeadline).ok());
}


TEST_F(OrganisationLogicTest, ImportOfAParentChainAsLongAsTheFileDoesNotRecurse) {
  // 200,000 rows, each the child of the next: the recursive walk this import had went 200,000
  // frames deep and overflowed the stack. The tree's depth limit keeps the top ones only.
  constexpr int kRows = 200000;
  std::string csv = "org_code,name,org_type,parent_code,division_code\n";
  csv.reserve(size_t{kRows} * 40);
  for (int k = 0; k < kRows; ++k) {
    absl::StrAppend(&csv, "N", k, ",链,committee,", k + 1 < kRows ? absl::StrCat("N", k + 1) : "", ",320723000000\n");
  }
  auto r = Import(csv, 1 << 16);
  EXPECT_EQ(r.rows(), kRows);
  EXPECT_GT(r.inserted(), 50);
  EXPECT_EQ(r.inserted() + r.refused(), kRows);
  // One error a refused row; the report carries the first 10,000 by line, the rest are kept.
  ASSERT_EQ(r.errors_total(), r.refused());
  ASSERT_EQ(r.errors_size(), 10000);
  EXPECT_EQ(r.report_id().size(), 32u);
  // The deepest rows come first in the file, refused for their refused parent; the last error
  // (the row right under the deepest that fits) is TOO_DEEP.
  EXPECT_EQ(r.errors(0).code(), "PARENT_REFUSED");
  exchange::v1::ListImportErrorsRequest rest;
  rest.set_report_id(r.report_id());
  rest.set_offset(r.errors_total() - 1);
  auto last = common::ListImportErrors(*pool_, rest, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(last.ok()) << last.status();
  ASSERT_EQ(last->errors_size(), 1);
  EXPECT_EQ(last->errors(0).code(), "TOO_DEEP") << last->errors(0).DebugString();
  EXPECT_EQ(last->errors(0).line(), r.refused() + 1);
  EXPECT_TRUE(logic_->Get(absl::StrCat("N", kRows - 1), kNoDeadline).ok());
}

// The whole subtree in one call from the stored paths: the top included, ordered by org_code,
// paged past page_size, nothing of a tree whose top's code merely starts the same, and the feed's
// position that the answer reflects.
TEST_F(OrganisationLogicTest, ListSubtreeIsOneCallInCodeOrderWithTheTop) {
  MustCreate("C", "", "committee");
  MustCreate("T1", "C", "committee");
  MustCreate("T2", "C", "committee");
  MustCreate("T1-A", "C", "committee");  // '-' sorts before '/': path order is not code order
  MustCreate("V1", "T1");
  MustCreate("V2", "T1");
  MustCreate("V3", "T2");
  MustCreate("A0", "T2");  // sorts before the top
  MustCreate("G1", "V1", "group");
  MustCreate("C1", "", "committee");  // "/C1/" is no subtree of "/C/"
  MustCreate("C1-V", "C1");
  auto codes = [](const v1::ListSubtreeResponse& r) {
    std::vector<std::string> out;
    for (const auto& o : r.organisations()) out.push_back(o.org_code());
    return out;
  };
  v1::ListSubtreeRequest req;
  req.set_org_code("C");
  auto whole = logic_->ListSubtree(req, kNoDeadline);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(codes(*whole), (std::vector<std::string>{"A0", "C", "G1", "T1", "T1-A", "T2", "V1", "V2", "V3"}));
  EXPECT_TRUE(whole->next_page_token().empty());
  EXPECT_EQ(whole->as_of_seq(), 11);  // one change per organisation created
  // The records are whole: parent, depth and child count as GetOrganisation gives them.
  for (const auto& o : whole->organisations()) {
    auto one = logic_->Get(o.org_code(), kNoDeadline);
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(o.SerializeAsString(), one->SerializeAsString()) << o.org_code();
  }
  req.set_org_code("T1");
  EXPECT_EQ(codes(*logic_->ListSubtree(req, kNoDeadline)), (std::vector<std::string>{"G1", "T1", "V1", "V2"}));
  req.set_org_code("V3");
  EXPECT_EQ(codes(*logic_->ListSubtree(req, kNoDeadline)), (std::vector<std::string>{"V3"}));
  req.set_org_code("C1");
  EXPECT_EQ(codes(*logic_->ListSubtree(req, kNoDeadline)), (std::vector<std::string>{"C1", "C1-V"}));

  // Pages of two walk the same codes; a token continues its own organisation's subtree only.
  req.set_org_code("C");
  req.set_page_size(2);
  std::vector<std::string> paged;
  int pages = 0;
  do {
    auto page = logic_->ListSubtree(req, kNoDeadline);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->organisations_size(), 2);
    for (const auto& c : codes(*page)) paged.push_back(c);
    req.set_page_token(page->next_page_token());
    ++pages;
  } while (!req.page_token().empty() && pages < 20);
  EXPECT_EQ(pages, 5);
  EXPECT_EQ(paged, codes(*whole));
  auto first = logic_->ListSubtree(req, kNoDeadline);
  ASSERT_TRUE(first.ok() && !first->next_page_token().empty());
  req.set_org_code("T1");
  req.set_page_token(first->next_page_token());
  EXPECT_EQ(common::FieldViolationsOf(logic_->ListSubtree(req, kNoDeadline).status())[0].field, "page_token");
  req.set_page_token("!!");
  EXPECT_EQ(common::FieldViolationsOf(logic_->ListSubtree(req, kNoDeadline).status())[0].field, "page_token");

  // Refusals: the field named; an unknown organisation NOT_FOUND.
  req.set_page_token("");
  req.set_page_size(5001);
  EXPECT_EQ(common::FieldViolationsOf(logic_->ListSubtree(req, kNoDeadline).status())[0].field, "page_size");
  req.set_page_size(-1);
  EXPECT_EQ(common::FieldViolationsOf(logic_->ListSubtree(req, kNoDeadline).status())[0].field, "page_size");
  req.set_page_size(5000);
  EXPECT_TRUE(logic_->ListSubtree(req, kNoDeadline).ok());
  for (const std::string& bad : std::vector<std::string>{"", "no spaces", std::string(33, 'x')}) {
    req.set_org_code(bad);
    auto r = logic_->ListSubtree(req, kNoDeadline);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(common::FieldViolationsOf(r.status())[0].field, "org_code") << bad;
  }
  req.set_org_code("nope");
  auto nope = logic_->ListSubtree(req, kNoDeadline);
  EXPECT_EQ(nope.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(nope.status().message().find("org_code"), std::string::npos) << nope.status();

  // A move shows at once, and moves the feed's position the answer reflects.
  ASSERT_TRUE(logic_->Move("V1", "T2", kNoDeadline).ok());
  req.set_org_code("T1");
  req.set_page_size(0);
  auto after = logic_->ListSubtree(req, kNoDeadline);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(codes(*after), (std::vector<std::string>{"T1", "V2"}));
  EXPECT_EQ(after->as_of_seq(), 12);
  req.set_org_code("T2");
  EXPECT_EQ(codes(*logic_->ListSubtree(req, kNoDeadline)), (std::vector<std::string>{"A0", "G1", "T2", "V1", "V3"}));
}

}  // namespace
}  // namespace grassroots::membership
