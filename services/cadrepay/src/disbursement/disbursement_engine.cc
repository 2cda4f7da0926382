#include "disbursement/disbursement_engine.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {
namespace {

// Debian's Abseil keeps its own string_view: convert at the boundary.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr DayNumber kNever = std::numeric_limits<DayNumber>::max();
constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
constexpr int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}
static_assert(DaysFromCivil(1970, 1, 1) == 0);
static_assert(DaysFromCivil(2000, 3, 1) == 11017);

int YearOf(PeriodCode p) { return static_cast<int>(p >> 4); }
int MonthOf(PeriodCode p) { return static_cast<int>(p & 15); }
bool IsMonthly(PeriodCode p) { return MonthOf(p) != 0; }

DayNumber PeriodFirstDay(PeriodCode p) {
  return static_cast<DayNumber>(DaysFromCivil(YearOf(p), IsMonthly(p) ? MonthOf(p) : 1, 1));
}

DayNumber PeriodLastDay(PeriodCode p) {
  const int y = YearOf(p);
  const int m = MonthOf(p);
  if (m == 0 || m == 12) return static_cast<DayNumber>(DaysFromCivil(y, 12, 31));
  return static_cast<DayNumber>(DaysFromCivil(y, m + 1, 1) - 1);
}

PeriodCode NextPeriod(PeriodCode p) {
  const int y = YearOf(p);
  const int m = MonthOf(p);
  if (m == 0) return static_cast<PeriodCode>((y + 1) * 16);
  if (m == 12) return static_cast<PeriodCode>((y + 1) * 16 + 1);
  return p + 1;
}

// The period of the given form that contains a day.
PeriodCode PeriodContaining(DayNumber day, bool monthly) {
  const absl::CivilDay d = CivilDayOf(day);
  return static_cast<PeriodCode>(d.year() * 16 + (monthly ? d.month() : 0));
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - (a % b < 0 ? 1 : 0); }

// The date in China Standard Time of an instant given in Unix microseconds.
DayNumber ChinaDayOf(int64_t unix_micros) {
  return static_cast<DayNumber>(FloorDiv(FloorDiv(unix_micros, 1000000) + 8 * 3600, 86400));
}

std::string DayString(DayNumber d) { return common::FormatDate(CivilDayOf(d)); }

constexpr std::array<std::string_view, kRuleCount> kRuleCodes = {
    "AFTER_DEATH", "BAD_REVERSAL",   "BATCH_MISMATCH", "CADRE_KIN",      "DUPLICATE",
    "LATE",        "NOT_ENTITLED",   "OUTSIDE_WINDOW", "OVER_PAID",      "SHARED_ACCOUNT",
    "SHORT_PAID",  "UNPAID",         "WRONG_ACCOUNT"};

// The indices of the rows to keep, ordered by a key (then by position). Rows that come in key
// order are used as they are; otherwise the sort costs a temporary (key, index) per row.
template <typename Key, typename KeyFn, typename KeepFn>
std::vector<uint32_t> SortedIndices(size_t n, KeyFn key_of, KeepFn keep) {
  std::vector<uint32_t> out;
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) kept += keep(i) ? 1 : 0;
  out.reserve(kept);
  bool sorted = true;
  for (size_t i = 0; i < n; ++i) {
    if (!keep(i)) continue;
    if (sorted && !out.empty() && key_of(i) < key_of(out.back())) sorted = false;
    out.push_back(static_cast<uint32_t>(i));
  }
  if (sorted) return out;
  std::vector<std::pair<Key, uint32_t>> keyed;
  keyed.reserve(out.size());
  for (const uint32_t i : out) keyed.emplace_back(key_of(i), i);
  std::sort(keyed.begin(), keyed.end());
  for (size_t k = 0; k < keyed.size(); ++k) out[k] = keyed[k].second;
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Compact values.

std::optional<PersonKey> PersonKeyOf(std::string_view id) {
  if (id.size() != 18) return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < 17; ++i) {
    if (id[i] < '0' || id[i] > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(id[i] - '0');
  }
  uint64_t check = 0;
  if (id[17] >= '0' && id[17] <= '9') {
    check = static_cast<uint64_t>(id[17] - '0');
  } else if (id[17] == 'X' || id[17] == 'x') {
    check = 10;
  } else {
    return std::nullopt;
  }
  return v * 11 + check;
}

std::string IdNumberOf(PersonKey key) {
  const uint64_t check = key % 11;
  std::string out = absl::StrFormat("%017u", key / 11);
  out.push_back(check == 10 ? 'X' : static_cast<char>('0' + check));
  return out;
}

std::string MaskedIdNumberOf(PersonKey key) { return common::MaskIdNumber(IdNumberOf(key)); }

PeriodCode PeriodCodeOf(const common::Period& p) {
  return static_cast<PeriodCode>(p.year * 16 + p.month);
}

common::Period PeriodOf(PeriodCode code) {
  common::Period p;
  p.year = YearOf(code);
  p.month = MonthOf(code);
  return p;
}

std::string PeriodString(PeriodCode code) { return PeriodOf(code).ToString(); }

DayNumber DayNumberOf(absl::CivilDay day) {
  return static_cast<DayNumber>(day - absl::CivilDay(1970, 1, 1));
}

absl::CivilDay CivilDayOf(DayNumber n) { return absl::CivilDay(1970, 1, 1) + n; }

TextRef TextStore::Add(std::string_view s) {
  if (s.empty()) return TextRef();
  if (s.size() > kMaxSize) {
    std::fprintf(stderr, "TextStore::Add: a string of %zu bytes is over the limit\n", s.size());
    std::abort();
  }
  if (used_in_last_ + s.size() > kChunkSize) {
    chunks_.push_back(std::make_unique_for_overwrite<char[]>(kChunkSize));
    used_in_last_ = 0;
  }
  const uint64_t chunk = chunks_.size() - 1;
  std::memcpy(chunks_.back().get() + used_in_last_, s.data(), s.size());
  const uint64_t bits = (chunk << 42) | (static_cast<uint64_t>(used_in_last_) << 20) | s.size();
  used_in_last_ += s.size();
  return TextRef(bits);
}

std::string_view TextStore::Get(TextRef ref) const {
  if (ref.empty()) return {};
  const uint64_t chunk = ref.bits_ >> 42;
  const uint64_t offset = (ref.bits_ >> 20) & ((uint64_t{1} << 22) - 1);
  return std::string_view(chunks_[chunk].get() + offset, ref.size());
}

struct SymbolTable::Impl {
  struct Hash {
    using is_transparent = void;
    const Impl* impl;
    size_t operator()(uint32_t id) const { return (*this)(impl->Name(id)); }
    size_t operator()(std::string_view s) const { return absl::Hash<absl::string_view>{}(Av(s)); }
  };
  struct Eq {
    using is_transparent = void;
    const Impl* impl;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, std::string_view b) const { return impl->Name(a) == b; }
    bool operator()(std::string_view a, uint32_t b) const { return a == impl->Name(b); }
  };
  std::string_view Name(uint32_t id) const { return text.Get(refs[id]); }

  TextStore text;
  std::vector<TextRef> refs;
  absl::flat_hash_set<uint32_t, Hash, Eq> index{0, Hash{this}, Eq{this}};
};

