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
  FindingsCsvWriter writer(sink);
  for (const uint32_t i : order) {
    const Finding& f = findings[i];
    writer.Row(RuleCode(f.rule), f.program_code, f.period, ids[i], f.payment_id, f.expected_fen, f.actual_fen, f.detail);
  }
  writer.Finish();
}

FindingsCsvWriter::FindingsCsvWriter(std::function<void(std::string_view)> sink) : sink_(std::move(sink)) {
  out_.reserve(kFlushBytes + 4096);
  out_.append(kFindingsCsvHeader);
  out_.push_back('\n');
}

void FindingsCsvWriter::Row(std::string_view rule, std::string_view program_code, std::string_view period,
                            std::string_view id_number, std::string_view payment_id,
                            const std::optional<int64_t>& expected_fen, const std::optional<int64_t>& actual_fen,
                            std::string_view detail) {
  common::AppendCsvField(out_, rule);
  out_.push_back(',');
  common::AppendCsvField(out_, program_code);
  out_.push_back(',');
  common::AppendCsvField(out_, period);
  out_.push_back(',');
  common::AppendCsvField(out_, id_number);
  out_.push_back(',');
  common::AppendCsvField(out_, payment_id);
  out_.push_back(',');
  AppendOptional(out_, expected_fen);
  out_.push_back(',');
  AppendOptional(out_, actual_fen);
  out_.push_back(',');
  detail_.assign(detail);  // kept to one line
  std::replace(detail_.begin(), detail_.end(), '\n', ' ');
  std::replace(detail_.begin(), detail_.end(), '\r', ' ');
  common::AppendCsvField(out_, detail_);
  out_.push_back('\n');
  if (out_.size() >= kFlushBytes) {
    sink_(out_);
    out_.clear();
  }
}

void FindingsCsvWriter::Finish() {
  if (!out_.empty()) sink_(out_);
  out_.clear();
}

std::string FindingsCsv(const std::vector<Finding>& findings, const FindingsCsvOptions& options) {
  std::string file;
  WriteFindingsCsv(findings, options, [&file](std::string_view piece) { file.append(piece); });
  return file;
}

}  // namespace grassroots::cadrepay
