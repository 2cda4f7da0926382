#include "disbursement_logic.h"

#include "grassroots/common/import_errors.h"

#include <openssl/sha.h>

#include <algorithm>
#include <iterator>
#include <functional>
#include <unordered_map>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "disbursement/disbursement_engine.h"
#include "disbursement_logic_internal.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {
using namespace logic_internal;  // NOLINT: this file is part of DisbursementLogic

namespace logic_internal {

namespace {
constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
}  // namespace

std::string S(absl::string_view v) { return std::string(v.data(), v.size()); }

absl::StatusOr<int> PageSize(int requested, std::string_view field) {
  if (requested == 0) return kDefaultPageSize;
  if (requested < 0 || requested > kMaxPageSize) {
    return common::InvalidField(field, absl::StrCat("must be between 1 and ", kMaxPageSize));
  }
  return requested;
}

// Page tokens: common::MakePageToken of the fields joined by '\x1f'.
std::string MakeToken(const std::string& scope, const std::vector<std::string>& parts) {
  return common::MakePageToken(scope, absl::StrJoin(parts, "\x1f"));
}
absl::StatusOr<std::vector<std::string>> ReadToken(const std::string& token, const std::string& scope, size_t parts) {
  auto position = common::ReadPageToken(token, scope);
  if (!position.ok()) return position.status();
  std::vector<std::string> out = absl::StrSplit(*position, '\x1f');
  if (out.size() != parts) return common::InvalidField("page_token", "is not a token this service issued");
  return out;
}

Programme EngineProgramme(const ProgrammeRow& p) {
  Programme e;
  e.code = p.program_code;
  e.unit = p.unit == "household" ? ProgrammeUnit::kHousehold : ProgrammeUnit::kPerson;
  e.frequency = p.frequency == "yearly" ? Frequency::kYearly : Frequency::kMonthly;
  e.amount_fen = p.amount_fen;
  e.valid_from = p.valid_from;
  e.valid_to = p.valid_to;
  e.excludes_cadre_households = p.excludes_cadre_households;
  e.grace_days = p.grace_days;
  return e;
}

std::string PeriodFormMessage(const std::string& program_code, const std::string& frequency) {
  return absl::StrCat("programme ", program_code, " is ", frequency, ": its periods are ",
                      frequency == "monthly" ? "YYYY-MM" : "YYYY");
}

absl::Status CheckCode(std::string_view field, const std::string& code, bool required) {
  if (code.empty()) return required ? common::InvalidField(field, "is required") : absl::OkStatus();
  if (!common::IsCode(code)) return common::InvalidField(field, "must be 1 to 32 letters, digits or '-'");
  return absl::OkStatus();
}

absl::StatusOr<common::Period> CheckPeriod(std::string_view field, const std::string& period) {
  if (period.empty()) return common::InvalidField(field, "is required");
  auto p = common::ParsePeriod(period);
  if (!p.ok()) return common::InvalidField(field, S(p.status().message()));
  return *p;
}

absl::Status ProgrammeNotFound(std::string_view field, const std::string& code) {
  return absl::NotFoundError(absl::StrCat(std::string(field), ": programme ", code, " does not exist"));
}

}  // namespace logic_internal

namespace {

std::string MaskAccount(const std::string& account) {
  if (account.size() <= 4) return account;
  return absl::StrCat(std::string(account.size() - 4, '*'), account.substr(account.size() - 4));
}

}  // namespace

std::string_view FileKindName(FileKind kind) {
  switch (kind) {
    case FileKind::kProgrammes: return "programmes";
    case FileKind::kEnrolments: return "enrolments";
    case FileKind::kRecipients: return "recipients";
    case FileKind::kPayments: return "payments";
    case FileKind::kBatches: return "batches";
    case FileKind::kCivilEvents: return "civil_events";
  }
  return "";
}

std::string FindingIdOf(std::string_view rule, std::string_view program_code, std::string_view period,
                        std::string_view id_hash, std::string_view payment_id, std::string_view batch_id) {
  std::string key;
  for (std::string_view part : {rule, program_code, period, id_hash, payment_id, batch_id}) {
    absl::StrAppend(&key, part.size(), ":");
    key.append(part.data(), part.size());
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), 16));
}