SymbolTable::SymbolTable() : impl_(std::make_unique<Impl>()) {}
SymbolTable::~SymbolTable() = default;
SymbolTable::SymbolTable(SymbolTable&&) noexcept = default;
SymbolTable& SymbolTable::operator=(SymbolTable&&) noexcept = default;

Symbol SymbolTable::Intern(std::string_view s) {
  // One probe: a new string takes the slot the search for it ended at (no second hash of it).
  return *impl_->index.lazy_emplace(s, [&](const auto& construct) {
    const auto id = static_cast<Symbol>(impl_->refs.size());
    impl_->refs.push_back(impl_->text.Add(s));
    construct(id);
  });
}

Symbol SymbolTable::Find(std::string_view s) const {
  if (auto it = impl_->index.find(s); it != impl_->index.end()) return *it;
  return kNoSymbol;
}

std::string_view SymbolTable::Name(Symbol symbol) const {
  if (symbol == kNoSymbol || symbol >= impl_->refs.size()) return {};
  return impl_->Name(symbol);
}

size_t SymbolTable::size() const { return impl_->refs.size(); }

std::string_view RuleCode(Rule rule) { return kRuleCodes[static_cast<size_t>(rule)]; }

std::optional<Rule> RuleFromCode(std::string_view code) {
  for (int i = 0; i < kRuleCount; ++i) {
    if (kRuleCodes[i] == code) return static_cast<Rule>(i);
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// The checks.
namespace {

struct ProgInfo {
  const Programme* def = nullptr;
  Symbol symbol = kNoSymbol;
  DayNumber window_first = 0;
  DayNumber window_last = kNever;
  bool monthly = true;
  bool household = false;
  bool excludes = false;
  bool in_scope = true;
  int grace = 5;
};

// Why a person is, or is not, entitled to a programme for a period.
enum class Why : uint8_t {
  kEntitled,
  kUnknownProgramme,  // NOT_ENTITLED
  kWrongForm,         // OUTSIDE_WINDOW
  kOutsideWindow,     // OUTSIDE_WINDOW
  kAfterDeath,        // AFTER_DEATH
  kCadre,             // CADRE_KIN
  kCadreHousehold,    // CADRE_KIN
  kKin,               // CADRE_KIN
  kNotEnrolled,       // NOT_ENTITLED
  kSuperseded,        // NOT_ENTITLED: another member of the household holds the entitlement
};

Rule RuleOf(Why why) {
  switch (why) {
    case Why::kWrongForm:
    case Why::kOutsideWindow:
      return Rule::kOutsideWindow;
    case Why::kAfterDeath:
      return Rule::kAfterDeath;
    case Why::kCadre:
    case Why::kCadreHousehold:
    case Why::kKin:
      return Rule::kCadreKin;
    default:
      return Rule::kNotEntitled;
  }
}

struct Verdict {
  Why why = Why::kEntitled;
  uint32_t enrolment = kNone;   // the enrolment the entitlement rests on
  int64_t amount = 0;           // what is owed
  PersonKey other = 0;          // kSuperseded: the member who holds the entitlement
};

// What the engine knows of a person, gathered from the sorted streams.
struct Facts {
  Symbol household = kNoSymbol;
  bool is_head = false;
  bool is_cadre = false;
  bool is_kin = false;
  DayNumber death = kNever;
  const uint32_t* rows = nullptr;  // recipient rows, by account_since
  size_t row_count = 0;
};

// A member of a household enrolled in a household programme.
struct HouseholdMember {
  PersonKey person;
  Symbol household;
  uint32_t prog;
  uint32_t enrolment;
  DayNumber death;
  uint8_t rank;              // 0: the household head
  bool personally_excluded;  // a cadre or a cadre's kin (the programme excludes them)
  auto Key() const { return std::tie(household, prog, rank, person, enrolment); }
};
static_assert(sizeof(HouseholdMember) == 32);

// An entitled standing payment of the person being judged.
struct EntitledPayment {
  uint32_t prog;
  PeriodCode period;
  int64_t paid_at;  // Unix microseconds
  std::string_view payment_id;
  uint32_t index;
  Verdict verdict;
};

class Checker final {
 public:
  Checker(const DisbursementInput& in, const CheckOptions& options)
      : in_(in), options_(options) {}

  absl::StatusOr<CheckResult> Run();
  // DecideEntitlements: the programme and period are the options' scope.
  absl::StatusOr<std::vector<EntitlementAnswer>> Entitlements(std::vector<PersonKey> persons);

 private:
  absl::Status PreparePrograms();
  bool PaymentInScope(const Payment& p) const;
  void CheckReversals();
  void CheckBatches();
  void FindSharedAccounts();
  void SortStreams();
  void BuildHouseholds();
  void JudgePeople();

  // Moves the cursors of the recipient, death, kin and cadre streams to `person` (ascending).
  Facts Seek(PersonKey person);
  void ResetCursors() { rec_pos_ = death_pos_ = kin_pos_ = cadre_pos_ = 0; }

  Verdict Entitle(PersonKey person, const Facts& facts, const uint32_t* enr,
                  size_t enr_count, uint32_t prog, PeriodCode period) const;
  bool MemberEntitled(const HouseholdMember& m, PeriodCode period) const;
  bool Covers(const Enrolment& e, PeriodCode period) const;
  int64_t OwedBy(const Enrolment& e, const ProgInfo& prog) const {
    return e.amount_fen != kProgrammeAmount ? e.amount_fen : prog.def->amount_fen;
  }

  void JudgePerson(PersonKey person, const Facts& facts,
                   const uint32_t* pay, size_t pay_count,
                   const uint32_t* enr, size_t enr_count);
  void ReportNotEntitled(const Payment& p, uint32_t index, int64_t net, uint32_t prog,
                         const Verdict& v, const Facts& facts);
  void JudgeEntitled(const EntitledPayment& ep, const EntitledPayment* first, const Facts& facts);

  int64_t NetOf(uint32_t index) const {
    if (!reversed_[index]) return in_.payments[index].amount_fen;
    return net_.at(index);
  }
  // Reversed in full: counts for no rule. Every other payment row stands (a 0-fen row too).
  bool ReversedInFull(uint32_t index) const { return reversed_[index] && net_.at(index) <= 0; }
  uint32_t ProgOf(Symbol program_symbol) const {
    auto it = prog_of_symbol_.find(program_symbol);
    return it == prog_of_symbol_.end() ? kNone : it->second;
  }
  std::string_view Sym(Symbol s) const { return in_.symbols.Name(s); }
  std::string_view IdOf(const Payment& p) const { return in_.text.Get(p.payment_id); }
  // Where a due date comes from.
  enum class DueFrom : uint8_t { kBatch, kProgrammePeriodBatches, kPeriodEnd };
  // Due date of a payment: its batch's scheduled_on when the batch is declared; else, when its
  // programme and period have declared batches, their latest scheduled_on (as for UNPAID);
  // else the period's last day.
  DayNumber DueOf(const Payment& p, DueFrom* from) const;
  std::string PaymentFacts(const Payment& p, int64_t net) const;
  Finding& AddPaymentFinding(Rule rule, const Payment& p, std::optional<int64_t> expected,
                             std::optional<int64_t> actual);

  const DisbursementInput& in_;
  const CheckOptions& options_;
  std::vector<ProgInfo> progs_;
  absl::flat_hash_map<Symbol, uint32_t> prog_of_symbol_;
  Symbol scope_program_ = kNoSymbol;  // when the scope names a programme
  bool scope_program_set_ = false;
  std::optional<PeriodCode> scope_period_;
  DayNumber as_of_ = 0;

  // Reversals.
  std::vector<bool> reversed_;                     // payment rows with a valid reversal
  absl::flat_hash_map<uint32_t, int64_t> net_;     // their net amounts
  absl::flat_hash_map<uint32_t, std::string> reversal_note_;  // "R1,R2" applied to a payment

  // Batches.
  absl::flat_hash_map<Symbol, uint32_t> batch_index_;  // declared batches
  // (programme symbol, period) → the latest scheduled_on of its declared batches.
  absl::flat_hash_map<uint64_t, DayNumber> period_due_;
  // Programme symbol → the latest period it has a declared batch for that is scheduled before
  // as_of (a batch may be scheduled before its period begins, so an entitlement can be due before
  // as_of though its period has not begun). A batch scheduled later cannot make anything due.
  absl::flat_hash_map<Symbol, PeriodCode> latest_batch_period_;

  // Accounts credited for more people than allowed: (account, period) → number of people.
  absl::flat_hash_map<uint64_t, uint32_t> shared_;

  // Streams sorted by person (row indices).
  std::vector<uint32_t> pay_;  // in-scope payments (not reversals)
  std::vector<uint32_t> enr_;  // enrolments of in-scope programmes
  std::vector<uint32_t> rec_;  // recipient rows (by person, then account_since)
  PersonKey PayKey(size_t k) const { return in_.payments[pay_[k]].person; }
  PersonKey EnrKey(size_t k) const { return in_.enrolments[enr_[k]].person; }
  PersonKey RecKey(size_t k) const { return in_.recipients[rec_[k]].person; }
  std::vector<std::pair<PersonKey, DayNumber>> deaths_;
  std::vector<PersonKey> kin_;
  std::vector<PersonKey> cadres_;
  size_t rec_pos_ = 0;
  size_t death_pos_ = 0;
  size_t kin_pos_ = 0;
  size_t cadre_pos_ = 0;

  // Households: cadre households, and members enrolled in household programmes.
  std::vector<bool> cadre_household_;  // by household symbol
  std::vector<HouseholdMember> members_;
  std::vector<bool> shared_household_;  // by enrolment: another member is enrolled too

  std::vector<EntitledPayment> scratch_;
  CheckResult result_;
};

Finding& Checker::AddPaymentFinding(Rule rule, const Payment& p, std::optional<int64_t> expected,
                                    std::optional<int64_t> actual) {
  Finding& f = result_.findings.emplace_back();
  f.rule = rule;
  f.program_code = std::string(Sym(p.program));
  f.period = PeriodString(p.period);
  f.person = p.person;
  f.payment_id = std::string(IdOf(p));
  f.batch_id = std::string(Sym(p.batch));
  f.expected_fen = expected;
  f.actual_fen = actual;
  return f;
}

std::string Checker::PaymentFacts(const Payment& p, int64_t net) const {
  std::string s = absl::StrCat("payment ", Av(IdOf(p)), " of ", net, " fen");
  if (net != p.amount_fen) absl::StrAppend(&s, " net (", p.amount_fen, " before reversals)");
  absl::StrAppend(&s, " in batch ", Av(Sym(p.batch)), " to account ", Av(Sym(p.account)),
                  " on ", DayString(ChinaDayOf(p.paid_at_us)));
  return s;
}

absl::Status Checker::PreparePrograms() {
  if (options_.shared_account_limit < 1) {
    return absl::InvalidArgumentError("shared_account_limit must be at least 1");
  }
  as_of_ = DayNumberOf(options_.as_of);
  if (options_.period.has_value()) scope_period_ = PeriodCodeOf(*options_.period);
  absl::flat_hash_set<std::string> codes;
  bool scope_found = false;
  for (const Programme& def : in_.programmes) {
    if (!codes.insert(def.code).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("programme ", def.code, " is given twice"));
    }
    if (def.grace_days < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("programme ", def.code, " has a negative grace_days"));
    }
    ProgInfo info;
    info.def = &def;
    info.symbol = in_.symbols.Find(def.code);
    info.monthly = def.frequency == Frequency::kMonthly;
    info.household = def.unit == ProgrammeUnit::kHousehold;
    info.excludes = def.excludes_cadre_households;
    info.grace = def.grace_days;
    info.window_first = PeriodFirstDay(PeriodCodeOf(def.valid_from));
    info.window_last = def.valid_to ? PeriodLastDay(PeriodCodeOf(*def.valid_to)) : kNever;
    if (options_.program_code.has_value()) {
      info.in_scope = def.code == *options_.program_code;
      scope_found = scope_found || info.in_scope;
    }
    if (info.symbol != kNoSymbol) {
      prog_of_symbol_[info.symbol] = static_cast<uint32_t>(progs_.size());
    }
    progs_.push_back(info);
  }
  if (options_.program_code.has_value()) {
    if (!scope_found) {
      return absl::NotFoundError(
          absl::StrCat("programme ", *options_.program_code, " is not in the programmes data"));
    }
    scope_program_set_ = true;
    scope_program_ = in_.symbols.Find(*options_.program_code);
  }
  return absl::OkStatus();
}

bool Checker::PaymentInScope(const Payment& p) const {
  if (scope_program_set_ && p.program != scope_program_) return false;
  if (scope_period_.has_value() && p.period != *scope_period_) return false;
  return true;
}

bool IsReversalRow(const Payment& p) { return !p.reverses.empty() || p.amount_fen < 0; }

void Checker::CheckReversals() {
  const auto& pays = in_.payments;
  reversed_.assign(pays.size(), false);
  // The ids that reversals name, and the payment row each resolves to.
  struct Target {
    uint32_t payment = kNone;
    bool names_reversal = false;
  };
  struct SvHash {
    size_t operator()(std::string_view s) const { return absl::Hash<absl::string_view>{}(Av(s)); }
  };
  absl::flat_hash_map<std::string_view, Target, SvHash> targets;
  std::vector<uint32_t> reversals;
  for (uint32_t i = 0; i < pays.size(); ++i) {
    if (!IsReversalRow(pays[i])) continue;
    reversals.push_back(i);
    if (!pays[i].reverses.empty()) targets.try_emplace(in_.text.Get(pays[i].reverses));
  }
  if (reversals.empty()) return;
  if (!targets.empty()) {
    for (uint32_t i = 0; i < pays.size(); ++i) {
      auto it = targets.find(IdOf(pays[i]));
      if (it == targets.end()) continue;
      if (IsReversalRow(pays[i])) {
        it->second.names_reversal = true;
        continue;
      }
      // Payment ids are unique (the ingest refuses repeats); if not, the earliest row counts.
      Target& t = it->second;
      if (t.payment == kNone || pays[i].paid_at_us < pays[t.payment].paid_at_us) t.payment = i;
    }
  }
  // Reversals of one payment apply in (paid_at, payment_id) order.
  auto target_of = [&](uint32_t r) -> uint32_t {
    const Payment& p = pays[r];
    if (p.reverses.empty() || p.amount_fen >= 0) return kNone;
    return targets.find(in_.text.Get(p.reverses))->second.payment;
  };
  std::vector<std::pair<uint32_t, uint32_t>> order;  // (target, reversal)
  order.reserve(reversals.size());
  for (uint32_t r : reversals) order.emplace_back(target_of(r), r);
  std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    const Payment& x = pays[a.second];
    const Payment& y = pays[b.second];
    if (x.paid_at_us != y.paid_at_us) return x.paid_at_us < y.paid_at_us;
    const std::string_view xi = IdOf(x);
    const std::string_view yi = IdOf(y);
    if (xi != yi) return xi < yi;
    return a.second < b.second;
  });
  for (const auto& [target, r] : order) {
    const Payment& rev = pays[r];
    const bool judged = PaymentInScope(rev);
    if (judged) ++result_.reversals_judged;
    std::string problem;
    std::string evidence = absl::StrCat("reversal=", Av(IdOf(rev)));
    if (rev.reverses.empty()) {
      problem = "carries a negative amount but names no payment to reverse (reverses is empty)";
    } else if (rev.amount_fen >= 0) {
      problem = absl::StrCat("names payment ", Av(in_.text.Get(rev.reverses)),
                             " but carries ", rev.amount_fen,
                             " fen; a reversal must carry a negative amount");
      absl::StrAppend(&evidence, ";reverses=", Av(in_.text.Get(rev.reverses)));
    } else if (target == kNone) {
      const Target& t = targets.find(in_.text.Get(rev.reverses))->second;
      absl::StrAppend(&evidence, ";reverses=", Av(in_.text.Get(rev.reverses)));
      if (t.names_reversal) {
        problem = absl::StrCat("names ", Av(in_.text.Get(rev.reverses)),
                               ", which is itself a reversal");
      } else {
        problem = absl::StrCat("names payment ", Av(in_.text.Get(rev.reverses)),
                               ", which is not in the payments data");
      }
    } else {
      const int64_t before = reversed_[target] ? net_[target] : pays[target].amount_fen;
      absl::StrAppend(&evidence, ";reverses=", Av(IdOf(pays[target])), ";net_before=", before);
      if (before + rev.amount_fen < 0) {
        problem = absl::StrCat("would bring payment ", Av(IdOf(pays[target])), " (net ", before,
                               " fen before it) below zero");
      } else {
        reversed_[target] = true;
        net_[target] = before + rev.amount_fen;
        std::string& note = reversal_note_[target];
        absl::StrAppend(&note, note.empty() ? "" : ",", Av(IdOf(rev)));
        continue;
      }
    }
    if (!judged) continue;
    Finding& f = AddPaymentFinding(Rule::kBadReversal, rev, std::nullopt, rev.amount_fen);
    f.detail = absl::StrCat("reversal ", Av(IdOf(rev)), " of ", rev.amount_fen, " fen on ",
                            DayString(ChinaDayOf(rev.paid_at_us)), " (batch ", Av(Sym(rev.batch)),
                            ", account ", Av(Sym(rev.account)), ") ", problem,
                            "; it is not netted off anything");
    f.evidence = std::move(evidence);
  }
}

