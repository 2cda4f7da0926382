#pragma once
// findings.csv (formats.md): the disbursement check results for auditors.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "disbursement/disbursement_engine.h"

namespace grassroots::cadrepay {

inline constexpr std::string_view kFindingsCsvHeader =
    "rule,program_code,period,id_number,payment_id,expected_fen,actual_fen,detail";

struct FindingsCsvOptions {
  // Full ID numbers, for an export made with the right to see them; masked otherwise
  // ("1101**********002X").
  bool unmasked = false;
};

// Writes findings.csv row by row, for rows given in findings.csv order (the export streams a run's
// findings from the database sorted so): the bytes WriteFindingsCsv writes for them.
class FindingsCsvWriter final {
 public:
  // Writes the header.
  explicit FindingsCsvWriter(std::function<void(std::string_view)> sink);
  void Row(std::string_view rule, std::string_view program_code, std::string_view period, std::string_view id_number,
           std::string_view payment_id, const std::optional<int64_t>& expected_fen,
           const std::optional<int64_t>& actual_fen, std::string_view detail);
  // Hands over what is left.
  void Finish();

 private:
  std::function<void(std::string_view)> sink_;
  std::string out_;
  std::string detail_;
};

// Writes the header and one row per finding, LF line ends, RFC 4180 quoting. Rows are sorted by
// rule, program_code, period, id_number as written (masked or not), payment_id; ties keep the
// engine's order, so the same findings always give byte-identical files. A detail is kept to
// one line (line breaks become spaces). `sink` receives the file in pieces of about 64 KiB.
void WriteFindingsCsv(const std::vector<Finding>& findings, const FindingsCsvOptions& options,
                      const std::function<void(std::string_view)>& sink);

// The whole file as one string.
std::string FindingsCsv(const std::vector<Finding>& findings, const FindingsCsvOptions& options);

}  // namespace grassroots::cadrepay
