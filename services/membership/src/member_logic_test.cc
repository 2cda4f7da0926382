// MemberLogic, its repository and the change feed against a real MariaDB.
#include "member_logic.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include <sys/stat.h>

#include <cppconn/connection.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "change_feed.h"
#include "grassroots/common/migrations.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"
#include "member_test_ids.h"
#include "organisation_logic.h"
#include "test_env.h"

namespace grassroots::generated {
const std::vector<common::Migration>& membership_migrations();
}

namespace grassroots::membership {
namespace {

using testing::MakeId;
const absl::Time kNoDeadline = absl::InfiniteFuture();
const absl::CivilDay kToday(2026, 6, 1);
const char kHeader[] =
    "id_number,name,gender,ethnicity,birth_date,education,occupation,phone,org_code,status,applied_on,joined_on,"
    "full_on,monthly_income_fen,is_mobile\n";

class MemberLogicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_ = grassroots::testing::TestDb("mem");
    grassroots::testing::DropSchema(options_);
    ASSERT_TRUE(common::ApplyMigrations(options_, generated::membership_migrations()).ok());
    pool_ = std::make_unique<common::ConnectionPool>(options_, nullptr);
    orgs_ = std::make_unique<OrganisationLogic>(*pool_);
    logic_ = std::make_unique<MemberLogic>(*pool_, common::PiiProtector::Development(), [] { return kToday; });
    feed_ = std::make_unique<ChangeFeed>(*pool_);
    Org("C", "", "committee");
    Org("B1", "C", "branch");
    Org("B2", "C", "branch");
    Org("G1", "B2", "group");
  }
  void TearDown() override {
    feed_.reset();
    logic_.reset();
    orgs_.reset();
    pool_.reset();
    grassroots::testing::DropSchema(options_);
  }
  void Org(const std::string& code, const std::string& parent, const std::string& type) {
    v1::Organisation o;
    o.set_org_code(code);
    o.set_name(code + "党组织");
    o.set_org_type(type);
    o.set_parent_code(parent);
    o.set_division_code("320723100201");
    ASSERT_TRUE(orgs_->Create(o, kNoDeadline).ok());
  }
  // A CSV row; `n` makes the ID unique; birth 1980-01-15.
  static std::string Row(int n, const std::string& org = "B1", const std::string& status = "full",
                         const std::string& joined = "2020-05-01", const std::string& full = "2021-05-01",
                         const std::string& birth = "19800115") {
    const std::string id = MakeId("320723", birth, absl::StrCat(100 + n % 900).substr(0, 3));
    const std::string bd = absl::StrCat(birth.substr(0, 4), "-", birth.substr(4, 2), "-", birth.substr(6, 2));
    return absl::StrCat(id, ",党员", n, ",M,汉族,", bd, ",junior_high,农民,13812345678,", org, ",", status,
                        ",2019-03-01,", joined, ",", full, ",120000,0\n");
  }
  exchange::v1::ImportReport Import(const std::string& csv, size_t chunk = 4096) {
    auto import = logic_->StartImport("test");
    for (size_t i = 0; i < csv.size(); i += chunk) import->Feed(std::string_view(csv).substr(i, chunk));
    auto report = import->Finish();
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : exchange::v1::ImportReport();
  }
  std::string Export(const std::string& code, bool pii) {
    std::string out;
    auto s = logic_->Export(code, pii, [&](std::string_view c) { out += c; return true; }, 100);
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }
  v1::Member Create(const std::string& id, const std::string& birth, const std::string& status = "applicant",
                    const std::string& applied = "2020-01-01") {
    v1::CreateMemberRequest r;
    r.set_recorded_by("clerk");
    auto* m = r.mutable_member();
    m->set_id_number(id);
    m->set_name("王五");
    m->set_gender("M");
    m->set_birth_date(birth);
    m->set_org_code("B1");
    m->set_status(status);
    m->set_applied_on(applied);
    auto out = logic_->Create(r, false, kNoDeadline);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : v1::Member();
  }
  absl::Status Step(int64_t id, const std::string& step, const std::string& on, int ext = 0) {
    v1::StepMemberRequest r;
    r.set_member_id(id);
    r.set_step(step);
    r.set_effective_on(on);
    r.set_deciding_org_code("C");
    r.set_recorded_by("clerk");
    r.set_extension_months(ext);
    return logic_->Step(r, false, kNoDeadline).status();
  }
  std::vector<v1::Change> Changes(int64_t after, absl::Status* status = nullptr) {
    std::vector<v1::Change> out;
    auto s = feed_->Watch(after, false, [&](const v1::Change& c) { out.push_back(c); return true; },
                          [] { return false; });
    if (status != nullptr) *status = s;
    else EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  common::DbOptions options_;
  std::unique_ptr<common::ConnectionPool> pool_;
  std::unique_ptr<OrganisationLogic> orgs_;
  std::unique_ptr<MemberLogic> logic_;
  std::unique_ptr<ChangeFeed> feed_;
};

// A recorded_at is RFC 3339 with China's offset (the stored instant, not China's wall clock
// labelled UTC) and names the moment the test wrote it.
void ExpectRecordedNow(const std::string& recorded_at) {
  EXPECT_TRUE(absl::EndsWith(recorded_at, "+08:00")) << recorded_at;
  auto t = common::ParseTimestamp(recorded_at);
  ASSERT_TRUE(t.ok()) << recorded_at;
  EXPECT_LT(absl::AbsDuration(*t - absl::Now()), absl::Minutes(5)) << recorded_at;
}

TEST_F(MemberLogicTest, LifecycleThroughStepsWithHistory) {
  const std::string id = MakeId("320723", "19900101", "222");
  v1::Member m = Create(id, "1990-01-01");
  ASSERT_GT(m.member_id(), 0);
  EXPECT_EQ(m.id_number(), id.substr(0, 4) + "**********" + id.substr(14));
  EXPECT_EQ(m.id_hash().size(), 32u);
  ASSERT_TRUE(Step(m.member_id(), "activist", "2021-01-01").ok());
  auto s = Step(m.member_id(), "development_target", "2021-06-01");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("TOO_EARLY_FOR_TARGET"), std::string::npos) << s;
  ASSERT_TRUE(Step(m.member_id(), "development_target", "2022-01-01").ok());
  ASSERT_TRUE(Step(m.member_id(), "probationary", "2024-03-01").ok());
  s = Step(m.member_id(), "full", "2025-01-01");  // 10 months of probation
  EXPECT_NE(s.message().find("TOO_EARLY_FOR_FULL"), std::string::npos) << s;
  ASSERT_TRUE(Step(m.member_id(), "extend_probation", "2025-03-01", 6).ok());
  s = Step(m.member_id(), "extend_probation", "2025-03-02", 6);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("SECOND_EXTENSION"), std::string::npos) << s;
  // Overdue: probation (12 + 6 months) ended 2025-09-01.
  v1::ListOverdueProbationRequest od;
  od.set_org_code("C");
  auto overdue = logic_->Overdue(od, false, kNoDeadline);
  ASSERT_TRUE(overdue.ok()) << overdue.status();
  ASSERT_EQ(overdue->overdue_size(), 1);
  EXPECT_EQ(overdue->overdue(0).due_on(), "2025-09-01");
  EXPECT_EQ(*logic_->CountOverdue(kNoDeadline), 1);
  ASSERT_TRUE(Step(m.member_id(), "full", "2025-09-01").ok());
  ASSERT_TRUE(Step(m.member_id(), "deceased", "2026-01-01").ok());
  EXPECT_EQ(Step(m.member_id(), "full", "2026-02-01").code(), absl::StatusCode::kFailedPrecondition);
  auto events = logic_->Events(m.member_id(), kNoDeadline);
  ASSERT_TRUE(events.ok());
  std::vector<std::string> kinds;
  for (const auto& e : events->events()) kinds.push_back(e.kind());
  EXPECT_EQ(kinds, (std::vector<std::string>{"created", "activist", "development_target", "probationary",
                                             "extend_probation", "full", "deceased"}));
  for (const auto& e : events->events()) EXPECT_EQ(e.details().find(id), std::string::npos);
  auto got = logic_->Get(m.member_id(), true, kNoDeadline);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->id_number(), id);
  EXPECT_EQ(got->status(), "deceased");
  EXPECT_EQ(got->version(), 7);
  // Deleting the organisation is refused while it has members (even past ones).
  EXPECT_EQ(orgs_->Delete("B1", kNoDeadline).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(MemberLogicTest, GetManyAnswersEachReadAsGetWouldInOneBatch) {
  Import(absl::StrCat(kHeader, Row(1), Row(2, "B2", "probationary", "2025-09-01", ""), Row(3)));
  auto listed = logic_->List([] { v1::ListMembersRequest r; r.set_org_code("C"); return r; }(), true, kNoDeadline);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->members_size(), 3);
  v1::Member a, b;  // a full member, the probationary one
  for (const auto& m : listed->members()) (m.status() == "probationary" ? b : a) = m;
  ASSERT_GT(b.member_id(), 0);
  const int64_t missing = a.member_id() + b.member_id() + 1000;
  std::vector<MemberLogic::Read> reads = {{b.member_id(), true, kNoDeadline},
                                          {a.member_id(), false, kNoDeadline},
                                          {missing, false, kNoDeadline},
                                          {0, false, kNoDeadline},
                                          {a.member_id(), true, absl::Now() - absl::Seconds(1)},
                                          {a.member_id(), true, kNoDeadline}};
  // Past the largest prepared list (32): one answer per read all the same, in order.
  for (int i = 0; i < 40; ++i) reads.push_back({b.member_id(), false, kNoDeadline});
  auto got = logic_->GetMany(reads);
  ASSERT_EQ(got.size(), reads.size());
  ASSERT_TRUE(got[0].ok()) << got[0].status();
  // Every field as the registry holds it (dates and the ID's hash converted on the client).
  EXPECT_EQ(got[0]->DebugString(), b.DebugString());
  EXPECT_EQ(got[0]->status(), "probationary");
  EXPECT_EQ(got[0]->joined_on(), "2025-09-01");
  EXPECT_EQ(got[0]->full_on(), "");
  EXPECT_EQ(got[0]->birth_date(), "1980-01-15");
  ASSERT_TRUE(got[1].ok()) << got[1].status();
  EXPECT_EQ(got[1]->member_id(), a.member_id());
  EXPECT_EQ(got[1]->id_number(), a.id_number().substr(0, 4) + "**********" + a.id_number().substr(14));
  EXPECT_EQ(got[1]->phone(), "138****5678");
  EXPECT_EQ(got[1]->id_hash(), a.id_hash());
  EXPECT_EQ(got[2].status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(got[3].status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(got[4].status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(got[5].ok());
  EXPECT_EQ(got[5]->DebugString(), a.DebugString());
  for (size_t i = 6; i < got.size(); ++i) {
    ASSERT_TRUE(got[i].ok()) << i;
    EXPECT_EQ(got[i]->member_id(), b.member_id());
  }
  // Get is GetMany of one, on the same cached statement.
  auto one = logic_->Get(a.member_id(), true, kNoDeadline);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->DebugString(), a.DebugString());
  EXPECT_EQ(logic_->Get(missing, true, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
}

// Two replicas: this one writes without a cache; `replica` reads through a cache that follows
// the change feed. Its own writes show at once; the other's once its follower has polled.
TEST_F(MemberLogicTest, CachedReadsFollowEveryReplicasWrites) {
  const std::string id = MakeId("320723", "19900101", "222");
  const v1::Member m = Create(id, "1990-01-01");
  common::ConnectionPool replica_pool(options_, nullptr);
  MemberLogic replica(replica_pool, common::PiiProtector::Development(), [] { return kToday; });
  MemberCache cache({8 << 20, absl::Hours(1)});
  MemberCacheFollower follower(replica_pool, cache, absl::Hours(1));
  replica.AttachCache(&cache);
  auto read = [&] {
    auto got = replica.Get(m.member_id(), true, kNoDeadline);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : v1::Member();
  };
  EXPECT_EQ(read().status(), "applicant");  // not positioned yet: straight from the database
  EXPECT_EQ(cache.stats().entries, 0u);
  ASSERT_TRUE(follower.PollOnce().ok());
  EXPECT_EQ(read().status(), "applicant");  // fills
  const v1::Member cached = read();         // hits
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cached.id_number(), id);  // the right to see it applies to cached records too
  // A cached answer is exactly the database's, with and without the right.
  EXPECT_EQ(cached.DebugString(), logic_->Get(m.member_id(), true, kNoDeadline)->DebugString());
  auto masked = replica.GetCached({m.member_id(), false, kNoDeadline});
  ASSERT_TRUE(masked.has_value() && masked->ok());
  EXPECT_EQ((*masked)->id_number(), id.substr(0, 4) + "**********" + id.substr(14));
  EXPECT_EQ((*masked)->DebugString(), logic_->Get(m.member_id(), false, kNoDeadline)->DebugString());

  // Written through the other replica: seen here once the follower has read the feed.
  ASSERT_TRUE(Step(m.member_id(), "activist", "2021-01-01").ok());
  EXPECT_EQ(read().status(), "applicant");  // within the follower's interval
  ASSERT_TRUE(follower.PollOnce().ok());
  EXPECT_EQ(read().status(), "activist");
  EXPECT_EQ(read().version(), 2);

  // Written through this replica: seen at once.
  v1::StepMemberRequest step;
  step.set_member_id(m.member_id());
  step.set_step("development_target");
  step.set_effective_on("2022-01-01");
  step.set_deciding_org_code("C");
  step.set_recorded_by("clerk");
  ASSERT_TRUE(replica.Step(step, false, kNoDeadline).ok());
  EXPECT_EQ(read().status(), "development_target");

  // A correction through the other replica, and an import that changes the member's row.
  v1::CorrectMemberRequest fix;
  fix.set_member_id(m.member_id());
  fix.set_recorded_by("clerk");
  fix.mutable_member()->set_name("王六");
  fix.mutable_update_mask()->add_paths("name");
  fix.mutable_member()->set_phone("13912345678");
  fix.mutable_update_mask()->add_paths("phone");
  auto corrected = logic_->Correct(fix, false, kNoDeadline);
  ASSERT_TRUE(corrected.ok()) << corrected.status();
  ASSERT_TRUE(follower.PollOnce().ok());
  EXPECT_EQ(read().name(), "王六");
  EXPECT_EQ(read().phone(), "13912345678");
  auto phone_masked = replica.GetCached({m.member_id(), false, kNoDeadline});
  ASSERT_TRUE(phone_masked.has_value() && phone_masked->ok());
  EXPECT_EQ((*phone_masked)->phone(), "139****5678");
  EXPECT_EQ((*phone_masked)->DebugString(), logic_->Get(m.member_id(), false, kNoDeadline)->DebugString());
  // A missing member is never cached: created elsewhere, it is found at once.
  EXPECT_EQ(replica.Get(m.member_id() + 1, false, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  const v1::Member later = Create(MakeId("320723", "19900101", "333"), "1990-01-01");
  EXPECT_TRUE(replica.Get(later.member_id(), false, kNoDeadline).ok());
}

TEST_F(MemberLogicTest, ListRefusesAnUnknownStatusByItsEntryWithoutRepeatingIt) {
  const std::string id = MakeId("320723", "19800115", "123");
  v1::ListMembersRequest r;
  r.set_org_code("C");
  r.add_statuses("full");
  r.add_statuses(id);
  const absl::Status s = logic_->List(r, true, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().find(id.substr(0, 10)), std::string::npos) << s.message();
  ASSERT_EQ(common::FieldViolationsOf(s).size(), 1u);
  EXPECT_EQ(common::FieldViolationsOf(s)[0].field, "statuses[1]");
}

TEST_F(MemberLogicTest, CreateRefusesPreciselyAndWritesNothing) {
  v1::CreateMemberRequest r;
  r.set_recorded_by("clerk");
  auto* m = r.mutable_member();
  std::string id = MakeId("320723", "20080301", "011");
  m->set_id_number(id);
  m->set_name("少年");
  m->set_gender("M");
  m->set_birth_date("2008-03-01");
  m->set_org_code("B1");
  m->set_applied_on("2026-02-01");
  auto s = logic_->Create(r, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("UNDER_AGE"), std::string::npos);
  EXPECT_EQ(s.message().find(id), std::string::npos);
  id[17] = id[17] == '1' ? '2' : '1';
  m->set_id_number(id);
  s = logic_->Create(r, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().find(id.substr(0, 12)), std::string::npos);
  m->set_id_number(MakeId("320723", "19900101", "333"));
  m->set_birth_date("1990-01-01");
  m->set_org_code("NOPE");
  EXPECT_EQ(logic_->Create(r, false, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  m->set_org_code("B1");
  r.set_deciding_org_code("not a code");  // malformed, not unknown
  s = logic_->Create(r, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  ASSERT_EQ(common::FieldViolationsOf(s).size(), 1u);
  EXPECT_EQ(common::FieldViolationsOf(s)[0].field, "deciding_org_code");
  r.clear_deciding_org_code();
  ASSERT_TRUE(logic_->Create(r, false, kNoDeadline).ok());
  EXPECT_EQ(logic_->Create(r, false, kNoDeadline).status().code(), absl::StatusCode::kAlreadyExists);
  auto found = logic_->FindByIdNumber(m->id_number(), false, kNoDeadline);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->name(), "少年");
  v1::ListMembersRequest lr;
  lr.set_org_code("C");
  EXPECT_EQ(logic_->List(lr, false, kNoDeadline)->members_size(), 1);
}

TEST_F(MemberLogicTest, ImportReportsEveryBadRowAndKeepsTheGoodOnes) {
  std::string csv = "\xEF\xBB\xBF";  // BOM
  std::string header = kHeader;
  header.insert(header.size() - 1, "\r");
  csv += header;
  auto add = [&csv](std::string row) {
    row.insert(row.size() - 1, "\r");  // CRLF
    csv += row;
  };
  for (int i = 0; i < 10000; ++i) add(Row(i, i % 2 ? "B1" : "B2", "full", "2020-05-01", "2021-05-01",
                                           absl::StrCat(1950 + i / 900 % 50, "0115")));
  // Line 10002: wrong check digit; 10003: birth date disagrees; 10004: duplicate of line 2.
  std::string bad1 = Row(1, "B1", "full", "2020-05-01", "2021-05-01", "19910101");
  bad1[17] = bad1[17] == '1' ? '2' : '1';
  add(bad1);
  std::string bad2 = Row(2, "B1", "full", "2020-05-01", "2021-05-01", "19910101");
  bad2.replace(bad2.find("1991-01-01"), 10, "1991-01-02");
  add(bad2);
  add(Row(0, "B2", "full", "2020-05-01", "2021-05-01", "19500115"));
  auto report = Import(csv, 777);
  EXPECT_FALSE(report.file_refused());
  EXPECT_EQ(report.rows(), 10003);
  EXPECT_EQ(report.inserted(), 10000);
  EXPECT_EQ(report.refused(), 3);
  ASSERT_EQ(report.errors_size(), 3);
  EXPECT_EQ(report.errors(0).line(), 10002);
  EXPECT_EQ(report.errors(0).code(), "INVALID_ID_NUMBER");
  EXPECT_EQ(report.errors(1).code(), "BIRTH_DATE_MISMATCH");
  EXPECT_EQ(report.errors(1).column(), "birth_date");
  EXPECT_EQ(report.errors(2).code(), "DUPLICATE_IN_FILE");
  EXPECT_NE(report.errors(2).message().find("line 2"), std::string::npos);
  // Re-import changes nothing.
  auto again = Import(csv, 100000);
  EXPECT_EQ(again.unchanged(), 10000);
  EXPECT_EQ(again.inserted(), 0);
  EXPECT_EQ(again.updated(), 0);
  // The unmasked export imports back unchanged; the masked one shows no ID number.
  const std::string unmasked = Export("C", true);
  EXPECT_EQ(std::count(unmasked.begin(), unmasked.end(), '\n'), 10001);
  auto back = Import(unmasked, 5000);
  EXPECT_EQ(back.unchanged(), 10000);
  EXPECT_EQ(back.refused(), 0);
  const std::string masked = Export("B1", false);
  EXPECT_NE(masked.find("3207**********"), std::string::npos);
  EXPECT_NE(masked.find("138****5678"), std::string::npos);
}

// A file row that moves an applicant to activist starts the activist year on its event (today,
// as a step would): the step to development target waits that year, though the application was
// long ago. A row that passes over the stages (to probationary) leaves their dates unknown.
TEST_F(MemberLogicTest, AnImportedActivistWaitsAYearFromTheImport) {
  auto applicant = [](int n, const std::string& status, const std::string& joined) {
    const std::string id = MakeId("320723", "19800115", absl::StrCat(100 + n));
    return absl::StrCat(id, ",党员", n, ",M,汉族,1980-01-15,junior_high,农民,13812345678,B1,", status,
                        ",2019-03-01,", joined, ",,120000,0\n");
  };
  ASSERT_EQ(Import(absl::StrCat(kHeader, applicant(1, "applicant", ""), applicant(2, "applicant", ""))).inserted(), 2);
  ASSERT_EQ(Import(absl::StrCat(kHeader, applicant(1, "activist", ""), applicant(2, "probationary", "2026-05-01")))
                .updated(),
            2);
  auto listed = logic_->List([] { v1::ListMembersRequest r; r.set_org_code("B1"); return r; }(), true, kNoDeadline);
  ASSERT_TRUE(listed.ok()) << listed.status();
  int64_t activist = 0, probationary = 0;
  for (const auto& m : listed->members()) {
    if (m.status() == "activist") {
      activist = m.member_id();
      EXPECT_EQ(m.activist_on(), "2026-06-01");
    } else if (m.status() == "probationary") {
      probationary = m.member_id();
      EXPECT_EQ(m.activist_on(), "");
      EXPECT_EQ(m.target_on(), "");
    }
  }
  ASSERT_NE(activist, 0);
  ASSERT_NE(probationary, 0);
  const absl::Status s = Step(activist, "development_target", "2026-06-01");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("TOO_EARLY_FOR_TARGET"), std::string::npos) << s;
}

TEST_F(MemberLogicTest, ImportRowRules) {
  std::string csv = kHeader;
  csv += Row(1, "NOPE");                                                     // line 2
  csv += Row(2, "B1", "full", "2024-01-10", "2024-11-10");                   // 3: 10 months
  std::string money = Row(3);
  money.replace(money.find("120000"), 6, "1200.00");
  csv += money;                                                              // 4
  std::string feb30 = Row(4);
  feb30.replace(feb30.find("2019-03-01"), 10, "2019-02-30");
  csv += feb30;                                                              // 5
  csv += "\"" + Row(5).substr(0, 10) + "x\"y," + Row(5).substr(19);          // 6: stray quote
  csv += Row(6, "B1", "applicant", "", "", "20080601");                      // 7: under age on 2019-03-01
  csv += Row(7, "B1", "probationary", "2025-01-10", "");                    // 8: good
  auto report = Import(csv, 13);
  EXPECT_EQ(report.rows(), 7);
  EXPECT_EQ(report.inserted(), 1);
  std::vector<std::pair<int64_t, std::string>> got;
  for (const auto& e : report.errors()) got.emplace_back(e.line(), e.code());
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, std::string>>{{2, "UNKNOWN_ORGANISATION"},
                                                                {3, "TOO_EARLY_FOR_FULL"},
                                                                {4, "INVALID_MONEY"},
                                                                {5, "INVALID_DATE"},
                                                                {6, "CSV_SYNTAX"},
                                                                {7, "UNDER_AGE"}}));
  // Moving backwards is refused; moving forwards updates and records an event.
  std::string back = kHeader;
  back += Row(7, "B1", "development_target", "", "");
  auto r2 = Import(back);
  ASSERT_EQ(r2.errors_size(), 1);
  EXPECT_EQ(r2.errors(0).code(), "BACKWARDS_STEP");
  std::string fwd = kHeader;
  fwd += Row(7, "B1", "full", "2025-01-10", "2026-01-10");
  auto r3 = Import(fwd);
  EXPECT_EQ(r3.updated(), 1) << (r3.errors_size() ? r3.errors(0).message() : "");
  std::string bwd = kHeader;
  bwd += Row(7, "B1", "probationary", "2025-01-10", "");
  auto r4 = Import(bwd);
  ASSERT_EQ(r4.errors_size(), 1);
  EXPECT_EQ(r4.errors(0).code(), "BACKWARDS_STEP");
}

// A stray opening quote costs its own row: the rows it would have swallowed are read on their
// own lines (CRLF, a quoted line break among them) and taken.
TEST_F(MemberLogicTest, ImportRefusesAStrayOpeningQuoteAndKeepsTheRowsAfterIt) {
  std::string csv = kHeader;
  csv += Row(1);                                         // line 2
  std::string stray = Row(2);
  stray.insert(stray.find("党员"), "\"");
  csv += stray;                                          // 3: "党员2,... never closed here
  csv += Row(3);                                         // 4
  std::string multi = Row(4);
  multi.replace(multi.find("农民"), 6, "\"农民\r\n工人\"");
  csv += multi;                                          // 5-6
  csv += Row(5);                                         // 7
  auto report = Import(csv, 5);
  EXPECT_EQ(report.rows(), 5) << report.DebugString();
  EXPECT_EQ(report.inserted(), 4) << report.DebugString();
  ASSERT_EQ(report.errors_size(), 1) << report.DebugString();
  EXPECT_EQ(report.errors(0).line(), 3);
  EXPECT_EQ(report.errors(0).column(), "name");
  EXPECT_EQ(report.errors(0).code(), "CSV_SYNTAX");
  auto found = logic_->FindByIdNumber(MakeId("320723", "19800115", "104"), false, kNoDeadline);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->occupation(), "农民\r\n工人");
}

// More rows than one batch: batches go to two writers, each in its own transaction; a
// re-import finds its rows registered (first by the skipped load, then by looking them up
// first); a file that mixes new, changed and unchanged rows writes exactly the changes, and
// the feed holds one gap-free change per write.
TEST_F(MemberLogicTest, ImportOfManyBatchesWritesEveryChangeOnceInTheFeed) {
  auto row = [](int i, const std::string& phone = "13812345678") {
    std::string r = Row(i, i % 2 ? "B1" : "B2", "full", "2020-05-01", "2021-05-01",
                        absl::StrCat(1950 + i / 900, "0115"));
    r.replace(r.find("13812345678"), 11, phone);
    return r;
  };
  std::string first = kHeader;
  for (int i = 0; i < 25000; ++i) first += row(i);
  auto r1 = Import(first, 1 << 16);
  EXPECT_EQ(r1.inserted(), 25000);
  EXPECT_EQ(r1.errors_size(), 0);
  auto r2 = Import(first, 1 << 16);
  EXPECT_EQ(r2.unchanged(), 25000);
  EXPECT_EQ(r2.inserted() + r2.updated() + r2.refused(), 0);
  std::string second = kHeader;
  for (int i = 0; i < 30000; ++i) second += row(i, i < 25000 && i % 10 == 0 ? "13900000000" : "13812345678");
  auto r3 = Import(second, 1 << 16);
  EXPECT_EQ(r3.inserted(), 5000);
  EXPECT_EQ(r3.updated(), 2500);
  EXPECT_EQ(r3.unchanged(), 22500);
  EXPECT_EQ(r3.errors_size(), 0);
  int64_t cursor = 4, created = 0, imported = 0;
  std::set<int64_t> ids;
  for (const auto& c : Changes(4)) {
    ASSERT_EQ(c.seq(), cursor + 1);
    cursor = c.seq();
    created += c.kind() == "created";
    imported += c.kind() == "imported";
    ids.insert(std::stoll(c.key()));
  }
  EXPECT_EQ(created, 30000);
  EXPECT_EQ(imported, 2500);
  EXPECT_EQ(ids.size(), 30000u);
  auto changed = logic_->FindByIdNumber(MakeId("320723", "19500115", "100"), false, kNoDeadline);
  ASSERT_TRUE(changed.ok()) << changed.status();
  auto history = logic_->Events(changed->member_id(), kNoDeadline);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->events_size(), 2);
  EXPECT_EQ(history->events(1).kind(), "imported");
  EXPECT_EQ(history->events(1).details(), "{\"phone\":\"(changed)\"}");
}

// An import and CreateMember racing for the same ID numbers: one member per ID number, the
// import complete, every create either registered or told the number is taken.
TEST_F(MemberLogicTest, ConcurrentImportAndCreatesKeepIdNumbersUnique) {
  auto birth = [](int i) { return absl::StrCat(1950 + i / 900, "0115"); };
  std::string csv = kHeader;
  for (int i = 0; i < 12000; ++i) csv += Row(i, "B1", "full", "2020-05-01", "2021-05-01", birth(i));
  std::thread creator([&] {
    for (int i = 11999; i >= 11900; --i) {
      v1::CreateMemberRequest r;
      r.set_recorded_by("clerk");
      auto* m = r.mutable_member();
      m->set_id_number(MakeId("320723", birth(i), absl::StrCat(100 + i % 900)));
      m->set_name("王五");
      m->set_gender("M");
      m->set_birth_date(absl::StrCat(birth(i).substr(0, 4), "-01-15"));
      m->set_org_code("B1");
      m->set_status("applicant");
      m->set_applied_on("2019-03-01");
      auto out = logic_->Create(r, false, kNoDeadline);
      EXPECT_TRUE(out.ok() || out.status().code() == absl::StatusCode::kAlreadyExists ||
                  out.status().code() == absl::StatusCode::kAborted)
          << out.status();
    }
  });
  auto report = Import(csv, 1 << 16);
  creator.join();
  EXPECT_EQ(report.rows(), 12000);
  EXPECT_EQ(report.inserted() + report.updated() + report.unchanged(), 12000) << report.DebugString().substr(0, 500);
  auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(conn.ok());
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery(
      "SELECT COUNT(*), COUNT(DISTINCT id_hash), SUM(status = 'full') FROM members"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), 12000);
  EXPECT_EQ(rs->getInt64(2), 12000);
  EXPECT_EQ(rs->getInt64(3), 12000);  // a member created first was moved on by its row
  // Every write is one change in the feed.
  int64_t cursor = 4;
  for (const auto& c : Changes(4)) {
    ASSERT_EQ(c.seq(), cursor + 1);
    cursor = c.seq();
  }
}

// An imported member's first event shows the same facts as one registered by CreateMember.
TEST_F(MemberLogicTest, TwoImportsOfOneFileAtOnceEndAsOneAfterTheOther) {
  // A retry while the first is still running, or two offices sending the same roster: side by
  // side, both failed with a lock conflict and part of the file stayed written.
  auto birth = [](int i) { return absl::StrCat(1950 + i / 900, "0115"); };
  std::string csv = kHeader;
  for (int i = 0; i < 8000; ++i) csv += Row(i, "B1", "full", "2020-05-01", "2021-05-01", birth(i));
  exchange::v1::ImportReport a, b;
  std::thread other([&] { a = Import(csv, 1 << 14); });
  b = Import(csv, 1 << 14);
  other.join();
  EXPECT_EQ(a.rows(), 8000);
  EXPECT_EQ(b.rows(), 8000);
  EXPECT_EQ(a.refused() + b.refused(), 0) << a.DebugString().substr(0, 300) << b.DebugString().substr(0, 300);
  EXPECT_EQ(a.inserted() + b.inserted(), 8000);
  EXPECT_EQ(a.unchanged() + b.unchanged(), 8000);
  auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(conn.ok());
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SELECT COUNT(*), COUNT(DISTINCT id_hash) FROM members"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), 8000);
  EXPECT_EQ(rs->getInt64(2), 8000);
}

TEST_F(MemberLogicTest, ImportedAndCreatedMembersHaveTheSameFirstEvent) {
  const std::string csv = std::string(kHeader) + Row(1);
  ASSERT_EQ(Import(csv).inserted(), 1);
  v1::CreateMemberRequest r;
  r.set_recorded_by("import");
  v1::Member* m = r.mutable_member();
  m->set_id_number(MakeId("320723", "19800115", "102"));
  m->set_name("党员1");
  m->set_gender("M");
  m->set_ethnicity("汉族");
  m->set_birth_date("1980-01-15");
  m->set_education("junior_high");
  m->set_occupation("农民");
  m->set_phone("13812345678");
  m->set_org_code("B1");
  m->set_status("full");
  m->set_applied_on("2019-03-01");
  m->set_joined_on("2020-05-01");
  m->set_full_on("2021-05-01");
  m->set_monthly_income_fen(120000);
  auto created = logic_->Create(r, false, kNoDeadline);
  ASSERT_TRUE(created.ok()) << created.status();
  auto imported = logic_->FindByIdNumber(MakeId("320723", "19800115", "101"), false, kNoDeadline);
  ASSERT_TRUE(imported.ok()) << imported.status();
  auto a = logic_->Events(imported->member_id(), kNoDeadline);
  auto b = logic_->Events(created->member_id(), kNoDeadline);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->events(0).details(), b->events(0).details());
  EXPECT_NE(a->events(0).details().find("\"name\":\"党员1\""), std::string::npos);
  EXPECT_EQ(a->events(0).details().find("13812345678"), std::string::npos);
  // The feed shows the same JSON.
  for (const auto& c : Changes(4)) {
    if (c.key() == std::to_string(imported->member_id())) {
      EXPECT_NE(c.payload().find("\\\"phone\\\":\\\"(changed)"), std::string::npos) << c.payload();
    }
  }
}

