#include "disbursement_logic.h"

#include "grassroots/common/import_errors.h"

#include <cppconn/connection.h>
#include <cppconn/driver.h>
#include <mysql_driver.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "disbursement/disbursement_engine.h"
#include "disbursement_logic_internal.h"
#include "grassroots/common/csv.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {
using namespace logic_internal;  // NOLINT: this file is part of DisbursementLogic

namespace {

constexpr size_t kFlushRows = 2000;

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

std::string NewIngestId() {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(*gen));
}

}  // namespace

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
    lock_.reset();
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
      Error(1, "", "EMPTY_FILE", "the file has no header row");
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
    logic_.metrics_->Ingested(kind_, report_);
    // Sorted by line; every refused row reaches the caller (past what a report carries, kept for
    // ListImportErrors: the file's rows are committed whatever happens to this).
    if (auto s = common::BoundImportReport(logic_.pool_, report_); !s.ok()) return s;
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

 public:
  ~IngestBase() override { WaitIdle(); }

 protected:

  void Error(int64_t line, std::string column, std::string code, std::string message) {
    auto* e = report_.add_errors();
    e->set_line(line);
    // A column or message may repeat what the file held; the report's strings must be UTF-8.
    e->set_column(common::ValidUtf8(column));
    e->set_code(std::move(code));
    e->set_message(common::ValidUtf8(message));
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
      for (const auto& p : problems) Error(1, p.column_name, "BAD_HEADER", p.message);
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
    // Two ingests of the same kind of file run one after the other (a retry while the first is
    // still running, two offices sending the same roster): each would count the other's new
    // rows as written meanwhile and give up. The second waits here, before its transaction,
    // and then finds the first's rows stored: the end state is that of one after the other.
    // Ingests of different kinds still run side by side.
    auto lock = common::NamedLock::Acquire(logic_.pool_.options(),
                                           absl::StrCat("grassroots_cadrepay_ingest_", std::string(FileKindName(kind_))),
                                           absl::Now() + kIngestLockWait);
    if (absl::IsDeadlineExceeded(lock.status())) {
      return absl::UnavailableError(absl::StrCat("another ingest of ", std::string(FileKindName(kind_)),
                                                 " has been running for longer than this one waits; send the file again later"));
    }
    if (!lock.ok()) return lock.status();
    lock_ = std::move(*lock);
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
  static constexpr absl::Duration kIngestLockWait = absl::Minutes(15);
  std::optional<common::NamedLock> lock_;  // one ingest of a kind at a time; released after tx_ ends
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
      if (auto s = WaitLoad(); !s.ok()) return s;
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
    // A row takes effect as the person's current attributes unless it is dated before them (then
    // it only adds to the account history) or it is refused as an account conflict.
    auto takes_effect = [&](const Item& i) {
      auto p = person.find(std::string_view(i.id_hash));
      if (p != person.end() && i.row.account_since < p->second.state.latest_since) return false;
      auto acc = account.find(std::make_pair(std::string_view(i.id_hash), DayNumberOf(i.row.account_since)));
      return acc == account.end() || acc->second == i.row.account_no;
    };
    // A registered head whose row in this batch takes effect and makes them no longer that
    // household's head (not a head, or of another household) does not count as its head for this
    // batch's other rows, whichever comes first in the file.
    if (!head.empty()) {
      absl::flat_hash_map<std::string_view, std::string_view> household_headed_by;  // hash -> household
      for (const auto& [household, hd] : head) household_headed_by.emplace(hd.hash, household);
      for (const auto& i : queue_) {
        auto it = household_headed_by.find(std::string_view(i.id_hash));
        if (it == household_headed_by.end()) continue;
        if (i.row.is_household_head && i.row.household_id == it->second) continue;
        if (!takes_effect(i)) continue;
        head.erase(it->second);
        household_headed_by.erase(it);
      }
    }
    // The persons written, in the order of the file (numbered in that order), with their ID number;
    // the accounts new in this batch.
    std::vector<std::pair<std::string_view, const std::string*>> written_persons;
    std::vector<std::tuple<std::string_view, absl::CivilDay, std::string*>> new_accounts;
    for (auto& i : queue_) {
      const std::string_view h = i.id_hash;
      // Only a row that takes effect makes its person a head: an earlier-dated row is history.
      const bool makes_head = i.row.is_household_head && takes_effect(i);
      if (makes_head) {
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
      if (makes_head) head[i.row.household_id] = Head{h, i.line};
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
    return WaitLoad();
  }
  absl::Status StartLoad() {
    // The new persons in the ingest's own transaction, with the rows that name them: a cancelled
    // or failed ingest keeps none of them (they were committed on a connection of their own
    // before, so a cancelled recipients.csv left sealed ID numbers behind).
    std::vector<PersonRecord> persons = TakeNewPersons();
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

}  // namespace grassroots::cadrepay
