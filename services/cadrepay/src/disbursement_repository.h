#pragma once
// SQL of the disbursement tables (migrations/V002__disbursement.sql, V003__person_numbers.sql).
// Every method works on a connection the caller borrowed, so the caller decides the transaction;
// Connector/C++ exceptions become statuses. A person is identified by the 16-byte keyed hash of
// their ID number; the tables store the person's compact number (`persons.person_no`, handed
// out in first-seen order), so bulk loads append. Lookups by hash join `persons`; writes take
// the number, which the caller resolved first (LookupPersonNumbers, AllocatePersonNumbers).

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "ingest_rows.h"

namespace sql {
class Connection;
}

namespace grassroots::cadrepay {

// A value for a multi-row statement.
struct SqlValue {
  enum class Kind : uint8_t { kNull, kInt, kText };
  Kind kind = Kind::kNull;
  int64_t i = 0;
  std::string s;
  static SqlValue Null() { return {}; }
  static SqlValue Int(int64_t v) { return {Kind::kInt, v, {}}; }
  static SqlValue Text(std::string v) { return {Kind::kText, 0, std::move(v)}; }
};
using SqlRow = std::vector<SqlValue>;

// The keyset condition "(c1, c2, ...) > (v1, v2, ...)" for the page after a row, spelled out as
// "(c1 >= v1 AND (c1 > v1 OR (c1 = v1 AND (c2 > v2 OR ...))))" with its parameters appended to
// `params`. MariaDB 10.11 does not range-scan a row-constructor comparison (EXPLAIN shows an
// index scan from the first row), so a keyset-paged scan written that way reads every earlier
// page again on each page: quadratic over a province.
std::string KeysetAfter(const std::vector<std::string>& columns, const SqlRow& values, SqlRow& params);

struct PersonRecord {
  int64_t person_no = 0;
  std::string id_hash;    // 16 bytes
  std::string id_sealed;  // PiiProtector::Seal
  std::string id_masked;
};

struct StoredRecipient {
  std::string id_hash;  // read: joined from persons
  std::string name;
  std::string org_code;
  std::string household_id;
  bool is_household_head = false;
  bool is_cadre = false;
  absl::CivilDay latest_since;
  int64_t person_no = 0;
};

struct StoredPayment {
  std::string payment_id;
  std::string batch_id;
  std::string program_code;
  std::string period;
  std::string id_hash;  // FindPayments: joined from persons; ScanPayments: empty
  int64_t person_no = 0;
  std::string account_no;
  int64_t amount_fen = 0;
  absl::Time paid_at;
  std::string reverses;
  std::string ingest_id;
  int64_t source_line = 0;
};

struct StoredEnrolment {
  std::string program_code;
  std::string id_hash;  // FindEnrolments: joined from persons; ScanEnrolments: empty
  std::string from_period;
  std::string to_period;  // "" open
  std::optional<int64_t> amount_fen;
  int64_t person_no = 0;
};

struct StoredBatch {
  BatchRow row;
};

struct CheckRunRecord {
  std::string run_id;
  std::string program_code;
  std::string period;
  absl::CivilDay as_of;
  absl::Time started_at;
  absl::Time finished_at;
  int64_t data_generation = 0;
  int64_t payments_checked = 0;
  int64_t entitlements_checked = 0;
  std::vector<std::string> warnings;
  std::string triggered_by;
  std::vector<std::pair<std::string, int64_t>> counts;  // by rule code, ordered
};

struct FindingRecord {
  int64_t seq = 0;
  std::string finding_id;
  std::string rule;
  std::string program_code;
  std::string period;
  std::string id_hash;  // empty: none
  std::string payment_id;
  std::string batch_id;
  std::optional<int64_t> expected_fen;
  std::optional<int64_t> actual_fen;
  std::string detail;
  std::string evidence;
  // Joined from persons and finding_reviews when read.
  std::string id_masked;
  std::string id_sealed;
  std::string review_state;  // "" = open (never reviewed)
  std::string review_reason;
  std::string reviewed_by;
  absl::Time reviewed_at;
};

struct ReviewRecord {
  std::string finding_id;
  std::string state;
  std::string reason;
  std::string reviewed_by;
  absl::Time reviewed_at;
};

struct DisclosureRow {
  std::string program_code;
  std::string period;
  std::string name;
  std::string id_masked;
  std::string id_hash;
  int64_t amount_fen = 0;  // as paid (ListDisclosure); DisbursementLogic nets the reversals off
  absl::Time paid_at;
  std::string payment_id;
};

// A reversal naming a payment (payment_reversals, with the reversal row's paid_at).
struct ReversalRow {
  std::string reverses;
  std::string payment_id;
  int64_t amount_fen = 0;
  absl::Time paid_at;
};

// "YYYY-MM-DD HH:MM:SS.ffffff" in China Standard Time, and back.
std::string ToSqlDateTime(absl::Time t);
absl::Time FromSqlDateTime(const std::string& s);

class DisbursementRepository final {
 public:
  // INSERT INTO <table> (<columns>) VALUES ... <suffix>, in statements of at most ~60,000
  // placeholders. Returns the affected-row count.
  absl::StatusOr<int64_t> InsertRows(sql::Connection& conn, const std::string& table,
                                     const std::vector<std::string>& columns, const std::vector<SqlRow>& rows,
                                     const std::string& suffix) const;
  absl::Status Execute(sql::Connection& conn, const std::string& statement, const SqlRow& params) const;
  // LOAD DATA LOCAL INFILE of `rows` into `table`: written as tab-separated text to a private
  // temporary file (in $TMPDIR, else /tmp), loaded on this connection (so inside the caller's
  // transaction) and removed. `fields` is the load's column list, `set` its SET clause (may be
  // empty); a kText value whose column is read into a variable can be unhexed there. With LOCAL
  // the server skips rows whose key exists (a warning, not an error): the count returned is the
  // rows actually written, for the caller to compare.
  absl::StatusOr<int64_t> LoadRows(sql::Connection& conn, const std::string& table, const std::string& fields,
                                   const std::string& set, const std::vector<SqlRow>& rows) const;