// The import stores its new members' "created" events compactly (member_created_events, V005:
// a row per run of up to kCreatedEventsPerRow). History and feed read one event per member as
// before: gap-free from any cursor (also one inside a row), the registered member's change of the
// same batch numbered after them, each member's first event with the feed's number, and a step
// dated before that event refused.
TEST_F(MemberLogicTest, ImportedCreatedEventsReadAsOneEventPerMember) {
  const v1::Member known = Create(MakeId("320723", "19700101", "111"), "1970-01-01");
  const int64_t start = 5;  // the four organisations and the created member came first
  const int n = 1200;
  std::string csv = kHeader;
  for (int i = 0; i < n; ++i) {
    csv += Row(i, i % 2 ? "B1" : "G1", "full", "2020-05-01", "2021-05-01", absl::StrCat(1950 + i / 900, "0115"));
    if (i == 700) {  // the registered member, its status moved forward in the same batch
      csv += absl::StrCat(MakeId("320723", "19700101", "111"), ",王五,M,,1970-01-01,,,,B1,activist,2020-01-01,,,,0\n");
    }
  }
  auto report = Import(csv, 1 << 16);
  ASSERT_EQ(report.inserted(), n);
  ASSERT_EQ(report.updated(), 1);
  {
    auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(conn.ok());
    std::unique_ptr<sql::Statement> st((*conn)->createStatement());
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery(
        "SELECT COUNT(*), MIN(first_seq), MAX(last_seq) FROM member_created_events"));
    ASSERT_TRUE(rs->next());
    EXPECT_EQ(rs->getInt64(1), 3);  // 500 + 500 + 200
    EXPECT_EQ(rs->getInt64(2), start + 1);
    EXPECT_EQ(rs->getInt64(3), start + n);
    rs.reset(st->executeQuery("SELECT COUNT(*) FROM member_events"));
    ASSERT_TRUE(rs->next());
    EXPECT_EQ(rs->getInt64(1), 2);  // the created member's two events
  }
  const auto all = Changes(start);
  ASSERT_EQ(all.size(), static_cast<size_t>(n + 1));
  std::map<int64_t, int64_t> seq_of;  // member_id -> seq of its created event
  for (int i = 0; i < n; ++i) {
    const v1::Change& c = all[i];
    ASSERT_EQ(c.seq(), start + 1 + i);
    EXPECT_EQ(c.entity(), "member");
    EXPECT_EQ(c.kind(), "created");
    EXPECT_NE(c.payload().find("\"version\":1"), std::string::npos) << c.payload();
    EXPECT_NE(c.payload().find("\"id_hash\":\""), std::string::npos) << c.payload();
    EXPECT_NE(c.payload().find("\"recorded_by\":\"test\""), std::string::npos) << c.payload();
    ExpectRecordedNow(c.recorded_at());
    seq_of[std::stoll(c.key())] = c.seq();
  }
  EXPECT_EQ(seq_of.size(), static_cast<size_t>(n));
  EXPECT_EQ(all.back().key(), std::to_string(known.member_id()));
  EXPECT_EQ(all.back().kind(), "activist");
  EXPECT_EQ(all.back().seq(), start + n + 1);
  ExpectRecordedNow(all.back().recorded_at());
  // The history says when each event was recorded, for a compact created event too.
  for (const int64_t id : {int64_t{std::stoll(all[3].key())}, int64_t{known.member_id()}}) {
    auto events = logic_->Events(id, kNoDeadline);
    ASSERT_TRUE(events.ok()) << events.status();
    ASSERT_FALSE(events->events().empty());
    for (const auto& e : events->events()) ExpectRecordedNow(e.recorded_at());
  }
  // Resumed inside a row and at a row's edge: the rest, in order, nothing twice.
  for (const int64_t after : {start + 250, start + 500, start + 501, start + n - 1}) {
    const auto rest = Changes(after);
    ASSERT_EQ(rest.size(), static_cast<size_t>(start + n + 1 - after)) << after;
    for (size_t i = 0; i < rest.size(); ++i) {
      ASSERT_EQ(rest[i].seq(), after + 1 + static_cast<int64_t>(i));
      EXPECT_EQ(rest[i].payload(), all[after - start + i].payload());
    }
  }
  // Each member's history starts with the same event as the feed's.
  for (const auto& [id, seq] : {*seq_of.begin(), *std::next(seq_of.begin(), 777), *seq_of.rbegin()}) {
    auto history = logic_->Events(id, kNoDeadline);
    ASSERT_TRUE(history.ok()) << history.status();
    ASSERT_EQ(history->events_size(), 1);
    const auto& e = history->events(0);
    EXPECT_EQ(e.change_seq(), seq);
    EXPECT_EQ(e.version(), 1);
    EXPECT_EQ(e.kind(), "created");
    EXPECT_EQ(e.effective_on(), "2021-05-01");
    EXPECT_EQ(e.deciding_org_code(), e.org_code());
    EXPECT_EQ(e.recorded_by(), "test");
    EXPECT_NE(e.details().find("\"full_on\":\"2021-05-01\""), std::string::npos) << e.details();
  }
  // The created event counts as the member's last: a step dated before it is refused, after it taken.
  const int64_t some = seq_of.begin()->first;
  v1::StepMemberRequest step;
  step.set_member_id(some);
  step.set_step("deceased");
  step.set_effective_on("2021-04-30");
  step.set_deciding_org_code("C");
  step.set_recorded_by("clerk");
  auto early = logic_->Step(step, false, kNoDeadline);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(early.status().message().find("BEFORE_PREVIOUS_EVENT"), absl::string_view::npos) << early.status();
  step.set_effective_on("2021-05-01");
  ASSERT_TRUE(logic_->Step(step, false, kNoDeadline).ok());
  auto history = logic_->Events(some, kNoDeadline);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->events_size(), 2);
  EXPECT_EQ(history->events(1).version(), 2);
  EXPECT_EQ(history->events(1).change_seq(), start + n + 2);
}