void Checker::CheckBatches() {
  struct Tally {
    int64_t count = 0;
    __int128 total = 0;  // 10^7 rows of up to 2^63 fen fit: the order of the rows cannot matter
  };
  std::vector<Tally> tallies;
  for (uint32_t b = 0; b < in_.batches.size(); ++b) {
    const Batch& batch = in_.batches[b];
    // A batch given twice: the first row counts (the ingest refuses repeats).
    if (!batch_index_.try_emplace(batch.batch, b).second) continue;
    const uint64_t key = (static_cast<uint64_t>(batch.program) << 32) | batch.period;
    const DayNumber due = DayNumberOf(batch.scheduled_on);
    auto [it, inserted] = period_due_.try_emplace(key, due);
    if (!inserted) it->second = std::max(it->second, due);
    if (due < as_of_) {
      auto [latest, first] = latest_batch_period_.try_emplace(batch.program, batch.period);
      if (!first && PeriodFirstDay(batch.period) > PeriodFirstDay(latest->second)) {
        latest->second = batch.period;
      }
    }
  }
  tallies.resize(in_.batches.size());
  Symbol last = kNoSymbol;
  uint32_t last_index = kNone;
  for (const Payment& p : in_.payments) {
    if (p.batch != last) {
      last = p.batch;
      auto it = batch_index_.find(p.batch);
      last_index = it == batch_index_.end() ? kNone : it->second;
    }
    if (last_index == kNone) continue;
    Tally& t = tallies[last_index];
    ++t.count;
    t.total += p.amount_fen;
  }
  for (const auto& [symbol, b] : batch_index_) {
    const Batch& batch = in_.batches[b];
    if (scope_program_set_ && batch.program != scope_program_) continue;
    if (scope_period_.has_value() && batch.period != *scope_period_) continue;
    ++result_.batches_checked;
    const Tally& t = tallies[b];
    if (t.count == batch.declared_count && t.total == batch.declared_total_fen) continue;
    // A sum outside int64 (it matches no declaration) is reported at int64's bound, said so.
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max(), kMin = std::numeric_limits<int64_t>::min();
    const int64_t shown = t.total > kMax ? kMax : t.total < kMin ? kMin : static_cast<int64_t>(t.total);
    const std::string rows_total = t.total > kMax   ? absl::StrCat("more than ", kMax)
                                   : t.total < kMin ? absl::StrCat("less than ", kMin)
                                                    : absl::StrCat(shown);
    Finding& f = result_.findings.emplace_back();
    f.rule = Rule::kBatchMismatch;
    f.program_code = std::string(Sym(batch.program));
    f.period = PeriodString(batch.period);
    f.batch_id = std::string(Sym(batch.batch));
    f.expected_fen = batch.declared_total_fen;
    f.actual_fen = shown;
    f.detail = absl::StrCat("batch ", f.batch_id, " (scheduled ", DayString(DayNumberOf(
                                batch.scheduled_on)), ") declares ", batch.declared_count,
                            " payments totalling ", batch.declared_total_fen,
                            " fen; its rows, reversals included, are ", t.count,
                            " payments totalling ", rows_total, " fen");
    f.evidence = absl::StrCat("batch=", f.batch_id, ";declared_count=", batch.declared_count,
                              ";declared_total=", batch.declared_total_fen, ";rows=", t.count,
                              ";rows_total=", rows_total);
  }
}

