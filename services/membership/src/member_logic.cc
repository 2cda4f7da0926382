#include "member_logic.h"

#include "grassroots/common/import_errors.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <cstring>
#include <map>
#include <unordered_map>
#include <unordered_set>


#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grassroots/common/csv.h"
#include "grassroots/common/log.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"
#include "member_rules.h"

#include <cppconn/connection.h>
#include <google/protobuf/arena.h>

namespace grassroots::membership {
namespace {

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
constexpr size_t kImportBatch = 5000;   // rows per transaction (one LOAD DATA of members, one of events)
constexpr size_t kImportQueue = 2;      // batches parsed ahead of the writers
constexpr size_t kImportWriters = 2;    // writer threads, one connection each
constexpr int kImportAttempts = 3;      // of a batch rolled back by a lock conflict

bool IsRuleCode(std::string_view code) {
  return code == "UNDER_AGE" || code == "TOO_EARLY_FOR_FULL" || code == "BEFORE_APPLICATION" ||
         code == "BACKWARDS_STEP" || code == "TOO_EARLY_FOR_TARGET" || code == "CONFLICTING_DATE" ||
         code == "BEFORE_PREVIOUS_EVENT";
}

// Rule violations are FAILED_PRECONDITION naming the rule; malformed input INVALID_ARGUMENT.
absl::Status ToStatus(const std::vector<Violation>& v, absl::string_view prefix) {
  bool all_rules = true;
  for (const auto& x : v) all_rules = all_rules && IsRuleCode(x.code);
  if (all_rules) {
    return absl::FailedPreconditionError(absl::StrCat(v[0].code, ": ", prefix, v[0].field, " ", v[0].message));
  }
  std::vector<common::FieldViolation> fv;
  for (const auto& x : v) fv.push_back({absl::StrCat(prefix, x.field), absl::StrCat(x.code, ": ", x.message)});
  return common::InvalidFields(fv);
}

absl::Status CheckCodeArg(std::string_view field, const std::string& code) {
  if (code.empty()) return common::InvalidField(field, "is required");
  if (!common::IsCode(code)) return common::InvalidField(field, "must be 1 to 32 letters, digits or '-'");
  return absl::OkStatus();
}

// An optional code: empty, or as CheckCodeArg wants it.
absl::Status CheckOptionalCodeArg(std::string_view field, const std::string& code) {
  return code.empty() ? absl::OkStatus() : CheckCodeArg(field, code);
}

absl::Status CheckRecorder(const std::string& by) {
  const int64_t n = common::Utf8Length(by);
  if (by.empty()) return common::InvalidField("recorded_by", "is required");
  if (n < 0 || n > 64) return common::InvalidField("recorded_by", "must be valid UTF-8, at most 64 characters");
  return absl::OkStatus();
}

// {"field":"value",...} of what changed; the phone number is never written out.
void AddDetail(std::string& json, std::string_view field, std::string_view value) {
  json += json.empty() ? "{" : ",";
  common::AppendJsonString(json, field);
  json += ":";
  common::AppendJsonString(json, field == "phone" && !value.empty() ? "(changed)" : value);
}
std::string CloseDetails(std::string json) { return json.empty() ? "{}" : json + "}"; }

std::string Diff(const v1::Member& before, const v1::Member& after) {
  std::string j;
  auto cmp = [&](std::string_view f, const std::string& a, const std::string& b) {
    if (a != b) AddDetail(j, f, b);
  };
  cmp("name", before.name(), after.name());
  cmp("gender", before.gender(), after.gender());
  cmp("ethnicity", before.ethnicity(), after.ethnicity());
  cmp("birth_date", before.birth_date(), after.birth_date());
  cmp("education", before.education(), after.education());
  cmp("occupation", before.occupation(), after.occupation());
  cmp("phone", before.phone(), after.phone());
  cmp("org_code", before.org_code(), after.org_code());
  cmp("status", before.status(), after.status());
  cmp("applied_on", before.applied_on(), after.applied_on());
  cmp("activist_on", before.activist_on(), after.activist_on());
  cmp("target_on", before.target_on(), after.target_on());
  cmp("joined_on", before.joined_on(), after.joined_on());
  cmp("full_on", before.full_on(), after.full_on());
  cmp("exited_on", before.exited_on(), after.exited_on());
  if (before.extension_months() != after.extension_months()) {
    AddDetail(j, "extension_months", std::to_string(after.extension_months()));
  }
  if (before.has_monthly_income_fen() != after.has_monthly_income_fen() ||
      before.monthly_income_fen() != after.monthly_income_fen()) {
    AddDetail(j, "monthly_income_fen",
              after.has_monthly_income_fen() ? std::to_string(after.monthly_income_fen()) : std::string());
  }
  if (before.is_mobile() != after.is_mobile()) AddDetail(j, "is_mobile", after.is_mobile() ? "1" : "0");
  return CloseDetails(std::move(j));
}

// The date a new record's event takes effect: when it reached its starting status.
std::string StartDate(const v1::Member& m, absl::CivilDay today) {
  if (m.status() == "full" && !m.full_on().empty()) return m.full_on();
  if (m.status() == "probationary" && !m.joined_on().empty()) return m.joined_on();
  if (m.status() == "applicant" && !m.applied_on().empty()) return m.applied_on();
  return common::FormatDate(today);
}

struct Hash16 {
  uint64_t a = 0, b = 0;
  bool operator==(const Hash16&) const = default;
};
struct Hash16Hasher {
  size_t operator()(const Hash16& h) const { return h.a ^ (h.b * 0x9E3779B97F4A7C15ull); }
};
Hash16 ToHash16(std::string_view s) {
  Hash16 h;
  std::memcpy(&h.a, s.data(), 8);
  std::memcpy(&h.b, s.data() + 8, 8);
  return h;
}

const std::vector<common::CsvHeader::Column>& CsvFormat() {
  static const auto* f = new std::vector<common::CsvHeader::Column>{
      {"id_number", true},  {"name", true},       {"gender", true},    {"ethnicity", false},
      {"birth_date", true}, {"education", false}, {"occupation", false}, {"phone", false},
      {"org_code", true},   {"status", true},     {"applied_on", false}, {"joined_on", false},
      {"full_on", false},   {"monthly_income_fen", false}, {"is_mobile", false}};
  return *f;
}

}  // namespace

MemberLogic::MemberLogic(common::ConnectionPool& pool, common::PiiProtector pii, Clock today)
    : pool_(pool), pii_(std::move(pii)), today_(today ? std::move(today) : Clock([] { return common::TodayInChina(); })) {}

v1::Member MemberLogic::Output(const StoredMember& s, bool pii) const {
  v1::Member m = s.m;
  m.set_id_hash(absl::BytesToHexString(s.id_hash));
  if (pii) {
    auto clear = pii_.Open(s.id_sealed);
    m.set_id_number(clear.ok() ? *clear : s.id_masked);
  } else {
    m.set_id_number(s.id_masked);
    m.set_phone(MaskPhone(m.phone()));
  }
  return m;
}

std::shared_ptr<const CachedMember> MemberLogic::ToCached(const StoredMember& s) {
  v1::Member m = s.m;
  m.set_id_hash(absl::BytesToHexString(s.id_hash));
  m.set_id_number(s.id_masked);
  auto c = std::make_shared<CachedMember>();
  c->member_id = m.member_id();
  m.SerializeToString(&c->record);
  c->record.shrink_to_fit();
  c->id_sealed = s.id_sealed;
  return c;
}

v1::Member MemberLogic::Output(const CachedMember& c, bool pii) const {
  v1::Member m;
  m.ParseFromString(c.record);
  if (pii) {
    auto clear = pii_.Open(c.id_sealed);
    if (clear.ok()) m.set_id_number(*clear);
  } else {
    m.set_phone(MaskPhone(m.phone()));
  }
  return m;
}

absl::StatusOr<std::string> MemberLogic::SubtreePath(sql::Connection& conn, const std::string& org_code) {
  auto org = orgs_.Find(conn, org_code);
  if (!org.ok()) return org.status();
  if (!org->has_value()) return absl::NotFoundError(absl::StrCat("org_code: organisation ", org_code, " does not exist"));
  return (*org)->path;
}

absl::Status MemberLogic::Write(sql::Connection& conn, std::vector<Pending>& pending) {
  if (pending.empty()) return absl::OkStatus();
  std::vector<const StoredMember*> inserts, updates;
  for (auto& p : pending) {
    p.row->m.set_version(p.row->m.version() + 1);
    (p.fresh ? inserts : updates).push_back(p.row);
  }
  if (auto s = repo_.InsertMembers(conn, inserts); !s.ok()) return s;
  if (auto s = repo_.UpdateMembers(conn, updates); !s.ok()) return s;
  auto first = feed_.Reserve(conn, static_cast<int64_t>(pending.size()));
  if (!first.ok()) return first.status();
  std::vector<EventRow> events;
  events.reserve(pending.size());
  int64_t seq = *first;
  for (auto& p : pending) {
    p.event.change_seq = seq++;
    p.event.member_id = p.row->m.member_id();
    p.event.version = p.row->m.version();
    p.event.status_after = p.row->m.status();
    p.event.org_code = p.row->m.org_code();
    events.push_back(std::move(p.event));
  }
  return repo_.InsertEvents(conn, events);
}

absl::StatusOr<v1::Member> MemberLogic::Create(const v1::CreateMemberRequest& request, bool pii, absl::Time deadline) {
  if (auto s = CheckRecorder(request.recorded_by()); !s.ok()) return s;
  if (auto s = CheckOptionalCodeArg("deciding_org_code", request.deciding_org_code()); !s.ok()) return s;
  v1::Member m = request.member();
  m.clear_member_id();
  m.clear_id_hash();
  m.clear_activist_on();
  m.clear_target_on();
  m.clear_extension_months();
  m.clear_exited_on();
  m.clear_version();
  const absl::CivilDay today = today_();
  if (auto v = NormaliseMember(m, today); !v.empty()) return ToStatus(v, "member.");
  const std::string deciding = request.deciding_org_code().empty() ? m.org_code() : request.deciding_org_code();
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto member_id = Track(*conn, repo_.AllocateMemberIds(**conn, 1));  // before the transaction: see there
  if (!member_id.ok()) return member_id.status();
  common::Transaction tx(**conn);
  if (auto s = Track(*conn, tx.Begin()); !s.ok()) return s;
  if (auto s = Track(*conn, feed_.Lock(**conn)); !s.ok()) return s;
  for (const std::string& code : {m.org_code(), deciding}) {
    auto org = Track(*conn, orgs_.Find(**conn, code));
    if (!org.ok()) return org.status();
    if (!org->has_value()) {
      return absl::NotFoundError(absl::StrCat(code == m.org_code() ? "member.org_code" : "deciding_org_code",
                                              ": organisation ", code, " does not exist"));
    }
  }
  StoredMember row;
  row.id_hash = pii_.Hash(m.id_number());
  row.id_sealed = pii_.Seal(m.id_number());
  row.id_masked = common::MaskIdNumber(m.id_number());
  auto existing = Track(*conn, repo_.FindByHash(**conn, row.id_hash, /*for_update=*/true));
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return absl::AlreadyExistsError(absl::StrCat("member.id_number: this ID number is already registered (member ",
                                                 (*existing)->m.member_id(), ")"));
  }
  m.clear_id_number();
  m.set_member_id(*member_id);
  m.set_version(0);
  row.m = m;
  std::vector<Pending> pending{{&row, EventRow{}, /*fresh=*/true}};
  pending[0].event.kind = "created";
  pending[0].event.effective_on = StartDate(m, today);
  pending[0].event.deciding_org = deciding;
  pending[0].event.recorded_by = request.recorded_by();
  pending[0].event.details = Diff(v1::Member(), m);
  if (auto s = Track(*conn, Write(**conn, pending)); !s.ok()) {
    if (s.code() == absl::StatusCode::kAlreadyExists) {
      return absl::AlreadyExistsError("member.id_number: this ID number is already registered");
    }
    return s;
  }
  if (auto s = Track(*conn, tx.Commit()); !s.ok()) return s;
  return Output(row, pii);
}