// A malformed row of member_created_events is reported, never half-read.
TEST(CreatedEvents, EncodeDecodeRoundTripAndRefuseMalformed) {
  std::vector<EventRow> in(3);
  for (int i = 0; i < 3; ++i) {
    in[i].change_seq = 10 + i;
    in[i].member_id = 100 + 2 * i;
    in[i].version = 1;
    in[i].kind = "created";
    in[i].status_after = "full";
    in[i].org_code = "B1";
    in[i].deciding_org = "B1";
    in[i].effective_on = "2021-05-01";
    in[i].recorded_by = "r";
    in[i].details = i == 1 ? std::string("{\"name\":\"a\\tb\"}\t9\t") : std::string("aX\x1f");
  }
  std::string blob;
  EncodeCreatedEvents(in.data(), in.data() + in.size(), blob);
  std::vector<EventRow> out;
  ASSERT_TRUE(DecodeCreatedEvents(blob, 10, 12, "r", out).ok());
  ASSERT_EQ(out.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(out[i].change_seq, in[i].change_seq);
    EXPECT_EQ(out[i].member_id, in[i].member_id);
    EXPECT_EQ(out[i].details, in[i].details);
    EXPECT_EQ(out[i].kind, "created");
    EXPECT_EQ(out[i].deciding_org, "B1");
  }
  out.clear();
  ASSERT_TRUE(DecodeCreatedEvents(blob, 10, 12, "r", out, 102).ok());  // one member's only
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].change_seq, 11);
  EXPECT_EQ(out[0].details, in[1].details);
  out.clear();
  EXPECT_EQ(DecodeCreatedEvents(blob, 10, 13, "r", out, 102).code(), absl::StatusCode::kDataLoss);
  out.clear();
  EXPECT_EQ(DecodeCreatedEvents(blob, 10, 13, "r", out).code(), absl::StatusCode::kDataLoss);  // a number missing
  out.clear();
  EXPECT_EQ(DecodeCreatedEvents(blob.substr(0, blob.size() - 1), 10, 12, "r", out).code(),
            absl::StatusCode::kDataLoss);  // cut short
}