void Checker::FindSharedAccounts() {
  // Standing payments of every programme given, grouped by account with a counting sort over
  // the account symbols (4 bytes a payment).
  const auto& pays = in_.payments;
  const size_t symbols = in_.symbols.size();
  auto standing = [&](uint32_t i) {
    const Payment& p = pays[i];
    return !IsReversalRow(p) && p.account < symbols && !ReversedInFull(i);
  };
  std::vector<uint32_t> end(symbols + 1, 0);  // first the counts, then each group's end
  size_t total = 0;
  for (uint32_t i = 0; i < pays.size(); ++i) {
    if (!standing(i)) continue;
    ++end[pays[i].account + 1];
    ++total;
  }
  for (size_t a = 1; a <= symbols; ++a) end[a] += end[a - 1];
  std::vector<uint32_t> by_account(total);
  for (uint32_t i = 0; i < pays.size(); ++i) {
    if (standing(i)) by_account[end[pays[i].account]++] = i;
  }
  const auto limit = static_cast<size_t>(options_.shared_account_limit);
  std::vector<std::pair<PeriodCode, PersonKey>> group;
  for (size_t a = 0; a < symbols; ++a) {
    const size_t begin = a == 0 ? 0 : end[a - 1];
    if (end[a] - begin <= limit) continue;  // too few payments to exceed the limit
    group.clear();
    for (size_t k = begin; k < end[a]; ++k) {
      const Payment& p = pays[by_account[k]];
      group.emplace_back(p.period, p.person);
    }
    std::sort(group.begin(), group.end());
    for (size_t i = 0; i < group.size();) {
      size_t j = i;
      uint32_t people = 0;
      while (j < group.size() && group[j].first == group[i].first) {
        if (j == i || group[j].second != group[j - 1].second) ++people;
        ++j;
      }
      if (people > limit) {
        shared_.emplace((static_cast<uint64_t>(a) << 18) | group[i].first, people);
      }
      i = j;
    }
  }
}