DisbursementLogic::DisbursementLogic(common::ConnectionPool& pool, const common::PiiProtector& pii,
                                     KinshipSource& kinship, prometheus::Registry* registry, Clock clock,
                                     size_t person_cache_entries, OrganisationTree* tree)
    : pool_(pool),
      pii_(pii),
      kinship_(kinship),
      own_tree_(tree == nullptr ? std::make_unique<SingleOrganisation>() : nullptr),
      tree_(tree == nullptr ? *own_tree_ : *tree),
      clock_(clock ? std::move(clock) : Clock([] { return absl::Now(); })),
      person_numbers_(person_cache_entries),
      metrics_(std::make_unique<Metrics>(registry)),
      runs_(std::make_unique<common::checks::OperationRunner>(
          pool, "disbursement", [this](absl::Time) { return NewCheckRunId(clock_()); }, registry)) {}

DisbursementLogic::~DisbursementLogic() = default;

absl::StatusOr<exchange::v1::ListImportErrorsResponse> DisbursementLogic::ListImportErrors(
    const exchange::v1::ListImportErrorsRequest& request, absl::Time deadline) {
  return common::ListImportErrors(pool_, request, deadline);
}

// ---------------------------------------------------------------------------------------------
// Reads

namespace {

v1::Programme ToProto(const ProgrammeRow& p) {
  v1::Programme out;
  out.set_program_code(p.program_code);
  out.set_name(p.name);
  out.set_unit(p.unit);
  out.set_frequency(p.frequency);
  out.set_amount_fen(p.amount_fen);
  out.set_valid_from(p.valid_from.ToString());
  if (p.valid_to) out.set_valid_to(p.valid_to->ToString());
  out.set_excludes_cadre_households(p.excludes_cadre_households);
  out.set_grace_days(p.grace_days);
  return out;
}

// Reads by village subtree page over the villages in code order: the rest of the page token's
// village first (after its key), then the next villages from their start, one village a query,
// until one row more than the page is found (there is a next page) or the villages run out. A
// token's village that has left the subtree meanwhile is passed over.
template <typename Extra>
struct VillagePage {
  std::vector<std::pair<StoredRecipient, Extra>> rows;  // at most the page size
  bool more = false;
};
template <typename Extra>
absl::StatusOr<VillagePage<Extra>> ReadVillagePage(
    const std::vector<std::string>& villages, const std::optional<std::pair<std::string, SqlRow>>& token,
    int page_size,
    const std::function<absl::StatusOr<std::vector<std::pair<StoredRecipient, Extra>>>(
        const std::string& village, const std::optional<SqlRow>& after, int limit)>& read) {
  const size_t want = static_cast<size_t>(page_size) + 1;
  VillagePage<Extra> page;
  auto next = villages.begin();
  if (token) {
    next = std::lower_bound(villages.begin(), villages.end(), token->first);
    if (next != villages.end() && *next == token->first) {
      auto got = read(*next, token->second, static_cast<int>(want));
      if (!got.ok()) return got.status();
      page.rows = std::move(*got);
      ++next;
    }
  }
  for (; page.rows.size() < want && next != villages.end(); ++next) {
    auto got = read(*next, std::nullopt, static_cast<int>(want - page.rows.size()));
    if (!got.ok()) return got.status();
    for (auto& r : *got) page.rows.push_back(std::move(r));
  }
  page.more = page.rows.size() > static_cast<size_t>(page_size);
  if (page.more) page.rows.resize(page_size);
  return page;
}

template <typename Extra>
std::vector<std::string> HashesOf(const std::vector<std::pair<StoredRecipient, Extra>>& rows) {
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (const auto& [who, extra] : rows) out.push_back(who.id_hash);
  return out;
}

std::string EntitlementsScope(const v1::ListEntitlementsRequest& r) {
  return absl::StrCat("entitlements:", r.program_code(), "/", r.period());
}
std::string DisclosureScope(const v1::ListDisclosureRequest& r) {
  return absl::StrCat("disclosure:", r.org_code(), "/", r.period(), "/", r.program_code());
}

// The page token of a read by village subtree: the last row's village, then its key there
// (`key_parts` values, the second the person number, an integer above 0).
absl::StatusOr<std::pair<std::string, SqlRow>> ReadVillageToken(const std::string& token, const std::string& scope,
                                                                 size_t key_parts) {
  auto parts = ReadToken(token, scope, key_parts + 1);
  if (!parts.ok()) return parts.status();
  if ((*parts)[0].empty()) return common::InvalidField("page_token", "is not a token this service issued");
  SqlRow key;
  for (size_t i = 1; i < parts->size(); ++i) {
    if (i == 2) {
      int64_t n = 0;
      if (!absl::SimpleAtoi((*parts)[i], &n) || n <= 0) {
        return common::InvalidField("page_token", "is not a token this service issued");
      }
      key.push_back(SqlValue::Int(n));
    } else {
      key.push_back(SqlValue::Text((*parts)[i]));
    }
  }
  return std::make_pair((*parts)[0], std::move(key));
}

}  // namespace