// formats.md: an ID number that appears twice is refused on the later row, even when the
// earlier row was refused for something else; full_on is required for a full member's exit.
TEST_F(MemberLogicTest, ImportRefusesRepeatsAndExitsWithoutFullOn) {
  std::string csv = kHeader;
  std::string bad = Row(1);
  bad.replace(bad.find("汉族,"), 0, "");
  bad.replace(bad.find(",M,"), 3, ",Q,");  // line 2: bad gender
  csv += bad;
  csv += Row(1);  // line 3: the same ID number
  csv += Row(2);  // line 4: good
  auto report = Import(csv);
  std::vector<std::pair<int64_t, std::string>> got;
  for (const auto& e : report.errors()) got.emplace_back(e.line(), e.code());
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, std::string>>{{2, "INVALID_GENDER"}, {3, "DUPLICATE_IN_FILE"}}));
  EXPECT_EQ(report.inserted(), 1);
  std::string exit = kHeader;
  exit += Row(2, "B1", "deceased", "2020-05-01", "");
  auto r2 = Import(exit);
  ASSERT_EQ(r2.errors_size(), 1);
  EXPECT_EQ(r2.errors(0).column(), "full_on");
  EXPECT_EQ(r2.errors(0).code(), "MISSING_VALUE");
  exit = std::string(kHeader) + Row(2, "B1", "deceased", "2020-05-01", "2021-05-01");
  EXPECT_EQ(Import(exit).updated(), 1);
}