absl::StatusOr<v1::Member> MemberLogic::Get(int64_t member_id, bool pii, absl::Time deadline) {
  return std::move(GetMany({Read{member_id, pii, deadline}}).front());
}

std::vector<absl::StatusOr<v1::Member>> MemberLogic::GetMany(const std::vector<Read>& reads) {
  std::vector<absl::StatusOr<v1::Member>> out(reads.size(), absl::UnknownError("not read"));
  std::vector<int64_t> ids;
  absl::Time deadline = absl::InfiniteFuture();
  const absl::Time now = absl::Now();
  for (size_t i = 0; i < reads.size(); ++i) {
    if (reads[i].member_id <= 0) {
      out[i] = common::InvalidField("member_id", "must be a positive number");
    } else if (reads[i].deadline <= now) {
      out[i] = absl::DeadlineExceededError("deadline passed before the member was read");
    } else {
      ids.push_back(reads[i].member_id);
      deadline = std::min(deadline, reads[i].deadline);
    }
  }
  // What the cache holds is answered from it; the rest with one query, whose rows fill the cache
  // unless their members were invalidated while it ran (generations taken before it).
  std::unordered_map<int64_t, std::shared_ptr<const CachedMember>> cached;
  std::vector<std::pair<int64_t, uint64_t>> generations;
  if (cache_ != nullptr) {
    std::vector<int64_t> missing;
    std::unordered_set<int64_t> asked;
    for (size_t i = 0; i < reads.size(); ++i) {
      const int64_t id = reads[i].member_id;
      if (id <= 0 || reads[i].deadline <= now || !asked.insert(id).second) continue;
      if (auto hit = reads[i].cache_missed ? nullptr : cache_->Get(id)) {
        cached.emplace(id, std::move(hit));
      } else {
        missing.push_back(id);
        generations.emplace_back(id, cache_->Generation(id));
      }
    }
    ids.swap(missing);
  }
  std::unordered_map<int64_t, StoredMember> stored;
  absl::Status found = absl::OkStatus();
  if (!ids.empty()) {
    absl::StatusOr<std::vector<StoredMember>> rows = absl::UnknownError("not read");
    if (auto conn = pool_.Acquire(deadline); !conn.ok()) {
      rows = conn.status();
    } else {
      rows = Track(*conn, repo_.FindCurrent(*conn, ids));
    }
    if (rows.ok()) {
      for (auto& s : *rows) {
        const int64_t id = s.m.member_id();
        stored.emplace(id, std::move(s));
      }
      for (const auto& [id, generation] : generations) {
        if (auto it = stored.find(id); it != stored.end()) cache_->Fill(ToCached(it->second), generation);
      }
    } else {
      found = rows.status();
    }
  }
  for (size_t i = 0; i < reads.size(); ++i) {
    if (reads[i].member_id <= 0 || reads[i].deadline <= now) continue;
    if (auto c = cached.find(reads[i].member_id); c != cached.end()) {
      out[i] = Output(*c->second, reads[i].pii);
    } else if (auto it = stored.find(reads[i].member_id); it != stored.end()) {
      out[i] = Output(it->second, reads[i].pii);
    } else if (!found.ok()) {
      out[i] = found;
    } else {
      out[i] = absl::NotFoundError(absl::StrCat("member_id: member ", reads[i].member_id, " does not exist"));
    }
  }
  return out;
}

std::optional<absl::StatusOr<v1::Member>> MemberLogic::GetCached(const Read& read) {
  if (cache_ == nullptr || read.member_id <= 0) return std::nullopt;
  auto hit = cache_->Get(read.member_id);
  if (!hit) return std::nullopt;
  return Output(*hit, read.pii);
}

absl::StatusOr<v1::Member> MemberLogic::FindByIdNumber(const std::string& id_number, bool pii, absl::Time deadline) {
  auto id = common::NormaliseIdNumber(id_number);
  if (!id.ok()) return common::InvalidField("id_number", std::string(id.status().message()));
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto found = Track(*conn, repo_.FindByHash(**conn, pii_.Hash(*id)));
  if (!found.ok()) return found.status();
  if (!found->has_value()) return absl::NotFoundError("id_number: no member is registered with this ID number");
  return Output(**found, pii);
}

