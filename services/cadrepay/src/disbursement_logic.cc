#include "disbursement_logic.h"

#include <openssl/sha.h>

#include <cppconn/connection.h>
#include <cppconn/driver.h>
#include <mysql_driver.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <functional>
#include <map>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_split.h"
#include "disbursement/disbursement_engine.h"
#include "disbursement/findings_csv.h"
#include "entitlement.h"
#include "grassroots/common/csv.h"
#include "grassroots/common/log.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {
namespace {

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
constexpr size_t kFlushRows = 2000;

bool HexToBytes(const std::string& hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  for (char c : hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  *out = absl::HexStringToBytes(hex);
  return true;
}

std::string S(absl::string_view v) { return std::string(v.data(), v.size()); }

absl::StatusOr<int> PageSize(int requested, std::string_view field = "page_size") {
  if (requested == 0) return kDefaultPageSize;
  if (requested < 0 || requested > kMaxPageSize) {
    return common::InvalidField(field, absl::StrCat("must be between 1 and ", kMaxPageSize));
  }
  return requested;
}

// Page tokens: web-safe base64 of fields joined by '\x1f'.
std::string MakeToken(const std::vector<std::string>& parts) {
  return absl::WebSafeBase64Escape(absl::StrJoin(parts, "\x1f"));
}
absl::StatusOr<std::vector<std::string>> ReadToken(const std::string& token, size_t parts) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return common::InvalidField("page_token", "is not a token this service issued");
  std::vector<std::string> out = absl::StrSplit(raw, '\x1f');
  if (out.size() != parts) return common::InvalidField("page_token", "is not a token this service issued");
  return out;
}

std::string MaskAccount(const std::string& account) {
  if (account.size() <= 4) return account;
  return absl::StrCat(std::string(account.size() - 4, '*'), account.substr(account.size() - 4));
}

std::string Rfc3339(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E*S%Ez", t, common::ChinaTimeZone()); }

bool SameProgramme(const ProgrammeRow& a, const ProgrammeRow& b) {
  return a.program_code == b.program_code && a.name == b.name && a.unit == b.unit && a.frequency == b.frequency &&
         a.amount_fen == b.amount_fen && a.valid_from == b.valid_from && a.valid_to == b.valid_to &&
         a.excludes_cadre_households == b.excludes_cadre_households && a.grace_days == b.grace_days;
}

bool SameBatch(const BatchRow& a, const BatchRow& b) {
  return a.batch_id == b.batch_id && a.program_code == b.program_code && a.period == b.period &&
         a.declared_count == b.declared_count && a.declared_total_fen == b.declared_total_fen &&
         a.scheduled_on == b.scheduled_on;
}

std::string PeriodFormMessage(const std::string& program_code, const std::string& frequency) {
  return absl::StrCat("programme ", program_code, " is ", frequency, ": its periods are ",
                      frequency == "monthly" ? "YYYY-MM" : "YYYY");
}

std::string NewIngestId() {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(*gen));
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

// ---------------------------------------------------------------------------------------------
// Metrics

struct DisbursementLogic::Metrics {
  prometheus::Family<prometheus::Gauge>* findings = nullptr;
  prometheus::Family<prometheus::Counter>* rows = nullptr;
  prometheus::Counter* runs = nullptr;
  prometheus::Counter* failed_runs = nullptr;
  prometheus::Gauge* last_run_seconds = nullptr;
  prometheus::Counter* persons_from_cache = nullptr;
  prometheus::Counter* persons_from_database = nullptr;
  prometheus::Gauge* person_cache_entries = nullptr;

  explicit Metrics(prometheus::Registry* registry) {
    if (registry == nullptr) return;
    findings = &prometheus::BuildGauge()
                    .Name("grassroots_cadrepay_findings")
                    .Help("Findings of the latest disbursement check run, by rule")
                    .Register(*registry);
    rows = &prometheus::BuildCounter()
                .Name("grassroots_cadrepay_ingested_rows_total")
                .Help("Rows of interchange files ingested, by file and outcome")
                .Register(*registry);
    auto& run_family = prometheus::BuildCounter()
                           .Name("grassroots_cadrepay_check_runs_total")
                           .Help("Disbursement check runs, by result")
                           .Register(*registry);
    runs = &run_family.Add({{"result", "ok"}});
    failed_runs = &run_family.Add({{"result", "error"}});
    last_run_seconds = &prometheus::BuildGauge()
                            .Name("grassroots_cadrepay_check_run_seconds")
                            .Help("Duration of the latest disbursement check run")
                            .Register(*registry)
                            .Add({});
    for (int r = 0; r < kRuleCount; ++r) findings->Add({{"rule", std::string(RuleCode(static_cast<Rule>(r)))}});
    auto& lookups = prometheus::BuildCounter()
                        .Name("grassroots_cadrepay_person_number_lookups_total")
                        .Help("Persons an ingest looked for (not met earlier in its file): found in the cache, or looked "
                              "for in the database (found there, or new)")
                        .Register(*registry);
    persons_from_cache = &lookups.Add({{"source", "cache"}});
    persons_from_database = &lookups.Add({{"source", "database"}});
    person_cache_entries = &prometheus::BuildGauge()
                                .Name("grassroots_cadrepay_person_number_cache_entries")
                                .Help("Committed person numbers held by this process's person number cache")
                                .Register(*registry)
                                .Add({});
  }
  void PersonLookups(size_t from_cache, size_t from_database) {
    if (persons_from_cache == nullptr) return;
    persons_from_cache->Increment(static_cast<double>(from_cache));
    persons_from_database->Increment(static_cast<double>(from_database));
  }
  void PersonCacheSize(size_t entries) {
    if (person_cache_entries != nullptr) person_cache_entries->Set(static_cast<double>(entries));
  }
  void Ingested(FileKind kind, const exchange::v1::ImportReport& report) {
    if (rows == nullptr) return;
    const std::string file(FileKindName(kind));
    rows->Add({{"file", file}, {"outcome", "inserted"}}).Increment(static_cast<double>(report.inserted()));
    rows->Add({{"file", file}, {"outcome", "updated"}}).Increment(static_cast<double>(report.updated()));
    rows->Add({{"file", file}, {"outcome", "unchanged"}}).Increment(static_cast<double>(report.unchanged()));
    rows->Add({{"file", file}, {"outcome", "refused"}}).Increment(static_cast<double>(report.refused()));
  }
  void Ran(const std::array<int64_t, kRuleCount>& counts, double seconds) {
    if (findings == nullptr) return;
    runs->Increment();
    last_run_seconds->Set(seconds);
    for (int r = 0; r < kRuleCount; ++r) {
      findings->Add({{"rule", std::string(RuleCode(static_cast<Rule>(r)))}}).Set(static_cast<double>(counts[r]));
    }
  }
  void Failed() {
    if (failed_runs != nullptr) failed_runs->Increment();
  }
};

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
      metrics_(std::make_unique<Metrics>(registry)) {}

DisbursementLogic::~DisbursementLogic() = default;

// ---------------------------------------------------------------------------------------------
// Ingest: the shared part (CSV, header, report, connection and transaction, batching).

// A load running on a thread of its own (with Connector/C++'s per-thread setup). One at a time:
// Start waits for the one before.
class BackgroundLoad final {
 public:
  ~BackgroundLoad() { Join(); }
  // Waits for the load running, then starts `load` unless that one failed (its status).
  absl::Status Start(std::function<absl::Status()> load) {
    if (auto s = Wait(); !s.ok()) return s;
    thread_ = std::thread([this, load = std::move(load)] {
      sql::Driver* driver = sql::mysql::get_mysql_driver_instance();
      driver->threadInit();
      absl::Status s = load();
      driver->threadEnd();
      status_ = std::move(s);
    });
    return absl::OkStatus();
  }
  // Waits for the load running, if any: its status.
  absl::Status Wait() {
    Join();
    return std::exchange(status_, absl::OkStatus());
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
  absl::Status status_;  // of the last load, set by its thread
};

class IngestBase : public DisbursementLogic::Ingest {
 public:
  IngestBase(DisbursementLogic& logic, FileKind kind, const std::vector<common::CsvHeader::Column>& format)
      : logic_(logic), kind_(kind), format_(format) {
    reader_ = std::make_unique<common::CsvReader>([this](common::CsvRecord& r) { OnRecord(r); },
                                                  [this](const common::CsvSyntaxError& e) { OnSyntaxError(e); });
  }

  void Feed(std::string_view chunk) override {
    if (!failed_.ok() || file_refused_) return;
    reader_->Feed(chunk);
  }

  absl::StatusOr<exchange::v1::ImportReport> Finish() override {
    auto report = FinishWriting();
    // Both connections go back to the pool now, not when the caller lets go of this.
    WaitIdle();
    tx_.reset();
    side_ = common::PooledConnection();
    conn_ = common::PooledConnection();
    return report;
  }

 private:
  absl::StatusOr<exchange::v1::ImportReport> FinishWriting() {
    WaitIdle();
    if (failed_.ok() && !file_refused_) reader_->Finish();
    if (!failed_.ok()) {
      tx_.reset();  // rolled back at once
      return failed_;
    }
    if (!have_header_ && !file_refused_) {
      Error(0, "", "EMPTY_FILE", "the file has no header row");
      file_refused_ = true;
    }
    if (file_refused_) {
      exchange::v1::ImportReport report;
      report.set_file_refused(true);
      *report.mutable_errors() = report_.errors();
      return report;
    }
    // On failure the transaction is rolled back at once, not when the caller lets go of this.
    auto fail = [this](absl::Status s) {
      tx_.reset();
      return s;
    };
    if (auto s = Flush(); !s.ok()) return fail(s);
    if (auto s = Complete(); !s.ok()) return fail(s);
    if (report_.inserted() + report_.updated() > 0) {
      if (auto s = Track(conn_, logic_.repo_.BumpDataGeneration(*conn_)); !s.ok()) return fail(s);
    }
    if (auto s = Track(conn_, tx_->Commit()); !s.ok()) return fail(s);
    // Committed: this file's new numbers (and those it looked up) are now true for everyone.
    logic_.person_numbers_.AddAll(std::move(numbers_));
    logic_.metrics_->PersonCacheSize(logic_.person_numbers_.size());
    auto* errors = report_.mutable_errors();
    std::stable_sort(errors->begin(), errors->end(), [](const auto& a, const auto& b) { return a.line() < b.line(); });
    logic_.metrics_->Ingested(kind_, report_);
    return report_;
  }

 protected:
  // Parses a data record and queues it, or refuses it.
  virtual void OnRow(const common::CsvRecord& record) = 0;
  // Writes the queued rows (classifying them against what is stored).
  virtual absl::Status Flush() = 0;
  virtual size_t Queued() const = 0;
  // Once, after the header is accepted and the transaction begun.
  virtual absl::Status Prepare() { return absl::OkStatus(); }
  // Once, after the last Flush and before the commit.
  virtual absl::Status Complete() { return absl::OkStatus(); }
  // Bulk loads run on a thread of their own, on this ingest's connection (inside its
  // transaction), while the next rows are parsed and their persons looked up on the side
  // connection. The ingest's connection is touched by one thread at a time: every other use of
  // it waits for the load first (WaitLoad).
  // Waits for the load running, then starts `load` unless that one failed (its status).
  absl::Status LoadInBackground(std::function<absl::Status()> load) { return load_.Start(std::move(load)); }
  // Waits for the load running, if any: its status.
  absl::Status WaitLoad() { return load_.Wait(); }
  virtual void WaitIdle() { load_.Join(); }
  // The transaction's isolation (Begin).
  virtual common::Transaction::Isolation Isolation() const { return common::Transaction::Isolation::kServerDefault; }
  // A further connection if one is free now (none otherwise).
  absl::StatusOr<common::PooledConnection> TryConnection() { return logic_.pool_.TryAcquire(); }

 public:
  ~IngestBase() override { WaitIdle(); }

 protected:

  void Error(int64_t line, std::string column, std::string code, std::string message) {
    auto* e = report_.add_errors();
    e->set_line(line);
    e->set_column(std::move(column));
    e->set_code(std::move(code));
    e->set_message(std::move(message));
  }
  void Refuse(int64_t line, const RowProblems& problems) {
    for (const auto& p : problems) Error(line, p.column, p.code, p.message);
    report_.set_refused(report_.refused() + 1);
  }
  void Refuse(int64_t line, std::string column, std::string code, std::string message) {
    Error(line, std::move(column), std::move(code), std::move(message));
    report_.set_refused(report_.refused() + 1);
  }
  void Inserted(int64_t n = 1) { report_.set_inserted(report_.inserted() + n); }
  void Updated(int64_t n = 1) { report_.set_updated(report_.updated() + n); }
  void Unchanged(int64_t n = 1) { report_.set_unchanged(report_.unchanged() + n); }

  // In-file duplicate detection in constant memory per row: a 64-bit hash of the row's key.
  // Returns the line of an earlier row with the same key, or 0 (and remembers this one).
  int64_t SeenOnLine(std::string_view key, int64_t line) { return SeenHashOnLine(absl::HashOf(key), line); }
  // The same for a key already hashed (absl::HashOf of its parts: no key string to build).
  int64_t SeenHashOnLine(uint64_t key_hash, int64_t line) {
    auto [it, inserted] = seen_.try_emplace(key_hash, line);
    return inserted ? 0 : it->second;
  }

  // ---- Person numbers (the tables refer to a person by number; see V003__person_numbers.sql).
  // Looks up the stored numbers of those of these persons not met yet in this file. On the side
  // connection (autocommit), beside a load that may be running on the ingest's: a person once
  // committed is never renumbered or removed, so what it reads stays true. A person that another
  // ingest is writing and has not committed is not seen; NumberFor numbers them here as well,
  // and writing them then fails the ingest (ABORTED: send the file again).
  absl::Status LookUpPersons(const std::vector<std::string>& hashes) {
    batch_numbers_.clear();
    if (persons_were_empty_) return absl::OkStatus();  // every person met is new or numbered here
    // First the numbers this process has seen committed (PersonNumberCache), then the database.
    std::vector<PersonNumberCache::Key> keys;
    std::vector<const std::string*> of;
    for (const auto& h : hashes) {
      const auto key = PersonNumberCache::KeyOf(h);
      if (numbers_.contains(key)) continue;
      keys.push_back(key);
      of.push_back(&h);
    }
    if (keys.empty()) return absl::OkStatus();
    std::vector<int64_t> cached;
    logic_.person_numbers_.Find(keys, cached);
    std::vector<std::string> unknown;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (cached[i] != 0) {
        batch_numbers_.emplace(keys[i], cached[i]);
      } else {
        unknown.push_back(*of[i]);
      }
    }
    logic_.metrics_->PersonLookups(keys.size() - unknown.size(), unknown.size());
    if (unknown.empty()) return absl::OkStatus();
    if (auto s = AcquireSide(); !s.ok()) return s;
    auto found = Track(side_, logic_.repo_.LookupPersonNumbers(*side_, unknown));
    if (!found.ok()) return found.status();
    for (const auto& [h, no] : *found) {
      const auto key = PersonNumberCache::KeyOf(h);
      batch_numbers_.emplace(key, no);
      // Committed rows: shared with every later ingest, or remembered by this one when full.
      if (!logic_.person_numbers_.Add(key, no)) numbers_.emplace(key, no);
    }
    return absl::OkStatus();
  }
  // Whether LookUpPersons can find anything (persons were stored when this ingest began).
  bool NeedsLookups() const { return !persons_were_empty_; }
  // The number of a person met already (LookUpPersons first): stored, or new in this ingest.
  // A person not stored gets the next number of this ingest's block and is queued, sealed, for
  // WritePersons (sealing is the costly part: once per new person).
  absl::StatusOr<int64_t> NumberFor(std::string_view id_hash, const std::string& id_number) {
    const auto key = PersonNumberCache::KeyOf(id_hash);
    if (auto it = batch_numbers_.find(key); it != batch_numbers_.end()) return it->second;
    if (auto it = numbers_.find(key); it != numbers_.end()) return it->second;
    if (next_no_ == end_no_) {
      if (auto s = AcquireSide(); !s.ok()) return s;
      auto first = Track(side_, logic_.repo_.AllocatePersonNumbers(*side_, kNumberBlock));
      if (!first.ok()) return first.status();
      next_no_ = *first;
      end_no_ = *first + kNumberBlock;
    }
    const int64_t no = next_no_++;
    numbers_.emplace(key, no);
    new_persons_.push_back({no, std::string(id_hash), logic_.pii().Seal(id_number), common::MaskIdNumber(id_number)});
    return no;
  }
  // Writes the persons NumberFor numbered since the last call, on the ingest's connection.
  absl::Status WritePersons() {
    auto s = Tracked(logic_.repo_.InsertPersons(*conn_, new_persons_));
    new_persons_.clear();
    return s;
  }
  // Writes these persons on `conn` (not the ingest's: committed there as they go).
  absl::Status WritePersonsOn(common::PooledConnection& conn, const std::vector<PersonRecord>& persons) {
    return Track(conn, logic_.repo_.InsertPersons(*conn, persons));
  }
  std::vector<PersonRecord> TakeNewPersons() { return std::exchange(new_persons_, {}); }
  // The side connection, borrowed when first needed (files of programmes or batches never do).
  absl::Status AcquireSide() {
    if (side_.get() != nullptr) return absl::OkStatus();
    auto side = logic_.pool_.Acquire(absl::Now() + absl::Seconds(10));
    if (!side.ok()) return side.status();
    side_ = std::move(*side);
    return absl::OkStatus();
  }

  absl::Status LoadProgrammes() {
    auto rows = Track(conn_, logic_.repo_.LoadProgrammes(*conn_));
    if (!rows.ok()) return rows.status();
    for (auto& p : *rows) programmes_.emplace(p.program_code, std::move(p));
    return absl::OkStatus();
  }
  // The programme, or nullptr after refusing the row on `column`.
  const ProgrammeRow* KnownProgramme(int64_t line, const std::string& code) {
    auto it = programmes_.find(code);
    if (it == programmes_.end()) {
      Refuse(line, "program_code", "UNKNOWN_PROGRAMME", absl::StrCat("programme ", code, " does not exist"));
      return nullptr;
    }
    return &it->second;
  }

  sql::Connection& conn() { return *conn_; }
  DisbursementRepository& repo() { return logic_.repo_; }
  template <typename T>
  T Tracked(T result) { return Track(conn_, std::move(result)); }

  DisbursementLogic& logic_;
  exchange::v1::ImportReport report_;
  std::map<std::string, ProgrammeRow> programmes_;
  const std::string ingest_id_ = NewIngestId();

 private:
  void OnRecord(common::CsvRecord& record) {
    if (file_refused_ || !failed_.ok()) return;
    if (!have_header_) {
      have_header_ = true;
      header_names_ = record.fields;
      auto problems = header_.Bind(record.fields, format_);
      for (const auto& p : problems) Error(1, "", "BAD_HEADER", p.message);
      if (!problems.empty()) {
        file_refused_ = true;
        return;
      }
      failed_ = Begin();
      return;
    }
    report_.set_rows(report_.rows() + 1);
    OnRow(record);
    if (Queued() >= kFlushRows) failed_ = Flush();
  }

  void OnSyntaxError(const common::CsvSyntaxError& e) {
    if (file_refused_ || !failed_.ok()) return;
    if (!have_header_) {
      Error(e.line, "", "BAD_HEADER", e.message);
      file_refused_ = true;
      return;
    }
    report_.set_rows(report_.rows() + 1);
    const std::string column = e.column >= 1 && static_cast<size_t>(e.column) <= header_names_.size()
                                   ? header_names_[e.column - 1]
                                   : std::string();
    Refuse(e.line, column, "CSV_SYNTAX", e.message);
  }

  absl::Status Begin() {
    auto conn = logic_.pool_.Acquire(absl::Now() + absl::Seconds(10));
    if (!conn.ok()) return conn.status();
    conn_ = std::move(*conn);
    tx_ = std::make_unique<common::Transaction>(*conn_);
    if (auto s = Track(conn_, tx_->Begin(Isolation())); !s.ok()) return s;
    // No person stored (as this transaction sees it): every person met is new, and no lookup is
    // needed. Another ingest writing persons meanwhile makes writing ours fail (ABORTED).
    auto none = Track(conn_, logic_.repo_.TableIsEmpty(*conn_, "persons"));
    if (!none.ok()) return none.status();
    persons_were_empty_ = *none;
    // A database that went back (restored, emptied) makes the numbers seen before it untrue.
    auto counter = Track(conn_, logic_.repo_.NextPersonNumber(*conn_));
    if (!counter.ok()) return counter.status();
    logic_.person_numbers_.Validate(*counter);
    return Prepare();
  }

 protected:
  const common::CsvHeader& header() const { return header_; }

 private:
  FileKind kind_;
  const std::vector<common::CsvHeader::Column>& format_;
  std::unique_ptr<common::CsvReader> reader_;
  common::CsvHeader header_;
  std::vector<std::string> header_names_;
  bool have_header_ = false;
  bool file_refused_ = false;
  absl::Status failed_;
  absl::flat_hash_map<uint64_t, int64_t> seen_;
  common::PooledConnection conn_;
  std::unique_ptr<common::Transaction> tx_;
  // Person numbers: the side connection; this file's new persons (and those looked up that the
  // shared cache had no room for) by hash; the current batch's numbers found stored; the block
  // being handed out.
  static constexpr int64_t kNumberBlock = 65536;
  common::PooledConnection side_;
  BackgroundLoad load_;
  bool persons_were_empty_ = false;
  PersonNumberCache::Map numbers_;
  PersonNumberCache::Map batch_numbers_;
  std::vector<PersonRecord> new_persons_;
  int64_t next_no_ = 0, end_no_ = 0;
};

namespace {

// ---- programmes.csv

class ProgrammesIngest final : public IngestBase {
 public:
  explicit ProgrammesIngest(DisbursementLogic& logic) : IngestBase(logic, FileKind::kProgrammes, ProgrammeColumns()) {}

 private:
  absl::Status Prepare() override { return LoadProgrammes(); }
  size_t Queued() const override { return queue_.size(); }
  void OnRow(const common::CsvRecord& record) override {
    ProgrammeRow row;
    if (auto problems = ParseProgramme(header(), record, row); !problems.empty()) return Refuse(record.line, problems);
    if (int64_t earlier = SeenOnLine(row.program_code, record.line)) {
      return Refuse(record.line, "program_code", "DUPLICATE_IN_FILE",
                    absl::StrCat("programme ", row.program_code, " already appears on line ", earlier));
    }
    auto it = programmes_.find(row.program_code);
    if (it != programmes_.end() && SameProgramme(it->second, row)) return Unchanged();
    if (it != programmes_.end() && it->second.frequency != row.frequency) {
      return Refuse(record.line, "frequency", "FREQUENCY_CHANGED",
                    absl::StrCat("programme ", row.program_code, " is ", it->second.frequency,
                                 "; its frequency cannot change (its periods are stored)"));
    }
    (it == programmes_.end() ? inserted_ : updated_) += 1;
    queue_.push_back(std::move(row));
  }
  absl::Status Flush() override {
    if (auto s = Tracked(repo().UpsertProgrammes(conn(), queue_)); !s.ok()) return s;
    Inserted(inserted_);
    Updated(updated_);
    inserted_ = updated_ = 0;
    queue_.clear();
    return absl::OkStatus();
  }
  std::vector<ProgrammeRow> queue_;
  int64_t inserted_ = 0, updated_ = 0;
};

// ---- enrolments.csv

class EnrolmentsIngest final : public IngestBase {
 public:
  explicit EnrolmentsIngest(DisbursementLogic& logic) : IngestBase(logic, FileKind::kEnrolments, EnrolmentColumns()) {}

 private:
  struct Item {
    int64_t line;
    StoredEnrolment e;
    std::string id_number;
  };
  // Into an empty table, enrolments are all new: written with LOAD DATA in loads of this many.
  static constexpr size_t kLoadRows = 200000;
  absl::Status Prepare() override {
    if (auto s = LoadProgrammes(); !s.ok()) return s;
    auto none = Tracked(repo().TableIsEmpty(conn(), "enrolments"));
    if (!none.ok()) return none.status();
    table_was_empty_ = *none;
    return absl::OkStatus();
  }
  size_t Queued() const override { return queue_.size(); }
  void OnRow(const common::CsvRecord& record) override {
    EnrolmentRow row;
    if (auto problems = ParseEnrolment(header(), record, row); !problems.empty()) return Refuse(record.line, problems);
    const ProgrammeRow* programme = KnownProgramme(record.line, row.program_code);
    if (programme == nullptr) return;
    if (!PeriodFits(row.from_period, programme->frequency)) {
      return Refuse(record.line, "from_period", "PERIOD_FORM", PeriodFormMessage(row.program_code, programme->frequency));
    }
    Item item{record.line, {}, std::move(row.id_number)};
    item.e.program_code = row.program_code;
    item.e.id_hash = logic_.pii().Hash(item.id_number);
    item.e.from_period = row.from_period.ToString();
    item.e.to_period = row.to_period ? row.to_period->ToString() : "";
    item.e.amount_fen = row.amount_fen;
    if (int64_t earlier = SeenHashOnLine(absl::HashOf(std::string_view(item.e.program_code),
                                                      std::string_view(item.e.id_hash),
                                                      std::string_view(item.e.from_period)),
                                         record.line)) {
      return Refuse(record.line, "id_number", "DUPLICATE_IN_FILE",
                    absl::StrCat("this person's enrolment in ", row.program_code, " from ", item.e.from_period,
                                 " already appears on line ", earlier));
    }
    queue_.push_back(std::move(item));
  }
  absl::Status Flush() override {
    if (queue_.empty()) return absl::OkStatus();
    std::map<std::tuple<std::string, std::string, std::string>, StoredEnrolment> stored;
    if (!table_was_empty_) {
      std::vector<StoredEnrolment> keys;
      for (const auto& i : queue_) keys.push_back(i.e);
      auto existing = Tracked(repo().FindEnrolments(conn(), keys));
      if (!existing.ok()) return existing.status();
      for (auto& e : *existing) stored.emplace(std::make_tuple(e.program_code, e.id_hash, e.from_period), std::move(e));
    }
    std::vector<StoredEnrolment> write;
    std::vector<Item*> changed;
    std::vector<std::string> hashes;
    for (auto& i : queue_) {
      auto it = stored.find(std::make_tuple(i.e.program_code, i.e.id_hash, i.e.from_period));
      if (it != stored.end() && it->second.to_period == i.e.to_period && it->second.amount_fen == i.e.amount_fen) {
        Unchanged();
        continue;
      }
      if (it == stored.end()) Inserted(); else Updated();
      changed.push_back(&i);
      hashes.push_back(i.e.id_hash);
    }
    if (auto s = LookUpPersons(hashes); !s.ok()) return s;
    for (Item* i : changed) {
      auto no = NumberFor(i->e.id_hash, i->id_number);
      if (!no.ok()) return no.status();
      i->e.person_no = *no;
      (table_was_empty_ ? load_ : write).push_back(std::move(i->e));
    }
    queue_.clear();
    if (!table_was_empty_) {
      if (auto s = WritePersons(); !s.ok()) return s;
      return Tracked(repo().UpsertEnrolments(conn(), write));
    }
    if (load_.size() >= kLoadRows) return StartLoad();
    return absl::OkStatus();
  }
  absl::Status Complete() override {
    if (auto s = StartLoad(); !s.ok()) return s;
    return WaitLoad();
  }
  absl::Status StartLoad() {
    return LoadInBackground([this, persons = TakeNewPersons(), rows = std::exchange(load_, {})] {
      absl::Status s = Tracked(repo().InsertPersons(conn(), persons));
      return s.ok() ? Tracked(repo().LoadEnrolments(conn(), rows)) : s;
    });
  }
  std::vector<Item> queue_;
  bool table_was_empty_ = false;
  // The bulk path's persons' load (on a connection of its own, autocommit).
  BackgroundLoad persons_load_;
  std::vector<StoredEnrolment> load_;
};

// ---- recipients.csv

class RecipientsIngest final : public IngestBase {
 public:
  explicit RecipientsIngest(DisbursementLogic& logic) : IngestBase(logic, FileKind::kRecipients, RecipientColumns()) {}

 private:
  struct Item {
    int64_t line;
    RecipientCsvRow row;
    std::string id_hash;
  };
  size_t Queued() const override { return queue_.size(); }
  void OnRow(const common::CsvRecord& record) override {
    Item item;
    item.line = record.line;
    if (auto problems = ParseRecipient(header(), record, item.row); !problems.empty()) {
      return Refuse(record.line, problems);
    }
    item.id_hash = logic_.pii().Hash(item.row.id_number);
    if (int64_t earlier = SeenHashOnLine(absl::HashOf(std::string_view(item.id_hash), DayNumberOf(item.row.account_since)),
                                         record.line)) {
      return Refuse(record.line, "account_since", "DUPLICATE_IN_FILE",
                    absl::StrCat("this person's account from this date already appears on line ", earlier));
    }
    queue_.push_back(std::move(item));
  }
  // Into an empty table (as it was when this transaction began), the only rows a lookup could
  // find are the ones this ingest wrote: the lookups are made only for a batch that names a
  // person or household written earlier in this file, and new rows are written with LOAD DATA
  // (another ingest writing meanwhile makes the load fail: ABORTED).
  // The persons of that bulk path are loaded on a connection of their own, beside the loads of
  // the recipients and accounts (the server's one LOAD thread per connection was the chain that
  // set the time; persons were 43 % of it at 1M): committed as they go, so a file that fails
  // later leaves its persons stored (an identity says nothing by itself; a later ingest of the
  // same people finds and uses their numbers). Hence READ COMMITTED: the lookups join the
  // persons those loads committed after this transaction began.
  common::Transaction::Isolation Isolation() const override {
    return common::Transaction::Isolation::kReadCommitted;
  }
  absl::Status Prepare() override {
    auto none = Tracked(repo().TableIsEmpty(conn(), "recipients"));
    if (!none.ok()) return none.status();
    table_was_empty_ = *none;
    return absl::OkStatus();
  }
  void WaitIdle() override {
    IngestBase::WaitIdle();
    persons_load_.Join();
  }
  // Waits for both loads: the rows' and the persons'.
  absl::Status WaitLoads() {
    absl::Status rows = WaitLoad();
    absl::Status persons = persons_load_.Wait();
    return rows.ok() ? persons : rows;
  }
  static uint64_t Prefix(std::string_view id_hash) {
    uint64_t v = 0;
    std::memcpy(&v, id_hash.data(), std::min<size_t>(8, id_hash.size()));
    return v;
  }
  absl::Status Flush() override {
    if (queue_.empty()) return absl::OkStatus();
    // Keys are views of the queued rows' strings (and of the rows looked up): the queue is
    // cleared at the end. Nothing here allocates per row unless the row is kept.
    bool people_written = !table_was_empty_, households_written = !table_was_empty_;
    for (const auto& i : queue_) {
      if (!people_written && written_people_.contains(Prefix(i.id_hash))) people_written = true;
      if (!households_written && written_households_.contains(absl::HashOf(i.row.household_id))) {
        households_written = true;
      }
    }
    std::vector<StoredRecipient> people;
    std::vector<std::tuple<std::string, absl::CivilDay, std::string>> stored_accounts;
    std::vector<std::pair<std::string, std::string>> heads;
    if (people_written || households_written) {
      // A lookup must see every row written so far: the pending loads first, and nothing beside them.
      if (auto s = StartLoad(); !s.ok()) return s;
      if (auto s = WaitLoads(); !s.ok()) return s;
    }
    if (people_written) {
      std::vector<std::string> hashes;
      hashes.reserve(queue_.size());
      for (const auto& i : queue_) hashes.push_back(i.id_hash);
      auto found = Tracked(repo().FindRecipients(conn(), hashes));
      if (!found.ok()) return found.status();
      people = std::move(*found);
      auto accounts = Tracked(repo().FindAccounts(conn(), hashes));
      if (!accounts.ok()) return accounts.status();
      stored_accounts = std::move(*accounts);
    }
    if (households_written) {
      std::vector<std::string> households;
      households.reserve(queue_.size());
      for (const auto& i : queue_) households.push_back(i.row.household_id);
      auto found = Tracked(repo().FindHeads(conn(), households));
      if (!found.ok()) return found.status();
      heads = std::move(*found);
    }
    // The current state of each person met (stored, or as this batch leaves them); `changed`:
    // written by this batch; `stored`: found stored.
    struct Person {
      StoredRecipient state;  // id_hash unused: the key is the hash
      bool stored = false;
      bool changed = false;
      int64_t number = 0;
    };
    absl::flat_hash_map<std::string_view, Person> person;
    person.reserve(queue_.size() + people.size());
    for (const auto& p : people) person[p.id_hash] = Person{p, true, false, 0};
    absl::flat_hash_map<std::pair<std::string_view, DayNumber>, std::string_view> account;
    account.reserve(queue_.size() + stored_accounts.size());
    for (const auto& [h, d, a] : stored_accounts) account.emplace(std::make_pair(std::string_view(h), DayNumberOf(d)), a);
    struct Head {
      std::string_view hash;
      int64_t line;  // 0: registered before this file's batch
    };
    absl::flat_hash_map<std::string_view, Head> head;
    for (const auto& [household, h] : heads) head.emplace(household, Head{h, 0});
    // People this batch declares not to be heads no longer count as heads of their household.
    for (const auto& i : queue_) {
      if (i.row.is_household_head) continue;
      auto it = head.find(i.row.household_id);
      if (it != head.end() && it->second.hash == i.id_hash) head.erase(it);
    }
    // The persons written, in the order of the file (numbered in that order), with their ID number;
    // the accounts new in this batch.
    std::vector<std::pair<std::string_view, const std::string*>> written_persons;
    std::vector<std::tuple<std::string_view, absl::CivilDay, std::string*>> new_accounts;
    for (auto& i : queue_) {
      const std::string_view h = i.id_hash;
      if (i.row.is_household_head) {
        auto it = head.find(i.row.household_id);
        if (it != head.end() && it->second.hash != h) {
          Refuse(i.line, "is_household_head", "SECOND_HEAD",
                 it->second.line > 0
                     ? absl::StrCat("the household already has a head (line ", it->second.line, ")")
                     : std::string("the household already has a registered head; mark that person 0 first"));
          continue;
        }
      }
      const auto account_key = std::make_pair(h, DayNumberOf(i.row.account_since));
      auto acc = account.find(account_key);
      if (acc != account.end() && acc->second != i.row.account_no) {
        Refuse(i.line, "account_no", "ACCOUNT_CONFLICT",
               "another account is already registered for this person from this date; history is not overwritten");
        continue;
      }
      bool inserted = false, updated = false;
      if (acc == account.end()) {
        account.emplace(account_key, i.row.account_no);
        new_accounts.emplace_back(h, i.row.account_since, &i.row.account_no);
        inserted = true;
      }
      auto [p, is_new] = person.try_emplace(h);
      if (is_new) {
        p->second.state = StoredRecipient{"", i.row.name, i.row.org_code, i.row.household_id,
                                          i.row.is_household_head, i.row.is_cadre, i.row.account_since};
        p->second.changed = true;
        inserted = true;
      } else if (!(i.row.account_since < p->second.state.latest_since)) {
        const StoredRecipient& cur = p->second.state;
        if (cur.name != i.row.name || cur.org_code != i.row.org_code || cur.household_id != i.row.household_id ||
            cur.is_household_head != i.row.is_household_head || cur.is_cadre != i.row.is_cadre ||
            cur.latest_since != i.row.account_since) {
          if (cur.is_household_head) {
            auto it = head.find(cur.household_id);
            if (it != head.end() && it->second.hash == h) head.erase(it);
          }
          p->second.state = StoredRecipient{"", i.row.name, i.row.org_code, i.row.household_id,
                                            i.row.is_household_head, i.row.is_cadre, i.row.account_since};
          p->second.changed = true;
          updated = true;
        }
      }
      // (A head's household key is a view of the row's string: the row outlives the map.)
      if (i.row.is_household_head) head[i.row.household_id] = Head{h, i.line};
      if (inserted) Inserted(); else if (updated) Updated(); else Unchanged();
      if ((inserted || updated) && p->second.number == 0) {
        p->second.number = -1;  // listed below once
        written_persons.emplace_back(h, &i.row.id_number);
      }
    }
    if (NeedsLookups()) {
      std::vector<std::string> written;
      written.reserve(written_persons.size());
      for (const auto& [h, id] : written_persons) written.emplace_back(h);
      if (auto s = LookUpPersons(written); !s.ok()) return s;
    }
    for (const auto& [h, id] : written_persons) {
      auto no = NumberFor(h, *id);
      if (!no.ok()) return no.status();
      person.at(h).number = *no;
    }
    std::vector<StoredRecipient> write;
    const size_t loaded_before = pending_recipients_.size();
    // In the order the persons were written (their numbers ascend in it for new persons).
    for (const auto& [h, id] : written_persons) {
      Person& p = person.at(h);
      if (!p.changed) continue;
      const bool fresh = table_was_empty_ && !p.stored;
      p.state.person_no = p.number;
      if (table_was_empty_) {
        written_people_.insert(Prefix(h));
        written_households_.insert(absl::HashOf(p.state.household_id));
      }
      (fresh ? pending_recipients_ : write).push_back(std::move(p.state));
    }
    // In number order: the tables are clustered by it.
    auto by_number = [](const StoredRecipient& x, const StoredRecipient& y) { return x.person_no < y.person_no; };
    std::sort(write.begin(), write.end(), by_number);
    std::sort(pending_recipients_.begin() + static_cast<std::ptrdiff_t>(loaded_before), pending_recipients_.end(),
              by_number);
    std::vector<std::tuple<int64_t, absl::CivilDay, std::string>> accounts_out;
    auto& accounts_to = table_was_empty_ ? pending_accounts_ : accounts_out;
    for (auto& [h, since, account_no] : new_accounts) {
      accounts_to.emplace_back(person.at(h).number, since, std::move(*account_no));  // the row goes below
    }
    queue_.clear();
    if (!table_was_empty_) {
      if (auto s = WritePersons(); !s.ok()) return s;
      if (auto s = Tracked(repo().UpsertRecipients(conn(), write)); !s.ok()) return s;
      return Tracked(repo().InsertAccounts(conn(), accounts_out));
    }
    // Bulk path: updates (of persons written earlier in this file, found above after the pending
    // load) at once; new rows joined the pending load, written on a thread of its own while the
    // next rows are parsed.
    if (!write.empty()) {
      if (auto s = WaitLoad(); !s.ok()) return s;
      if (auto s = Tracked(repo().UpsertRecipients(conn(), write)); !s.ok()) return s;
    }
    if (pending_recipients_.size() + pending_accounts_.size() >= kLoadRows) return StartLoad();
    return absl::OkStatus();
  }
  absl::Status Complete() override {
    if (auto s = StartLoad(); !s.ok()) return s;
    return WaitLoads();
  }
  absl::Status StartLoad() {
    std::vector<PersonRecord> persons = TakeNewPersons();
    // The persons on a connection of their own, borrowed for the load if one is free now (never
    // waited for while this ingest holds two); otherwise they join the rows' load as before.
    if (!persons.empty()) {
      if (auto s = persons_load_.Wait(); !s.ok()) return s;
      if (auto c = TryConnection(); c.ok()) {
        auto own = std::make_shared<common::PooledConnection>(std::move(*c));
        if (auto s = persons_load_.Start([this, own, persons = std::move(persons)] {
              absl::Status s = WritePersonsOn(*own, persons);
              *own = common::PooledConnection();  // back to the pool from this thread
              return s;
            });
            !s.ok()) {
          return s;
        }
        persons.clear();
      }
    }
    return LoadInBackground([this, persons = std::move(persons), recipients = std::exchange(pending_recipients_, {}),
                             accounts = std::exchange(pending_accounts_, {})] {
      absl::Status s = Tracked(repo().InsertPersons(conn(), persons));
      if (s.ok()) s = Tracked(repo().LoadRecipients(conn(), recipients));
      return s.ok() ? Tracked(repo().LoadAccounts(conn(), accounts)) : s;
    });
  }
  static constexpr size_t kLoadRows = 100000;
  std::vector<StoredRecipient> pending_recipients_;
  std::vector<std::tuple<int64_t, absl::CivilDay, std::string>> pending_accounts_;
  std::vector<Item> queue_;
  bool table_was_empty_ = false;
  // The bulk path's persons' load (on a connection of its own, autocommit).
  BackgroundLoad persons_load_;
  // Fast path only: the persons (first 8 bytes of the hash) and households (64-bit hash) whose
  // rows this ingest wrote. A collision only makes a lookup that finds nothing.
  absl::flat_hash_set<uint64_t> written_people_, written_households_;
};

// ---- payments.csv

class PaymentsIngest final : public IngestBase {
 public:
  explicit PaymentsIngest(DisbursementLogic& logic) : IngestBase(logic, FileKind::kPayments, PaymentColumns()) {}

 private:
  struct Item {
    StoredPayment p;
    std::string id_number;
  };
  // New payments (and their persons) are written with LOAD DATA in loads of this many.
  static constexpr size_t kLoadRows = 100000;
  absl::Status Prepare() override {
    if (auto s = LoadProgrammes(); !s.ok()) return s;
    // Nothing stored yet (as this transaction sees it): no row can be held already, so the
    // per-row lookup is skipped. Another ingest writing meanwhile makes the load fail whole.
    auto none = Tracked(repo().TableIsEmpty(conn(), "payments"));
    if (!none.ok()) return none.status();
    table_was_empty_ = *none;
    return absl::OkStatus();
  }
  size_t Queued() const override { return queue_.size(); }
  void OnRow(const common::CsvRecord& record) override {
    PaymentRow row;
    if (auto problems = ParsePayment(header(), record, row); !problems.empty()) return Refuse(record.line, problems);
    if (int64_t earlier = SeenOnLine(row.payment_id, record.line)) {
      return Refuse(record.line, "payment_id", "DUPLICATE_IN_FILE",
                    absl::StrCat("payment ", row.payment_id, " already appears on line ", earlier));
    }
    const ProgrammeRow* programme = KnownProgramme(record.line, row.program_code);
    if (programme == nullptr) return;
    if (!PeriodFits(row.period, programme->frequency)) {
      return Refuse(record.line, "period", "PERIOD_FORM", PeriodFormMessage(row.program_code, programme->frequency));
    }
    Item item;
    StoredPayment& p = item.p;
    p.payment_id = std::move(row.payment_id);
    p.batch_id = std::move(row.batch_id);
    p.program_code = std::move(row.program_code);
    p.period = row.period.ToString();
    p.id_hash = logic_.pii().Hash(row.id_number);
    p.account_no = std::move(row.account_no);
    p.amount_fen = row.amount_fen;
    // Stored to the microsecond.
    p.paid_at = absl::FromUnixMicros(absl::ToUnixMicros(row.paid_at));
    p.reverses = std::move(row.reverses);
    p.ingest_id = ingest_id_;
    p.source_line = record.line;
    item.id_number = std::move(row.id_number);
    queue_.push_back(std::move(item));
  }
  static std::string Differences(const StoredPayment& a, const StoredPayment& b) {
    std::vector<std::string> d;
    if (a.batch_id != b.batch_id) d.push_back("batch_id");
    if (a.program_code != b.program_code) d.push_back("program_code");
    if (a.period != b.period) d.push_back("period");
    if (a.id_hash != b.id_hash) d.push_back("id_number");
    if (a.account_no != b.account_no) d.push_back("account_no");
    if (a.amount_fen != b.amount_fen) d.push_back("amount_fen");
    if (a.paid_at != b.paid_at) d.push_back("paid_at");
    if (a.reverses != b.reverses) d.push_back("reverses");
    return absl::StrJoin(d, ", ");
  }
  absl::Status Flush() override {
    if (queue_.empty()) return absl::OkStatus();
    std::unordered_map<std::string, StoredPayment> stored;
    if (!table_was_empty_) {
      if (auto s = WaitLoad(); !s.ok()) return s;
      std::vector<std::string> ids;
      for (const auto& i : queue_) ids.push_back(i.p.payment_id);
      auto existing = Tracked(repo().FindPayments(conn(), ids));
      if (!existing.ok()) return existing.status();
      for (auto& p : *existing) stored.emplace(p.payment_id, std::move(p));
    }
    std::vector<Item*> fresh;
    std::vector<std::string> hashes;
    for (auto& i : queue_) {
      auto it = stored.find(i.p.payment_id);
      if (it != stored.end()) {
        std::string diff = Differences(it->second, i.p);
        if (diff.empty()) {
          Unchanged();
        } else {
          Refuse(i.p.source_line, "payment_id", "CONFLICT",
                 absl::StrCat("payment ", i.p.payment_id, " is already held with other content (", diff,
                              "); a correction is a reversal and a new payment"));
        }
        continue;
      }
      Inserted();
      fresh.push_back(&i);
      hashes.push_back(i.p.id_hash);
    }
    // On the side connection, beside the load running on the ingest's.
    if (auto s = LookUpPersons(hashes); !s.ok()) return s;
    for (Item* i : fresh) {
      auto no = NumberFor(i->p.id_hash, i->id_number);
      if (!no.ok()) return no.status();
      i->p.person_no = *no;
      write_.push_back(std::move(i->p));
    }
    queue_.clear();
    if (write_.size() >= kLoadRows) return StartLoad();
    return absl::OkStatus();
  }
  absl::Status Complete() override {
    if (auto s = StartLoad(); !s.ok()) return s;
    return WaitLoad();
  }
  absl::Status StartLoad() {
    return LoadInBackground([this, persons = TakeNewPersons(), rows = std::exchange(write_, {})] {
      absl::Status s = Tracked(repo().InsertPersons(conn(), persons));
      return s.ok() ? Tracked(repo().InsertPayments(conn(), rows)) : s;
    });
  }
  std::vector<Item> queue_;
  bool table_was_empty_ = false;
  // The bulk path's persons' load (on a connection of its own, autocommit).
  BackgroundLoad persons_load_;
  std::vector<StoredPayment> write_;
};

// ---- batches.csv

class BatchesIngest final : public IngestBase {
 public:
  explicit BatchesIngest(DisbursementLogic& logic) : IngestBase(logic, FileKind::kBatches, BatchColumns()) {}

 private:
  absl::Status Prepare() override { return LoadProgrammes(); }
  size_t Queued() const override { return queue_.size(); }
  void OnRow(const common::CsvRecord& record) override {
    BatchRow row;
    if (auto problems = ParseBatch(header(), record, row); !problems.empty()) return Refuse(record.line, problems);
    if (int64_t earlier = SeenOnLine(row.batch_id, record.line)) {
      return Refuse(record.line, "batch_id", "DUPLICATE_IN_FILE",
                    absl::StrCat("batch ", row.batch_id, " already appears on line ", earlier));
    }
    const ProgrammeRow* programme = KnownProgramme(record.line, row.program_code);
    if (programme == nullptr) return;
    if (!PeriodFits(row.period, programme->frequency)) {
      return Refuse(record.line, "period", "PERIOD_FORM", PeriodFormMessage(row.program_code, programme->frequency));
    }
    queue_.push_back(std::move(row));
  }
  absl::Status Flush() override {
    if (queue_.empty()) return absl::OkStatus();
    std::vector<std::string> ids;
    for (const auto& b : queue_) ids.push_back(b.batch_id);
    auto existing = Tracked(repo().FindBatches(conn(), ids));
    if (!existing.ok()) return existing.status();
    std::unordered_map<std::string, BatchRow> stored;
    for (auto& b : *existing) stored.emplace(b.batch_id, std::move(b));
    std::vector<BatchRow> write;
    for (auto& b : queue_) {
      auto it = stored.find(b.batch_id);
      if (it != stored.end() && SameBatch(it->second, b)) {
        Unchanged();
        continue;
      }
      if (it == stored.end()) Inserted(); else Updated();
      write.push_back(std::move(b));
    }
    queue_.clear();
    return Tracked(repo().UpsertBatches(conn(), write));
  }
  std::vector<BatchRow> queue_;
};

// ---- civil_events.csv

class CivilEventsIngest final : public IngestBase {
 public:
  explicit CivilEventsIngest(DisbursementLogic& logic)
      : IngestBase(logic, FileKind::kCivilEvents, CivilEventColumns()) {}

 private:
  struct Item {
    int64_t line;
    CivilEventRow row;
    std::string id_hash;
  };
  size_t Queued() const override { return queue_.size(); }
  void OnRow(const common::CsvRecord& record) override {
    Item item;
    item.line = record.line;
    if (auto problems = ParseCivilEvent(header(), record, item.row); !problems.empty()) {
      return Refuse(record.line, problems);
    }
    // A date after today is kept (formats.md sets no bound for civil events; runs may be made
    // for periods ahead of the server's clock).
    item.id_hash = logic_.pii().Hash(item.row.id_number);
    if (int64_t earlier = SeenOnLine(
            absl::StrCat(item.id_hash, item.row.event, common::FormatDate(item.row.event_date)), record.line)) {
      return Refuse(record.line, "event", "DUPLICATE_IN_FILE",
                    absl::StrCat("the same event of this person on this date already appears on line ", earlier));
    }
    queue_.push_back(std::move(item));
  }
  absl::Status Flush() override {
    if (queue_.empty()) return absl::OkStatus();
    std::vector<std::pair<std::string, CivilEventRow>> keys;
    for (const auto& i : queue_) keys.emplace_back(i.id_hash, i.row);
    std::vector<std::string> hashes;
    auto existing = Tracked(repo().FindCivilEvents(conn(), keys, &hashes));
    if (!existing.ok()) return existing.status();
    std::map<std::tuple<std::string, std::string, absl::CivilDay>, std::string> stored;
    for (size_t k = 0; k < existing->size(); ++k) {
      const auto& e = (*existing)[k];
      stored.emplace(std::make_tuple(hashes[k], e.event, e.event_date), e.source_ref);
    }
    std::vector<Item*> changed;
    std::vector<std::string> changed_hashes;
    for (auto& i : queue_) {
      auto it = stored.find(std::make_tuple(i.id_hash, i.row.event, i.row.event_date));
      if (it != stored.end() && it->second == i.row.source_ref) {
        Unchanged();
        continue;
      }
      if (it == stored.end()) Inserted(); else Updated();
      changed.push_back(&i);
      changed_hashes.push_back(i.id_hash);
    }
    if (auto s = LookUpPersons(changed_hashes); !s.ok()) return s;
    std::vector<std::pair<int64_t, CivilEventRow>> write;
    for (Item* i : changed) {
      auto no = NumberFor(i->id_hash, i->row.id_number);
      if (!no.ok()) return no.status();
      write.emplace_back(*no, i->row);
    }
    queue_.clear();
    if (auto s = WritePersons(); !s.ok()) return s;
    return Tracked(repo().UpsertCivilEvents(conn(), write));
  }
  std::vector<Item> queue_;
};

}  // namespace

std::unique_ptr<DisbursementLogic::Ingest> DisbursementLogic::StartIngest(FileKind kind) {
  switch (kind) {
    case FileKind::kProgrammes: return std::make_unique<ProgrammesIngest>(*this);
    case FileKind::kEnrolments: return std::make_unique<EnrolmentsIngest>(*this);
    case FileKind::kRecipients: return std::make_unique<RecipientsIngest>(*this);
    case FileKind::kPayments: return std::make_unique<PaymentsIngest>(*this);
    case FileKind::kBatches: return std::make_unique<BatchesIngest>(*this);
    case FileKind::kCivilEvents: return std::make_unique<CivilEventsIngest>(*this);
  }
  return nullptr;
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

// The page token of a read by village subtree: the last row's village, then its key there
// (`key_parts` values, the second the person number, an integer above 0).
absl::StatusOr<std::pair<std::string, SqlRow>> ReadVillageToken(const std::string& token, size_t key_parts) {
  auto parts = ReadToken(token, key_parts + 1);
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

absl::Status ProgrammeNotFound(std::string_view field, const std::string& code) {
  return absl::NotFoundError(absl::StrCat(std::string(field), ": programme ", code, " does not exist"));
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
                                                                                 size_t key_parts, absl::Time deadline) {
  if (auto s = CheckCode("org_code", org_code, true); !s.ok()) return s;
  auto size = PageSize(page_size);
  if (!size.ok()) return size.status();
  SubtreeRead read;
  read.page_size = *size;
  if (!page_token.empty()) {
    auto t = ReadVillageToken(page_token, key_parts);
    if (!t.ok()) return t.status();
    read.token = std::move(*t);
  }
  // Every organisation under the one asked for (the member registry's tree), in code order.
  auto villages = tree_.Subtree(org_code);
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
  auto read = StartSubtreeRead(request.org_code(), request.page_size(), request.page_token(), 2, deadline);
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
  // The registered account now: the latest whose account_since is not after today.
  std::unordered_map<std::string, std::pair<absl::CivilDay, std::string>> current;
  for (const auto& [h, since, account] : *accounts) {
    auto it = current.find(h);
    const bool usable = since <= today;
    if (it == current.end()) {
      current.emplace(h, std::make_pair(since, account));
    } else if (usable && (it->second.first > today || it->second.first < since)) {
      it->second = {since, account};
    }
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
        MakeToken({rows.back().org_code, rows.back().household_id, absl::StrCat(rows.back().person_no)}));
  }
  return response;
}

absl::Status DisbursementLogic::KnownProgramme(common::PooledConnection& conn, const std::string& program_code) {
  if (program_code.empty()) return absl::OkStatus();
  auto programmes = Track(conn, repo_.LoadProgrammes(*conn));
  if (!programmes.ok()) return programmes.status();
  if (std::none_of(programmes->begin(), programmes->end(),
                   [&](const ProgrammeRow& p) { return p.program_code == program_code; })) {
    return ProgrammeNotFound("program_code", program_code);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ListEnrolmentsResponse> DisbursementLogic::ListEnrolments(const v1::ListEnrolmentsRequest& request,
                                                                            bool pii, absl::Time deadline) {
  if (auto s = CheckCode("program_code", request.program_code(), false); !s.ok()) return s;
  // The token: the last row's village, household, person number, programme and from_period.
  auto read = StartSubtreeRead(request.org_code(), request.page_size(), request.page_token(), 4, deadline);
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
        MakeToken({who.org_code, who.household_id, absl::StrCat(who.person_no), e.program_code, e.from_period}));
  }
  return response;
}

absl::StatusOr<v1::ListCivilEventsResponse> DisbursementLogic::ListCivilEvents(
    const v1::ListCivilEventsRequest& request, bool pii, absl::Time deadline) {
  // The token: the last row's village, household, person number, event and date.
  auto read = StartSubtreeRead(request.org_code(), request.page_size(), request.page_token(), 4, deadline);
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
    response.set_next_page_token(MakeToken({who.org_code, who.household_id, absl::StrCat(who.person_no), c.event,
                                            common::FormatDate(c.event_date)}));
  }
  return response;
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
    auto parts = ReadToken(request.page_token(), 1);
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
  auto hashes = std::make_optional<std::vector<std::string>>();
  for (const auto& [no, h] : *enrolled) hashes->push_back(h);
  std::vector<StoredEnrolment> keys;
  for (const auto& h : *hashes) keys.push_back({programme->program_code, h, "", "", std::nullopt});
  auto enrolments = Track(*conn, repo_.FindEnrolments(**conn, keys));
  if (!enrolments.ok()) return enrolments.status();
  auto shown = ShownIdNumbers(*conn, *hashes, pii);
  if (!shown.ok()) return shown.status();
  auto recipients = Track(*conn, repo_.FindRecipients(**conn, *hashes));
  if (!recipients.ok()) return recipients.status();
  std::vector<std::pair<std::string, CivilEventRow>> event_keys;
  for (const auto& h : *hashes) event_keys.emplace_back(h, CivilEventRow{});
  std::vector<std::string> event_hashes;
  auto events = Track(*conn, repo_.FindCivilEvents(**conn, event_keys, &event_hashes));
  if (!events.ok()) return events.status();
  std::vector<std::string> households;
  for (const auto& r : *recipients) households.push_back(r.household_id);
  auto cadre_households = Track(*conn, repo_.CadreHouseholds(**conn, households));
  if (!cadre_households.ok()) return cadre_households.status();
  const std::unordered_set<std::string> cadre_set(cadre_households->begin(), cadre_households->end());

  std::unordered_map<std::string, EntitlementFacts> facts;
  for (const auto& e : *enrolments) {
    if (e.program_code != programme->program_code) continue;
    EnrolmentSpan span;
    span.from = common::ParsePeriod(e.from_period).value_or(common::Period{});
    if (!e.to_period.empty()) span.to = common::ParsePeriod(e.to_period).value_or(common::Period{});
    span.amount_fen = e.amount_fen;
    facts[e.id_hash].enrolments.push_back(span);
  }
  for (size_t k = 0; k < events->size(); ++k) {
    const auto& ev = (*events)[k];
    if (ev.event != "death") continue;
    auto& f = facts[event_hashes[k]];
    if (!f.death || ev.event_date < *f.death) f.death = ev.event_date;
  }
  for (const auto& r : *recipients) {
    facts[r.id_hash].cadre_household = r.is_cadre || cadre_set.contains(r.household_id);
  }
  v1::ListEntitlementsResponse response;
  for (const auto& h : *hashes) {
    const EntitlementVerdict v = DecideEntitlement(*programme, *period, facts[h]);
    auto* out = response.add_entitlements();
    out->set_program_code(programme->program_code);
    out->set_period(period->ToString());
    out->set_id_number(shown->contains(h) ? shown->at(h) : std::string());
    out->set_entitled(v.entitled);
    if (v.entitled) out->set_amount_fen(v.amount_fen);
    out->set_reason(v.reason);
  }
  if (more) response.set_next_page_token(MakeToken({absl::StrCat(enrolled->back().first)}));
  return response;
}

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

// Rows gathered in blocks of a fixed size, then moved into one vector of exactly their number,
// each block freed as it is moved: the peak is the rows plus one block (a block is above the
// service's mmap threshold, main.cc, so a freed block leaves the process at once).
template <typename T>
class BlockRows final {
 public:
  void push_back(const T& row) {
    if (blocks_.empty() || blocks_.back().size() == kBlock) {
      blocks_.emplace_back();
      blocks_.back().reserve(kBlock);
    }
    blocks_.back().push_back(row);
    ++size_;
  }
  void MoveInto(std::vector<T>& out) {
    out.clear();
    out.shrink_to_fit();
    out.reserve(size_);
    for (auto& block : blocks_) {
      out.insert(out.end(), block.begin(), block.end());
      std::vector<T>().swap(block);
    }
    blocks_.clear();
    size_ = 0;
  }

 private:
  static constexpr size_t kBlock = size_t{1} << 18;
  std::vector<std::vector<T>> blocks_;
  size_t size_ = 0;
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

std::string NewRunId(absl::Time started) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen;
  absl::MutexLock lock(&mu);
  return absl::StrCat(absl::FormatTime("%Y%m%dT%H%M%E3SZ", started, absl::UTCTimeZone()), "-",
                      absl::StrFormat("%08x", absl::Uniform<uint32_t>(*gen)));
}

absl::Status CheckRunId(const std::string& run_id) {
  if (run_id.empty() || run_id == "latest") return absl::OkStatus();
  if (!IsReference(run_id, 40)) return common::InvalidField("run_id", "is not a run id");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::CheckRun> DisbursementLogic::RunCheck(const v1::RunCheckRequest& request,
                                                         const std::string& triggered_by) {
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
  auto run = [&]() -> absl::StatusOr<v1::CheckRun> {
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
    for (const auto& p : *programmes) {
      Programme e;
      e.code = p.program_code;
      e.unit = p.unit == "household" ? ProgrammeUnit::kHousehold : ProgrammeUnit::kPerson;
      e.frequency = p.frequency == "yearly" ? Frequency::kYearly : Frequency::kMonthly;
      e.amount_fen = p.amount_fen;
      e.valid_from = p.valid_from;
      e.valid_to = p.valid_to;
      e.excludes_cadre_households = p.excludes_cadre_households;
      e.grace_days = p.grace_days;
      in.programmes.push_back(std::move(e));
    }
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
    BlockRows<Enrolment> enrolments;
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
    if (second.ok()) {
      persons_thread = std::thread([&] {
        persons_read = scan_persons(*second);
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
    BlockRows<RecipientRow> recipients;
    s = Track(*conn, repo_.ScanAccounts(**conn, [&](const DisbursementRepository::AccountRow& a) {
      const auto no = static_cast<size_t>(std::max<int64_t>(a.person_no, 0));
      if (no >= roll.size() || !roll[no].on_roll) return;
      RecipientRow r;
      r.person = number(a.person_no);
      r.household = roll[no].household;
      r.account = in.symbols.Intern(a.account_no);
      r.account_since = DayNumberOf(a.since);
      r.is_household_head = roll[no].head;
      r.is_cadre = roll[no].cadre;
      recipients.push_back(r);
    }));
    if (!s.ok()) return s;
    std::vector<RollFacts>().swap(roll);
    recipients.MoveInto(in.recipients);
    t_accounts = absl::Now();
    s = Track(*conn, repo_.ScanDeaths(**conn, [&](int64_t person_no, absl::CivilDay day) {
      in.civil_events.push_back({number(person_no), CivilEventKind::kDeath, day});
    }));
    if (!s.ok()) return s;
    BlockRows<Payment> payments;
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
      out.account = in.symbols.Intern(p.account_no);
      if (p.period != last_period) {
        last_period = p.period;
        last_period_code = PeriodCodeOf(common::ParsePeriod(p.period).value_or(common::Period{}));
      }
      out.period = last_period_code;
      payments.push_back(out);
    }));
    if (!s.ok()) return s;
    payments.MoveInto(in.payments);
    t_payments = absl::Now();
    if (persons_thread.joinable()) persons_thread.join();
    t_persons = absl::Now();
    if (!persons_read.ok()) return persons_read;
    if (!enrolments_beside) enrolments_read = read_enrolments(*conn);
    if (!enrolments_read.ok()) return enrolments_read;
    enrolments.MoveInto(in.enrolments);
    for (const auto& [row, code] : enrolments_of_no_programme) in.enrolments[row].program = in.symbols.Intern(code);
    t_enrolments = absl::Now();
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
    auto result = CheckDisbursements(in, options);
    if (!result.ok()) return result.status();
    t_engine = absl::Now();
    in = DisbursementInput();  // free the input before storing

    CheckRunRecord record;
    record.run_id = NewRunId(started);
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
                     {"enrolments_beside", enrolments_beside},
                     {"read_enrolments_after_s", absl::ToDoubleSeconds(t_enrolments - t_persons)},
                     {"kin_batches_engine_s", absl::ToDoubleSeconds(t_engine - t_enrolments)},
                     {"store_s", absl::ToDoubleSeconds(absl::Now() - t_engine)},
                     {"triggered_by", std::string_view(triggered_by)}});
    return ToProto(record);
  };
  auto result = run();
  if (!result.ok()) metrics_->Failed();
  return result;
}

absl::StatusOr<v1::CheckRun> DisbursementLogic::GetCheckRun(const std::string& run_id, absl::Time deadline) {
  if (run_id.empty()) return common::InvalidField("run_id", "is required (or \"latest\")");
  if (auto s = CheckRunId(run_id); !s.ok()) return s;
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto run = Track(*conn, repo_.FindRun(**conn, run_id));
  if (!run.ok()) return run.status();
  if (!run->has_value()) return absl::NotFoundError(absl::StrCat("run_id: check run ", run_id, " does not exist"));
  return ToProto(**run);
}

absl::StatusOr<v1::ListFindingsResponse> DisbursementLogic::ListFindings(const v1::ListFindingsRequest& request,
                                                                        absl::Time deadline) {
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
  int64_t after = 0;
  if (!request.page_token().empty()) {
    auto parts = ReadToken(request.page_token(), 1);
    if (!parts.ok()) return parts.status();
    if (!absl::SimpleAtoi((*parts)[0], &after) || after < 0) {
      return common::InvalidField("page_token", "is not a token this service issued");
    }
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto run = Track(*conn, repo_.FindRun(**conn, request.run_id()));
  if (!run.ok()) return run.status();
  if (!run->has_value()) {
    return absl::NotFoundError(request.run_id().empty() || request.run_id() == "latest"
                                   ? std::string("run_id: no check has run yet")
                                   : absl::StrCat("run_id: check run ", request.run_id(), " does not exist"));
  }
  auto rows = Track(*conn, repo_.ListFindings(**conn, (*run)->run_id, request.rule(), state, after, *page_size + 1));
  if (!rows.ok()) return rows.status();
  const bool more = static_cast<int>(rows->size()) > *page_size;
  if (more) rows->resize(*page_size);
  v1::ListFindingsResponse response;
  for (const auto& f : *rows) *response.add_findings() = ToProto(f);
  if (more) response.set_next_page_token(MakeToken({std::to_string(rows->back().seq)}));
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
                                   : absl::StrCat("run_id: check run ", request.run_id(), " does not exist"));
  }
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

absl::StatusOr<v1::Finding> DisbursementLogic::ReviewFinding(const v1::ReviewFindingRequest& request,
                                                             absl::Time deadline) {
  std::string raw;
  if (request.finding_id().empty()) return common::InvalidField("finding_id", "is required");
  if (request.finding_id().size() != 32 || !HexToBytes(request.finding_id(), &raw)) {
    return common::InvalidField("finding_id", "must be the 32 hex characters of a finding id");
  }
  const std::string& state = request.state();
  if (state != "open" && state != "confirmed" && state != "dismissed" && state != "resolved") {
    return common::InvalidField("state", "must be open, confirmed, dismissed or resolved");
  }
  if (state == "dismissed" && request.reason().empty()) {
    return common::InvalidField("reason", "is required when dismissing a finding");
  }
  if (common::Utf8Length(request.reason()) < 0 || common::Utf8Length(request.reason()) > 500) {
    return common::InvalidField("reason", "must be UTF-8 text of at most 500 characters");
  }
  if (request.reviewer().empty()) return common::InvalidField("reviewer", "is required");
  if (common::Utf8Length(request.reviewer()) < 0 || common::Utf8Length(request.reviewer()) > 100) {
    return common::InvalidField("reviewer", "must be UTF-8 text of at most 100 characters");
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto found = Track(*conn, repo_.FindFinding(**conn, request.finding_id()));
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    return absl::NotFoundError(absl::StrCat("finding_id: finding ", request.finding_id(), " does not exist"));
  }
  ReviewRecord review{request.finding_id(), state, request.reason(), request.reviewer(),
                      absl::FromUnixMicros(absl::ToUnixMicros(clock_()))};
  if (auto s = Track(*conn, repo_.UpsertReview(**conn, review)); !s.ok()) return s;
  FindingRecord f = **found;
  f.review_state = review.state;
  f.review_reason = review.reason;
  f.reviewed_by = review.reviewed_by;
  f.reviewed_at = review.reviewed_at;
  return ToProto(f);
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
    auto parts = ReadToken(request.page_token(), 3);
    if (!parts.ok()) return parts.status();
    after = *parts;
  }
  // An organisation nobody registered is NOT_FOUND (not an empty disclosure), as is a programme.
  if (auto s = tree_.Known(request.org_code()); !s.ok()) return s;
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  if (auto s = KnownProgramme(*conn, request.program_code()); !s.ok()) return s;
  auto rows = Track(*conn, repo_.ListDisclosure(**conn, request.org_code(), period->ToString(), request.program_code(),
                                                after[0], after[1], after[2], *page_size + 1));
  if (!rows.ok()) return rows.status();
  const bool more = static_cast<int>(rows->size()) > *page_size;
  if (more) rows->resize(*page_size);
  v1::ListDisclosureResponse response;
  for (const auto& d : *rows) {
    if (d.amount_fen <= 0) continue;  // reversed in full: nothing was paid
    auto* out = response.add_payments();
    out->set_program_code(d.program_code);
    out->set_period(d.period);
    out->set_name(common::MaskName(d.name));
    out->set_id_number(d.id_masked);
    out->set_amount_fen(d.amount_fen);
    out->set_paid_on(common::FormatDate(common::ChinaDateOf(d.paid_at)));
  }
  if (more) response.set_next_page_token(MakeToken({rows->back().program_code, rows->back().id_masked, rows->back().payment_id}));
  return response;
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
  std::map<std::pair<std::string, std::string>, bool> due;
  for (const auto& b : *batches) {
    auto g = grace.find(b.program_code);
    if (g == grace.end()) continue;
    if (b.scheduled_on + g->second < today) due[{b.program_code, b.period.ToString()}] = true;
  }
  std::vector<DueScope> out;
  for (const auto& [scope, _] : due) {
    auto done = Track(*conn, repo_.HasRunAt(**conn, scope.first, scope.second, *generation));
    if (!done.ok()) return done.status();
    if (!*done) out.push_back({scope.first, scope.second});
  }
  return out;
}

}  // namespace grassroots::cadrepay