  // Person numbers. `count` numbers in a block of their own: [first, first + count), from the
  // counter row in a short transaction on `conn`, which must be a connection of its own in
  // autocommit (not the ingest's transaction, which would hold the counter until it commits).
  // The next person number the counter will hand out (a plain read, in the caller's transaction).
  absl::StatusOr<int64_t> NextPersonNumber(sql::Connection& conn) const;
  absl::StatusOr<int64_t> AllocatePersonNumbers(sql::Connection& conn, int64_t count) const;
  // (id_hash, person_no) of those of these persons that are stored.
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> LookupPersonNumbers(
      sql::Connection& conn, const std::vector<std::string>& hashes) const;
  // New persons (numbered by the caller), with LOAD DATA LOCAL INFILE; ABORTED when any of them
  // is stored already (another ingest wrote the same person meanwhile).
  absl::Status InsertPersons(sql::Connection& conn, const std::vector<PersonRecord>& persons) const;
  absl::StatusOr<std::vector<PersonRecord>> FindPersons(sql::Connection& conn,
                                                        const std::vector<std::string>& hashes) const;
  // Every person (person_no, id_sealed; no hash), in person_no order, in pages.
  absl::Status ScanPersons(sql::Connection& conn, const std::function<void(const PersonRecord&)>& fn) const;
  // The greatest person number stored (0: none), for sizing a table indexed by number.
  absl::StatusOr<int64_t> MaxPersonNumber(sql::Connection& conn) const;
  // The database's estimate of the rows of `table` (a table of this schema; the statistics'
  // figure, not a count: it may be off either way, and 0 when there is none). For sizing
  // buffers only.
  absl::StatusOr<int64_t> EstimatedRows(sql::Connection& conn, const std::string& table) const;

  absl::StatusOr<std::vector<ProgrammeRow>> LoadProgrammes(sql::Connection& conn) const;
  absl::Status UpsertProgrammes(sql::Connection& conn, const std::vector<ProgrammeRow>& rows) const;

  absl::StatusOr<std::vector<StoredEnrolment>> FindEnrolments(sql::Connection& conn,
                                                              const std::vector<StoredEnrolment>& keys) const;
  absl::Status UpsertEnrolments(sql::Connection& conn, const std::vector<StoredEnrolment>& rows) const;
  // New enrolments only, with LOAD DATA LOCAL INFILE; ABORTED when any of them exists already.
  absl::Status LoadEnrolments(sql::Connection& conn, const std::vector<StoredEnrolment>& rows) const;
  // Enrolments of one programme (all when empty), in the table's (person_no, program_code,
  // from_period) order, in pages; person_no set, id_hash empty. One programme's are read from the
  // whole table (V006: no index by programme).
  absl::Status ScanEnrolments(sql::Connection& conn, const std::string& program_code,
                              const std::function<void(const StoredEnrolment&)>& fn) const;

