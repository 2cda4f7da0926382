#pragma once
// findings.csv (formats.md): the disbursement check results for auditors.

#include <functional>
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

// Writes the header and one row per finding, LF line ends, RFC 4180 quoting. Rows are sorted by
// rule, program_code, period, id_number as written (masked or not), payment_id; ties keep the
// engine's order, so the same findings always give byte-identical files. A detail is kept to
// one line (line breaks become spaces). `sink` receives the file in pieces of about 64 KiB.
void WriteFindingsCsv(const std::vector<Finding>& findings, const FindingsCsvOptions& options,
                      const std::function<void(std::string_view)>& sink);

// The whole file as one string.
std::string FindingsCsv(const std::vector<Finding>& findings, const FindingsCsvOptions& options);

}  // namespace grassroots::cadrepay