void Checker::SortStreams() {
  const auto& pays = in_.payments;
  pay_ = SortedIndices<PersonKey>(
      pays.size(), [&](size_t i) { return pays[i].person; },
      [&](size_t i) { return !IsReversalRow(pays[i]) && PaymentInScope(pays[i]); });
  result_.payments_judged = static_cast<int64_t>(pay_.size());

  const auto& enrolments = in_.enrolments;
  enr_ = SortedIndices<PersonKey>(
      enrolments.size(), [&](size_t i) { return enrolments[i].person; },
      [&](size_t i) {
        const uint32_t prog = ProgOf(enrolments[i].program);
        return prog != kNone && progs_[prog].in_scope;
      });

  const auto& rows = in_.recipients;
  rec_ = SortedIndices<std::pair<PersonKey, DayNumber>>(
      rows.size(), [&](size_t i) { return std::make_pair(rows[i].person, rows[i].account_since); },
      [](size_t) { return true; });

  for (const CivilEvent& e : in_.civil_events) {
    if (e.kind == CivilEventKind::kDeath) deaths_.emplace_back(e.person, DayNumberOf(e.date));
  }
  std::sort(deaths_.begin(), deaths_.end());  // the earliest death of a person comes first
  kin_ = in_.kin_of_cadres;
  std::sort(kin_.begin(), kin_.end());
  cadres_ = in_.cadres;
  std::sort(cadres_.begin(), cadres_.end());
}

Facts Checker::Seek(PersonKey person) {
  Facts f;
  while (rec_pos_ < rec_.size() && RecKey(rec_pos_) < person) ++rec_pos_;
  size_t end = rec_pos_;
  while (end < rec_.size() && RecKey(end) == person) ++end;
  if (end > rec_pos_) {
    f.rows = &rec_[rec_pos_];
    f.row_count = end - rec_pos_;
    const RecipientRow& latest = in_.recipients[rec_[end - 1]];
    f.household = latest.household;
    f.is_head = latest.is_household_head;
    f.is_cadre = latest.is_cadre;
  }
  rec_pos_ = end;
  while (death_pos_ < deaths_.size() && deaths_[death_pos_].first < person) ++death_pos_;
  if (death_pos_ < deaths_.size() && deaths_[death_pos_].first == person) {
    f.death = deaths_[death_pos_].second;
  }
  while (kin_pos_ < kin_.size() && kin_[kin_pos_] < person) ++kin_pos_;
  f.is_kin = kin_pos_ < kin_.size() && kin_[kin_pos_] == person;
  while (cadre_pos_ < cadres_.size() && cadres_[cadre_pos_] < person) ++cadre_pos_;
  if (cadre_pos_ < cadres_.size() && cadres_[cadre_pos_] == person) f.is_cadre = true;
  return f;
}

void Checker::BuildHouseholds() {
  // Cadre households: the latest household of every cadre.
  cadre_household_.assign(in_.symbols.size(), false);
  ResetCursors();
  {
    size_t i = 0;
    size_t c = 0;
    while (i < rec_.size() || c < cadres_.size()) {
      PersonKey person;
      if (c >= cadres_.size() || (i < rec_.size() && RecKey(i) <= cadres_[c])) {
        person = RecKey(i);
      } else {
        person = cadres_[c];
      }
      const Facts f = Seek(person);
      if (f.is_cadre && f.household != kNoSymbol) cadre_household_[f.household] = true;
      while (i < rec_.size() && RecKey(i) == person) ++i;
      while (c < cadres_.size() && cadres_[c] == person) ++c;
    }
  }
  // Members enrolled in household programmes, grouped by household.
  shared_household_.assign(in_.enrolments.size(), false);
  ResetCursors();
  for (size_t i = 0; i < enr_.size();) {
    const PersonKey person = EnrKey(i);
    size_t j = i;
    while (j < enr_.size() && EnrKey(j) == person) ++j;
    const Facts f = Seek(person);
    for (size_t k = i; k < j; ++k) {
      const uint32_t prog = ProgOf(in_.enrolments[enr_[k]].program);
      if (!progs_[prog].household || f.household == kNoSymbol) continue;
      members_.push_back(HouseholdMember{person, f.household, prog, enr_[k], f.death,
                                         static_cast<uint8_t>(f.is_head ? 0 : 1),
                                         progs_[prog].excludes && (f.is_cadre || f.is_kin)});
    }
    i = j;
  }
  std::sort(members_.begin(), members_.end(),
            [](const HouseholdMember& a, const HouseholdMember& b) { return a.Key() < b.Key(); });
  for (size_t i = 0; i < members_.size();) {
    size_t j = i;
    bool several = false;
    while (j < members_.size() && members_[j].household == members_[i].household &&
           members_[j].prog == members_[i].prog) {
      several = several || members_[j].person != members_[i].person;
      ++j;
    }
    if (several) {
      for (size_t k = i; k < j; ++k) shared_household_[members_[k].enrolment] = true;
    }
    i = j;
  }
}

bool Checker::Covers(const Enrolment& e, PeriodCode period) const {
  if (PeriodFirstDay(period) < PeriodFirstDay(e.from_period)) return false;
  return e.to_period == kOpenPeriod || PeriodLastDay(period) <= PeriodLastDay(e.to_period);
}

bool Checker::MemberEntitled(const HouseholdMember& m, PeriodCode period) const {
  return m.death >= PeriodFirstDay(period) && !m.personally_excluded &&
         Covers(in_.enrolments[m.enrolment], period);
}