absl::StatusOr<v1::ListMembersResponse> MemberLogic::List(const v1::ListMembersRequest& request, bool pii,
                                                          absl::Time deadline) {
  if (auto s = CheckCodeArg("org_code", request.org_code()); !s.ok()) return s;
  const int page_size = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  if (page_size < 1 || page_size > kMaxPageSize) {
    return common::InvalidField("page_size", absl::StrCat("must be between 1 and ", kMaxPageSize));
  }
  std::vector<std::string> statuses(request.statuses().begin(), request.statuses().end());
  for (size_t i = 0; i < statuses.size(); ++i) {
    if (!IsMemberStatus(statuses[i])) {
      return common::InvalidField(absl::StrCat("statuses[", i, "]"), std::string(kMemberStatusChoice));
    }
  }
  // A token continues the listing of this organisation and these statuses only.
  const std::string scope = absl::StrCat("members:", request.org_code(), "/", absl::StrJoin(statuses, ","));
  int64_t after = 0;
  if (!request.page_token().empty()) {
    auto raw = common::ReadPageToken(request.page_token(), scope);
    if (!raw.ok()) return raw.status();
    if (!absl::SimpleAtoi(*raw, &after) || after < 0) {
      return common::InvalidField("page_token", "is not a token this service issued");
    }
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto path = Track(*conn, SubtreePath(**conn, request.org_code()));
  if (!path.ok()) return path.status();
  auto rows = Track(*conn, repo_.ListSubtree(**conn, *path, statuses, after, page_size + 1));
  if (!rows.ok()) return rows.status();
  v1::ListMembersResponse response;
  if (static_cast<int>(rows->size()) > page_size) {
    rows->resize(page_size);
    response.set_next_page_token(common::MakePageToken(scope, std::to_string(rows->back().m.member_id())));
  }
  for (const auto& r : *rows) *response.add_members() = Output(r, pii);
  return response;
}

absl::StatusOr<v1::Member> MemberLogic::Step(const v1::StepMemberRequest& request, bool pii, absl::Time deadline) {
  if (request.member_id() <= 0) return common::InvalidField("member_id", "must be a positive number");
  if (request.step().empty()) return common::InvalidField("step", "is required");
  // Before anything is looked up: an unknown step is a malformed request whatever the member.
  if (!IsStep(request.step())) return common::InvalidField("step", std::string(kStepChoice));
  if (auto s = CheckCodeArg("deciding_org_code", request.deciding_org_code()); !s.ok()) return s;
  if (auto s = CheckRecorder(request.recorded_by()); !s.ok()) return s;
  auto effective = common::ParseDate(request.effective_on());
  if (!effective.ok()) return common::InvalidField("effective_on", std::string(effective.status().message()));
  // A date in the future is a malformed request (as in CorrectMember), not a broken rule.
  if (*effective > today_()) return common::InvalidField("effective_on", "must not be in the future");
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  common::Transaction tx(**conn);
  if (auto s = Track(*conn, tx.Begin()); !s.ok()) return s;
  if (auto s = Track(*conn, feed_.Lock(**conn)); !s.ok()) return s;
  auto deciding = Track(*conn, orgs_.Find(**conn, request.deciding_org_code()));
  if (!deciding.ok()) return deciding.status();
  if (!deciding->has_value()) {
    return absl::NotFoundError(absl::StrCat("deciding_org_code: organisation ", request.deciding_org_code(),
                                            " does not exist"));
  }
  auto found = Track(*conn, repo_.Find(**conn, request.member_id(), /*for_update=*/true));
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    return absl::NotFoundError(absl::StrCat("member_id: member ", request.member_id(), " does not exist"));
  }
  StoredMember row = **found;
  const v1::Member before = row.m;
  const absl::CivilDay last = common::ParseDate(row.last_effective).value_or(absl::CivilDay(1900, 1, 1));
  if (auto s = ApplyStep(row.m, request.step(), *effective, request.extension_months(), last, today_()); !s.ok()) {
    return s;
  }
  std::vector<Pending> pending{{&row, EventRow{}}};
  pending[0].event.kind = request.step();
  pending[0].event.effective_on = common::FormatDate(*effective);
  pending[0].event.deciding_org = request.deciding_org_code();
  pending[0].event.recorded_by = request.recorded_by();
  pending[0].event.details = Diff(before, row.m);
  if (auto s = Track(*conn, Write(**conn, pending)); !s.ok()) return s;
  if (auto s = Track(*conn, tx.Commit()); !s.ok()) return s;
  Invalidate({row.m.member_id()});
  return Output(row, pii);
}

absl::StatusOr<v1::Member> MemberLogic::Correct(const v1::CorrectMemberRequest& request, bool pii,
                                                absl::Time deadline) {
  static const auto* kFields = new std::vector<std::string>{
      "name",   "gender",     "ethnicity", "education", "occupation", "phone", "org_code", "applied_on",
      "joined_on", "full_on", "monthly_income_fen", "is_mobile"};
  if (request.member_id() <= 0) return common::InvalidField("member_id", "must be a positive number");
  if (auto s = CheckRecorder(request.recorded_by()); !s.ok()) return s;
  if (auto s = CheckOptionalCodeArg("deciding_org_code", request.deciding_org_code()); !s.ok()) return s;
  if (request.update_mask().paths().empty()) return common::InvalidField("update_mask", "name the fields to correct");
  for (const auto& p : request.update_mask().paths()) {
    if (std::find(kFields->begin(), kFields->end(), p) == kFields->end()) {
      return common::InvalidField("update_mask", absl::StrCat("field '", p.substr(0, 40), "' cannot be corrected"));
    }
  }
  const absl::CivilDay today = today_();
  absl::CivilDay effective = today;
  if (!request.effective_on().empty()) {
    auto d = common::ParseDate(request.effective_on());
    if (!d.ok()) return common::InvalidField("effective_on", std::string(d.status().message()));
    if (*d > today) return common::InvalidField("effective_on", "must not be in the future");
    effective = *d;
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  common::Transaction tx(**conn);
  if (auto s = Track(*conn, tx.Begin()); !s.ok()) return s;
  if (auto s = Track(*conn, feed_.Lock(**conn)); !s.ok()) return s;
  auto found = Track(*conn, repo_.Find(**conn, request.member_id(), /*for_update=*/true));
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    return absl::NotFoundError(absl::StrCat("member_id: member ", request.member_id(), " does not exist"));
  }
  StoredMember row = **found;
  // History is appended to, never rewritten: a correction dated before the last event is refused.
  if (auto s = CheckNotBeforeLastEvent(
          effective, common::ParseDate(row.last_effective).value_or(absl::CivilDay(1900, 1, 1)));
      !s.ok()) {
    return s;
  }
  const v1::Member before = row.m;
  const v1::Member& c = request.member();
  v1::Member& m = row.m;
  for (const auto& f : request.update_mask().paths()) {
    if (f == "name") m.set_name(c.name());
    else if (f == "gender") m.set_gender(c.gender());
    else if (f == "ethnicity") m.set_ethnicity(c.ethnicity());
    else if (f == "education") m.set_education(c.education());
    else if (f == "occupation") m.set_occupation(c.occupation());
    else if (f == "phone") m.set_phone(c.phone());
    else if (f == "org_code") m.set_org_code(c.org_code());
    else if (f == "applied_on") m.set_applied_on(c.applied_on());
    else if (f == "joined_on") m.set_joined_on(c.joined_on());
    else if (f == "full_on") m.set_full_on(c.full_on());
    else if (f == "is_mobile") m.set_is_mobile(c.is_mobile());
    else if (f == "monthly_income_fen") {
      if (c.has_monthly_income_fen()) m.set_monthly_income_fen(c.monthly_income_fen()); else m.clear_monthly_income_fen();
    }
  }
  // Validate the corrected record as a whole (the ID number only in memory, for its checks).
  v1::Member check = m;
  auto clear = pii_.Open(row.id_sealed);
  if (!clear.ok()) return clear.status();
  check.set_id_number(*clear);
  if (auto v = NormaliseMember(check, today, m.extension_months()); !v.empty()) return ToStatus(v, "member.");
  if (auto v = CheckAdmissionAgainstSteps(m.joined_on(), m.activist_on(), m.target_on())) {
    return ToStatus({*v}, "member.");
  }
  const std::string deciding = request.deciding_org_code().empty() ? before.org_code() : request.deciding_org_code();
  for (const auto& [field, code] : {std::pair<std::string_view, std::string>{"member.org_code", m.org_code()},
                                    std::pair<std::string_view, std::string>{"deciding_org_code", deciding}}) {
    auto org = Track(*conn, orgs_.Find(**conn, code));
    if (!org.ok()) return org.status();
    if (!org->has_value()) {
      return absl::NotFoundError(absl::StrCat(absl::string_view(field.data(), field.size()), ": organisation ", code,
                                              " does not exist"));
    }
  }
  const std::string details = Diff(before, m);
  if (details == "{}") return Output(row, pii);  // nothing to correct: no event
  std::vector<Pending> pending{{&row, EventRow{}}};
  pending[0].event.kind = "corrected";
  pending[0].event.effective_on = common::FormatDate(effective);
  pending[0].event.deciding_org = deciding;
  pending[0].event.recorded_by = request.recorded_by();
  pending[0].event.details = details;
  if (auto s = Track(*conn, Write(**conn, pending)); !s.ok()) return s;
  if (auto s = Track(*conn, tx.Commit()); !s.ok()) return s;
  Invalidate({row.m.member_id()});
  return Output(row, pii);
}

absl::StatusOr<v1::ListMemberEventsResponse> MemberLogic::Events(int64_t member_id, absl::Time deadline) {
  if (member_id <= 0) return common::InvalidField("member_id", "must be a positive number");
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto events = Track(*conn, repo_.ListEvents(**conn, member_id));
  if (!events.ok()) return events.status();
  if (events->empty()) return absl::NotFoundError(absl::StrCat("member_id: member ", member_id, " does not exist"));
  v1::ListMemberEventsResponse out;
  for (const auto& e : *events) ToMemberEvent(e, *out.add_events());
  return out;
}