// The import's pipe: a FIFO (0600) in a private directory (0700), both gone afterwards; a LOAD
// DATA that fails before it reads the pipe returns its error instead of hanging.
TEST_F(MemberLogicTest, LoadPipeIsPrivateAndAFailedLoadReturns) {
  std::string dir, path;
  {
    auto pipe = LoadPipe::Create();
    ASSERT_TRUE(pipe.ok()) << pipe.status();
    path = (*pipe)->path();
    dir = path.substr(0, path.rfind('/'));
    struct stat st;
    ASSERT_EQ(stat(dir.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(conn.ok());
    std::unique_ptr<sql::Statement> ddl((*conn)->createStatement());
    ddl->execute("RENAME TABLE member_events TO member_events_away");
    MemberRepository repo;
    EventRow e;
    e.change_seq = 1;
    e.member_id = 1;
    e.version = 1;
    e.kind = "created";
    e.status_after = "full";
    e.org_code = "B1";
    e.effective_on = "2026-01-01";
    e.recorded_by = "test";
    const auto t0 = absl::Now();
    EXPECT_FALSE(repo.LoadEvents(**conn, {e}, **pipe).ok());
    EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
    ddl->execute("RENAME TABLE member_events_away TO member_events");
    // The pipe still works after that.
    EXPECT_TRUE(repo.LoadEvents(**conn, {e}, **pipe).ok());
  }
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0);
  EXPECT_NE(stat(dir.c_str(), &st), 0);
}

TEST_F(MemberLogicTest, ImportRefusesAFileWithoutARequiredColumn) {
  std::string csv = "id_number,name,gender,birth_date,org_code\n" + std::string("x,y,M,1980-01-01,B1\n");
  auto report = Import(csv);
  EXPECT_TRUE(report.file_refused());
  // Every missing required column is reported on line 1 under its name.
  std::vector<std::pair<int64_t, std::string>> got;
  for (const auto& e : report.errors()) got.emplace_back(e.line(), absl::StrCat(e.column(), " ", e.code()));
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, std::string>>{{1, "status BAD_HEADER"}})) << report.DebugString();
  // So is an unknown column.
  report = Import(std::string(kHeader).insert(std::strlen(kHeader) - 1, ",colour"));
  EXPECT_TRUE(report.file_refused());
  ASSERT_EQ(report.errors_size(), 1) << report.DebugString();
  EXPECT_EQ(report.errors(0).line(), 1);
  EXPECT_EQ(report.errors(0).column(), "colour");
  // A file sent without its header row: refused, and its first record (ID number, name, phone)
  // is nowhere in the report.
  report = Import(Row(0) + Row(1));
  EXPECT_TRUE(report.file_refused());
  EXPECT_GT(report.errors_size(), 0);
  const std::string id = MakeId("320723", "19800115", "100");
  for (const std::string& cell : {id.substr(0, 10), std::string("党员0"), std::string("13812345678")}) {
    EXPECT_EQ(report.DebugString().find(cell), std::string::npos) << cell << "\n" << report.DebugString();
  }
  v1::ListMembersRequest lr;
  lr.set_org_code("C");
  EXPECT_EQ(logic_->List(lr, false, kNoDeadline)->members_size(), 0);
}

