#include "disbursement_logic.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "disbursement/disbursement_engine.h"
#include "disbursement/findings_csv.h"
#include "block_rows.h"
#include "disbursement_logic_internal.h"
#include "grassroots/common/log.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {
using namespace logic_internal;  // NOLINT: this file is part of DisbursementLogic

namespace {

bool HexToBytes(const std::string& hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  for (char c : hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  *out = absl::HexStringToBytes(hex);
  return true;
}

// A ListFindings token's scope: the filters (the run is in the token itself).
std::string FindingsScope(const v1::ListFindingsRequest& r) {
  return absl::StrCat("findings:", r.rule(), "/", r.review_state());
}

std::string Rfc3339(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E*S%Ez", t, common::ChinaTimeZone()); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// The check

namespace {

// SymbolTable::Intern of values that mostly repeat the previous one (a scan in clustered order
// meets a batch's or programme's rows together).
class RepeatCache final {
 public:
  explicit RepeatCache(SymbolTable& symbols) : symbols_(symbols) {}
  Symbol operator()(const std::string& value) {
    if (!valid_ || value != last_) {
      last_ = value;
      symbol_ = symbols_.Intern(value);
      valid_ = true;
    }
    return symbol_;
  }

 private:
  SymbolTable& symbols_;
  std::string last_;
  Symbol symbol_ = kNoSymbol;
  bool valid_ = false;
};

// The engine's person key of every stored person, indexed by person number (0: unknown or
// unreadable). Person numbers are dense (handed out in blocks, first-seen order): a flat table
// of 8 bytes a number, no sort and no search.
class PersonTable final {
 public:
  void Resize(int64_t max_no) { keys_.assign(static_cast<size_t>(max_no) + 1, PersonKey{0}); }
  void Set(int64_t no, PersonKey key) {
    if (no > 0 && static_cast<size_t>(no) < keys_.size()) keys_[static_cast<size_t>(no)] = key;
  }
  std::optional<PersonKey> Find(int64_t no) const {
    if (no <= 0 || static_cast<size_t>(no) >= keys_.size() || keys_[static_cast<size_t>(no)] == 0) return std::nullopt;
    return keys_[static_cast<size_t>(no)];
  }
  void Clear() { std::vector<PersonKey>().swap(keys_); }

 private:
  std::vector<PersonKey> keys_;
};

v1::CheckRun ToProto(const CheckRunRecord& r) {
  v1::CheckRun out;
  out.set_run_id(r.run_id);
  out.set_program_code(r.program_code);
  out.set_period(r.period);
  out.set_as_of(common::FormatDate(r.as_of));
  out.set_started_at(Rfc3339(r.started_at));
  for (const auto& [rule, n] : r.counts) {
    auto* c = out.add_counts();
    c->set_rule(rule);
    c->set_count(n);
  }
  out.set_payments_checked(r.payments_checked);
  out.set_entitlements_checked(r.entitlements_checked);
  for (const auto& w : r.warnings) out.add_warnings(w);
  return out;
}

// A run's state as its operation says (the counts are the stored run's).
v1::CheckRun WithOperation(v1::CheckRun run, const common::checks::Operation& op) {
  using common::checks::RunState;
  run.set_state(op.state == RunState::kRunning     ? checks::v1::RUNNING
                : op.state == RunState::kSucceeded ? checks::v1::SUCCEEDED
                                                   : checks::v1::FAILED);
  run.mutable_progress()->set_phase(op.progress.phase);
  run.mutable_progress()->set_done(op.progress.done);
  run.mutable_progress()->set_total(op.progress.total);
  run.set_requested_by(op.requested_by);
  if (op.ended()) run.set_finished_at(Rfc3339(op.finished_at));
  if (op.state == RunState::kFailed) run.set_error(common::MaskIdNumbersIn(op.error));
  return run;
}

v1::Finding ToProto(const FindingRecord& f) {
  v1::Finding out;
  out.set_finding_id(f.finding_id);
  out.set_rule(f.rule);
  out.set_program_code(f.program_code);
  out.set_period(f.period);
  out.set_id_number(f.id_masked);
  out.set_payment_id(f.payment_id);
  if (f.expected_fen) out.set_expected_fen(*f.expected_fen);
  if (f.actual_fen) out.set_actual_fen(*f.actual_fen);
  out.set_detail(f.detail);
  out.set_evidence(f.evidence);
  out.set_review_state(f.review_state.empty() ? "open" : f.review_state);
  out.set_reviewed_by(f.reviewed_by);
  if (!f.reviewed_by.empty()) out.set_reviewed_at(Rfc3339(f.reviewed_at));
  out.set_review_reason(f.review_reason);
  return out;
}

// A finding as the caller may see it: its ID number clear with the personal-data right (masked
// when this key cannot open it), masked otherwise.
v1::Finding ShownFinding(const FindingRecord& f, const common::PiiProtector& protector, bool pii) {
  v1::Finding out = ToProto(f);
  if (pii && !f.id_sealed.empty()) {
    if (auto clear = protector.Open(f.id_sealed); clear.ok()) out.set_id_number(*clear);
  }
  return out;
}

}  // namespace

std::string NewCheckRunId(absl::Time started) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen;
  absl::MutexLock lock(&mu);
  return absl::StrCat(absl::FormatTime("%Y%m%dT%H%M%E3SZ", started, absl::UTCTimeZone()), "-",
                      absl::StrFormat("%08x", absl::Uniform<uint32_t>(*gen)));
}

namespace {

absl::Status CheckRunId(const std::string& run_id) {
  if (run_id.empty() || run_id == "latest") return absl::OkStatus();
  if (!IsReference(run_id, 40)) return common::InvalidField("run_id", "is not a run id");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::CheckRun> DisbursementLogic::RunCheck(const v1::RunCheckRequest& request,
                                                         const std::string& requested_by, absl::Time deadline,
                                                         absl::Duration answer_within) {
  if (auto s = CheckCode("program_code", request.program_code(), false); !s.ok()) return s;
  std::optional<common::Period> period;
  if (!request.period().empty()) {
    auto p = CheckPeriod("period", request.period());
    if (!p.ok()) return p.status();
    period = *p;
  }
  const absl::Time started = clock_();
  absl::CivilDay as_of = common::TodayInChina(started);
  if (!request.as_of().empty()) {
    auto d = common::ParseDate(request.as_of());
    if (!d.ok()) return common::InvalidField("as_of", S(d.status().message()));
    as_of = *d;
  }
  // Known programme and a period of its form, before anything starts (NOT_FOUND, INVALID_ARGUMENT).
  {
    auto conn = pool_.Acquire(std::min(deadline, absl::Now() + absl::Seconds(10)));
    if (!conn.ok()) return conn.status();
    if (auto s = KnownProgramme(*conn, request.program_code(), period ? &*period : nullptr); !s.ok()) return s;
  }
  const std::string period_text = period ? period->ToString() : "";
  const std::string scope = absl::StrCat("program=", request.program_code(), ";period=", period_text,
                                         ";as_of=", common::FormatDate(as_of));
  const std::string triggered_by = requested_by == kScheduler ? kScheduler : "manual";
  auto begun = runs_->Start(
      scope, requested_by,
      [this, request, period, as_of, started, triggered_by](const std::string& run_id,
                                                           common::checks::ProgressReporter& progress) {
        absl::Status s = ExecuteCheck(request, period, as_of, started, run_id, triggered_by, progress);
        if (!s.ok()) metrics_->Failed();
        return s;
      });
  if (!begun.ok()) return begun.status();
  // Answers when the run ends or within answer_within, and before the caller's deadline.
  const absl::Time until = std::min(absl::Now() + answer_within, deadline - absl::Milliseconds(500));
  auto op = runs_->Wait(begun->operation.run_id, until);
  if (!op.ok()) return op.status();
  if (op->state == common::checks::RunState::kFailed) return op->status();
  return ShownRun(*op);
}

absl::StatusOr<v1::CheckRun> DisbursementLogic::ShownRun(const common::checks::Operation& op) {
  if (op.state == common::checks::RunState::kSucceeded) {
    auto conn = pool_.Acquire(absl::Now() + absl::Seconds(10));
    if (!conn.ok()) return conn.status();
    auto run = Track(*conn, repo_.FindRun(**conn, op.run_id));
    if (!run.ok()) return run.status();
    if (run->has_value()) return WithOperation(ToProto(**run), op);
  }
  // Running or failed: what the scope and the operation say (the counts come with success).
  v1::CheckRun out;
  out.set_run_id(op.run_id);
  std::map<std::string, std::string> parts;
  for (absl::string_view part : absl::StrSplit(op.scope_key, ';')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    parts[kv.first] = kv.second;
  }
  out.set_program_code(parts["program"]);
  out.set_period(parts["period"]);
  out.set_as_of(parts["as_of"]);
  out.set_started_at(Rfc3339(op.started_at));
  return WithOperation(std::move(out), op);
}

absl::Status DisbursementLogic::ExecuteCheck(const v1::RunCheckRequest& request, std::optional<common::Period> period,
                                             absl::CivilDay as_of, absl::Time started, const std::string& run_id,
                                             const std::string& triggered_by,
                                             common::checks::ProgressReporter& progress) {
  constexpr int64_t kReadSteps = 6;
  progress.Report("reading", 0, kReadSteps);
  auto conn = pool_.Acquire(absl::Now() + absl::Seconds(10));
  if (!conn.ok()) return conn.status();
  // Everything the run reads on this connection is one snapshot (REPEATABLE READ: taken at
  // its first read, the data generation): an ingest that commits while the run reads is
  // wholly in it or wholly not, and the run records the generation it saw. Persons, read on a
  // second connection, are never changed or removed once committed.
  auto reading = std::make_unique<common::Transaction>(**conn);
  if (auto st = Track(*conn, reading->Begin()); !st.ok()) return st;
  auto generation = Track(*conn, repo_.DataGeneration(**conn));
  if (!generation.ok()) return generation.status();
  auto programmes = Track(*conn, repo_.LoadProgrammes(**conn));
  if (!programmes.ok()) return programmes.status();
  if (!request.program_code().empty()) {
    auto it = std::find_if(programmes->begin(), programmes->end(),
                           [&](const ProgrammeRow& p) { return p.program_code == request.program_code(); });
    if (it == programmes->end()) return ProgrammeNotFound("program_code", request.program_code());
    if (period && !PeriodFits(*period, it->frequency)) {
      return common::InvalidField("period", PeriodFormMessage(it->program_code, it->frequency));
    }
  }
  std::vector<std::string> warnings;
  DisbursementInput in;
  for (const auto& p : *programmes) in.programmes.push_back(EngineProgramme(p));
  // Persons: stored number -> the engine's key (the ID number, decrypted here, in memory only).
  // Decrypting every stored ID number is the costly part of reading them: it runs on a thread
  // of its own (on a second connection) while the other tables are read, their rows naming
  // the person by number for now; once both are done, every row's number is replaced by the
  // key, and rows whose person cannot be read are left out (as they were when the key was
  // looked up row by row: same rows, same order).
  // The big inputs are gathered in blocks and moved into vectors of their exact size (grown by
  // doubling, a vector would hold up to three times its rows while it moves; a COUNT(*) first
  // would read every row twice).
  const std::string period_text = period ? period->ToString() : "";
  PersonTable persons;
  auto max_no = Track(*conn, repo_.MaxPersonNumber(**conn));
  if (!max_no.ok()) return max_no.status();
  persons.Resize(*max_no);
  int64_t unreadable = 0;
  auto scan_persons = [&](common::PooledConnection& c) -> absl::Status {
    try {
      return Track(c, repo_.ScanPersons(*c, [&](const PersonRecord& p) {
        auto id = pii_.Open(p.id_sealed);
        std::optional<PersonKey> key = id.ok() ? PersonKeyOf(*id) : std::nullopt;
        if (!key || *key == 0) {
          ++unreadable;
          return;
        }
        persons.Set(p.person_no, *key);
      }));
    } catch (const std::exception& e) {  // e.g. bad_alloc: a Status, never a terminate on a thread
      return absl::InternalError(absl::StrCat("read persons: ", e.what()));
    }
  };
  auto number = [](int64_t person_no) { return static_cast<PersonKey>(person_no > 0 ? person_no : 0); };
  // Enrolments: read on the second connection once the persons are (beside the accounts and
  // payments on this one) when its snapshot holds the same data as this one's (the same data
  // generation: every ingest that changes data moves it), else here after the payments. The
  // programmes' symbols are made here first; a code of no programme is kept aside and made
  // after (the symbol table is this thread's).
  std::map<std::string, Symbol, std::less<>> programme_symbol;
  for (const auto& p : *programmes) programme_symbol.emplace(p.program_code, in.symbols.Intern(p.program_code));
  // Sizes from the statistics, for the first blocks of the big inputs (an estimate the
  // database cannot give is no error: the blocks then start small).
  auto estimated = [&](const char* table) -> int64_t {
    auto n = repo_.EstimatedRows(**conn, table);
    return n.ok() ? *n : 0;
  };
  BlockRows<Enrolment> enrolments;
  enrolments.ExpectRows(estimated("enrolments"));
  std::vector<std::pair<size_t, std::string>> enrolments_of_no_programme;  // (row, code)
  size_t enrolment_rows = 0;
  auto read_enrolments = [&](common::PooledConnection& c) -> absl::Status {
    std::string last_from;
    PeriodCode last_from_code{};
    try {
      return Track(c, repo_.ScanEnrolments(*c, request.program_code(), [&](const StoredEnrolment& e) {
        Enrolment out;
        out.amount_fen = e.amount_fen.value_or(kProgrammeAmount);
        out.person = number(e.person_no);
        if (auto it = programme_symbol.find(e.program_code); it != programme_symbol.end()) {
          out.program = it->second;
        } else {
          enrolments_of_no_programme.emplace_back(enrolment_rows, e.program_code);
        }
        if (e.from_period != last_from) {
          last_from = e.from_period;
          last_from_code = PeriodCodeOf(common::ParsePeriod(e.from_period).value_or(common::Period{}));
        }
        out.from_period = last_from_code;
        if (!e.to_period.empty()) {
          out.to_period = PeriodCodeOf(common::ParsePeriod(e.to_period).value_or(common::Period{}));
        }
        enrolments.push_back(out);
        ++enrolment_rows;
      }));
    } catch (const std::exception& e) {  // e.g. bad_alloc: a Status, never a terminate on a thread
      return absl::InternalError(absl::StrCat("read enrolments: ", e.what()));
    }
  };
  absl::Status persons_read, enrolments_read;
  bool enrolments_beside = false;
  // A second connection only if one is free now (the check works on one otherwise).
  auto second = pool_.TryAcquire();
  std::thread persons_thread;
  const absl::Time t_second_start = absl::Now();
  absl::Time t_second_persons = t_second_start, t_second_end = t_second_start;  // set by its thread
  if (second.ok()) {
    persons_thread = std::thread([&] {
      struct End {
        absl::Time& t;
        ~End() { t = absl::Now(); }
      } end{t_second_end};
      persons_read = scan_persons(*second);
      t_second_persons = absl::Now();
      if (!persons_read.ok()) return;
      if (before_second_snapshot_) before_second_snapshot_();
      common::Transaction same(**second);
      if (!same.Begin().ok()) return;
      auto g = Track(*second, repo_.DataGeneration(**second));
      if (!g.ok() || *g != *generation) return;  // an ingest committed meanwhile: read here after all
      enrolments_beside = true;
      enrolments_read = read_enrolments(*second);
    });
  } else {
    persons_read = scan_persons(*conn);  // no second connection to be had: one after the other
    if (!persons_read.ok()) return persons_read;
  }
  struct JoinPersons {
    std::thread& t;
    ~JoinPersons() {
      if (t.joinable()) t.join();
    }
  } join_persons{persons_thread};
  // When each part of the run ended (logged at the end: where a run's time goes).
  absl::Time t_start_scans = absl::Now(), t_accounts, t_payments, t_persons, t_enrolments, t_engine;
  absl::Status s;
  // Accounts with their person's roll entry: the roll first, into an array by person number
  // (8 bytes a number, freed after), then the accounts, joined here (an account of a person on
  // no roll is left out, as the inner join did).
  struct RollFacts {
    Symbol household = kNoSymbol;
    bool on_roll = false, head = false, cadre = false;
  };
  std::vector<RollFacts> roll(static_cast<size_t>(std::max<int64_t>(*max_no, 0)) + 1);
  s = Track(*conn, repo_.ScanRoll(**conn, [&](const DisbursementRepository::RollEntry& r) {
    if (r.person_no <= 0) return;
    const auto no = static_cast<size_t>(r.person_no);
    if (no >= roll.size()) roll.resize(no + 1);
    roll[no] = {in.symbols.Intern(r.household_id), true, r.is_household_head, r.is_cadre};
  }));
  if (!s.ok()) return s;
  progress.Report("reading", 1, kReadSteps);
  BlockRows<RecipientRow> recipients;
  recipients.ExpectRows(estimated("recipient_accounts"));
  // The account each person's history names last (accounts are read in (person, since)
  // order), by person number: nearly every payment is made to it, and comparing the payment's
  // account with it (one string) spares the symbol table's search for it.
  std::vector<Symbol> last_account(roll.size(), kNoSymbol);
  s = Track(*conn, repo_.ScanAccounts(**conn, [&](const DisbursementRepository::AccountRow& a) {
    const auto no = static_cast<size_t>(std::max<int64_t>(a.person_no, 0));
    if (no >= roll.size() || !roll[no].on_roll) return;
    RecipientRow r;
    r.person = number(a.person_no);
    r.household = roll[no].household;
    r.account = in.symbols.Intern(a.account_no);
    last_account[no] = r.account;
    r.account_since = DayNumberOf(a.since);
    r.is_household_head = roll[no].head;
    r.is_cadre = roll[no].cadre;
    recipients.push_back(r);
  }));
  if (!s.ok()) return s;
  std::vector<RollFacts>().swap(roll);
  recipients.MoveInto(in.recipients);
  t_accounts = absl::Now();
  progress.Report("reading", 2, kReadSteps);
  s = Track(*conn, repo_.ScanDeaths(**conn, [&](int64_t person_no, absl::CivilDay day) {
    in.civil_events.push_back({number(person_no), CivilEventKind::kDeath, day});
  }));
  if (!s.ok()) return s;
  BlockRows<Payment> payments;
  payments.ExpectRows(estimated("payments"));
  // Batch, programme and period repeat from row to row: interned once per run of equal values.
  RepeatCache batch_of(in.symbols), program_of(in.symbols);
  std::string last_period;
  PeriodCode last_period_code{};
  // Every payment and batch is read whatever the scope: reversals net off payments of any period,
  // a payment is due by the batch it names (of any programme), an account is shared across
  // programmes, a batch's rows may be of any programme. The engine judges only the scope's.
  s = Track(*conn, repo_.ScanPayments(**conn, [&](const StoredPayment& p) {
    Payment out;
    out.payment_id = in.text.Add(p.payment_id);
    if (!p.reverses.empty()) out.reverses = in.text.Add(p.reverses);
    out.paid_at_us = PaidAtMicros(p.paid_at);
    out.person = number(p.person_no);
    out.amount_fen = p.amount_fen;
    out.batch = batch_of(p.batch_id);
    out.program = program_of(p.program_code);
    const auto no = static_cast<size_t>(std::max<int64_t>(p.person_no, 0));
    if (no < last_account.size() && last_account[no] != kNoSymbol &&
        in.symbols.Name(last_account[no]) == p.account_no) {
      out.account = last_account[no];
    } else {
      out.account = in.symbols.Intern(p.account_no);
    }
    if (p.period != last_period) {
      last_period = p.period;
      last_period_code = PeriodCodeOf(common::ParsePeriod(p.period).value_or(common::Period{}));
    }
    out.period = last_period_code;
    payments.push_back(out);
  }));
  if (!s.ok()) return s;
  payments.MoveInto(in.payments);
  std::vector<Symbol>().swap(last_account);
  t_payments = absl::Now();
  progress.Report("reading", 3, kReadSteps);
  if (persons_thread.joinable()) persons_thread.join();
  t_persons = absl::Now();
  progress.Report("reading", 4, kReadSteps);
  if (!persons_read.ok()) return persons_read;
  if (!enrolments_beside) enrolments_read = read_enrolments(*conn);
  if (!enrolments_read.ok()) return enrolments_read;
  enrolments.MoveInto(in.enrolments);
  for (const auto& [row, code] : enrolments_of_no_programme) in.enrolments[row].program = in.symbols.Intern(code);
  t_enrolments = absl::Now();
  progress.Report("reading", 5, kReadSteps);
  second = absl::UnavailableError("released");  // the second connection goes back to the pool
  if (unreadable > 0) {
    warnings.push_back(absl::StrCat(unreadable, " stored ID numbers could not be decrypted with this key; "
                                                "their rows were left out of the run"));
  }
  // Numbers -> keys, in place; a row whose person cannot be read is left out.
  int64_t orphans = 0;
  auto to_keys = [&](auto& rows) {
    size_t kept = 0;
    for (size_t k = 0; k < rows.size(); ++k) {
      auto key = persons.Find(static_cast<int64_t>(rows[k].person));
      if (!key) {
        ++orphans;
        continue;
      }
      rows[kept] = rows[k];
      rows[kept].person = *key;
      ++kept;
    }
    rows.resize(kept);
  };
  to_keys(in.enrolments);
  to_keys(in.recipients);
  to_keys(in.civil_events);
  to_keys(in.payments);
  persons.Clear();  // not needed by the engine
  std::vector<PersonKey> cadres;
  for (const RecipientRow& r : in.recipients) {
    if (r.is_cadre && (cadres.empty() || cadres.back() != r.person)) cadres.push_back(r.person);
  }
  auto kin = kinship_.KinOfCadres(cadres, warnings);
  if (!kin.ok()) return kin.status();
  in.kin_of_cadres = std::move(*kin);
  if (orphans > 0) {
    warnings.push_back(absl::StrCat(orphans, " stored rows name a person whose ID number could not be read; "
                                             "they were left out of the run"));
  }
  auto batches = Track(*conn, repo_.LoadBatches(**conn));
  if (!batches.ok()) return batches.status();
  reading.reset();  // the last read: the snapshot ends (rolled back: it wrote nothing)
  for (const auto& b : *batches) {
    in.batches.push_back({in.symbols.Intern(b.batch_id), in.symbols.Intern(b.program_code), PeriodCodeOf(b.period),
                          b.declared_count, b.declared_total_fen, b.scheduled_on});
  }
  CheckOptions options;
  options.as_of = as_of;
  if (!request.program_code().empty()) options.program_code = request.program_code();
  options.period = period;
  progress.Report("judging");
  auto result = CheckDisbursements(in, options);
  if (!result.ok()) return result.status();
  t_engine = absl::Now();
  in = DisbursementInput();  // free the input before storing

  CheckRunRecord record;
  record.run_id = run_id;
  record.program_code = request.program_code();
  record.period = period_text;
  record.as_of = as_of;
  record.started_at = started;
  record.finished_at = clock_();
  record.data_generation = *generation;
  record.payments_checked = result->payments_judged + result->reversals_judged;
  record.entitlements_checked = result->entitlements_checked;
  record.warnings = warnings;
  record.triggered_by = triggered_by;
  for (int r = 0; r < kRuleCount; ++r) {
    record.counts.emplace_back(std::string(RuleCode(static_cast<Rule>(r))), result->count_by_rule[r]);
  }
  std::sort(record.counts.begin(), record.counts.end());
  std::vector<FindingRecord> findings;
  findings.reserve(result->findings.size());
  int64_t seq = 0;
  for (const Finding& f : result->findings) {
    FindingRecord out;
    out.seq = ++seq;
    out.rule = std::string(RuleCode(f.rule));
    out.program_code = f.program_code;
    out.period = f.period;
    if (f.person) out.id_hash = pii_.Hash(IdNumberOf(*f.person));
    out.payment_id = f.payment_id;
    out.batch_id = f.batch_id;
    out.expected_fen = f.expected_fen;
    out.actual_fen = f.actual_fen;
    out.detail = f.detail;
    out.evidence = f.evidence;
    out.finding_id = FindingIdOf(out.rule, out.program_code, out.period, out.id_hash, out.payment_id,
                                 out.id_hash.empty() && out.payment_id.empty() ? out.batch_id : "");
    findings.push_back(std::move(out));
  }
  progress.Report("storing", 0, static_cast<int64_t>(findings.size()));
  common::Transaction tx(**conn);
  if (auto st = Track(*conn, tx.Begin()); !st.ok()) return st;
  if (auto st = Track(*conn, repo_.InsertRun(**conn, record)); !st.ok()) return st;
  if (auto st = Track(*conn, repo_.InsertFindings(**conn, record.run_id, findings)); !st.ok()) return st;
  if (auto st = Track(*conn, tx.Commit()); !st.ok()) return st;
  metrics_->Ran(result->count_by_rule, absl::ToDoubleSeconds(record.finished_at - started));
  common::LogInfo("disbursement check finished",
                  {{"run_id", std::string_view(record.run_id)},
                   {"findings", static_cast<int64_t>(findings.size())},
                   {"payments", record.payments_checked},
                   {"seconds", absl::ToDoubleSeconds(record.finished_at - started)},
                   {"read_accounts_s", absl::ToDoubleSeconds(t_accounts - t_start_scans)},
                   {"read_deaths_payments_s", absl::ToDoubleSeconds(t_payments - t_accounts)},
                   {"wait_second_connection_s", absl::ToDoubleSeconds(t_persons - t_payments)},
                   {"second_persons_s", absl::ToDoubleSeconds(t_second_persons - t_second_start)},
                   {"second_all_s", absl::ToDoubleSeconds(t_second_end - t_second_start)},
                   {"enrolments_beside", enrolments_beside},
                   {"read_enrolments_after_s", absl::ToDoubleSeconds(t_enrolments - t_persons)},
                   {"kin_batches_engine_s", absl::ToDoubleSeconds(t_engine - t_enrolments)},
                   {"store_s", absl::ToDoubleSeconds(absl::Now() - t_engine)},
                   {"triggered_by", std::string_view(triggered_by)}});
  return absl::OkStatus();
}

absl::StatusOr<v1::CheckRun> DisbursementLogic::GetCheckRun(const std::string& run_id, absl::Time deadline) {
  if (run_id.empty()) return common::InvalidField("run_id", "is required (or \"latest\")");
  if (auto s = CheckRunId(run_id); !s.ok()) return s;
  if (run_id != "latest") {
    // A run started through the operations (every run since they came): its state and progress.
    auto op = runs_->Find(run_id);
    if (!op.ok()) return op.status();
    if (op->has_value()) return ShownRun(**op);
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto run = Track(*conn, repo_.FindRun(**conn, run_id));
  if (!run.ok()) return run.status();
  if (!run->has_value()) {
    return absl::NotFoundError(run_id == "latest" ? std::string("run_id: no check has run yet")
                                                  : absl::StrCat("run_id: check run ", common::MaskIdNumbersIn(run_id),
                                                                 " does not exist"));
  }
  v1::CheckRun out = ToProto(**run);
  if (run_id == "latest") {
    auto op = runs_->Find((*run)->run_id);
    if (op.ok() && op->has_value()) return WithOperation(std::move(out), **op);
  }
  out.set_state(checks::v1::SUCCEEDED);  // a run stored before the operations: finished
  out.mutable_progress()->set_phase("done");
  return out;
}

absl::StatusOr<v1::CheckRun> DisbursementLogic::WaitCheckRun(const std::string& run_id, absl::Time until) {
  if (run_id.empty() || run_id == "latest") return GetCheckRun(run_id, until);
  if (auto s = CheckRunId(run_id); !s.ok()) return s;
  auto op = runs_->Find(run_id);
  if (!op.ok()) return op.status();
  if (!op->has_value()) return GetCheckRun(run_id, until);
  auto waited = runs_->Wait(run_id, until);
  if (!waited.ok()) return waited.status();
  return ShownRun(*waited);
}

absl::StatusOr<v1::ListFindingsResponse> DisbursementLogic::ListFindings(const v1::ListFindingsRequest& request,
                                                                        bool pii, absl::Time deadline) {
  if (auto s = CheckRunId(request.run_id()); !s.ok()) return s;
  if (!request.rule().empty() && !RuleFromCode(request.rule())) {
    return common::InvalidField("rule", "is not a disbursement rule code");
  }
  const std::string& state = request.review_state();
  if (!state.empty() && state != "open" && state != "confirmed" && state != "dismissed" && state != "resolved") {
    return common::InvalidField("review_state", "must be open, confirmed, dismissed or resolved");
  }
  auto page_size = PageSize(request.page_size());
  if (!page_size.ok()) return page_size.status();
  // The token names its run: the next pages of "latest" stay in the run the first page came from.
  std::string run_id = request.run_id();
  int64_t after = 0;
  if (!request.page_token().empty()) {
    auto parts = ReadToken(request.page_token(), FindingsScope(request), 2);
    if (!parts.ok()) return parts.status();
    if (!absl::SimpleAtoi((*parts)[1], &after) || after < 0 || !IsReference((*parts)[0], 40)) {
      return common::InvalidField("page_token", "is not a token this service issued");
    }
    if (!run_id.empty() && run_id != "latest" && run_id != (*parts)[0]) {
      return common::InvalidField("page_token", "belongs to the findings of another run");
    }
    run_id = (*parts)[0];
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto run = Track(*conn, repo_.FindRun(**conn, run_id));
  if (!run.ok()) return run.status();
  if (!run->has_value()) {
    if (!request.page_token().empty()) {
      return common::InvalidField("page_token", "names a check run that does not exist");
    }
    return absl::NotFoundError(run_id.empty() || run_id == "latest"
                                   ? std::string("run_id: no check has run yet")
                                   : absl::StrCat("run_id: check run ", common::MaskIdNumbersIn(run_id),
                                                  " does not exist"));
  }
  auto rows = Track(*conn, repo_.ListFindings(**conn, (*run)->run_id, request.rule(), state, after, *page_size + 1));
  if (!rows.ok()) return rows.status();
  const bool more = static_cast<int>(rows->size()) > *page_size;
  if (more) rows->resize(*page_size);
  v1::ListFindingsResponse response;
  for (const auto& f : *rows) *response.add_findings() = ShownFinding(f, pii_, pii);
  if (more) {
    response.set_next_page_token(MakeToken(FindingsScope(request), {(*run)->run_id, std::to_string(rows->back().seq)}));
  }
  return response;
}

absl::Status DisbursementLogic::ExportFindings(const v1::ExportFindingsRequest& request,
                                               const std::function<bool(std::string_view)>& sink) {
  if (auto s = CheckRunId(request.run_id()); !s.ok()) return s;
  auto conn = pool_.Acquire(absl::Now() + absl::Seconds(10));
  if (!conn.ok()) return conn.status();
  auto run = Track(*conn, repo_.FindRun(**conn, request.run_id()));
  if (!run.ok()) return run.status();
  if (!run->has_value()) {
    return absl::NotFoundError(request.run_id().empty() || request.run_id() == "latest"
                                   ? std::string("run_id: no check has run yet")
                                   : absl::StrCat("run_id: check run ", common::MaskIdNumbersIn(request.run_id()),
                                                  " does not exist"));
  }
  if (!request.unmasked()) {
    // Masked (every caller without the personal-data right, and the CLI's default): streamed from
    // the database already in the file's order, in constant memory, nothing decrypted.
    bool open = true;
    FindingsCsvWriter writer([&](std::string_view piece) {
      if (open) open = sink(piece);
    });
    auto s = Track(*conn, repo_.ScanFindingsInMaskedCsvOrder(**conn, (*run)->run_id, [&](const FindingRecord& f) {
      if (!open) return;  // the receiver stopped: the rest is read off the connection, not written
      writer.Row(f.rule, f.program_code, f.period, f.id_hash.empty() ? "" : f.id_masked, f.payment_id, f.expected_fen,
                 f.actual_fen, f.detail);
    }));
    if (!s.ok()) return s;
    writer.Finish();
    if (!open) return absl::CancelledError("export cancelled by the receiver");
    return absl::OkStatus();
  }
  // With clear ID numbers the order is by the clear number, which only the decrypted rows give:
  // gathered and sorted here (a privileged export, by run).
  std::vector<Finding> findings;
  int64_t after = 0;
  constexpr int kPage = 10000;
  while (true) {
    auto rows = Track(*conn, repo_.ListFindings(**conn, (*run)->run_id, "", "", after, kPage));
    if (!rows.ok()) return rows.status();
    for (const auto& r : *rows) {
      Finding f;
      f.rule = RuleFromCode(r.rule).value_or(Rule::kNotEntitled);
      f.program_code = r.program_code;
      f.period = r.period;
      if (!r.id_hash.empty()) {
        auto id = pii_.Open(r.id_sealed);
        if (!id.ok()) return absl::DataLossError("a stored ID number could not be decrypted with this key");
        f.person = PersonKeyOf(*id);
      }
      f.payment_id = r.payment_id;
      f.batch_id = r.batch_id;
      f.expected_fen = r.expected_fen;
      f.actual_fen = r.actual_fen;
      f.detail = r.detail;
      f.evidence = r.evidence;
      findings.push_back(std::move(f));
      after = r.seq;
    }
    if (static_cast<int>(rows->size()) < kPage) break;
  }
  bool open = true;
  WriteFindingsCsv(findings, FindingsCsvOptions{request.unmasked()}, [&](std::string_view piece) {
    if (open) open = sink(piece);
  });
  if (!open) return absl::CancelledError("export cancelled by the receiver");
  return absl::OkStatus();
}

namespace {

absl::StatusOr<std::string> CheckFindingId(const std::string& finding_id) {
  std::string raw;
  if (finding_id.empty()) return common::InvalidField("finding_id", "is required");
  if (finding_id.size() != 32 || !HexToBytes(finding_id, &raw)) {
    return common::InvalidField("finding_id", "must be the 32 hex characters of a finding id");
  }
  return absl::AsciiStrToLower(finding_id);  // as issued
}

std::string Rfc3339Micros(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone()); }

}  // namespace

absl::StatusOr<v1::Finding> DisbursementLogic::FindingWithHistory(common::PooledConnection& conn,
                                                                   const FindingRecord& f, bool pii) {
  auto history = Track(conn, reviews_.History(*conn, f.finding_id));
  if (!history.ok()) return history.status();
  v1::Finding out = ShownFinding(f, pii_, pii);
  for (const auto& d : *history) {
    auto* h = out.add_review_history();
    h->set_from_state(std::string(common::checks::ReviewStateName(d.from)));
    h->set_to_state(std::string(common::checks::ReviewStateName(d.to)));
    h->set_reason(d.reason);
    h->set_reviewer(d.reviewer);
    h->set_decided_at(Rfc3339Micros(d.decided_at));
  }
  return out;
}

absl::StatusOr<v1::Finding> DisbursementLogic::GetFinding(const std::string& finding_id_in, bool pii,
                                                          absl::Time deadline) {
  auto finding_id = CheckFindingId(finding_id_in);
  if (!finding_id.ok()) return finding_id.status();
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto found = Track(*conn, repo_.FindFinding(**conn, *finding_id));
  if (!found.ok()) return found.status();
  if (!found->has_value()) return absl::NotFoundError(absl::StrCat("finding_id: finding ", *finding_id, " does not exist"));
  return FindingWithHistory(*conn, **found, pii);
}

absl::StatusOr<v1::Finding> DisbursementLogic::ReviewFinding(const v1::ReviewFindingRequest& request,
                                                             const std::string& reviewer, bool pii,
                                                             absl::Time deadline) {
  auto finding_id = CheckFindingId(request.finding_id());
  if (!finding_id.ok()) return finding_id.status();
  const auto state = common::checks::ParseReviewState(request.state());
  if (!state) return common::InvalidField("state", "must be open, confirmed, dismissed or resolved");
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto found = Track(*conn, repo_.FindFinding(**conn, *finding_id));
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    return absl::NotFoundError(absl::StrCat("finding_id: finding ", *finding_id, " does not exist"));
  }
  // The transition against the state the finding has (written once: common/checks/review.h).
  auto decided = Track(*conn, reviews_.Record(**conn, *finding_id, *state, request.reason(), reviewer, clock_()));
  if (!decided.ok()) return decided.status();
  FindingRecord f = **found;
  f.review_state = std::string(common::checks::ReviewStateName(decided->to));
  f.review_reason = decided->reason;
  f.reviewed_by = decided->reviewer;
  f.reviewed_at = decided->decided_at;
  return FindingWithHistory(*conn, f, pii);
}

absl::StatusOr<std::vector<DueScope>> DisbursementLogic::DueScopes(absl::CivilDay today) {
  auto conn = pool_.Acquire(absl::Now() + absl::Seconds(10));
  if (!conn.ok()) return conn.status();
  auto generation = Track(*conn, repo_.DataGeneration(**conn));
  if (!generation.ok()) return generation.status();
  auto programmes = Track(*conn, repo_.LoadProgrammes(**conn));
  if (!programmes.ok()) return programmes.status();
  std::map<std::string, int> grace;
  for (const auto& p : *programmes) grace[p.program_code] = p.grace_days;
  auto batches = Track(*conn, repo_.LoadBatches(**conn));
  if (!batches.ok()) return batches.status();
  // Each scope with the last day of grace of its latest batch that is past: a run counts for it
  // only when its "as of" date is after that day (one as of an earlier date could not find what
  // that batch left unpaid).
  std::map<std::pair<std::string, std::string>, absl::CivilDay> due;
  for (const auto& b : *batches) {
    auto g = grace.find(b.program_code);
    if (g == grace.end()) continue;
    const absl::CivilDay last_day = b.scheduled_on + g->second;
    if (!(last_day < today)) continue;
    auto [it, fresh] = due.try_emplace({b.program_code, b.period.ToString()}, last_day);
    if (!fresh && it->second < last_day) it->second = last_day;
  }
  std::vector<DueScope> out;
  for (const auto& [scope, last_day] : due) {
    auto done = Track(*conn, repo_.HasRunAt(**conn, scope.first, scope.second, *generation, last_day));
    if (!done.ok()) return done.status();
    if (!*done) out.push_back({scope.first, scope.second});
  }
  return out;
}

}  // namespace grassroots::cadrepay