  absl::StatusOr<std::vector<StoredRecipient>> FindRecipients(sql::Connection& conn,
                                                              const std::vector<std::string>& hashes) const;
  // (id_hash, account_since, account_no) of these persons.
  absl::StatusOr<std::vector<std::tuple<std::string, absl::CivilDay, std::string>>> FindAccounts(
      sql::Connection& conn, const std::vector<std::string>& hashes) const;
  // (household_id, id_hash) of everyone on a roll in these households.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> FindHouseholdMembers(
      sql::Connection& conn, const std::vector<std::string>& households) const;
  // (household_id, id_hash) of the heads of these households.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> FindHeads(
      sql::Connection& conn, const std::vector<std::string>& households) const;
  absl::Status UpsertRecipients(sql::Connection& conn, const std::vector<StoredRecipient>& rows) const;
  // New recipients only, with LOAD DATA LOCAL INFILE; ABORTED when any of them exists already.
  absl::Status LoadRecipients(sql::Connection& conn, const std::vector<StoredRecipient>& rows) const;
  // (person_no, account_since, account_no).
  absl::Status InsertAccounts(sql::Connection& conn,
                              const std::vector<std::tuple<int64_t, absl::CivilDay, std::string>>& rows) const;
  // The same with LOAD DATA LOCAL INFILE; ABORTED when any of them exists already.
  absl::Status LoadAccounts(sql::Connection& conn,
                            const std::vector<std::tuple<int64_t, absl::CivilDay, std::string>>& rows) const;
  // Account history joined with the person's attributes, in (person_no, account_since) order.
  // Every roll entry (recipients), in person_no order.
  struct RollEntry {
    int64_t person_no = 0;
    std::string household_id;
    bool is_household_head = false;
    bool is_cadre = false;
  };
  absl::Status ScanRoll(sql::Connection& conn, const std::function<void(const RollEntry&)>& fn) const;
  // Every registered account (recipient_accounts), in (person_no, account_since) order. Not joined
  // with the roll: the check joins them in memory (a server-side join cost an index lookup per
  // account row, more than both scans together).
  struct AccountRow {
    int64_t person_no = 0;
    absl::CivilDay since;
    std::string account_no;
  };
  absl::Status ScanAccounts(sql::Connection& conn, const std::function<void(const AccountRow&)>& fn) const;
  // Distinct persons enrolled in a programme, as (person_no, id_hash) in person_no order after
  // `after_no`.
  absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> ListEnrolledPersons(sql::Connection& conn,
                                                                                   const std::string& program_code,
                                                                                   int64_t after_no, int limit) const;
  // Those of these households with a cadre among their members.
  absl::StatusOr<std::vector<std::string>> CadreHouseholds(sql::Connection& conn,
                                                           const std::vector<std::string>& households) const;
  // Up to `limit` rows of the rolls of these villages in (org_code, household_id, person_no)
  // order. With one village, after (household_id, person_no) when after_no > 0; with several,
  // from the start of the first (after_no must be 0).
  absl::StatusOr<std::vector<StoredRecipient>> ListRecipients(sql::Connection& conn,
                                                              const std::vector<std::string>& org_codes,
                                                              const std::string& after_household, int64_t after_no,
                                                              int limit) const;

  // One village's enrolments (of `program_code`, or every programme when empty), each with the
  // roll entry of its person, in (household_id, person_no, program_code, from_period) order
  // after `after` (those four values; none: from the start).
  absl::StatusOr<std::vector<std::pair<StoredRecipient, StoredEnrolment>>> ListVillageEnrolments(
      sql::Connection& conn, const std::string& org_code, const std::string& program_code,
      const std::optional<SqlRow>& after, int limit) const;
  // One village's civil events, each with the roll entry of its person, in (household_id,
  // person_no, event, event_date) order after `after` (those four values; none: from the start).
  absl::StatusOr<std::vector<std::pair<StoredRecipient, CivilEventRow>>> ListVillageCivilEvents(
      sql::Connection& conn, const std::string& org_code, const std::optional<SqlRow>& after, int limit) const;

  // Civil events: existing source_ref by key, upsert, and all deaths.
  absl::StatusOr<std::vector<CivilEventRow>> FindCivilEvents(
      sql::Connection& conn, const std::vector<std::pair<std::string, CivilEventRow>>& keys,
      std::vector<std::string>* hashes_out) const;
  // Keyed by person_no.
  absl::Status UpsertCivilEvents(sql::Connection& conn, const std::vector<std::pair<int64_t, CivilEventRow>>& rows) const;
  // Each person's earliest death, in person_no order.
  absl::Status ScanDeaths(sql::Connection& conn, const std::function<void(int64_t person_no, absl::CivilDay)>& fn) const;

  absl::StatusOr<std::vector<BatchRow>> FindBatches(sql::Connection& conn, const std::vector<std::string>& ids) const;
  absl::Status UpsertBatches(sql::Connection& conn, const std::vector<BatchRow>& rows) const;
  // Every batch, in batch_id order (a check reads them all, whatever its scope).
  absl::StatusOr<std::vector<BatchRow>> LoadBatches(sql::Connection& conn) const;

  absl::StatusOr<std::vector<StoredPayment>> FindPayments(sql::Connection& conn,
                                                          const std::vector<std::string>& ids) const;
  // Written with LOAD DATA LOCAL INFILE, the reversals among them also into payment_reversals;
  // ABORTED when any of them exists already (another ingest wrote it meanwhile: the caller's
  // transaction must be rolled back).
  absl::Status InsertPayments(sql::Connection& conn, const std::vector<StoredPayment>& rows) const;
  // Whether one of the tables above ("payments", "enrolments", ...) holds no row, as this
  // transaction sees it.
  absl::StatusOr<bool> TableIsEmpty(sql::Connection& conn, const std::string& table) const;
  // Every payment (a check reads them all, whatever its scope), in payment_id order, in pages;
  // person_no set; id_hash, ingest_id and source_line empty (the check does not read them).
  absl::Status ScanPayments(sql::Connection& conn, const std::function<void(const StoredPayment&)>& fn) const;

  absl::StatusOr<int64_t> DataGeneration(sql::Connection& conn) const;
  absl::Status BumpDataGeneration(sql::Connection& conn) const;

  absl::Status InsertRun(sql::Connection& conn, const CheckRunRecord& run) const;
  absl::Status InsertFindings(sql::Connection& conn, const std::string& run_id,
                              const std::vector<FindingRecord>& findings) const;
  // "latest" or "" for the most recent run.
  absl::StatusOr<std::optional<CheckRunRecord>> FindRun(sql::Connection& conn, const std::string& run_id) const;
  // Whether a run of this scope (or a full run) saw this data generation with an "as of" date
  // after `due` (a run as of an earlier date could not find what was unpaid by then).
  absl::StatusOr<bool> HasRunAt(sql::Connection& conn, const std::string& program_code, const std::string& period,
                                int64_t generation, absl::CivilDay due) const;
  // A page of a run's findings after seq, optionally filtered.
  // A run's findings in the order of its masked findings.csv (rule, programme, period, masked ID
  // number, payment, then the engine's order), streamed in constant memory (ScanByKey).
  absl::Status ScanFindingsInMaskedCsvOrder(sql::Connection& conn, const std::string& run_id,
                                            const std::function<void(const FindingRecord&)>& fn) const;
  absl::StatusOr<std::vector<FindingRecord>> ListFindings(sql::Connection& conn, const std::string& run_id,
                                                          const std::string& rule, const std::string& review_state,
                                                          int64_t after_seq, int limit) const;
  // The latest stored copy of a finding.
  absl::StatusOr<std::optional<FindingRecord>> FindFinding(sql::Connection& conn, const std::string& finding_id) const;
  absl::Status UpsertReview(sql::Connection& conn, const ReviewRecord& review) const;

  // Disclosure: standing payments (not reversals) of a village's persons in a period, net of
  // reversals, ordered by program_code, id_masked, payment_id, after the given key.
  absl::StatusOr<std::vector<DisclosureRow>> ListDisclosure(sql::Connection& conn, const std::string& org_code,
                                                            const std::string& period, const std::string& program_code,
                                                            const std::string& after_program,
                                                            const std::string& after_masked,
                                                            const std::string& after_payment, int limit) const;
  // The reversals naming these payments, in (reverses, paid_at, payment_id) order: the order in
  // which they apply.
  absl::StatusOr<std::vector<ReversalRow>> FindReversalsOf(sql::Connection& conn,
                                                           const std::vector<std::string>& payment_ids) const;
};

}  // namespace grassroots::cadrepay