absl::StatusOr<v1::ListProgrammesResponse> DisbursementLogic::ListProgrammes(absl::Time deadline) {
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto rows = Track(*conn, repo_.LoadProgrammes(**conn));
  if (!rows.ok()) return rows.status();
  v1::ListProgrammesResponse response;
  for (const auto& p : *rows) *response.add_programmes() = ToProto(p);
  return response;
}

// ID number as shown, by keyed hash: clear for a caller who may see personal data (a number that
// cannot be opened is shown masked), masked otherwise.
absl::StatusOr<DisbursementLogic::SubtreeRead> DisbursementLogic::StartSubtreeRead(const std::string& org_code,
                                                                                 int page_size,
                                                                                 const std::string& page_token,
                                                                                 const std::string& scope,
                                                                                 size_t key_parts, absl::Time deadline) {
  if (auto s = CheckCode("org_code", org_code, true); !s.ok()) return s;
  auto size = PageSize(page_size);
  if (!size.ok()) return size.status();
  SubtreeRead read;
  read.page_size = *size;
  if (!page_token.empty()) {
    auto t = ReadVillageToken(page_token, scope, key_parts);
    if (!t.ok()) return t.status();
    read.token = std::move(*t);
  }
  // Every organisation under the one asked for (the member registry's tree), in code order.
  auto villages = tree_.Subtree(org_code, deadline);
  if (!villages.ok()) return villages.status();
  read.villages = std::move(*villages);
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  read.conn = std::move(*conn);
  return read;
}

absl::StatusOr<std::unordered_map<std::string, std::string>> DisbursementLogic::ShownIdNumbers(
    common::PooledConnection& conn, const std::vector<std::string>& hashes, bool pii) {
  auto persons = Track(conn, repo_.FindPersons(*conn, hashes));
  if (!persons.ok()) return persons.status();
  std::unordered_map<std::string, std::string> out;
  for (const auto& p : *persons) {
    absl::StatusOr<std::string> clear = pii ? pii_.Open(p.id_sealed) : absl::StatusOr<std::string>();
    out.emplace(p.id_hash, pii && clear.ok() ? *clear : p.id_masked);
  }
  return out;
}