TEST_F(MemberLogicTest, TypeFitReport) {
  std::string csv = kHeader;
  // B1: 2 full -> BELOW_MINIMUM. B2: 30 full direct + 30 probationary in its group G1 = 60.
  for (int i = 0; i < 2; ++i) csv += Row(i, "B1");
  for (int i = 2; i < 32; ++i) csv += Row(i, "B2");
  for (int i = 32; i < 62; ++i) csv += Row(i, "G1", "probationary", "2025-09-01", "");
  auto report = Import(csv);
  ASSERT_EQ(report.inserted(), 62) << report.errors(0).message();
  auto fit = logic_->TypeFit("C", kNoDeadline);
  ASSERT_TRUE(fit.ok()) << fit.status();
  ASSERT_EQ(fit->entries_size(), 2);
  EXPECT_EQ(fit->entries(0).org_code(), "B1");
  EXPECT_EQ(fit->entries(0).code(), "BELOW_MINIMUM");
  EXPECT_EQ(fit->entries(0).full_members(), 2);
  EXPECT_EQ(fit->entries(1).org_code(), "B2");
  EXPECT_EQ(fit->entries(1).code(), "SHOULD_BE_GENERAL_BRANCH");
  EXPECT_EQ(fit->entries(1).members(), 60);
}

// A correction of joined_on is held to the dates the member's steps recorded, as an import is.
TEST_F(MemberLogicTest, ACorrectedAdmissionKeepsToTheRecordedSteps) {
  v1::Member m = Create(MakeId("320723", "19900101", "225"), "1990-01-01");
  ASSERT_TRUE(Step(m.member_id(), "activist", "2021-01-01").ok());
  ASSERT_TRUE(Step(m.member_id(), "development_target", "2022-06-01").ok());
  ASSERT_TRUE(Step(m.member_id(), "probationary", "2022-07-01").ok());
  v1::CorrectMemberRequest c;
  c.set_member_id(m.member_id());
  c.set_recorded_by("clerk");
  c.mutable_update_mask()->add_paths("joined_on");
  c.mutable_member()->set_joined_on("2022-03-01");  // before the development-target date
  auto s = logic_->Correct(c, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "BEFORE_PREVIOUS_EVENT: member.joined_on")) << s.message();
  c.mutable_member()->set_joined_on("2021-10-01");  // less than a year as an activist
  s = logic_->Correct(c, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "TOO_EARLY_FOR_TARGET: member.joined_on")) << s.message();
  c.mutable_member()->set_joined_on("2022-06-15");  // a real correction
  auto fixed = logic_->Correct(c, false, kNoDeadline);
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->joined_on(), "2022-06-15");
}

// An unknown step is a malformed request (INVALID_ARGUMENT naming step), whatever the member:
// one that does not exist, or one whose exit would otherwise answer first.
TEST_F(MemberLogicTest, AnUnknownStepIsRefusedBeforeTheMemberIsLookedUp) {
  v1::StepMemberRequest step;
  step.set_member_id(999999);
  step.set_step("promote");
  step.set_effective_on("2021-05-01");
  step.set_deciding_org_code("C");
  step.set_recorded_by("clerk");
  auto refused = logic_->Step(step, false, kNoDeadline);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  ASSERT_EQ(common::FieldViolationsOf(refused.status()).size(), 1u);
  EXPECT_EQ(common::FieldViolationsOf(refused.status())[0].field, "step");
  // A date in the future is malformed too, as CorrectMember has it.
  step.set_step("activist");
  step.set_effective_on("2999-01-01");
  refused = logic_->Step(step, false, kNoDeadline);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  ASSERT_EQ(common::FieldViolationsOf(refused.status()).size(), 1u);
  EXPECT_EQ(common::FieldViolationsOf(refused.status())[0].field, "effective_on");
}