absl::StatusOr<v1::ListOverdueProbationResponse> MemberLogic::Overdue(const v1::ListOverdueProbationRequest& request,
                                                                      bool pii, absl::Time deadline) {
  if (auto s = CheckCodeArg("org_code", request.org_code()); !s.ok()) return s;
  absl::CivilDay as_of = today_();
  if (!request.as_of().empty()) {
    auto d = common::ParseDate(request.as_of());
    if (!d.ok()) return common::InvalidField("as_of", std::string(d.status().message()));
    as_of = *d;
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto path = Track(*conn, SubtreePath(**conn, request.org_code()));
  if (!path.ok()) return path.status();
  auto rows = Track(*conn, repo_.Overdue(**conn, *path, common::FormatDate(as_of)));
  if (!rows.ok()) return rows.status();
  v1::ListOverdueProbationResponse out;
  for (const auto& r : *rows) {
    auto* o = out.add_overdue();
    *o->mutable_member() = Output(r, pii);
    auto joined = common::ParseDate(r.m.joined_on());
    if (joined.ok()) o->set_due_on(common::FormatDate(ProbationEnd(*joined, r.m.extension_months())));
  }
  return out;
}

absl::StatusOr<int64_t> MemberLogic::CountOverdue(absl::Time deadline) {
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  return Track(*conn, repo_.CountOverdue(**conn, common::FormatDate(today_())));
}

absl::StatusOr<v1::KinRelation> MemberLogic::AddKin(const v1::AddKinRequest& request, bool pii, absl::Time deadline) {
  if (request.member_id() <= 0) return common::InvalidField("member_id", "must be a positive number");
  if (request.kin_member_id() <= 0) return common::InvalidField("kin_member_id", "must be a positive number");
  if (request.member_id() == request.kin_member_id()) {
    return common::InvalidField("kin_member_id", "a member cannot be their own kin");
  }
  if (!IsKinRelation(request.relation())) {
    return common::InvalidField("relation", "must be spouse, parent, child, sibling or in_law");
  }
  const int64_t src_len = common::Utf8Length(request.source());
  if (request.source().empty() || src_len < 0 || src_len > 100) {
    return common::InvalidField("source", "is required: where the relation is known from, at most 100 characters");
  }
  if (auto s = CheckRecorder(request.recorded_by()); !s.ok()) return s;
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  common::Transaction tx(**conn);
  if (auto s = Track(*conn, tx.Begin()); !s.ok()) return s;
  if (auto s = Track(*conn, feed_.Lock(**conn)); !s.ok()) return s;
  for (const auto& [field, id] : {std::pair<std::string_view, int64_t>{"member_id", request.member_id()},
                                   std::pair<std::string_view, int64_t>{"kin_member_id", request.kin_member_id()}}) {
    auto found = Track(*conn, repo_.Find(**conn, id));
    if (!found.ok()) return found.status();
    if (!found->has_value()) {
      return absl::NotFoundError(absl::StrCat(absl::string_view(field.data(), field.size()), ": member ", id,
                                              " does not exist"));
    }
  }
  // Two members are related one way: a second, different relation of the pair (spouse and
  // sibling, or each the other's parent) contradicts the first.
  auto recorded = Track(*conn, repo_.ListKin(**conn, {request.member_id()}));
  if (!recorded.ok()) return recorded.status();
  for (const auto& k : *recorded) {
    if (k.kin_member_id != request.kin_member_id()) continue;
    if (k.relation == request.relation()) return absl::AlreadyExistsError("this relation is already recorded");
    return absl::FailedPreconditionError(
        absl::StrCat("ALREADY_RELATED: member ", request.member_id(), " is already recorded as ", k.relation,
                     " of member ", request.kin_member_id(), "; two members are related one way"));
  }
  auto added = Track(*conn, repo_.InsertKin(**conn, request.member_id(), request.kin_member_id(), request.relation(),
                                            request.source(), request.recorded_by()));
  if (!added.ok()) return added.status();
  if (!*added) return absl::AlreadyExistsError("this relation is already recorded");
  auto inverse = Track(*conn, repo_.InsertKin(**conn, request.kin_member_id(), request.member_id(),
                                              InverseRelation(request.relation()), request.source(),
                                              request.recorded_by()));
  if (!inverse.ok()) return inverse.status();
  if (auto s = Track(*conn, feed_.AppendKin(**conn, "added", request.member_id(), request.kin_member_id(),
                                            request.relation(), request.source(), request.recorded_by()));
      !s.ok()) {
    return s;
  }
  auto rows = Track(*conn, repo_.ListKin(**conn, {request.member_id()}));
  if (!rows.ok()) return rows.status();
  if (auto s = Track(*conn, tx.Commit()); !s.ok()) return s;
  for (const auto& k : *rows) {
    if (k.kin_member_id != request.kin_member_id() || k.relation != request.relation()) continue;
    v1::KinRelation r;
    r.set_member_id(k.member_id);
    r.set_id_hash(absl::BytesToHexString(k.id_hash));
    r.set_kin_member_id(k.kin_member_id);
    r.set_kin_id_hash(absl::BytesToHexString(k.kin_id_hash));
    r.set_kin_id_number(KinIdNumber(k, pii));
    r.set_kin_name(k.kin_name);
    r.set_relation(k.relation);
    r.set_source(k.source);
    return r;
  }
  return absl::InternalError("the relation just recorded cannot be read back");
}

absl::StatusOr<v1::ListKinResponse> MemberLogic::ListKin(const v1::ListKinRequest& request, bool pii,
                                                         absl::Time deadline) {
  const int selectors = (request.member_id() != 0) + !request.id_number().empty() + (request.id_hashes_size() > 0);
  if (selectors != 1) return common::InvalidField("member_id", "give exactly one of member_id, id_number, id_hashes");
  if (request.member_id() < 0) return common::InvalidField("member_id", "must be a positive number");
  if (request.id_hashes_size() > 1000) return common::InvalidField("id_hashes", "at most 1000 per call");
  std::vector<std::string> hashes;
  if (!request.id_number().empty()) {
    auto id = common::NormaliseIdNumber(request.id_number());
    if (!id.ok()) return common::InvalidField("id_number", std::string(id.status().message()));
    hashes.push_back(pii_.Hash(*id));
  }
  for (const auto& h : request.id_hashes()) {
    std::string bytes;
    if (h.size() != 32 || !std::all_of(h.begin(), h.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); })) {
      return common::InvalidField("id_hashes", "each must be 32 hex characters (Member.id_hash)");
    }
    hashes.push_back(absl::HexStringToBytes(h));
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  std::vector<int64_t> ids;
  if (request.member_id() != 0) ids.push_back(request.member_id());
  if (!hashes.empty()) {
    auto found = Track(*conn, repo_.IdsOf(**conn, hashes));
    if (!found.ok()) return found.status();
    for (const auto& [h, id] : *found) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
  }
  // One member asked for (by id or ID number) who is not registered: NOT_FOUND. A list of
  // hashes (a peer's bulk lookup) answers for those registered.
  if (request.id_hashes_size() == 0 && (ids.empty() || request.member_id() != 0)) {
    bool exists = !ids.empty();
    if (request.member_id() != 0) {
      auto found = Track(*conn, repo_.Find(**conn, request.member_id()));
      if (!found.ok()) return found.status();
      exists = found->has_value();
    }
    if (!exists) {
      return absl::NotFoundError(request.member_id() != 0
                                     ? absl::StrCat("member_id: member ", request.member_id(), " does not exist")
                                     : std::string("id_number: no member is registered with this ID number"));
    }
  }
  auto rows = Track(*conn, repo_.ListKin(**conn, ids));
  if (!rows.ok()) return rows.status();
  v1::ListKinResponse out;
  for (const auto& k : *rows) {
    auto* r = out.add_relations();
    r->set_member_id(k.member_id);
    r->set_id_hash(absl::BytesToHexString(k.id_hash));
    r->set_kin_member_id(k.kin_member_id);
    r->set_kin_id_hash(absl::BytesToHexString(k.kin_id_hash));
    r->set_kin_id_number(KinIdNumber(k, pii));
    r->set_kin_name(k.kin_name);
    r->set_relation(k.relation);
    r->set_source(k.source);
  }
  return out;
}

std::string MemberLogic::KinIdNumber(const KinRow& k, bool pii) const {
  if (!pii) return k.kin_id_masked;
  auto clear = pii_.Open(k.kin_id_sealed);
  return clear.ok() ? *clear : k.kin_id_masked;
}