absl::StatusOr<v1::ListRecipientsResponse> DisbursementLogic::ListRecipients(const v1::ListRecipientsRequest& request,
                                                                            bool pii, absl::Time deadline) {
  // The token: the last row's village, household and person number.
  const std::string scope = absl::StrCat("recipients:", request.org_code());
  auto read = StartSubtreeRead(request.org_code(), request.page_size(), request.page_token(), scope, 2, deadline);
  if (!read.ok()) return read.status();
  auto& [page_size, token, villages, conn] = *read;
  // One row more than the page says whether there is a next page. The villages after the token's
  // are read 500 codes to a query (the index by village gives them in order).
  const size_t want = static_cast<size_t>(page_size) + 1;
  std::vector<StoredRecipient> rows;
  std::vector<std::string> rest = villages;
  if (token) {
    auto from = std::lower_bound(villages.begin(), villages.end(), token->first);
    if (from != villages.end() && *from == token->first) {
      auto got = Track(conn, repo_.ListRecipients(*conn, {token->first}, token->second[0].s, token->second[1].i,
                                                  static_cast<int>(want)));
      if (!got.ok()) return got.status();
      rows = std::move(*got);
      ++from;
    }
    rest.assign(from, villages.end());
  }
  constexpr size_t kVillagesPerQuery = 500;
  for (size_t at = 0; rows.size() < want && at < rest.size(); at += kVillagesPerQuery) {
    const auto first = rest.begin() + static_cast<std::ptrdiff_t>(at);
    const auto last = rest.begin() + static_cast<std::ptrdiff_t>(std::min(rest.size(), at + kVillagesPerQuery));
    auto got = Track(conn, repo_.ListRecipients(*conn, std::vector<std::string>(first, last), "", 0,
                                                static_cast<int>(want - rows.size())));
    if (!got.ok()) return got.status();
    for (auto& r : *got) rows.push_back(std::move(r));
  }
  const bool more = rows.size() > static_cast<size_t>(page_size);
  if (more) rows.resize(page_size);
  std::vector<std::string> hashes;
  for (const auto& r : rows) hashes.push_back(r.id_hash);
  auto shown = ShownIdNumbers(conn, hashes, pii);
  if (!shown.ok()) return shown.status();
  auto accounts = Track(conn, repo_.FindAccounts(*conn, hashes));
  if (!accounts.ok()) return accounts.status();
  const absl::CivilDay today = common::TodayInChina(clock_());
  // The registered account now: the latest whose account_since is not after today (formats.md);
  // a person whose accounts all start later has none yet.
  std::unordered_map<std::string, std::pair<absl::CivilDay, std::string>> current;
  for (const auto& [h, since, account] : *accounts) {
    if (today < since) continue;
    auto [it, fresh] = current.try_emplace(h, since, account);
    if (!fresh && it->second.first < since) it->second = {since, account};
  }
  v1::ListRecipientsResponse response;
  for (const auto& r : rows) {
    auto* out = response.add_recipients();
    out->set_id_number(shown->at(r.id_hash));
    out->set_name(pii ? r.name : common::MaskName(r.name));
    out->set_org_code(r.org_code);
    out->set_household_id(r.household_id);
    out->set_is_household_head(r.is_household_head);
    out->set_is_cadre(r.is_cadre);
    if (auto it = current.find(r.id_hash); it != current.end()) {
      out->set_account_no(pii ? it->second.second : MaskAccount(it->second.second));
      out->set_account_since(common::FormatDate(it->second.first));
    }
  }
  if (more) {
    response.set_next_page_token(
        MakeToken(scope, {rows.back().org_code, rows.back().household_id, absl::StrCat(rows.back().person_no)}));
  }
  return response;
}

