#include "disbursement/findings_csv.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grassroots/common/csv.h"

namespace grassroots::cadrepay {
namespace {

constexpr size_t kFlushBytes = 64 * 1024;

std::string IdColumn(const Finding& f, bool unmasked) {
  if (!f.person.has_value()) return "";
  return unmasked ? IdNumberOf(*f.person) : MaskedIdNumberOf(*f.person);
}

void AppendOptional(std::string& out, const std::optional<int64_t>& v) {
  if (v.has_value()) absl::StrAppend(&out, *v);
}

}  // namespace

void WriteFindingsCsv(const std::vector<Finding>& findings, const FindingsCsvOptions& options,
                      const std::function<void(std::string_view)>& sink) {
  std::vector<std::string> ids(findings.size());
  for (size_t i = 0; i < findings.size(); ++i) ids[i] = IdColumn(findings[i], options.unmasked);
  std::vector<uint32_t> order(findings.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const Finding& x = findings[a];
    const Finding& y = findings[b];
    return std::make_tuple(RuleCode(x.rule), std::string_view(x.program_code),
                           std::string_view(x.period), std::string_view(ids[a]),
                           std::string_view(x.payment_id)) <
           std::make_tuple(RuleCode(y.rule), std::string_view(y.program_code),
                           std::string_view(y.period), std::string_view(ids[b]),
                           std::string_view(y.payment_id));
  });
  std::string out;
  out.reserve(kFlushBytes + 4096);
  out.append(kFindingsCsvHeader);
  out.push_back('\n');
  std::string detail;
  for (const uint32_t i : order) {
    const Finding& f = findings[i];
    common::AppendCsvField(out, RuleCode(f.rule));
    out.push_back(',');
    common::AppendCsvField(out, f.program_code);
    out.push_back(',');
    common::AppendCsvField(out, f.period);
    out.push_back(',');
    common::AppendCsvField(out, ids[i]);
    out.push_back(',');
    common::AppendCsvField(out, f.payment_id);
    out.push_back(',');
    AppendOptional(out, f.expected_fen);
    out.push_back(',');
    AppendOptional(out, f.actual_fen);
    out.push_back(',');
    detail = f.detail;
    std::replace(detail.begin(), detail.end(), '\n', ' ');
    std::replace(detail.begin(), detail.end(), '\r', ' ');
    common::AppendCsvField(out, detail);
    out.push_back('\n');
    if (out.size() >= kFlushBytes) {
      sink(out);
      out.clear();
    }
  }
  if (!out.empty()) sink(out);
}

std::string FindingsCsv(const std::vector<Finding>& findings, const FindingsCsvOptions& options) {
  std::string file;
  WriteFindingsCsv(findings, options, [&file](std::string_view piece) { file.append(piece); });
  return file;
}

}  // namespace grassroots::cadrepay