absl::StatusOr<v1::ListKinOfPersonsResponse> MemberLogic::ListKinOfPersons(const v1::ListKinOfPersonsRequest& request,
                                                                           bool pii, absl::Time deadline) {
  constexpr int kMaxPersons = 1000;
  if (request.id_numbers_size() == 0 || request.id_numbers_size() > kMaxPersons) {
    return common::InvalidField("id_numbers", absl::StrCat("give 1 to ", kMaxPersons, " ID numbers per call, not ",
                                                           request.id_numbers_size()));
  }
  // The keyed hash of each number asked, by position (the message never echoes a number).
  std::vector<std::string> hashes;
  hashes.reserve(request.id_numbers_size());
  for (int i = 0; i < request.id_numbers_size(); ++i) {
    auto id = common::NormaliseIdNumber(request.id_numbers(i));
    if (!id.ok()) return common::InvalidField(absl::StrCat("id_numbers[", i, "]"), std::string(id.status().message()));
    hashes.push_back(pii_.Hash(*id));
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto members = Track(*conn, repo_.IdsOf(**conn, hashes));
  if (!members.ok()) return members.status();
  std::vector<int64_t> ids;
  ids.reserve(members->size());
  for (const auto& [hash, id] : *members) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  auto rows = Track(*conn, repo_.ListKin(**conn, ids));
  if (!rows.ok()) return rows.status();
  // Relatives of each member, in the repository's order (member_id, kin_member_id, relation).
  std::unordered_map<int64_t, std::vector<v1::KinOfPerson>> kin_of;
  for (const auto& k : *rows) {
    v1::KinOfPerson x;
    x.set_id_number(KinIdNumber(k, pii));
    x.set_id_hash(absl::BytesToHexString(k.kin_id_hash));
    x.set_relation(k.relation);
    x.set_source(k.source);
    kin_of[k.member_id].push_back(std::move(x));
  }
  v1::ListKinOfPersonsResponse out;
  for (const auto& hash : hashes) {
    auto* person = out.add_persons();
    auto member = members->find(hash);
    if (member == members->end()) continue;
    person->set_is_member(true);
    if (auto kin = kin_of.find(member->second); kin != kin_of.end()) {
      for (const auto& x : kin->second) *person->add_kin() = x;
    }
  }
  return out;
}

absl::StatusOr<v1::TypeFitReport> MemberLogic::TypeFit(const std::string& org_code, absl::Time deadline) {
  if (auto s = CheckCodeArg("org_code", org_code); !s.ok()) return s;
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto path = Track(*conn, SubtreePath(**conn, org_code));
  if (!path.ok()) return path.status();
  auto orgs = Track(*conn, repo_.SubtreeOrganisations(**conn, *path));
  if (!orgs.ok()) return orgs.status();
  auto counts = Track(*conn, repo_.CountByOrganisation(**conn, *path));
  if (!counts.ok()) return counts.status();
  struct Tally {
    const SubtreeOrg* org;
    int64_t subs = 0, full = 0, members = 0;
  };
  std::map<std::string, Tally> by_code;
  for (const auto& o : *orgs) by_code[o.org_code] = Tally{&o};
  for (const auto& o : *orgs) {
    if (o.org_type == "group" || o.org_code == org_code) continue;
    if (auto it = by_code.find(o.parent_code); it != by_code.end()) ++it->second.subs;
  }
  for (const auto& c : *counts) {
    auto it = by_code.find(c.org_code);
    if (it == by_code.end()) continue;
    // Members registered in a party group are members of the branch the group sits in.
    if (it->second.org->org_type == "group") {
      auto parent = by_code.find(it->second.org->parent_code);
      if (parent == by_code.end()) continue;
      it = parent;
    }
    it->second.full += c.full;
    it->second.members += c.members;
  }
  v1::TypeFitReport report;
  for (const auto& [code, t] : by_code) {
    const std::string& type = t.org->org_type;
    if (type == "group") continue;
    std::string misfit;
    if (t.subs == 0 && t.full < 3) misfit = "BELOW_MINIMUM";
    else if ((type == "branch" || type == "general_branch") && t.members >= 100) misfit = "SHOULD_BE_COMMITTEE";
    else if (type == "branch" && t.members > 50) misfit = "SHOULD_BE_GENERAL_BRANCH";
    if (misfit.empty()) continue;
    auto* e = report.add_entries();
    e->set_org_code(code);
    e->set_org_type(type);
    e->set_full_members(t.full);
    e->set_members(t.members);
    e->set_code(misfit);
  }
  return report;
}

absl::Status MemberLogic::Export(const std::string& org_code, bool pii,
                                 const std::function<bool(std::string_view)>& sink, size_t chunk_bytes) {
  if (auto s = CheckCodeArg("org_code", org_code); !s.ok()) return s;
  auto conn = pool_.Acquire(absl::Now() + absl::Seconds(10));
  if (!conn.ok()) return conn.status();
  auto path = Track(*conn, SubtreePath(**conn, org_code));
  if (!path.ok()) return path.status();
  auto orgs = Track(*conn, repo_.SubtreeOrganisations(**conn, *path));
  if (!orgs.ok()) return orgs.status();
  std::string buffer;
  common::AppendCsvRecord(buffer, MemberCsvColumns());
  std::vector<std::string> fields(MemberCsvColumns().size());
  constexpr int kPage = 2000;
  for (const auto& o : *orgs) {
    int64_t after = 0;
    while (true) {
      auto page = Track(*conn, repo_.ScanOrganisation(**conn, o.org_code, after, kPage));
      if (!page.ok()) return page.status();
      for (const auto& r : *page) {
        const v1::Member m = Output(r, pii);
        fields = {m.id_number(), m.name(), m.gender(), m.ethnicity(), m.birth_date(), m.education(), m.occupation(),
                  m.phone(), m.org_code(), m.status(), m.applied_on(), m.joined_on(), m.full_on(),
                  m.has_monthly_income_fen() ? std::to_string(m.monthly_income_fen()) : std::string(),
                  m.is_mobile() ? "1" : "0"};
        common::AppendCsvRecord(buffer, fields);
        if (buffer.size() >= chunk_bytes) {
          if (!sink(buffer)) return absl::CancelledError("the caller stopped the export");
          buffer.clear();
        }
      }
      if (static_cast<int>(page->size()) < kPage) break;
      after = page->back().m.member_id();
    }
  }
  if (!buffer.empty() && !sink(buffer)) return absl::CancelledError("the caller stopped the export");
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Import

// The import is a pipeline: the caller's thread parses and validates the file (CSV, field
// rules, keyed hash and seal, duplicates in the file) and hands batches of valid rows over a
// short bounded queue to kImportWriters writer threads, each with its own connection. A writer
// makes one transaction of a batch, so a row is written whole (member and event) or not at all:
//   1. ids for the batch from member_id_counter (outside the transaction);
//   2. every row loaded as a new member (LOAD DATA through a private named pipe); a row whose
//      ID number is registered is skipped by the database (unique id_hash) and taken up in 3;
//   3. the change-feed lock (every writer of members takes it first, so what is read next cannot
//      change before the commit); the skipped rows' members read FOR UPDATE, compared, checked
//      against the lifecycle and overwritten where the file changes them;
//   4. the batch's events, numbered in the feed, stored (the new members' "created" events
//      compactly, a few rows of member_created_events; the others loaded into member_events); commit.
// Step 2 runs outside the lock, so one writer's member load overlaps the other's events and
// commit. A lock conflict (deadlock with a concurrent writer of the same member) rolls the
// batch back and runs it again. Memory stays bounded by the queue (plus the file's hash set,
// needed for DUPLICATE_IN_FILE). Writers keep their own counters and errors; Finish merges them.
struct MemberLogic::Import::State {
  // The keyed hash, sealed and masked ID number of a row, in place: no allocation per row
  // (the parser allocates, a writer frees: the slow path of malloc).
  static constexpr size_t kIdLength = 18;  // a normalised ID number
  struct Row {
    int64_t line = 0;
    v1::Member* m = nullptr;  // on the batch's arena; id_number normalised
    std::array<char, common::PiiProtector::kHashBytes> hash_bytes;
    std::array<char, common::PiiProtector::SealedSize(kIdLength)> sealed_bytes;  // prepared here, off the writers
    std::array<char, kIdLength> masked_bytes;
    std::string_view hash() const { return {hash_bytes.data(), hash_bytes.size()}; }
    std::string_view sealed() const { return {sealed_bytes.data(), sealed_bytes.size()}; }
    std::string_view masked() const { return {masked_bytes.data(), masked_bytes.size()}; }
  };
  struct Batch {
    std::unique_ptr<google::protobuf::Arena> arena;
    std::vector<Row> rows;
  };
  struct Writer {
    common::PooledConnection conn;
    bool have_conn = false;
    std::unique_ptr<LoadPipe> pipe;
    exchange::v1::ImportReport report;
    absl::flat_hash_set<std::string> known_orgs, unknown_orgs;
    double t_load = 0, t_lock = 0, t_existing = 0, t_events = 0, t_commit = 0, t_idle = 0;
    int retries = 0;
    bool expect_registered = false;  // the last batch was mostly registered members
  };

  MemberLogic* logic = nullptr;
  std::string recorded_by;
  absl::CivilDay today;
  std::string today_s;
  std::unique_ptr<common::CsvReader> reader;
  common::CsvHeader header;
  std::vector<std::string> header_names;
  std::array<int, 15> col{};  // 0-based field index of each CsvFormat() column, -1 when absent
  bool have_header = false;
  bool file_refused = false;
  exchange::v1::ImportReport report;                       // parser side
  absl::flat_hash_map<Hash16, int64_t, Hash16Hasher> seen;  // hash -> line (no allocation per row)
  Batch batch;

  // Hand-over to the writers.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Batch> queue;
  bool closed = false;     // no more batches will come
  bool abandon = false;    // the import was dropped: roll back, write nothing more
  std::atomic<bool> failed{false};
  absl::Status failure;    // the first database failure (guarded by mu); it stops the import
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<Writer>> writers;
  // One import of members at a time (TakeImportLock).
  static constexpr absl::Duration kImportLockWait = absl::Minutes(15);
  std::optional<common::NamedLock> import_lock;
  double t_parse_wait = 0;

  ~State() { Stop(/*drop=*/true); }

  static void Add(exchange::v1::ImportReport& r, int64_t line, std::string_view column, std::string_view code,
                  std::string_view message) {
    auto* e = r.add_errors();
    e->set_line(line);
    // A column or message may repeat what the file held; the report's strings must be UTF-8.
    e->set_column(common::ValidUtf8(column));
    e->set_code(std::string(code));
    e->set_message(common::ValidUtf8(message));
  }
  void Error(int64_t line, std::string_view column, std::string_view code, std::string_view message) {
    Add(report, line, column, code, message);
  }
  void Refuse(int64_t line, std::string_view column, std::string_view code, std::string_view message) {
    Error(line, column, code, message);
    report.set_refused(report.refused() + 1);
  }
  static void Refuse(exchange::v1::ImportReport& r, int64_t line, std::string_view column, std::string_view code,
                     std::string_view message) {
    Add(r, line, column, code, message);
    r.set_refused(r.refused() + 1);
  }

  std::string_view Field(const common::CsvRecord& record, int c) const {
    const int i = col[c];
    return i >= 0 && static_cast<size_t>(i) < record.fields.size() ? std::string_view(record.fields[i])
                                                                   : std::string_view();
  }

  void NewBatch() {
    batch.arena = std::make_unique<google::protobuf::Arena>();
    batch.rows.clear();
    batch.rows.reserve(kImportBatch);
  }

  void OnRecord(common::CsvRecord& record) {
    if (file_refused || failed.load(std::memory_order_relaxed)) return;
    if (!have_header) {
      have_header = true;
      header_names = record.fields;
      auto problems = header.Bind(record.fields, CsvFormat());
      for (const auto& p : problems) Error(1, p.column_name, "BAD_HEADER", p.message);
      if (!problems.empty()) file_refused = true;
      for (size_t c = 0; c < col.size(); ++c) col[c] = header.IndexOf(CsvFormat()[c].name) - 1;
      return;
    }
    report.set_rows(report.rows() + 1);
    const int64_t line = record.line;
    std::vector<Violation> v;
    if (record.fields.size() != header.width()) {
      Refuse(line, std::string(header.FirstMissingColumn(record)), "WRONG_FIELD_COUNT",
             absl::StrCat("has ", record.fields.size(), " fields; the header has ", header.width()));
      return;
    }
    v1::Member& m = *google::protobuf::Arena::CreateMessage<v1::Member>(batch.arena.get());
    // The columns in CsvFormat() order (arena strings: no allocation for the short ones).
    auto f = [&](int c) { return Field(record, c); };
#define GR_SET(c, setter)                          \
  if (const std::string_view x = f(c); !x.empty()) \
    m.setter(x.data(), x.size());
    GR_SET(0, set_id_number)
    GR_SET(1, set_name)
    GR_SET(2, set_gender)
    GR_SET(3, set_ethnicity)
    GR_SET(4, set_birth_date)
    GR_SET(5, set_education)
    GR_SET(6, set_occupation)
    GR_SET(7, set_phone)
    GR_SET(8, set_org_code)
    GR_SET(9, set_status)
    GR_SET(10, set_applied_on)
    GR_SET(11, set_joined_on)
    GR_SET(12, set_full_on)
#undef GR_SET
    if (m.status().empty()) v.push_back({"status", "MISSING_VALUE", "is required"});
    if (std::string_view fen = Field(record, 13); !fen.empty()) {
      auto n = common::ParseFen(fen);
      if (!n.ok()) v.push_back({"monthly_income_fen", std::string(common::kInvalidMoneyCode), std::string(n.status().message())});
      else m.set_monthly_income_fen(*n);
    }
    if (std::string_view mobile = Field(record, 14); !mobile.empty()) {
      if (mobile == "1") m.set_is_mobile(true);
      else if (mobile != "0") v.push_back({"is_mobile", "INVALID_FLAG", "must be 0 or 1"});
    }
    for (auto& x : NormaliseMember(m, today)) v.push_back(std::move(x));
    Row row;
    const bool id_ok = std::none_of(v.begin(), v.end(), [](const Violation& x) { return x.field == "id_number"; });
    if (id_ok) {
      // An ID number seen before is refused whatever else is wrong with either row.
      logic->pii_.HashTo(m.id_number(), row.hash_bytes.data());
      auto [it, inserted] = seen.emplace(ToHash16(row.hash()), line);
      if (!inserted) {
        v.push_back({"id_number", "DUPLICATE_IN_FILE",
                     absl::StrCat("the same ID number already appears on line ", it->second, "; this row is refused")});
      }
    }
    if (!v.empty()) {
      for (const auto& x : v) Error(line, x.field, x.code, x.message);
      report.set_refused(report.refused() + 1);
      return;
    }
    row.line = line;
    row.m = &m;
    // What a new member needs, computed here so that the writers only talk to the database
    // (re-imports pay for a seal they do not use: about a microsecond a row).
    // NormaliseMember took only ID numbers of kIdLength characters.
    logic->pii_.SealTo(m.id_number(), row.sealed_bytes.data());
    const std::string masked = common::MaskIdNumber(m.id_number());
    std::memcpy(row.masked_bytes.data(), masked.data(), kIdLength);
    m.clear_id_number();  // the clear number goes no further than this thread
    batch.rows.push_back(std::move(row));
    if (batch.rows.size() >= kImportBatch) Hand();
  }

  // Hands the current batch to the writers (starting them on first use); waits while the queue is full.
  void Hand() {
    if (batch.rows.empty()) return;
    if (failed.load()) {  // nothing more is written; the rows are dropped
      NewBatch();
      return;
    }
    if (threads.empty()) {
      // Two imports at once (a retry while the first still runs, two offices sending the same
      // roster) run one after the other: side by side their batches deadlocked each other until
      // both gave up with part of the file written. The second waits here for the first.
      if (auto s = TakeImportLock(); !s.ok()) {
        Fail(std::move(s));
        NewBatch();
        return;
      }
      for (size_t i = 0; i < kImportWriters; ++i) writers.push_back(std::make_unique<Writer>());
      for (size_t i = 0; i < kImportWriters; ++i) threads.emplace_back([this, i] { WriterLoop(*writers[i]); });
    }
    const auto t0 = absl::Now();
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return queue.size() < kImportQueue || failed.load(); });
    t_parse_wait += absl::ToDoubleSeconds(absl::Now() - t0);
    if (!failed.load()) {
      queue.push_back(std::move(batch));
      cv.notify_all();
    }
    lock.unlock();
    NewBatch();
  }

  absl::Status TakeImportLock() {
    auto lock = common::NamedLock::Acquire(logic->pool_.options(), "grassroots_membership_import_members",
                                           absl::Now() + kImportLockWait);
    if (absl::IsDeadlineExceeded(lock.status())) {
      return absl::UnavailableError("another import of members has been running for longer than this one waits; "
                                    "send the file again later");
    }
    if (!lock.ok()) return lock.status();
    import_lock = std::move(*lock);
    return absl::OkStatus();
  }
  void ReleaseImportLock() { import_lock.reset(); }

  // Ends the hand-over and waits for the writers.
  void Stop(bool drop) {
    {
      std::lock_guard lock(mu);
      closed = true;
      if (drop) abandon = true;
      cv.notify_all();
    }
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }

  void Fail(absl::Status s) {
    std::lock_guard lock(mu);
    if (failure.ok()) failure = std::move(s);
    failed.store(true);
    queue.clear();
    cv.notify_all();
  }

  void WriterLoop(Writer& w) {
    while (true) {
      Batch b;
      {
        const auto t0 = absl::Now();
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return !queue.empty() || closed || failed.load(); });
        w.t_idle += absl::ToDoubleSeconds(absl::Now() - t0);
        if (abandon || failed.load() || queue.empty()) break;
        b = std::move(queue.front());
        queue.pop_front();
        cv.notify_all();
      }
      absl::Status s;
      for (int attempt = 1;; ++attempt) {
        exchange::v1::ImportReport delta;
        // A retry takes the change-feed lock before it loads anything, like every other writer
        // of members: it cannot run into the same lock conflict again.
        s = WriteBatch(w, b, delta, /*lock_first=*/attempt > 1);
        if (s.ok()) {
          w.report.set_inserted(w.report.inserted() + delta.inserted());
          w.report.set_updated(w.report.updated() + delta.updated());
          w.report.set_unchanged(w.report.unchanged() + delta.unchanged());
          w.report.set_refused(w.report.refused() + delta.refused());
          for (auto& e : *delta.mutable_errors()) *w.report.add_errors() = std::move(e);
          break;
        }
        // A statement that failed half-way through LOAD DATA LOCAL can leave the connection out
        // of step with the server: it is never used again (nor handed back to the pool).
        if (w.have_conn) {
          w.conn.MarkBroken();
          w.conn = common::PooledConnection();
          w.have_conn = false;
        }
        // A deadlock or lock wait timeout with a concurrent writer rolled the batch back.
        if (s.code() != absl::StatusCode::kAborted || attempt == kImportAttempts) break;
        ++w.retries;
        common::LogWarning("member import batch rolled back; running it again",
                           {{"attempt", int64_t{attempt}}, {"error", std::string(s.message())}});
      }
      if (!s.ok()) {
        Fail(s);
        break;
      }
    }
    // The connection goes back to the pool from this thread; the pipe and its directory go.
    w.pipe.reset();
    if (w.have_conn) {
      w.conn = common::PooledConnection();
      w.have_conn = false;
    }
  }

  // One batch in one transaction (see the comment above State). Rows are only read here, so a
  // rolled-back attempt can run again.
  absl::Status WriteBatch(Writer& w, Batch& b, exchange::v1::ImportReport& delta, bool lock_first) {
    MemberLogic& L = *logic;
    if (!w.have_conn) {
      auto c = L.pool_.Acquire(absl::Now() + absl::Seconds(30));
      if (!c.ok()) return c.status();
      w.conn = std::move(*c);
      w.have_conn = true;
    }
    if (!w.pipe) {
      auto p = LoadPipe::Create();
      if (!p.ok()) return p.status();
      w.pipe = std::move(*p);
    }
    sql::Connection& db = *w.conn;
    auto t0 = absl::Now();
    // Organisations not seen before by this writer.
    std::vector<std::string> codes;
    for (const auto& r : b.rows) {
      const auto& c = r.m->org_code();
      if (!w.known_orgs.contains(c) && !w.unknown_orgs.contains(c)) codes.push_back(c);
    }
    std::sort(codes.begin(), codes.end());
    codes.erase(std::unique(codes.begin(), codes.end()), codes.end());
    if (!codes.empty()) {
      auto found = L.orgs_.FindMany(db, codes);
      if (!found.ok()) return found.status();
      for (const auto& o : *found) w.known_orgs.insert(o.org.org_code());
      for (const auto& c : codes) {
        if (!w.known_orgs.contains(c)) w.unknown_orgs.insert(c);
      }
    }
    std::vector<const Row*> rows;
    rows.reserve(b.rows.size());
    for (const auto& r : b.rows) {
      if (w.unknown_orgs.contains(r.m->org_code())) {
        Refuse(delta, r.line, "org_code", "UNKNOWN_ORGANISATION",
               absl::StrCat("organisation ", r.m->org_code(), " is not registered"));
      } else {
        rows.push_back(&r);
      }
    }
    if (rows.empty()) return absl::OkStatus();
    const int64_t n = static_cast<int64_t>(rows.size());
    auto first = L.repo_.AllocateMemberIds(db, n);
    if (!first.ok()) return first.status();

    common::Transaction tx(db);
    if (auto s = tx.Begin(); !s.ok()) return s;
    // A file that repeats registered members (a re-import) is cheaper looked up first than
    // loaded and skipped row by row: when the writer's last batch was mostly registered, the
    // lock is taken first and the batch's registered members read (a plain read: the snapshot
    // begins after the lock), and only the rest loaded.
    std::vector<bool> is_new(rows.size(), true);
    std::deque<StoredMember> registered;  // stable addresses: by_hash points into it
    std::unordered_map<std::string_view, StoredMember*> by_hash;
    const bool lookup_first = lock_first || w.expect_registered;
    auto t1 = absl::Now();
    if (lookup_first) {
      if (auto s = L.feed_.Lock(db); !s.ok()) return s;
      std::vector<std::string> hashes;
      hashes.reserve(rows.size());
      for (const Row* r : rows) hashes.emplace_back(r->hash());
      auto got = L.repo_.FindByHashes(db, hashes, /*for_update=*/false);
      if (!got.ok()) return got.status();
      for (auto& m : *got) {
        registered.push_back(std::move(m));
        by_hash.emplace(registered.back().id_hash, &registered.back());
      }
      for (int64_t i = 0; i < n; ++i) is_new[i] = !by_hash.contains(rows[i]->hash());
      t1 = absl::Now();
      w.t_lock += absl::ToDoubleSeconds(t1 - t0);
    }
    // 2. Every row (not known to be registered) as a new member (the row's member takes the new member's output-only fields:
    // set again on every attempt; the file's facts are not touched).
    std::vector<NewMemberRow> load;
    load.reserve(rows.size());
    std::vector<int64_t> loaded_index;  // index in rows of each load row
    loaded_index.reserve(rows.size());
    for (int64_t i = 0; i < n; ++i) {
      if (!is_new[i]) continue;
      const Row& r = *rows[i];
      v1::Member& m = *r.m;
      m.set_member_id(*first + i);
      m.set_version(1);
      if (IsExitStatus(m.status())) m.set_exited_on(today_s);
      load.push_back({&m, r.hash(), r.sealed(), r.masked()});
      loaded_index.push_back(i);
    }
    auto loaded = L.repo_.LoadNewMembers(db, load, *w.pipe);
    if (!loaded.ok()) return loaded.status();
    const int64_t tried = static_cast<int64_t>(load.size());
    if (loaded->stored != tried) {
      // The skipped rows are registered members (a skipped duplicate is one warning each).
      if (loaded->warnings != tried - loaded->stored) {
        return absl::InternalError(absl::StrCat("write members: ", loaded->warnings, " warnings for ",
                                                tried - loaded->stored, " skipped rows; nothing of this batch is kept"));
      }
      std::vector<int64_t> ids;
      if (loaded->stored > 0) {
        auto got = L.repo_.IdsBetween(db, *first, *first + n - 1);
        if (!got.ok()) return got.status();
        ids = std::move(*got);
      }
      for (const int64_t i : loaded_index) is_new[i] = std::binary_search(ids.begin(), ids.end(), *first + i);
    }
    auto t2 = absl::Now();
    w.t_load += absl::ToDoubleSeconds(t2 - t1);
    // 3. From here on this transaction holds the change-feed lock.
    if (!lookup_first) {
      if (auto s = L.feed_.Lock(db); !s.ok()) return s;
      const auto t = absl::Now();
      w.t_lock += absl::ToDoubleSeconds(t - t2);
      t2 = t;
    }
    std::vector<std::string> hashes;
    for (int64_t i = 0; i < n; ++i) {
      if (!is_new[i] && !by_hash.contains(rows[i]->hash())) hashes.emplace_back(rows[i]->hash());
    }
    if (!hashes.empty()) {
      // Rows the load skipped (the snapshot may predate the lock: read them FOR UPDATE).
      auto got = L.repo_.FindByHashes(db, hashes, /*for_update=*/true);
      if (!got.ok()) return got.status();
      const size_t known = by_hash.size();
      for (auto& m : *got) {
        registered.push_back(std::move(m));
        by_hash.emplace(registered.back().id_hash, &registered.back());
      }
      if (by_hash.size() != known + hashes.size()) {
        return absl::InternalError("write members: the database skipped a row that is not a registered member");
      }
    }
    w.expect_registered = 2 * (n - static_cast<int64_t>(std::count(is_new.begin(), is_new.end(), true))) > n;
    std::vector<EventRow> created, events;
    created.reserve(rows.size());
    std::vector<const StoredMember*> updates;
    for (int64_t i = 0; i < n; ++i) {
      const Row& r = *rows[i];
      if (is_new[i]) {
        const v1::Member& m = *r.m;
        EventRow& e = created.emplace_back();
        e.member_id = m.member_id();
        e.version = 1;
        e.kind = "created";
        e.status_after = m.status();
        e.org_code = m.org_code();
        e.effective_on = StartDate(m, today);
        e.deciding_org = m.org_code();
        e.recorded_by = recorded_by;
        e.details = CompactCreatedDetails(m);
        delta.set_inserted(delta.inserted() + 1);
        continue;
      }
      StoredMember& cur = *by_hash.at(r.hash());
      if (SameFileFacts(cur.m, *r.m)) {
        delta.set_unchanged(delta.unchanged() + 1);
        continue;
      }
      if (auto bad = CheckTransition(cur.m, *r.m, today)) {
        Refuse(delta, r.line, bad->field, bad->code, bad->message);
        continue;
      }
      if (cur.m.extension_months() > 0 && !r.m->full_on().empty() && !r.m->joined_on().empty()) {
        const auto earliest = ProbationEnd(*common::ParseDate(r.m->joined_on()), cur.m.extension_months());
        if (*common::ParseDate(r.m->full_on()) < earliest) {
          Refuse(delta, r.line, "full_on", "TOO_EARLY_FOR_FULL",
                 absl::StrCat("full membership no earlier than the end of the extended probation (",
                              common::FormatDate(earliest), ")"));
          continue;
        }
      }
      const v1::Member before = cur.m;
      v1::Member& m = cur.m;
      m.set_name(r.m->name());
      m.set_gender(r.m->gender());
      m.set_ethnicity(r.m->ethnicity());
      m.set_birth_date(r.m->birth_date());
      m.set_education(r.m->education());
      m.set_occupation(r.m->occupation());
      m.set_phone(r.m->phone());
      m.set_org_code(r.m->org_code());
      m.set_applied_on(r.m->applied_on());
      m.set_joined_on(r.m->joined_on());
      m.set_full_on(r.m->full_on());
      if (r.m->has_monthly_income_fen()) m.set_monthly_income_fen(r.m->monthly_income_fen()); else m.clear_monthly_income_fen();
      m.set_is_mobile(r.m->is_mobile());
      if (m.status() != r.m->status()) {
        // The file has no activist or development-target dates. The stage a row lands on starts
        // with its event, today (as a step's would): the year as an activist then counts from
        // it. Stages a row passes over keep unknown dates (never the import's day, which may fall
        // after the file's joined_on).
        const int to = StatusRank(r.m->status());
        if (to == 1) m.set_activist_on(today_s);
        if (to == 2) m.set_target_on(today_s);
        if (to == 5) m.set_exited_on(today_s);
        m.set_status(r.m->status());
      }
      m.set_version(m.version() + 1);
      EventRow e;
      e.member_id = m.member_id();
      e.version = m.version();
      e.kind = before.status() != m.status() ? m.status() : "imported";
      e.status_after = m.status();
      e.org_code = m.org_code();
      e.effective_on = before.status() != m.status() ? StartDate(m, today) : today_s;
      e.deciding_org = m.org_code();
      e.recorded_by = recorded_by;
      e.details = Diff(before, m);
      events.push_back(std::move(e));
      updates.push_back(&cur);
      delta.set_updated(delta.updated() + 1);
    }
    if (auto s = L.repo_.UpdateMembers(db, updates); !s.ok()) return s;
    auto t3 = absl::Now();
    w.t_existing += absl::ToDoubleSeconds(t3 - t2);
    // 4. The events, numbered in the feed: the new members' (in the order of the file, stored
    // compactly), then the registered members' (in the order of the file, one row each).
    if (!created.empty() || !events.empty()) {
      auto seq = L.feed_.Reserve(db, static_cast<int64_t>(created.size() + events.size()));
      if (!seq.ok()) return seq.status();
      for (auto& e : created) e.change_seq = (*seq)++;
      for (auto& e : events) e.change_seq = (*seq)++;
      if (auto s = L.repo_.InsertCreatedEvents(db, created); !s.ok()) return s;
      if (auto s = L.repo_.LoadEvents(db, events, *w.pipe); !s.ok()) return s;
    }
    auto t4 = absl::Now();
    w.t_events += absl::ToDoubleSeconds(t4 - t3);
    if (auto s = tx.Commit(); !s.ok()) return s;
    std::vector<int64_t> changed;
    changed.reserve(updates.size());
    for (const StoredMember* u : updates) changed.push_back(u->m.member_id());
    L.Invalidate(changed);
    w.t_commit += absl::ToDoubleSeconds(absl::Now() - t4);
    return absl::OkStatus();
  }
};

