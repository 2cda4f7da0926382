#pragma once
// The direct-subsidy disbursement checks (formats.md, "The disbursement rules";
// docs/disbursement-rules.md for the interpretations). A pure, in-memory engine: the caller
// loads the data of a run's scope into a DisbursementInput, runs CheckDisbursements, and
// stores or exports the findings. No database, no clock, no randomness: the same input gives
// the same findings, in the same order.
//
// Built for a province: 5,000,000 recipients and 10,000,000 payments of one period check in
// seconds on one core. Rows are compact (a payment is 56 bytes, an enrolment 32, a recipient
// row 24): resident ID numbers are packed into 64 bits, repeated strings (programme codes,
// batch ids, account numbers, household ids) are interned into 32-bit symbols, unique strings
// (payment ids) live in an arena. Rows given in person order (ORDER BY id_number) are used in
// place; other orders cost a temporary 16 bytes a row while the engine sorts them.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {

// ---------------------------------------------------------------------------------------------
// Compact values.

// A resident ID number in 64 bits: its 17 digits as a number, times 11, plus the value of its
// check character (X = 10). Keys order exactly as the ID strings do.
using PersonKey = uint64_t;
// From an 18-character ID number (17 digits and 0-9, X or x). The check digit is not verified
// here (common::NormaliseIdNumber does that at ingest); nullopt when the shape is wrong.
std::optional<PersonKey> PersonKeyOf(std::string_view id_number);
// The normalised ID number ("11010519491231002X").
std::string IdNumberOf(PersonKey key);
// The masked ID number ("1101**********002X"), for details and masked exports.
std::string MaskedIdNumberOf(PersonKey key);

// A period in 32 bits: year * 16 + month, month 0 for a yearly period. Codes order as the
// period strings do ("2026" < "2026-01" < "2026-02").
using PeriodCode = uint32_t;
inline constexpr PeriodCode kOpenPeriod = 0;  // an open end (no to_period)
PeriodCode PeriodCodeOf(const common::Period& p);
common::Period PeriodOf(PeriodCode code);
std::string PeriodString(PeriodCode code);

// A date as days since 1970-01-01, for the row types that come by the million.
using DayNumber = int32_t;
DayNumber DayNumberOf(absl::CivilDay day);
absl::CivilDay CivilDayOf(DayNumber n);

// A string stored in a TextStore (8 bytes). The default value is the empty string.
class TextRef final {
 public:
  constexpr TextRef() = default;
  bool empty() const { return size() == 0; }
  size_t size() const { return static_cast<size_t>(bits_ & kSizeMask); }

 private:
  friend class TextStore;
  static constexpr int kSizeBits = 20;
  static constexpr uint64_t kSizeMask = (uint64_t{1} << kSizeBits) - 1;
  explicit constexpr TextRef(uint64_t bits) : bits_(bits) {}
  uint64_t bits_ = 0;
};

// An append-only arena for unique strings (payment ids). Stored strings never move.
class TextStore final {
 public:
  static constexpr size_t kMaxSize = (size_t{1} << 20) - 1;
  // Stores a copy of s. A string longer than kMaxSize ends the process (the ingest refuses
  // such values long before).
  TextRef Add(std::string_view s);
  std::string_view Get(TextRef ref) const;
  size_t bytes_reserved() const { return chunks_.size() * kChunkSize; }

 private:
  static constexpr size_t kChunkSize = size_t{4} << 20;
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t used_in_last_ = kChunkSize;
};

// Interned strings for values that repeat (programme codes, batch ids, account numbers,
// household ids): the same string always gets the same 32-bit symbol, so rows compare and
// group them as integers.
using Symbol = uint32_t;
inline constexpr Symbol kNoSymbol = UINT32_MAX;