Verdict Checker::Entitle(PersonKey person, const Facts& facts,
                         const uint32_t* enr, size_t enr_count,
                         uint32_t prog, PeriodCode period) const {
  Verdict v;
  const DayNumber first_day = PeriodFirstDay(period);
  if (prog == kNone) {
    v.why = facts.death < first_day ? Why::kAfterDeath : Why::kUnknownProgramme;
    return v;
  }
  const ProgInfo& info = progs_[prog];
  if (IsMonthly(period) != info.monthly) {
    v.why = Why::kWrongForm;
    return v;
  }
  if (first_day < info.window_first || PeriodLastDay(period) > info.window_last) {
    v.why = Why::kOutsideWindow;
    return v;
  }
  if (facts.death < first_day) {
    v.why = Why::kAfterDeath;
    return v;
  }
  if (info.excludes) {
    if (facts.is_cadre) {
      v.why = Why::kCadre;
      return v;
    }
    if (facts.household != kNoSymbol && cadre_household_[facts.household]) {
      v.why = Why::kCadreHousehold;
      return v;
    }
    if (facts.is_kin) {
      v.why = Why::kKin;
      return v;
    }
  }
  // Overlapping enrolments: the one with the latest from_period counts; among equals, the
  // larger amount; then the one given first.
  for (size_t k = 0; k < enr_count; ++k) {
    const uint32_t ei = enr[k];
    const Enrolment& e = in_.enrolments[ei];
    if (e.program != info.symbol || !Covers(e, period)) continue;
    const int64_t owed = OwedBy(e, info);
    if (v.enrolment != kNone) {
      const Enrolment& best = in_.enrolments[v.enrolment];
      const DayNumber a = PeriodFirstDay(e.from_period);
      const DayNumber b = PeriodFirstDay(best.from_period);
      if (a < b || (a == b && (owed < v.amount || (owed == v.amount && ei > v.enrolment)))) {
        continue;
      }
    }
    v.enrolment = ei;
    v.amount = owed;
  }
  if (v.enrolment == kNone) {
    v.why = Why::kNotEnrolled;
    return v;
  }
  if (info.household && shared_household_[v.enrolment]) {
    // Another member of the household is enrolled too: the entitlement belongs to the
    // entitled member of the lowest rank (the head first).
    const uint8_t rank = facts.is_head ? 0 : 1;
    HouseholdMember probe{0, facts.household, prog, 0, 0, 0, false};
    auto it = std::lower_bound(members_.begin(), members_.end(), probe,
                               [](const HouseholdMember& a, const HouseholdMember& b) {
                                 return std::tie(a.household, a.prog) <
                                        std::tie(b.household, b.prog);
                               });
    for (; it != members_.end() && it->household == facts.household && it->prog == prog; ++it) {
      if (std::tie(it->rank, it->person) >= std::tie(rank, person)) break;
      if (it->person != person && MemberEntitled(*it, period)) {
        v.why = Why::kSuperseded;
        v.other = it->person;
        return v;
      }
    }
  }
  return v;
}

DayNumber Checker::DueOf(const Payment& p, DueFrom* from) const {
  if (auto it = batch_index_.find(p.batch); it != batch_index_.end()) {
    *from = DueFrom::kBatch;
    return DayNumberOf(in_.batches[it->second].scheduled_on);
  }
  const uint64_t key = (static_cast<uint64_t>(p.program) << 32) | p.period;
  if (auto it = period_due_.find(key); it != period_due_.end()) {
    *from = DueFrom::kProgrammePeriodBatches;
    return it->second;
  }
  *from = DueFrom::kPeriodEnd;
  return PeriodLastDay(p.period);
}

void Checker::ReportNotEntitled(const Payment& p, uint32_t index, int64_t net, uint32_t prog,
                                const Verdict& v, const Facts& facts) {
  Finding& f = AddPaymentFinding(RuleOf(v.why), p, 0, net);
  const std::string code(Sym(p.program));
  const std::string period = PeriodString(p.period);
  std::string reason;
  std::string evidence;
  switch (v.why) {
    case Why::kUnknownProgramme:
      reason = absl::StrCat("programme ", code, " is not in the programmes data");
      evidence = "programme=unknown";
      break;
    case Why::kWrongForm: {
      const bool monthly = progs_[prog].monthly;
      reason = absl::StrCat("programme ", code, " pays ", monthly ? "monthly" : "yearly",
                            " periods, not ", period);
      evidence = absl::StrCat("frequency=", monthly ? "monthly" : "yearly");
      break;
    }
    case Why::kOutsideWindow: {
      const Programme& def = *progs_[prog].def;
      const std::string to = def.valid_to ? def.valid_to->ToString() : "open";
      reason = absl::StrCat(period, " lies outside programme ", code, "'s window ",
                            def.valid_from.ToString(), " to ", to);
      evidence = absl::StrCat("valid_from=", def.valid_from.ToString(), ";valid_to=", to);
      break;
    }
    case Why::kAfterDeath:
      reason = absl::StrCat(period, " began on ", DayString(PeriodFirstDay(p.period)),
                            ", after the recipient's death on ", DayString(facts.death),
                            " (civil affairs)");
      evidence = absl::StrCat("death=", DayString(facts.death));
      break;
    case Why::kCadre:
      reason = absl::StrCat("programme ", code,
                            " excludes cadre households and the recipient is a village cadre");
      evidence = "cadre=self";
      break;
    case Why::kCadreHousehold:
      reason = absl::StrCat("programme ", code, " excludes cadre households and household ",
                            Av(Sym(facts.household)), " has a village cadre");
      evidence = absl::StrCat("cadre_household=", Av(Sym(facts.household)));
      break;
    case Why::kKin:
      reason = absl::StrCat("programme ", code,
                            " excludes cadre households and the recipient is recorded kin of a "
                            "village cadre");
      evidence = "cadre_kin=self";
      break;
    case Why::kSuperseded:
      reason = absl::StrCat("the household ", Av(Sym(facts.household)),
                            " is entitled once, through member ", MaskedIdNumberOf(v.other),
                            " (the household head first)");
      evidence = absl::StrCat("household=", Av(Sym(facts.household)),
                              ";entitled_member=", MaskedIdNumberOf(v.other));
      break;
    default: {
      reason = absl::StrCat("no enrolment of the recipient in programme ", code, " covers ",
                            period);
      evidence = "enrolment=none";
      if (prog != kNone && progs_[prog].household && facts.household != kNoSymbol) {
        HouseholdMember probe{0, facts.household, prog, 0, 0, 0, false};
        auto it = std::lower_bound(members_.begin(), members_.end(), probe,
                                   [](const HouseholdMember& a, const HouseholdMember& b) {
                                     return std::tie(a.household, a.prog) <
                                            std::tie(b.household, b.prog);
                                   });
        if (it != members_.end() && it->household == facts.household && it->prog == prog) {
          absl::StrAppend(&reason, "; household ", Av(Sym(facts.household)),
                          " is enrolled through ", MaskedIdNumberOf(it->person),
                          ", to whom it should be paid");
          absl::StrAppend(&evidence, ";household=", Av(Sym(facts.household)),
                          ";enrolled_member=", MaskedIdNumberOf(it->person));
        }
      }
      break;
    }
  }
  f.detail = absl::StrCat("nothing was owed: ", reason, "; paid ", PaymentFacts(p, net));
  f.evidence = absl::StrCat("payment=", f.payment_id, ";", evidence);
  if (reversed_[index]) absl::StrAppend(&f.evidence, ";reversals=", reversal_note_.at(index));
}