MemberLogic::Import::Import(MemberLogic& logic, std::string recorded_by) : state_(std::make_unique<State>()) {
  State* st = state_.get();
  st->logic = &logic;
  st->recorded_by = std::move(recorded_by);
  st->today = logic.today_();
  st->today_s = common::FormatDate(st->today);
  st->NewBatch();
  st->reader = std::make_unique<common::CsvReader>(
      [st](common::CsvRecord& r) { st->OnRecord(r); },
      [st](const common::CsvSyntaxError& e) {
        if (st->file_refused) return;
        if (!st->have_header) {
          st->Error(e.line, "", "BAD_HEADER", e.message);
          st->file_refused = true;
          return;
        }
        st->report.set_rows(st->report.rows() + 1);
        const std::string column = e.column >= 1 && static_cast<size_t>(e.column) <= st->header_names.size()
                                       ? st->header_names[e.column - 1]
                                       : std::string();
        st->Refuse(e.line, column, "CSV_SYNTAX", e.message);
      });
}

// Dropped without Finish (the caller went away): the writers stop after the batch in hand (each
// batch is one transaction: those committed stay, whole), and write nothing more.
MemberLogic::Import::~Import() = default;

void MemberLogic::Import::Feed(std::string_view chunk) {
  if (state_->file_refused || state_->failed.load()) return;
  state_->reader->Feed(chunk);
}