class SymbolTable final {
 public:
  SymbolTable();
  ~SymbolTable();
  SymbolTable(SymbolTable&&) noexcept;
  SymbolTable& operator=(SymbolTable&&) noexcept;
  SymbolTable(const SymbolTable&) = delete;
  SymbolTable& operator=(const SymbolTable&) = delete;

  Symbol Intern(std::string_view s);
  // kNoSymbol when s was never interned.
  Symbol Find(std::string_view s) const;
  // "" for kNoSymbol.
  std::string_view Name(Symbol symbol) const;
  size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Input: the data of one run, as the ingests stored it.

enum class ProgrammeUnit : uint8_t { kPerson, kHousehold };
enum class Frequency : uint8_t { kMonthly, kYearly };

// programmes.csv
struct Programme {
  std::string code;
  ProgrammeUnit unit = ProgrammeUnit::kPerson;
  Frequency frequency = Frequency::kMonthly;
  int64_t amount_fen = 0;
  common::Period valid_from;
  std::optional<common::Period> valid_to;  // nullopt: open-ended
  bool excludes_cadre_households = false;
  int grace_days = 5;
};

// enrolments.csv
inline constexpr int64_t kProgrammeAmount = -1;  // an enrolment with no amount of its own
struct Enrolment {
  PersonKey person = 0;  // for a household programme: the household head
  int64_t amount_fen = kProgrammeAmount;
  Symbol program = kNoSymbol;
  PeriodCode from_period = 0;
  PeriodCode to_period = kOpenPeriod;
};

// recipients.csv: one row per person and account; a person's rows make their account history.
// The person's household, head flag and cadre flag are those of their latest row (greatest
// account_since; among rows of the same date, the one given last).
struct RecipientRow {
  PersonKey person = 0;
  Symbol household = kNoSymbol;
  Symbol account = kNoSymbol;
  DayNumber account_since = 0;
  bool is_household_head = false;
  bool is_cadre = false;
};

enum class CivilEventKind : uint8_t { kDeath, kEmigration, kImprisonment, kReleased };

// civil_events.csv. Only deaths are used by the rules (the earliest death of a person counts).
struct CivilEvent {
  PersonKey person = 0;
  CivilEventKind kind = CivilEventKind::kDeath;
  absl::CivilDay date;
};

// paid_at is kept as Unix microseconds (8 bytes, not absl::Time's 16).
inline int64_t PaidAtMicros(absl::Time t) { return absl::ToUnixMicros(t); }
inline absl::Time PaidAtTime(int64_t micros) { return absl::FromUnixMicros(micros); }

// payments.csv. A row with `reverses` (or with a negative amount) is a reversal.
struct Payment {
  TextRef payment_id;
  TextRef reverses;         // empty: not a reversal
  int64_t paid_at_us = 0;   // PaidAtMicros(the timestamp)
  PersonKey person = 0;
  int64_t amount_fen = 0;
  Symbol batch = kNoSymbol;
  Symbol program = kNoSymbol;
  Symbol account = kNoSymbol;
  PeriodCode period = 0;
};

// batches.csv
struct Batch {
  Symbol batch = kNoSymbol;
  Symbol program = kNoSymbol;
  PeriodCode period = 0;
  int64_t declared_count = 0;
  int64_t declared_total_fen = 0;
  absl::CivilDay scheduled_on;
};

struct DisbursementInput {
  TextStore text;        // payment ids and the ids that reversals name
  SymbolTable symbols;   // programme codes, batch ids, account numbers, household ids
  std::vector<Programme> programmes;
  std::vector<Enrolment> enrolments;
  std::vector<RecipientRow> recipients;
  // People who hold a village post by cadrepay's own post records (in addition to
  // recipients' is_cadre), and people recorded as kin of a cadre (member registry).
  std::vector<PersonKey> cadres;
  std::vector<PersonKey> kin_of_cadres;
  std::vector<CivilEvent> civil_events;
  std::vector<Payment> payments;
  std::vector<Batch> batches;
};

struct CheckOptions {
  absl::CivilDay as_of;                     // the run's "as of" date (China time)
  std::optional<std::string> program_code;  // scope: one programme
  std::optional<common::Period> period;     // scope: one period
  int shared_account_limit = 3;             // recipients one account may serve in a period
};

// ---------------------------------------------------------------------------------------------
// Output.

// In the ASCII order of the codes, so findings sort by rule code by sorting the enum.
enum class Rule : uint8_t {
  kAfterDeath,
  kBadReversal,
  kBatchMismatch,
  kCadreKin,
  kDuplicate,
  kLate,
  kNotEntitled,
  kOutsideWindow,
  kOverPaid,
  kSharedAccount,
  kShortPaid,
  kUnpaid,
  kWrongAccount,
};
inline constexpr int kRuleCount = 13;
std::string_view RuleCode(Rule rule);
std::optional<Rule> RuleFromCode(std::string_view code);

struct Finding {
  Rule rule = Rule::kNotEntitled;
  std::string program_code;
  std::string period;                // as the files write it: "2026-03" or "2026"
  std::optional<PersonKey> person;   // nullopt for BATCH_MISMATCH
  std::string payment_id;            // empty for UNPAID and BATCH_MISMATCH
  std::string batch_id;              // the batch concerned, where there is one
  std::optional<int64_t> expected_fen;
  std::optional<int64_t> actual_fen;
  std::string detail;                // one line a person can act on; ID numbers masked
  std::string evidence;              // "key=value;key=value": the facts that made it fire
};

struct CheckResult {
  // Sorted by rule code, program_code, period, id_number, payment_id (then batch_id, detail).
  std::vector<Finding> findings;
  std::array<int64_t, kRuleCount> count_by_rule{};
  int64_t payments_judged = 0;      // payment rows (not reversals) in scope
  int64_t reversals_judged = 0;     // reversal rows in scope
  int64_t entitlements_checked = 0; // (person, programme, period) entitlements found in scope
  int64_t batches_checked = 0;      // declared batches in scope
};

// Runs every rule over the input. Errors (INVALID_ARGUMENT, NOT_FOUND) only for input the
// ingests should never let through: two programmes with one code, a negative grace_days, a
// shared_account_limit below 1, a scope naming an unknown programme.
absl::StatusOr<CheckResult> CheckDisbursements(const DisbursementInput& input,
                                               const CheckOptions& options);

// ---------------------------------------------------------------------------------------------
// Entitlements, decided as the check decides them (one definition: docs/disbursement-rules.md,
// "Entitlement"), for ListEntitlements.

struct EntitlementAnswer {
  PersonKey person = 0;
  bool entitled = false;
  int64_t amount_fen = 0;     // what is owed, when entitled
  // Why not: OUTSIDE_WINDOW, DECEASED, CADRE_HOUSEHOLD (a cadre, or in a cadre's household),
  // CADRE_KIN (recorded kin of a cadre), NOT_ENROLLED, HOUSEHOLD_MEMBER (a household programme
  // whose entitlement another member of the household holds: `held_by`); "" when entitled.
  std::string_view reason;
  std::optional<PersonKey> held_by;
};

// The entitlement of each of `persons` (any order; answered in ascending key order, once each)
// to programme `program_code` for `period`. `input` must hold every row that bears on them: the
// programmes, their enrolments in the programme, their roll rows, deaths, cadres and kin of
// cadres, and for a household programme the same of the other members of their households.
// Payments and batches are not read. NOT_FOUND for a programme not in `input`; INVALID_ARGUMENT
// as CheckDisbursements for a programme given twice or a negative grace_days.
absl::StatusOr<std::vector<EntitlementAnswer>> DecideEntitlements(const DisbursementInput& input,
                                                                  const std::string& program_code,
                                                                  const common::Period& period,
                                                                  std::vector<PersonKey> persons);

}  // namespace grassroots::cadrepay