void Checker::JudgeEntitled(const EntitledPayment& ep, const EntitledPayment* first,
                            const Facts& facts) {
  const Payment& p = in_.payments[ep.index];
  const ProgInfo& info = progs_[ep.prog];
  const int64_t net = NetOf(ep.index);
  const DayNumber paid_day = ChinaDayOf(p.paid_at_us);
  const Enrolment& e = in_.enrolments[ep.verdict.enrolment];
  const std::string owed_basis =
      e.amount_fen != kProgrammeAmount ? "the enrolment's amount" : "the programme's amount";
  auto base_evidence = [&]() {
    std::string s = absl::StrCat("payment=", Av(IdOf(p)), ";batch=", Av(Sym(p.batch)),
                                 ";account=", Av(Sym(p.account)), ";paid_on=",
                                 DayString(paid_day));
    if (reversed_[ep.index]) absl::StrAppend(&s, ";reversals=", reversal_note_.at(ep.index));
    return s;
  };
  if (first != nullptr) {
    const Payment& fp = in_.payments[first->index];
    Finding& f = AddPaymentFinding(Rule::kDuplicate, p, 0, net);
    f.detail = absl::StrCat("a further payment for ", f.program_code, " ", f.period, ": ",
                            PaymentFacts(p, net), "; the first was payment ", Av(IdOf(fp)),
                            " of ", NetOf(first->index), " fen on ",
                            DayString(ChinaDayOf(fp.paid_at_us)));
    f.evidence = absl::StrCat(base_evidence(), ";first_payment=", Av(IdOf(fp)));
  } else {
    if (net != ep.verdict.amount) {
      const Rule rule = net > ep.verdict.amount ? Rule::kOverPaid : Rule::kShortPaid;
      Finding& f = AddPaymentFinding(rule, p, ep.verdict.amount, net);
      f.detail = absl::StrCat("owed ", ep.verdict.amount, " fen (", owed_basis, ") for ",
                              f.program_code, " ", f.period, ", paid ", PaymentFacts(p, net),
                              ": ", net > ep.verdict.amount ? "over" : "short", " by ",
                              net > ep.verdict.amount ? net - ep.verdict.amount
                                                      : ep.verdict.amount - net,
                              " fen");
      f.evidence = absl::StrCat(base_evidence(), ";owed=", ep.verdict.amount, ";enrolment_from=",
                                PeriodString(e.from_period));
    }
    DueFrom from = DueFrom::kPeriodEnd;
    const DayNumber due = DueOf(p, &from);
    if (paid_day > due + info.grace) {
      Finding& f = AddPaymentFinding(Rule::kLate, p, std::nullopt, std::nullopt);
      std::string source;
      std::string_view due_from;
      switch (from) {
        case DueFrom::kBatch:
          source = absl::StrCat(" (batch ", Av(Sym(p.batch)), " scheduled_on)");
          due_from = "batch";
          break;
        case DueFrom::kProgrammePeriodBatches:
          source = absl::StrCat(" (batch ", Av(Sym(p.batch)), " is not declared; the latest "
                                "declared batch of ", f.program_code, " ", f.period,
                                ", scheduled_on)");
          due_from = "programme_period_batches";
          break;
        case DueFrom::kPeriodEnd:
          source = " (last day of the period; no declared batch)";
          due_from = "period_end";
          break;
      }
      f.detail = absl::StrCat(
          "paid on ", DayString(paid_day), ", ", paid_day - due - info.grace,
          " days after the last day allowed (", DayString(due + info.grace), "): due ",
          DayString(due), source, " plus ", info.grace, " grace days; ", PaymentFacts(p, net));
      f.evidence = absl::StrCat(base_evidence(), ";due=", DayString(due), ";due_from=",
                                Av(due_from), ";grace_days=", info.grace);
    }
  }
  // The registered account at paid_at: the latest row whose account_since is not after the
  // date of paid_at; rows of that same date all count.
  size_t k = facts.row_count;
  while (k > 0 && in_.recipients[facts.rows[k - 1]].account_since > paid_day) --k;
  bool matches = false;
  Symbol registered = kNoSymbol;
  DayNumber since = 0;
  if (k > 0) {
    since = in_.recipients[facts.rows[k - 1]].account_since;
    registered = in_.recipients[facts.rows[k - 1]].account;
    for (size_t m = k; m > 0; --m) {
      const RecipientRow& row = in_.recipients[facts.rows[m - 1]];
      if (row.account_since != since) break;
      matches = matches || row.account == p.account;
    }
  }
  if (!matches) {
    Finding& f = AddPaymentFinding(Rule::kWrongAccount, p, std::nullopt, std::nullopt);
    if (k == 0) {
      f.detail = absl::StrCat("credited to account ", Av(Sym(p.account)), " on ",
                              DayString(paid_day),
                              ", but the recipient had no registered account on that date "
                              "(recipients rolls); ",
                              PaymentFacts(p, net));
      f.evidence = absl::StrCat(base_evidence(), ";registered=none");
    } else {
      f.detail = absl::StrCat("credited to account ", Av(Sym(p.account)), " on ",
                              DayString(paid_day), ", but the registered account then was ",
                              Av(Sym(registered)), " (since ", DayString(since), "); ",
                              PaymentFacts(p, net));
      f.evidence = absl::StrCat(base_evidence(), ";registered=", Av(Sym(registered)),
                                ";registered_since=", DayString(since));
    }
  }
  if (!shared_.empty() && p.account != kNoSymbol) {
    auto it = shared_.find((static_cast<uint64_t>(p.account) << 18) | p.period);
    if (it != shared_.end()) {
      Finding& f = AddPaymentFinding(Rule::kSharedAccount, p, std::nullopt, std::nullopt);
      f.detail = absl::StrCat("account ", Av(Sym(p.account)), " was credited for ", it->second,
                              " different recipients in ", f.period, " (at most ",
                              options_.shared_account_limit, " allowed); ",
                              PaymentFacts(p, net));
      f.evidence = absl::StrCat(base_evidence(), ";recipients_on_account=", it->second,
                                ";limit=", options_.shared_account_limit);
    }
  }
}