std::unique_ptr<MemberLogic::Import> MemberLogic::StartImport(std::string recorded_by) {
  return std::make_unique<Import>(*this, std::move(recorded_by));
}

absl::StatusOr<exchange::v1::ImportReport> MemberLogic::Import::Finish() {
  State& st = *state_;
  const auto t0 = absl::Now();
  if (!st.file_refused && !st.failed.load()) st.reader->Finish();
  if (!st.have_header && !st.file_refused) {
    st.Error(1, "", "EMPTY_FILE", "the file has no header row");
    st.file_refused = true;
  }
  if (st.file_refused) {
    // Refused files never reach the writers: a bad header is seen before the first row.
    st.Stop(/*drop=*/true);
    exchange::v1::ImportReport report;
    report.set_file_refused(true);
    *report.mutable_errors() = st.report.errors();
    return report;
  }
  st.Hand();
  st.Stop(/*drop=*/false);
  st.ReleaseImportLock();  // every batch is committed (or the import failed and rolled back)
  exchange::v1::ImportReport& report = st.report;
  double load = 0, lock = 0, existing = 0, events = 0, commit = 0, idle = 0;
  int64_t retries = 0;
  for (auto& w : st.writers) {
    load += w->t_load;
    lock += w->t_lock;
    existing += w->t_existing;
    events += w->t_events;
    commit += w->t_commit;
    idle += w->t_idle;
    retries += w->retries;
  }
  common::LogInfo("member import phases",
                  {{"writers_load_members_s", load}, {"writers_wait_feed_lock_s", lock},
                   {"writers_registered_s", existing}, {"writers_load_events_s", events},
                   {"writers_commit_s", commit}, {"writers_idle_s", idle}, {"batch_retries", retries},
                   {"parser_blocked_s", st.t_parse_wait}, {"finish_s", absl::ToDoubleSeconds(absl::Now() - t0)}});
  {
    std::lock_guard lock_failure(st.mu);
    if (!st.failure.ok()) return st.failure;
  }
  for (auto& w : st.writers) {
    report.set_inserted(report.inserted() + w->report.inserted());
    report.set_updated(report.updated() + w->report.updated());
    report.set_unchanged(report.unchanged() + w->report.unchanged());
    report.set_refused(report.refused() + w->report.refused());
    for (auto& e : *w->report.mutable_errors()) *report.add_errors() = std::move(e);
    w->report.Clear();
  }
  // Sorted by line; every refused row reaches the caller (past what a report carries, kept for
  // ListImportErrors).
  if (auto s = common::BoundImportReport(st.logic->pool_, report); !s.ok()) return s;
  return report;
}

absl::StatusOr<exchange::v1::ListImportErrorsResponse> MemberLogic::ListImportErrors(
    const exchange::v1::ListImportErrorsRequest& request, absl::Time deadline) {
  return common::ListImportErrors(pool_, request, deadline);
}

}  // namespace grassroots::membership