TEST_F(MemberLogicTest, KinByIdAndHash) {
  v1::Member a = Create(MakeId("320723", "19700101", "111"), "1970-01-01");
  v1::Member b = Create(MakeId("320723", "19950101", "112"), "1995-01-01", "applicant", "2020-01-01");
  v1::AddKinRequest r;
  r.set_member_id(a.member_id());
  r.set_kin_member_id(b.member_id());
  r.set_relation("child");
  r.set_source("户口簿");
  r.set_recorded_by("clerk");
  auto added = logic_->AddKin(r, false, kNoDeadline);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(logic_->AddKin(r, false, kNoDeadline).status().code(), absl::StatusCode::kAlreadyExists);
  // The inverse, from the other side, is the same relation: already recorded.
  v1::AddKinRequest inverse = r;
  inverse.set_member_id(b.member_id());
  inverse.set_kin_member_id(a.member_id());
  inverse.set_relation("parent");
  EXPECT_EQ(logic_->AddKin(inverse, false, kNoDeadline).status().code(), absl::StatusCode::kAlreadyExists);
  // Another relation of the same pair contradicts it: each the other's parent, or spouses too.
  for (const char* other : {"parent", "spouse"}) {
    v1::AddKinRequest contradicting = r;
    contradicting.set_relation(other);
    auto refused = logic_->AddKin(contradicting, false, kNoDeadline);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << other;
    EXPECT_TRUE(absl::StartsWith(refused.status().message(), "ALREADY_RELATED: ")) << refused.status();
  }
  v1::ListKinRequest q;
  q.add_id_hashes(b.id_hash());
  auto kin = logic_->ListKin(q, false, kNoDeadline);
  ASSERT_TRUE(kin.ok()) << kin.status();
  ASSERT_EQ(kin->relations_size(), 1);
  EXPECT_EQ(kin->relations(0).relation(), "parent");
  EXPECT_EQ(kin->relations(0).kin_member_id(), a.member_id());
  v1::ListKinRequest q2;
  q2.set_id_number(MakeId("320723", "19700101", "111"));
  EXPECT_EQ(logic_->ListKin(q2, false, kNoDeadline)->relations(0).relation(), "child");
  // One member asked for who is not registered: NOT_FOUND; hashes of no member: an empty answer.
  v1::ListKinRequest unknown;
  unknown.set_member_id(b.member_id() + 1000);
  EXPECT_EQ(logic_->ListKin(unknown, false, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  unknown.clear_member_id();
  unknown.set_id_number(MakeId("320723", "19700101", "999"));
  EXPECT_EQ(logic_->ListKin(unknown, false, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  unknown.clear_id_number();
  unknown.add_id_hashes(std::string(32, 'a'));
  auto none = logic_->ListKin(unknown, false, kNoDeadline);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->relations_size(), 0);
  // The relation is one change in the feed (the refused repeat is none), after both members.
  auto changes = Changes(4);
  ASSERT_EQ(changes.size(), 3u);
  const v1::Change& c = changes.back();
  EXPECT_EQ(c.entity(), "kin");
  EXPECT_EQ(c.kind(), "added");
  EXPECT_EQ(c.key(), absl::StrCat(a.member_id(), ":", b.member_id(), ":child"));
  v1::KinChange k;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(c.payload(), &k).ok()) << c.payload();
  EXPECT_EQ(k.member_id(), a.member_id());
  EXPECT_EQ(k.kin_member_id(), b.member_id());
  EXPECT_EQ(k.id_hash(), a.id_hash());
  EXPECT_EQ(k.kin_id_hash(), b.id_hash());
  EXPECT_EQ(k.relation(), "child");
  EXPECT_EQ(k.source(), "户口簿");
  EXPECT_EQ(k.recorded_by(), "clerk");
}

TEST_F(MemberLogicTest, KinAndCorrectionNameTheFieldOfAnUnknownOrMalformedId) {
  v1::Member a = Create(MakeId("320723", "19700101", "111"), "1970-01-01");
  v1::AddKinRequest r;
  r.set_member_id(a.member_id());
  r.set_kin_member_id(a.member_id() + 1000);
  r.set_relation("child");
  r.set_source("户口簿");
  r.set_recorded_by("clerk");
  absl::Status s = logic_->AddKin(r, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StartsWith(s.message(), "kin_member_id: ")) << s.message();
  r.set_member_id(a.member_id() + 1000);
  r.set_kin_member_id(a.member_id());
  s = logic_->AddKin(r, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StartsWith(s.message(), "member_id: ")) << s.message();

  v1::ListKinRequest q;
  q.set_member_id(-3);  // not an id at all: INVALID_ARGUMENT, as GetMember says
  s = logic_->ListKin(q, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  ASSERT_EQ(common::FieldViolationsOf(s).size(), 1u);
  EXPECT_EQ(common::FieldViolationsOf(s)[0].field, "member_id");
  q.set_member_id(a.member_id() + 1000);
  s = logic_->ListKin(q, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StartsWith(s.message(), "member_id: ")) << s.message();
  q.clear_member_id();
  q.set_id_number(MakeId("320723", "19700101", "999"));
  s = logic_->ListKin(q, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StartsWith(s.message(), "id_number: ")) << s.message();

  v1::CorrectMemberRequest c;
  c.set_member_id(a.member_id());
  c.set_recorded_by("clerk");
  c.mutable_update_mask()->add_paths("org_code");
  c.mutable_member()->set_org_code("NOPE");
  s = logic_->Correct(c, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StartsWith(s.message(), "member.org_code: ")) << s.message();
  c.mutable_member()->set_org_code("B1");
  c.set_deciding_org_code("NOPE");
  s = logic_->Correct(c, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StartsWith(s.message(), "deciding_org_code: ")) << s.message();
  c.set_deciding_org_code("not a code");
  s = logic_->Correct(c, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  ASSERT_EQ(common::FieldViolationsOf(s).size(), 1u);
  EXPECT_EQ(common::FieldViolationsOf(s)[0].field, "deciding_org_code");
  // A correction dated before the member's last event (the created one, today) is refused, as a step is.
  c.clear_deciding_org_code();
  c.set_effective_on("2000-01-01");
  s = logic_->Correct(c, false, kNoDeadline).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "BEFORE_PREVIOUS_EVENT: ")) << s.message();
  // Nothing was written by any of these.
  auto events = logic_->Events(a.member_id(), kNoDeadline);
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(events->events_size(), 1);
}

// A fresh schema with the migrations below `version` applied.
void ApplyMigrationsBefore(const common::DbOptions& options, int version) {
  grassroots::testing::DropSchema(options);
  std::vector<common::Migration> before;
  for (const auto& m : generated::membership_migrations()) {
    if (m.version < version) before.push_back(m);
  }
  ASSERT_TRUE(common::ApplyMigrations(options, before).ok());
}

// Relations recorded before kin_changes existed enter the feed once, after the changes before them.
TEST(KinChangesMigration, BackfillsRecordedRelationsOnce) {
  const common::DbOptions options = grassroots::testing::TestDb("memk");
  ASSERT_NO_FATAL_FAILURE(ApplyMigrationsBefore(options, 3));
  const auto& all = generated::membership_migrations();
  {
    auto conn = common::OpenConnection(options);
    ASSERT_TRUE(conn.ok()) << conn.status();
    std::unique_ptr<sql::Statement> st((*conn)->createStatement());
    st->execute("UPDATE change_counter SET seq = 7 WHERE id = 1");
    st->execute("INSERT INTO member_kin (member_id, kin_member_id, relation, source, recorded_by) VALUES "
                "(1, 2, 'parent', 's', 'c'), (2, 1, 'child', 's', 'c'), (3, 1, 'spouse', 's', 'c'), "
                "(1, 3, 'spouse', 's', 'c')");
  }
  ASSERT_TRUE(common::ApplyMigrations(options, all).ok());
  auto conn = common::OpenConnection(options);
  ASSERT_TRUE(conn.ok()) << conn.status();
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery(
      "SELECT GROUP_CONCAT(CONCAT(change_seq, ' ', member_id, ' ', kin_member_id, ' ', relation) "
      "ORDER BY change_seq SEPARATOR ','), (SELECT seq FROM change_counter WHERE id = 1) FROM kin_changes"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(std::string(rs->getString(1)), "8 1 2 parent,9 1 3 spouse");
  EXPECT_EQ(rs->getInt64(2), 9);
  rs.reset();
  st.reset();
  conn->reset();
  grassroots::testing::DropSchema(options);
}

// V005 on a registry with members: every record kept as it was, member_id no longer
// AUTO_INCREMENT (so concurrent LOAD DATA into members takes no table lock), the unread
// timestamps gone, the indexes the same, and member_created_events empty.
TEST(CreatedEventsMigration, KeepsEveryMemberAndDropsAutoIncrement) {
  const common::DbOptions options = grassroots::testing::TestDb("mem5");
  ASSERT_NO_FATAL_FAILURE(ApplyMigrationsBefore(options, 5));
  const auto& all = generated::membership_migrations();
  const char kRows[] =
      "SELECT GROUP_CONCAT(CONCAT_WS('|', member_id, HEX(id_hash), HEX(id_sealed), id_masked, name, gender, "
      "ethnicity, birth_date, education, occupation, phone, org_code, status, applied_on, activist_on, target_on, "
      "joined_on, full_on, extension_months, exited_on, monthly_income_fen, is_mobile, version) ORDER BY member_id) "
      "FROM members";
  std::string rows;
  {
    auto conn = common::OpenConnection(options);
    ASSERT_TRUE(conn.ok()) << conn.status();
    std::unique_ptr<sql::Statement> st((*conn)->createStatement());
    st->execute(
        "INSERT INTO members (member_id, id_hash, id_sealed, id_masked, name, gender, ethnicity, birth_date, "
        "education, occupation, phone, org_code, status, applied_on, activist_on, target_on, joined_on, full_on, "
        "extension_months, exited_on, monthly_income_fen, is_mobile, version) VALUES "
        "(1, X'00112233445566778899AABBCCDDEEFF', X'01AB', '3207**********123X', '张三', 'M', '汉族', '1980-01-15', "
        "'college', '农民', '13812345678', 'B1', 'full', '2019-03-01', '2019-04-01', '2019-05-01', '2020-05-01', "
        "'2021-05-01', 6, NULL, 120000, 1, 4), "
        "(7, X'FF112233445566778899AABBCCDDEEFF', X'01CD', '3207**********4567', '李四', 'F', NULL, '1990-02-01', "
        "NULL, NULL, NULL, 'G1', 'applicant', NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, 0, 1)");
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery(kRows));
    ASSERT_TRUE(rs->next());
    rows = rs->getString(1);
  }
  ASSERT_TRUE(common::ApplyMigrations(options, all).ok());
  auto conn = common::OpenConnection(options);
  ASSERT_TRUE(conn.ok()) << conn.status();
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery(kRows));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(std::string(rs->getString(1)), rows);
  rs.reset(st->executeQuery(
      "SELECT GROUP_CONCAT(CONCAT(column_name, ':', extra) ORDER BY column_name) FROM information_schema.columns "
      "WHERE table_schema = DATABASE() AND table_name = 'members' AND (extra LIKE '%auto_increment%' OR "
      "column_name IN ('created_at', 'updated_at'))"));
  ASSERT_TRUE(rs->next());
  EXPECT_TRUE(rs->isNull(1)) << rs->getString(1);
  rs.reset(st->executeQuery(
      "SELECT GROUP_CONCAT(DISTINCT CONCAT(index_name, ':', non_unique) ORDER BY index_name) "
      "FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'members'"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(std::string(rs->getString(1)), "idx_members_org_status:1,PRIMARY:0,uk_members_id_hash:0");
  rs.reset(st->executeQuery("SELECT COUNT(*) FROM member_created_events"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), 0);
  rs.reset();
  st.reset();
  conn->reset();
  grassroots::testing::DropSchema(options);
}

TEST_F(MemberLogicTest, KinChangesInterleaveWithMemberChangesInCommitOrder) {
  std::vector<v1::Member> people;
  for (int i = 0; i < 8; ++i) people.push_back(Create(MakeId("320723", "19700101", absl::StrCat(300 + i)), "1970-01-01"));
  const int64_t base = Changes(0).back().seq();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      v1::AddKinRequest r;
      r.set_member_id(people[2 * t].member_id());
      r.set_kin_member_id(people[2 * t + 1].member_id());
      r.set_relation("sibling");
      r.set_source("户口簿");
      r.set_recorded_by("clerk");
      EXPECT_TRUE(logic_->AddKin(r, false, kNoDeadline).ok());
      EXPECT_TRUE(Step(people[2 * t].member_id(), "activist", "2021-01-01").ok());
    });
  }
  for (auto& t : threads) t.join();
  int64_t cursor = base, kin = 0, member = 0;
  for (const auto& c : Changes(base)) {
    ASSERT_EQ(c.seq(), cursor + 1);
    cursor = c.seq();
    kin += c.entity() == "kin";
    member += c.entity() == "member";
  }
  EXPECT_EQ(kin, 4);
  EXPECT_EQ(member, 4);
  // Resuming in the middle delivers exactly the rest.
  EXPECT_EQ(Changes(base + 3).size(), 5u);
}