absl::Status DisbursementLogic::KnownProgramme(common::PooledConnection& conn, const std::string& program_code,
                                               const common::Period* period) {
  if (program_code.empty()) return absl::OkStatus();
  auto programmes = Track(conn, repo_.LoadProgrammes(*conn));
  if (!programmes.ok()) return programmes.status();
  auto it = std::find_if(programmes->begin(), programmes->end(),
                         [&](const ProgrammeRow& p) { return p.program_code == program_code; });
  if (it == programmes->end()) return ProgrammeNotFound("program_code", program_code);
  if (period != nullptr && !PeriodFits(*period, it->frequency)) {
    return common::InvalidField("period", PeriodFormMessage(it->program_code, it->frequency));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ListEnrolmentsResponse> DisbursementLogic::ListEnrolments(const v1::ListEnrolmentsRequest& request,
                                                                            bool pii, absl::Time deadline) {
  if (auto s = CheckCode("program_code", request.program_code(), false); !s.ok()) return s;
  // The token: the last row's village, household, person number, programme and from_period.
  const std::string scope = absl::StrCat("enrolments:", request.org_code(), "/", request.program_code());
  auto read = StartSubtreeRead(request.org_code(), request.page_size(), request.page_token(), scope, 4, deadline);
  if (!read.ok()) return read.status();
  auto& [page_size, token, villages, conn] = *read;
  if (auto s = KnownProgramme(conn, request.program_code()); !s.ok()) return s;
  auto page = ReadVillagePage<StoredEnrolment>(
      villages, token, page_size, [&](const std::string& village, const std::optional<SqlRow>& after, int limit) {
        return Track(conn, repo_.ListVillageEnrolments(*conn, village, request.program_code(), after, limit));
      });
  if (!page.ok()) return page.status();
  auto shown = ShownIdNumbers(conn, HashesOf(page->rows), pii);
  if (!shown.ok()) return shown.status();
  v1::ListEnrolmentsResponse response;
  for (const auto& [who, e] : page->rows) {
    auto* out = response.add_enrolments();
    out->set_program_code(e.program_code);
    out->set_id_number(shown->at(who.id_hash));
    out->set_name(pii ? who.name : common::MaskName(who.name));
    out->set_org_code(who.org_code);
    out->set_household_id(who.household_id);
    out->set_from_period(e.from_period);
    out->set_to_period(e.to_period);
    if (e.amount_fen) out->set_amount_fen(*e.amount_fen);
  }
  if (page->more) {
    const auto& [who, e] = page->rows.back();
    response.set_next_page_token(
        MakeToken(scope, {who.org_code, who.household_id, absl::StrCat(who.person_no), e.program_code, e.from_period}));
  }
  return response;
}

absl::StatusOr<v1::ListCivilEventsResponse> DisbursementLogic::ListCivilEvents(
    const v1::ListCivilEventsRequest& request, bool pii, absl::Time deadline) {
  // The token: the last row's village, household, person number, event and date.
  const std::string scope = absl::StrCat("civil_events:", request.org_code());
  auto read = StartSubtreeRead(request.org_code(), request.page_size(), request.page_token(), scope, 4, deadline);
  if (!read.ok()) return read.status();
  auto& [page_size, token, villages, conn] = *read;
  if (token && !common::ParseDate(token->second[3].s).ok()) {
    return common::InvalidField("page_token", "is not a token this service issued");
  }
  auto page = ReadVillagePage<CivilEventRow>(
      villages, token, page_size, [&](const std::string& village, const std::optional<SqlRow>& after, int limit) {
        return Track(conn, repo_.ListVillageCivilEvents(*conn, village, after, limit));
      });
  if (!page.ok()) return page.status();
  auto shown = ShownIdNumbers(conn, HashesOf(page->rows), pii);
  if (!shown.ok()) return shown.status();
  v1::ListCivilEventsResponse response;
  for (const auto& [who, c] : page->rows) {
    auto* out = response.add_civil_events();
    out->set_id_number(shown->at(who.id_hash));
    out->set_name(pii ? who.name : common::MaskName(who.name));
    out->set_org_code(who.org_code);
    out->set_household_id(who.household_id);
    out->set_event(c.event);
    out->set_event_date(common::FormatDate(c.event_date));
    out->set_source_ref(c.source_ref);
  }
  if (page->more) {
    const auto& [who, c] = page->rows.back();
    response.set_next_page_token(MakeToken(scope, {who.org_code, who.household_id, absl::StrCat(who.person_no), c.event,
                                            common::FormatDate(c.event_date)}));
  }
  return response;
}

// What decides the entitlements of `hashes` (enrolled persons) to `programme`, as the check
// would read it: their enrolments in it, roll rows and deaths, and the same of everyone else in
// their households (a household programme's entitlement goes to one member; a cadre anywhere in a
// household excludes it); when the programme excludes cadre households, the cadres among the
// recorded kin of all of them (the member registry) and those cadres' kin. Kin that could not be
// looked up are UNAVAILABLE, never left out (without a registry configured there are none).
absl::StatusOr<DisbursementLogic::EntitlementData> DisbursementLogic::EntitlementInput(
    common::PooledConnection& conn, const std::vector<ProgrammeRow>& programmes, const ProgrammeRow& programme,
    const std::vector<std::string>& hashes) {
  EntitlementData data;
  DisbursementInput& in = data.in;
  for (const auto& p : programmes) {
    in.symbols.Intern(p.program_code);
    in.programmes.push_back(EngineProgramme(p));
  }
  auto page_roll = Track(conn, repo_.FindRecipients(*conn, hashes));
  if (!page_roll.ok()) return page_roll.status();
  std::vector<std::string> households;
  for (const auto& r : *page_roll) households.push_back(r.household_id);
  auto members = Track(conn, repo_.FindHouseholdMembers(*conn, households));
  if (!members.ok()) return members.status();
  std::vector<std::string> sorted_hashes = hashes;
  std::sort(sorted_hashes.begin(), sorted_hashes.end());
  sorted_hashes.erase(std::unique(sorted_hashes.begin(), sorted_hashes.end()), sorted_hashes.end());
  std::vector<std::string> all = sorted_hashes;
  for (const auto& [household, h] : *members) all.push_back(h);
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  // Keys: the ID numbers, opened here (in memory only).
  auto persons = Track(conn, repo_.FindPersons(*conn, all));
  if (!persons.ok()) return persons.status();
  for (const auto& p : *persons) {
    auto id = pii_.Open(p.id_sealed);
    std::optional<PersonKey> key = id.ok() ? PersonKeyOf(*id) : std::nullopt;
    if (!key) {
      return absl::InternalError(
          "a stored ID number this listing needs cannot be decrypted with the configured key");
    }
    data.key_of_hash[p.id_hash] = *key;
  }
  for (const auto& h : hashes) {
    if (!data.key_of_hash.contains(h)) return absl::InternalError("an enrolled person is missing from persons");
  }
  auto key = [&](const std::string& h) -> std::optional<PersonKey> {
    auto it = data.key_of_hash.find(h);
    return it == data.key_of_hash.end() ? std::nullopt : std::make_optional(it->second);
  };
  // The page's own roll entries are read already: the rest of their households'.
  std::vector<std::string> others;
  std::set_difference(all.begin(), all.end(), sorted_hashes.begin(), sorted_hashes.end(),
                      std::back_inserter(others));
  auto roll = Track(conn, repo_.FindRecipients(*conn, others));
  if (!roll.ok()) return roll.status();
  roll->insert(roll->end(), page_roll->begin(), page_roll->end());
  auto accounts = Track(conn, repo_.FindAccounts(*conn, all));
  if (!accounts.ok()) return accounts.status();
  absl::flat_hash_map<std::string, const StoredRecipient*> roll_of;
  for (const auto& r : *roll) roll_of[r.id_hash] = &r;
  for (const auto& [h, since, account] : *accounts) {
    auto r = roll_of.find(h);
    auto k = key(h);
    if (r == roll_of.end() || !k) continue;
    RecipientRow row;
    row.person = *k;
    row.household = in.symbols.Intern(r->second->household_id);
    row.account = in.symbols.Intern(account);
    row.account_since = DayNumberOf(since);
    row.is_household_head = r->second->is_household_head;
    row.is_cadre = r->second->is_cadre;
    in.recipients.push_back(row);
  }
  std::vector<StoredEnrolment> enrolment_keys;
  for (const auto& h : all) enrolment_keys.push_back({programme.program_code, h, "", "", std::nullopt});
  auto enrolments = Track(conn, repo_.FindEnrolments(*conn, enrolment_keys));
  if (!enrolments.ok()) return enrolments.status();
  const Symbol program = in.symbols.Find(programme.program_code);
  for (const auto& e : *enrolments) {
    auto k = key(e.id_hash);
    if (e.program_code != programme.program_code || !k) continue;
    Enrolment out;
    out.person = *k;
    out.program = program;
    out.from_period = PeriodCodeOf(common::ParsePeriod(e.from_period).value_or(common::Period{}));
    out.to_period = e.to_period.empty()
                        ? kOpenPeriod
                        : PeriodCodeOf(common::ParsePeriod(e.to_period).value_or(common::Period{}));
    out.amount_fen = e.amount_fen.value_or(kProgrammeAmount);
    in.enrolments.push_back(out);
  }
  std::vector<std::pair<std::string, CivilEventRow>> event_keys;
  for (const auto& h : all) event_keys.emplace_back(h, CivilEventRow{});
  std::vector<std::string> event_hashes;
  auto events = Track(conn, repo_.FindCivilEvents(*conn, event_keys, &event_hashes));
  if (!events.ok()) return events.status();
  for (size_t i = 0; i < events->size(); ++i) {
    auto k = key(event_hashes[i]);
    if ((*events)[i].event == "death" && k) in.civil_events.push_back({*k, CivilEventKind::kDeath, (*events)[i].event_date});
  }
  if (programme.excludes_cadre_households && kinship_.configured()) {
    // Kinship is recorded both ways: a cadre whose kin include one of them is among their kin.
    std::vector<PersonKey> asked;
    for (const auto& [h, k] : data.key_of_hash) asked.push_back(k);
    std::sort(asked.begin(), asked.end());
    std::vector<std::string> warnings;
    auto kin = kinship_.KinOfCadres(asked, warnings);
    if (!kin.ok()) return kin.status();
    std::vector<std::string> kin_hashes;
    absl::flat_hash_map<std::string, PersonKey> kin_of_hash;
    for (PersonKey k : *kin) {
      std::string h = pii_.Hash(IdNumberOf(k));
      kin_hashes.push_back(h);
      kin_of_hash.emplace(std::move(h), k);
    }
    auto kin_roll = Track(conn, repo_.FindRecipients(*conn, kin_hashes));
    if (!kin_roll.ok()) return kin_roll.status();
    std::vector<PersonKey> cadres;
    for (const auto& r : *kin_roll) {
      if (r.is_cadre) cadres.push_back(kin_of_hash.at(r.id_hash));
    }
    std::sort(cadres.begin(), cadres.end());
    cadres.erase(std::unique(cadres.begin(), cadres.end()), cadres.end());
    if (!cadres.empty()) {
      auto theirs = kinship_.KinOfCadres(cadres, warnings);
      if (!theirs.ok()) return theirs.status();
      in.kin_of_cadres = std::move(*theirs);
    }
    if (!warnings.empty()) {
      return absl::UnavailableError(absl::StrCat(
          "the recorded kin of cadres could not be looked up, so who is excluded as a cadre's kin is not known: ",
          warnings.front()));
    }
  }
  return data;
}

absl::StatusOr<v1::ListEntitlementsResponse> DisbursementLogic::ListEntitlements(
    const v1::ListEntitlementsRequest& request, bool pii, absl::Time deadline) {
  if (auto s = CheckCode("program_code", request.program_code(), true); !s.ok()) return s;
  auto period = CheckPeriod("period", request.period());
  if (!period.ok()) return period.status();
  auto page_size = PageSize(request.page_size());
  if (!page_size.ok()) return page_size.status();
  int64_t after_no = 0;
  if (!request.page_token().empty()) {
    auto parts = ReadToken(request.page_token(), EntitlementsScope(request), 1);
    if (!parts.ok()) return parts.status();
    if (!absl::SimpleAtoi((*parts)[0], &after_no) || after_no <= 0) {
      return common::InvalidField("page_token", "is not a token this service issued");
    }
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto programmes = Track(*conn, repo_.LoadProgrammes(**conn));
  if (!programmes.ok()) return programmes.status();
  const ProgrammeRow* programme = nullptr;
  for (const auto& p : *programmes) {
    if (p.program_code == request.program_code()) programme = &p;
  }
  if (programme == nullptr) return ProgrammeNotFound("program_code", request.program_code());
  if (!PeriodFits(*period, programme->frequency)) {
    return common::InvalidField("period", PeriodFormMessage(programme->program_code, programme->frequency));
  }
  auto enrolled = Track(*conn, repo_.ListEnrolledPersons(**conn, programme->program_code, after_no, *page_size + 1));
  if (!enrolled.ok()) return enrolled.status();
  const bool more = static_cast<int>(enrolled->size()) > *page_size;
  if (more) enrolled->resize(*page_size);
  std::vector<std::string> hashes;
  for (const auto& [no, h] : *enrolled) hashes.push_back(h);
  auto input = EntitlementInput(*conn, *programmes, *programme, hashes);
  if (!input.ok()) return input.status();
  std::vector<PersonKey> keys;
  for (const auto& h : hashes) keys.push_back(input->key_of_hash.at(h));
  auto answers = DecideEntitlements(input->in, programme->program_code, *period, keys);
  if (!answers.ok()) return answers.status();
  absl::flat_hash_map<PersonKey, const EntitlementAnswer*> answer_of;
  for (const auto& a : *answers) answer_of[a.person] = &a;
  // The ID numbers are opened already (the keys): shown clear or masked from them.
  auto shown = [&](PersonKey key) { return pii ? IdNumberOf(key) : MaskedIdNumberOf(key); };
  v1::ListEntitlementsResponse response;
  for (const auto& h : hashes) {
    const PersonKey key = input->key_of_hash.at(h);
    const EntitlementAnswer& a = *answer_of.at(key);
    auto* out = response.add_entitlements();
    out->set_program_code(programme->program_code);
    out->set_period(period->ToString());
    out->set_id_number(shown(key));
    out->set_entitled(a.entitled);
    if (a.entitled) out->set_amount_fen(a.amount_fen);
    out->set_reason(std::string(a.reason));
    if (a.held_by) out->set_held_by(shown(*a.held_by));
  }
  if (more) response.set_next_page_token(MakeToken(EntitlementsScope(request), {absl::StrCat(enrolled->back().first)}));
  return response;
}

absl::StatusOr<v1::ListDisclosureResponse> DisbursementLogic::ListDisclosure(const v1::ListDisclosureRequest& request,
                                                                            absl::Time deadline) {
  if (auto s = CheckCode("org_code", request.org_code(), true); !s.ok()) return s;
  auto period = CheckPeriod("period", request.period());
  if (!period.ok()) return period.status();
  if (auto s = CheckCode("program_code", request.program_code(), false); !s.ok()) return s;
  auto page_size = PageSize(request.page_size());
  if (!page_size.ok()) return page_size.status();
  std::vector<std::string> after = {"", "", ""};
  if (!request.page_token().empty()) {
    auto parts = ReadToken(request.page_token(), DisclosureScope(request), 3);
    if (!parts.ok()) return parts.status();
    if ((*parts)[2].empty()) return common::InvalidField("page_token", "is not a token this service issued");
    after = *parts;
  }
  // An organisation nobody registered is NOT_FOUND (not an empty disclosure), as is a programme.
  if (auto s = tree_.Known(request.org_code(), deadline); !s.ok()) return s;
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  if (auto s = KnownProgramme(*conn, request.program_code(), &*period); !s.ok()) return s;
  // Each payment net of its reversals, applied as the check applies them: in (paid_at,
  // payment_id) order, one that would bring the payment below zero skipped. A payment reversed in
  // full was not paid and is not listed; pages are filled past such rows.
  std::vector<DisclosureRow> rows;
  std::vector<std::string> cursor = after;
  for (bool exhausted = false; !exhausted && static_cast<int>(rows.size()) <= *page_size;) {
    auto chunk = Track(*conn, repo_.ListDisclosure(**conn, request.org_code(), period->ToString(),
                                                   request.program_code(), cursor[0], cursor[1], cursor[2],
                                                   *page_size + 1));
    if (!chunk.ok()) return chunk.status();
    exhausted = static_cast<int>(chunk->size()) < *page_size + 1;
    if (chunk->empty()) break;
    cursor = {chunk->back().program_code, chunk->back().id_masked, chunk->back().payment_id};
    std::vector<std::string> ids;
    for (const auto& d : *chunk) ids.push_back(d.payment_id);
    auto reversals = Track(*conn, repo_.FindReversalsOf(**conn, ids));
    if (!reversals.ok()) return reversals.status();
    absl::flat_hash_map<std::string_view, std::pair<size_t, size_t>> reversals_of;  // [first, end)
    for (size_t k = 0; k < reversals->size(); ++k) {
      auto [it, fresh] = reversals_of.try_emplace((*reversals)[k].reverses, k, k + 1);
      if (!fresh) it->second.second = k + 1;
    }
    for (auto& d : *chunk) {
      bool reversed = false;
      if (auto it = reversals_of.find(d.payment_id); it != reversals_of.end()) {
        for (size_t k = it->second.first; k < it->second.second; ++k) {
          const int64_t amount = (*reversals)[k].amount_fen;
          if (amount >= 0 || d.amount_fen + amount < 0) continue;  // a bad reversal nets nothing
          d.amount_fen += amount;
          reversed = true;
        }
      }
      if (reversed && d.amount_fen <= 0) continue;  // reversed in full: nothing was paid
      rows.push_back(std::move(d));
    }
  }
  const bool more = static_cast<int>(rows.size()) > *page_size;
  if (more) rows.resize(*page_size);
  v1::ListDisclosureResponse response;
  for (const auto& d : rows) {
    auto* out = response.add_payments();
    out->set_program_code(d.program_code);
    out->set_period(d.period);
    out->set_name(common::MaskName(d.name));
    out->set_id_number(d.id_masked);
    out->set_amount_fen(d.amount_fen);
    out->set_paid_on(common::FormatDate(common::ChinaDateOf(d.paid_at)));
  }
  if (more) response.set_next_page_token(MakeToken(DisclosureScope(request), {rows.back().program_code, rows.back().id_masked, rows.back().payment_id}));
  return response;
}

}  // namespace grassroots::cadrepay
