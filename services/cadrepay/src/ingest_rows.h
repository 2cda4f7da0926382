#pragma once
// Row validation of the six disbursement interchange files (formats.md): each parser reads one
// CSV record through a bound header and returns the typed row or the problems found, each
// naming its column. Pure: no database; checks that need stored data (unknown programme,
// duplicates, a second household head) are the ingest's (disbursement_logic).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "grassroots/common/csv.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {

// A problem of a row: column ("" for the whole row), stable code, message without personal data.
struct RowProblem {
  std::string column;
  std::string code;
  std::string message;
};
using RowProblems = std::vector<RowProblem>;

struct ProgrammeRow {
  std::string program_code;
  std::string name;
  std::string unit;       // person | household
  std::string frequency;  // monthly | yearly
  int64_t amount_fen = 0;
  common::Period valid_from;
  std::optional<common::Period> valid_to;
  bool excludes_cadre_households = false;
  int grace_days = 5;
};

struct EnrolmentRow {
  std::string program_code;
  std::string id_number;  // normalised
  std::optional<int64_t> amount_fen;
  common::Period from_period;
  std::optional<common::Period> to_period;
};

struct RecipientCsvRow {
  std::string id_number;  // normalised
  std::string name;
  std::string org_code;
  std::string household_id;
  bool is_household_head = false;
  std::string account_no;
  absl::CivilDay account_since;
  bool is_cadre = false;
};

struct PaymentRow {
  std::string payment_id;
  std::string batch_id;
  std::string program_code;
  common::Period period;
  std::string id_number;  // normalised
  std::string account_no;
  int64_t amount_fen = 0;
  absl::Time paid_at;
  std::string reverses;  // empty: not a reversal
};

struct BatchRow {
  std::string batch_id;
  std::string program_code;
  common::Period period;
  int64_t declared_count = 0;
  int64_t declared_total_fen = 0;
  absl::CivilDay scheduled_on;
};

struct CivilEventRow {
  std::string id_number;  // normalised
  std::string event;      // death | emigration | imprisonment | released
  absl::CivilDay event_date;
  std::string source_ref;
};

// The column layout of each file.
const std::vector<common::CsvHeader::Column>& ProgrammeColumns();
const std::vector<common::CsvHeader::Column>& EnrolmentColumns();
const std::vector<common::CsvHeader::Column>& RecipientColumns();
const std::vector<common::CsvHeader::Column>& PaymentColumns();
const std::vector<common::CsvHeader::Column>& BatchColumns();
const std::vector<common::CsvHeader::Column>& CivilEventColumns();

// Each returns the row's problems (empty when the row is good and `out` is filled).
RowProblems ParseProgramme(const common::CsvHeader& h, const common::CsvRecord& r, ProgrammeRow& out);
RowProblems ParseEnrolment(const common::CsvHeader& h, const common::CsvRecord& r, EnrolmentRow& out);
RowProblems ParseRecipient(const common::CsvHeader& h, const common::CsvRecord& r, RecipientCsvRow& out);
RowProblems ParsePayment(const common::CsvHeader& h, const common::CsvRecord& r, PaymentRow& out);
RowProblems ParseBatch(const common::CsvHeader& h, const common::CsvRecord& r, BatchRow& out);
RowProblems ParseCivilEvent(const common::CsvHeader& h, const common::CsvRecord& r, CivilEventRow& out);

// "Account numbers: digits, 12 to 24".
bool IsAccountNumber(std::string_view s);
// Whether a period has the form a frequency ("monthly", "yearly") asks for.
bool PeriodFits(const common::Period& p, std::string_view frequency);
// Payment ids, batch ids, household ids: 1 to 64 printable ASCII characters, no spaces.
bool IsReference(std::string_view s, size_t max_len = 64);

}  // namespace grassroots::cadrepay