TEST_F(MemberLogicTest, KinOfPersonsAnswersEachNumberInOrderClearOnlyWithTheRight) {
  const std::string ida = MakeId("320723", "19700101", "121"), idb = MakeId("320723", "19950101", "122"),
                    idc = MakeId("320723", "19720101", "123"), outsider = MakeId("320723", "19800101", "124"),
                    loner = MakeId("320723", "19810101", "125");
  v1::Member a = Create(ida, "1970-01-01");
  v1::Member b = Create(idb, "1995-01-01");
  v1::Member c = Create(idc, "1972-01-01");
  Create(loner, "1981-01-01");
  for (const auto& [kin, relation] : {std::pair{b.member_id(), "child"}, std::pair{c.member_id(), "spouse"}}) {
    v1::AddKinRequest r;
    r.set_member_id(a.member_id());
    r.set_kin_member_id(kin);
    r.set_relation(relation);
    r.set_source("户口簿");
    r.set_recorded_by("clerk");
    ASSERT_TRUE(logic_->AddKin(r, false, kNoDeadline).ok());
  }
  v1::ListKinOfPersonsRequest q;
  std::string lower = ida;  // a lower-case x (or the same number twice) is answered like any other
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const auto& id : {outsider, ida, loner, idb, lower}) q.add_id_numbers(id);
  auto clear = logic_->ListKinOfPersons(q, true, kNoDeadline);
  ASSERT_TRUE(clear.ok()) << clear.status();
  ASSERT_EQ(clear->persons_size(), 5);
  EXPECT_FALSE(clear->persons(0).is_member());
  EXPECT_EQ(clear->persons(0).kin_size(), 0);
  ASSERT_TRUE(clear->persons(1).is_member());
  ASSERT_EQ(clear->persons(1).kin_size(), 2);
  EXPECT_EQ(clear->persons(1).kin(0).id_number(), idb);  // by the relative's member_id
  EXPECT_EQ(clear->persons(1).kin(0).relation(), "child");
  EXPECT_EQ(clear->persons(1).kin(0).id_hash(), b.id_hash());
  EXPECT_EQ(clear->persons(1).kin(0).source(), "户口簿");
  EXPECT_EQ(clear->persons(1).kin(1).id_number(), idc);
  EXPECT_EQ(clear->persons(1).kin(1).relation(), "spouse");
  EXPECT_TRUE(clear->persons(2).is_member());
  EXPECT_EQ(clear->persons(2).kin_size(), 0);
  ASSERT_EQ(clear->persons(3).kin_size(), 1);
  EXPECT_EQ(clear->persons(3).kin(0).id_number(), ida);
  EXPECT_EQ(clear->persons(3).kin(0).relation(), "parent");
  EXPECT_EQ(clear->persons(4).kin_size(), 2);

  // Without the right: masked, hashes still given.
  auto masked = logic_->ListKinOfPersons(q, false, kNoDeadline);
  ASSERT_TRUE(masked.ok()) << masked.status();
  EXPECT_EQ(masked->persons(1).kin(0).id_number(), common::MaskIdNumber(idb));
  EXPECT_EQ(masked->persons(1).kin(0).id_hash(), b.id_hash());

  // Bad input names the entry and never echoes the number.
  std::string wrong = idb;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  v1::ListKinOfPersonsRequest bad;
  bad.add_id_numbers(ida);
  bad.add_id_numbers(wrong);
  auto refused = logic_->ListKinOfPersons(bad, true, kNoDeadline);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("id_numbers[1]"), absl::string_view::npos) << refused.status();
  EXPECT_EQ(refused.status().message().find(wrong.substr(0, 17)), absl::string_view::npos) << refused.status();
  EXPECT_EQ(logic_->ListKinOfPersons(v1::ListKinOfPersonsRequest(), true, kNoDeadline).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::ListKinOfPersonsRequest many;
  for (int i = 0; i < 1001; ++i) many.add_id_numbers(ida);
  auto too_many = logic_->ListKinOfPersons(many, true, kNoDeadline);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_many.status().message().find("id_numbers"), absl::string_view::npos);
  many.mutable_id_numbers()->RemoveLast();
  auto thousand = logic_->ListKinOfPersons(many, true, kNoDeadline);
  ASSERT_TRUE(thousand.ok()) << thousand.status();
  EXPECT_EQ(thousand->persons_size(), 1000);
  EXPECT_EQ(thousand->persons(999).kin_size(), 2);
}

TEST_F(MemberLogicTest, ChangeFeedIsGapFreeInCommitOrderAndResumable) {
  // Organisations created in SetUp are the first 4 changes.
  auto all = Changes(0);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].entity(), "organisation");
  // Concurrent writers: members and organisations.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 10; ++i) {
        std::string csv = kHeader + Row(t * 100 + i);
        Import(csv);
        v1::Organisation o;
        o.set_org_code(absl::StrCat("X", t, "-", i));
        o.set_name("临时");
        o.set_org_type("branch");
        o.set_parent_code("C");
        o.set_division_code("320723100201");
        (void)orgs_->Create(o, kNoDeadline);
      }
    });
  }
  // Read while they write: every read is a gap-free prefix.
  int64_t cursor = 4;
  while (cursor < 84) {
    for (const auto& c : Changes(cursor)) {
      ASSERT_EQ(c.seq(), cursor + 1);
      cursor = c.seq();
    }
  }
  for (auto& t : threads) t.join();
  auto tail = Changes(80);
  ASSERT_EQ(tail.size(), 4u);
  EXPECT_EQ(tail.back().seq(), 84);
  for (const auto& c : Changes(4)) {
    if (c.entity() == "member") {
      EXPECT_NE(c.payload().find("\"id_hash\""), std::string::npos);
      EXPECT_EQ(c.payload().find("320723"), std::string::npos) << "no clear ID number in the feed";
    }
  }
  absl::Status s;
  Changes(85, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  Changes(-1, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace grassroots::membership