void Checker::JudgePerson(PersonKey person, const Facts& facts,
                          const uint32_t* pay, size_t pay_count,
                          const uint32_t* enr, size_t enr_count) {
  scratch_.clear();
  for (size_t k = 0; k < pay_count; ++k) {
    const uint32_t i = pay[k];
    const Payment& p = in_.payments[i];
    if (ReversedInFull(i)) continue;  // counts for no rule
    const int64_t net = NetOf(i);
    const uint32_t prog = ProgOf(p.program);
    const Verdict v = Entitle(person, facts, enr, enr_count, prog, p.period);
    if (v.why != Why::kEntitled) {
      ReportNotEntitled(p, i, net, prog, v, facts);
      continue;
    }
    scratch_.push_back(EntitledPayment{prog, p.period, p.paid_at_us, IdOf(p), i, v});
  }
  std::sort(scratch_.begin(), scratch_.end(),
            [](const EntitledPayment& a, const EntitledPayment& b) {
              return std::tie(a.prog, a.period, a.paid_at, a.payment_id, a.index) <
                     std::tie(b.prog, b.period, b.paid_at, b.payment_id, b.index);
            });
  for (size_t k = 0; k < scratch_.size(); ++k) {
    const bool later = k > 0 && scratch_[k - 1].prog == scratch_[k].prog &&
                       scratch_[k - 1].period == scratch_[k].period;
    const EntitledPayment* first = nullptr;
    if (later) {
      size_t f = k;
      while (f > 0 && scratch_[f - 1].prog == scratch_[k].prog &&
             scratch_[f - 1].period == scratch_[k].period) {
        --f;
      }
      first = &scratch_[f];
    }
    JudgeEntitled(scratch_[k], first, facts);
  }

  // Entitlements with no standing payment.
  for (size_t k = 0; k < enr_count; ++k) {
    const uint32_t ei = enr[k];
    const Enrolment& e = in_.enrolments[ei];
    const uint32_t prog = ProgOf(e.program);
    const ProgInfo& info = progs_[prog];
    PeriodCode p;
    DayNumber last;  // the last period to look at begins on or before this day
    if (scope_period_.has_value()) {
      p = *scope_period_;
      last = PeriodFirstDay(p);
    } else {
      const DayNumber start = std::max(info.window_first, PeriodFirstDay(e.from_period));
      p = PeriodContaining(start, info.monthly);
      // Periods begun by as_of, and later ones up to the latest with a declared batch (one
      // scheduled early may be due already); the due date decides below.
      DayNumber reach = as_of_;
      if (auto it = latest_batch_period_.find(info.symbol); it != latest_batch_period_.end()) {
        reach = std::max(reach, PeriodFirstDay(it->second));
      }
      last = std::min(info.window_last, reach);
      if (e.to_period != kOpenPeriod) last = std::min(last, PeriodLastDay(e.to_period));
    }
    for (; PeriodFirstDay(p) <= last; p = NextPeriod(p)) {
      const Verdict v = Entitle(person, facts, enr, enr_count, prog, p);
      if (v.why != Why::kEntitled || v.enrolment != ei) continue;
      ++result_.entitlements_checked;
      const auto paid = std::lower_bound(
          scratch_.begin(), scratch_.end(), std::make_pair(prog, p),
          [](const EntitledPayment& a, const std::pair<uint32_t, PeriodCode>& b) {
            return std::tie(a.prog, a.period) < std::tie(b.first, b.second);
          });
      if (paid != scratch_.end() && paid->prog == prog && paid->period == p) continue;
      const uint64_t key = (static_cast<uint64_t>(info.symbol) << 32) | p;
      auto due_it = period_due_.find(key);
      const bool from_batch = due_it != period_due_.end();
      const DayNumber due = from_batch ? due_it->second : PeriodLastDay(p);
      if (as_of_ <= due + info.grace) continue;
      Finding& f = result_.findings.emplace_back();
      f.rule = Rule::kUnpaid;
      f.program_code = info.def->code;
      f.period = PeriodString(p);
      f.person = person;
      f.expected_fen = v.amount;
      f.actual_fen = 0;
      f.detail = absl::StrCat(
          "owed ", v.amount, " fen (",
          e.amount_fen != kProgrammeAmount ? "the enrolment's amount" : "the programme's amount",
          ") for ", f.program_code, " ", f.period, ", due ", DayString(due),
          from_batch ? " (latest declared batch's scheduled_on)"
                     : " (last day of the period; no declared batch)",
          " plus ", info.grace, " grace days, and no standing payment as of ",
          DayString(as_of_));
      f.evidence = absl::StrCat("enrolment_from=", PeriodString(e.from_period),
                                ";enrolment_to=",
                                e.to_period == kOpenPeriod ? "open" : PeriodString(e.to_period),
                                ";due=", DayString(due), ";grace_days=", info.grace);
      // Payments reversed in full are worth naming.
      std::string reversed;
      for (size_t q = 0; q < pay_count; ++q) {
        const Payment& rp = in_.payments[pay[q]];
        if (rp.program == info.symbol && rp.period == p && ReversedInFull(pay[q])) {
          absl::StrAppend(&reversed, reversed.empty() ? "" : ",", Av(IdOf(rp)));
        }
      }
      if (!reversed.empty()) {
        absl::StrAppend(&f.detail, " (reversed in full: ", reversed, ")");
        absl::StrAppend(&f.evidence, ";reversed_in_full=", reversed);
      }
    }
  }
}

void Checker::JudgePeople() {
  ResetCursors();
  size_t a = 0;
  size_t b = 0;
  while (a < pay_.size() || b < enr_.size()) {
    PersonKey person;
    if (b >= enr_.size() || (a < pay_.size() && PayKey(a) <= EnrKey(b))) {
      person = PayKey(a);
    } else {
      person = EnrKey(b);
    }
    size_t a_end = a;
    while (a_end < pay_.size() && PayKey(a_end) == person) ++a_end;
    size_t b_end = b;
    while (b_end < enr_.size() && EnrKey(b_end) == person) ++b_end;
    const Facts facts = Seek(person);
    JudgePerson(person, facts, pay_.data() + a, a_end - a, enr_.data() + b, b_end - b);
    a = a_end;
    b = b_end;
  }
}

absl::StatusOr<CheckResult> Checker::Run() {
  if (absl::Status s = PreparePrograms(); !s.ok()) return s;
  CheckReversals();
  CheckBatches();
  FindSharedAccounts();
  SortStreams();
  BuildHouseholds();
  JudgePeople();
  auto key = [](const Finding& f) {
    return std::make_tuple(f.rule, std::string_view(f.program_code), std::string_view(f.period),
                           f.person.has_value(), f.person.value_or(0),
                           std::string_view(f.payment_id), std::string_view(f.batch_id),
                           std::string_view(f.detail));
  };
  std::sort(result_.findings.begin(), result_.findings.end(),
            [&](const Finding& x, const Finding& y) { return key(x) < key(y); });
  for (const Finding& f : result_.findings) ++result_.count_by_rule[static_cast<int>(f.rule)];
  return std::move(result_);
}

absl::StatusOr<std::vector<EntitlementAnswer>> Checker::Entitlements(std::vector<PersonKey> persons) {
  if (absl::Status s = PreparePrograms(); !s.ok()) return s;
  uint32_t prog = kNone;
  for (uint32_t i = 0; i < progs_.size(); ++i) {
    if (progs_[i].in_scope) prog = i;
  }
  if (prog == kNone || !scope_period_.has_value()) {
    return absl::InvalidArgumentError("an entitlement is of one programme and one period");
  }
  SortStreams();
  BuildHouseholds();
  std::sort(persons.begin(), persons.end());
  persons.erase(std::unique(persons.begin(), persons.end()), persons.end());
  std::vector<EntitlementAnswer> out;
  out.reserve(persons.size());
  ResetCursors();
  size_t b = 0;
  for (const PersonKey person : persons) {
    while (b < enr_.size() && EnrKey(b) < person) ++b;
    size_t e = b;
    while (e < enr_.size() && EnrKey(e) == person) ++e;
    const Facts facts = Seek(person);
    const Verdict v = Entitle(person, facts, enr_.data() + b, e - b, prog, *scope_period_);
    b = e;
    EntitlementAnswer a;
    a.person = person;
    switch (v.why) {
      case Why::kEntitled:
        a.entitled = true;
        a.amount_fen = v.amount;
        break;
      case Why::kWrongForm:
      case Why::kOutsideWindow:
        a.reason = "OUTSIDE_WINDOW";
        break;
      case Why::kAfterDeath:
        a.reason = "DECEASED";
        break;
      case Why::kCadre:
      case Why::kCadreHousehold:
        a.reason = "CADRE_HOUSEHOLD";
        break;
      case Why::kKin:
        a.reason = "CADRE_KIN";
        break;
      case Why::kSuperseded:
        a.reason = "HOUSEHOLD_MEMBER";
        a.held_by = v.other;
        break;
      case Why::kUnknownProgramme:
      case Why::kNotEnrolled:
        a.reason = "NOT_ENROLLED";
        break;
    }
    out.push_back(a);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<EntitlementAnswer>> DecideEntitlements(const DisbursementInput& input,
                                                                  const std::string& program_code,
                                                                  const common::Period& period,
                                                                  std::vector<PersonKey> persons) {
  CheckOptions options;
  options.program_code = program_code;
  options.period = period;
  Checker checker(input, options);
  return checker.Entitlements(std::move(persons));
}

absl::StatusOr<CheckResult> CheckDisbursements(const DisbursementInput& input,
                                               const CheckOptions& options) {
  Checker checker(input, options);
  return checker.Run();
}

}  // namespace grassroots::cadrepay
