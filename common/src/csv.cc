#include "grassroots/common/csv.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace grassroots::common {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Bytes that end a run of ordinary field content.
struct ByteClasses {
  std::array<bool, 256> unquoted_stop{};  // , " CR LF
  std::array<bool, 256> quoted_stop{};    // " CR LF
  constexpr ByteClasses() {
    for (const unsigned char c : {',', '"', '\r', '\n'}) unquoted_stop[c] = true;
    for (const unsigned char c : {'"', '\r', '\n'}) quoted_stop[c] = true;
  }
};
constexpr ByteClasses kClasses;

inline bool UnquotedStop(char c) { return kClasses.unquoted_stop[static_cast<unsigned char>(c)]; }
inline bool QuotedStop(char c) { return kClasses.quoted_stop[static_cast<unsigned char>(c)]; }

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

CsvReader::CsvReader(RecordFn on_record, ErrorFn on_error)
    : on_record_(std::move(on_record)), on_error_(std::move(on_error)) {}

void CsvReader::Feed(std::string_view chunk) {
  bytes_ += static_cast<int64_t>(chunk.size());
  while (!bom_checked_ && !chunk.empty()) {
    bom_buffer_.push_back(chunk.front());
    chunk.remove_prefix(1);
    if (kBom.substr(0, bom_buffer_.size()) != bom_buffer_) {
      bom_checked_ = true;  // not a BOM: what was held back is data
      Process(bom_buffer_.data(), bom_buffer_.data() + bom_buffer_.size());
    } else if (bom_buffer_.size() == kBom.size()) {
      bom_checked_ = true;  // a BOM: dropped
    }
  }
  if (chunk.empty()) return;
  Process(chunk.data(), chunk.data() + chunk.size());
}

void CsvReader::Finish() {
  if (!bom_checked_) {
    bom_checked_ = true;
    Process(bom_buffer_.data(), bom_buffer_.data() + bom_buffer_.size());
  }
  switch (state_) {
    case State::kFieldStart:
    case State::kUnquoted:
    case State::kQuoteInQuoted:
      ++nfields_;
      EmitRecord();
      break;
    case State::kQuoted:
      on_error_(CsvSyntaxError{record_line_, static_cast<int>(nfields_ + 1),
                               "unterminated quoted field at end of file (a quote is missing)", ""});
      if (keeping_) {
        ReadAgain(std::move(after_break_));
        Finish();
        return;
      }
      break;
    default:
      break;  // nothing pending, or a refused record already reported
  }
  state_ = State::kRecordStart;
  nfields_ = 0;
}

void CsvReader::ReadAgain(std::string bytes) {
  keeping_ = false;
  line_ = record_line_ + 1;
  state_ = first_break_cr_ ? State::kAfterCr : State::kRecordStart;
  nfields_ = 0;
  reading_again_ = true;
  Process(bytes.data(), bytes.data() + bytes.size());
  reading_again_ = false;
  after_break_ = std::move(bytes);  // its capacity, for the next record kept
  after_break_.clear();
}

void CsvReader::BeginRecord() {
  record_line_ = line_;
  nfields_ = 0;
  record_bytes_ = 0;
  crossed_break_ = false;
  BeginField();
}

void CsvReader::BeginField() {
  if (nfields_ < record_.fields.size()) {
    record_.fields[nfields_].clear();
  } else {
    record_.fields.emplace_back();
  }
}

void CsvReader::EmitRecord() {
  record_.fields.resize(nfields_);
  record_.line = record_line_;
  on_record_(record_);
  nfields_ = 0;
  if (keeping_) {
    keeping_ = false;
    after_break_.clear();
  }
}

void CsvReader::Refuse(std::string message, bool in_quotes) {
  on_error_(CsvSyntaxError{record_line_, static_cast<int>(nfields_ + 1), std::move(message), ""});
  state_ = keeping_ ? State::kReadAgain : in_quotes ? State::kBadQuoted : State::kBadUnquoted;
  nfields_ = 0;
}

bool CsvReader::Grow(size_t n, bool in_quotes) {
  record_bytes_ += n;
  if (record_bytes_ <= max_record_bytes_) return true;
  Refuse(absl::StrCat("record longer than ", max_record_bytes_,
                      " bytes (a quote may be missing)"),
         in_quotes);
  return false;
}

void CsvReader::Process(const char* p, const char* end) {
  const char* kept_from = keeping_ ? p : nullptr;  // bytes from here on belong to after_break_
  while (p < end) {
    const char c = *p;
    switch (state_) {
      case State::kAfterCr:
        state_ = State::kRecordStart;
        if (c == '\n') {
          ++p;
          break;
        }
        [[fallthrough]];
      case State::kRecordStart:
        if (c == '\n' || c == '\r') {  // an empty line: not a record
          ++line_;
          state_ = c == '\r' ? State::kAfterCr : State::kRecordStart;
          ++p;
          break;
        }
        BeginRecord();
        state_ = State::kFieldStart;
        [[fallthrough]];
      case State::kFieldStart:
        if (c == '"') {
          quoted_cr_ = false;
          state_ = State::kQuoted;
          ++p;
          break;
        }
        if (c == ',') {
          ++nfields_;
          BeginField();
          ++p;
          break;
        }
        if (c == '\n' || c == '\r') {
          ++nfields_;
          EmitRecord();
          ++line_;
          state_ = c == '\r' ? State::kAfterCr : State::kRecordStart;
          ++p;
          break;
        }
        state_ = State::kUnquoted;
        [[fallthrough]];
      case State::kUnquoted: {
        const char* run = p;
        while (p < end && !UnquotedStop(*p)) ++p;
        if (p > run) {
          if (!Grow(p - run, false)) break;
          record_.fields[nfields_].append(run, p - run);
        }
        if (p == end) break;
        const char s = *p++;
        if (s == ',') {
          ++nfields_;
          BeginField();
          state_ = State::kFieldStart;
        } else if (s == '"') {
          Refuse("stray quote in an unquoted field (quote the whole field and double the quote)",
                 false);
        } else {
          ++nfields_;
          EmitRecord();
          ++line_;
          state_ = s == '\r' ? State::kAfterCr : State::kRecordStart;
        }
        break;
      }
      case State::kQuoted: {
        const char* run = p;
        while (p < end && !QuotedStop(*p)) ++p;
        if (p > run) {
          quoted_cr_ = false;
          if (!Grow(p - run, true)) break;
          record_.fields[nfields_].append(run, p - run);
        }
        if (p == end) break;
        const char s = *p++;
        if (s == '"') {
          quoted_cr_ = false;
          state_ = State::kQuoteInQuoted;
          break;
        }
        // A line break inside quotes is field content; CRLF counts as one line.
        if (s == '\r' || !quoted_cr_) ++line_;
        quoted_cr_ = s == '\r';
        if (!crossed_break_) {
          crossed_break_ = true;
          if (!reading_again_) {
            keeping_ = true;
            first_break_cr_ = s == '\r';
            after_break_.clear();
            kept_from = p;
          }
        }
        if (!Grow(1, true)) break;
        record_.fields[nfields_].push_back(s);
        break;
      }
      case State::kQuoteInQuoted:
        if (c == '"') {  // a doubled quote
          if (!Grow(1, true)) break;
          record_.fields[nfields_].push_back('"');
          state_ = State::kQuoted;
          ++p;
        } else if (c == ',') {
          ++nfields_;
          BeginField();
          state_ = State::kFieldStart;
          ++p;
        } else if (c == '\n' || c == '\r') {
          ++nfields_;
          EmitRecord();
          ++line_;
          state_ = c == '\r' ? State::kAfterCr : State::kRecordStart;
          ++p;
        } else {
          Refuse("unexpected character after a closing quote (a quote inside a quoted field "
                 "must be doubled)",
                 false);
          ++p;
        }
        break;
      // Skipping the rest of a refused record, reading quotes as the parser would, so that a
      // quoted line break does not end it.
      case State::kBadFieldStart:
        if (c == '"') {
          quoted_cr_ = false;
          state_ = State::kBadQuoted;
          ++p;
          break;
        }
        state_ = State::kBadUnquoted;
        [[fallthrough]];
      case State::kBadUnquoted:
        while (p < end && *p != ',' && *p != '\n' && *p != '\r') ++p;
        if (p == end) break;
        if (*p == ',') {
          state_ = State::kBadFieldStart;
        } else {
          ++line_;
          state_ = *p == '\r' ? State::kAfterCr : State::kRecordStart;
        }
        ++p;
        break;
      case State::kBadQuoted:
        while (p < end && !QuotedStop(*p)) {
          quoted_cr_ = false;
          ++p;
        }
        if (p == end) break;
        if (*p == '"') {
          quoted_cr_ = false;
          state_ = State::kBadQuoteInQuoted;
        } else {
          if (*p == '\r' || !quoted_cr_) ++line_;
          quoted_cr_ = *p == '\r';
        }
        ++p;
        break;
      case State::kBadQuoteInQuoted:
        if (c == '"') {
          state_ = State::kBadQuoted;
          ++p;
        } else {
          state_ = State::kBadUnquoted;  // handles , CR LF or junk
        }
        break;
      case State::kReadAgain:
        // Its bytes after that break (those before p), then on from p.
        after_break_.append(kept_from, p - kept_from);
        ReadAgain(std::move(after_break_));
        kept_from = nullptr;
        break;
    }
  }
  if (state_ == State::kReadAgain) {
    after_break_.append(kept_from, end - kept_from);
    ReadAgain(std::move(after_break_));
  } else if (keeping_) {
    after_break_.append(kept_from, end - kept_from);
  }
}

void AppendCsvField(std::string& out, std::string_view field) {
  // A leading BOM is quoted too: at the start of a file the reader would take it for one.
  bool quote = !field.empty() &&
               (field.front() == ' ' || field.back() == ' ' || field.substr(0, 3) == kBom);
  if (!quote) {
    for (const char c : field) {
      if (UnquotedStop(c)) {
        quote = true;
        break;
      }
    }
  }
  if (!quote) {
    out.append(field);
    return;
  }
  out.push_back('"');
  for (const char c : field) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

void AppendCsvRecord(std::string& out, const std::vector<std::string>& fields) {
  if (fields.size() == 1 && fields[0].empty()) {
    out.append("\"\"\n");
    return;
  }
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendCsvField(out, fields[i]);
  }
  out.push_back('\n');
}

namespace {
std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Shaped like the formats' column names (a lower-case letter, then lower-case letters, digits
// or '_'; at most 40): a misspelt column. Anything else may be data, e.g. the first record of a
// file sent without its header row, whose cells (an ID number, a name) are never repeated.
bool LooksLikeColumnName(std::string_view s) {
  if (s.empty() || s.size() > 40 || s[0] < 'a' || s[0] > 'z') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}
}  // namespace

std::vector<CsvSyntaxError> CsvHeader::Bind(const std::vector<std::string>& header,
                                            const std::vector<Column>& format) {
  std::vector<CsvSyntaxError> errors;
  positions_.clear();
  width_ = header.size();
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string_view name = Trim(header[i]);
    const int column = static_cast<int>(i + 1);
    if (name.empty()) {
      errors.push_back({1, column, "empty column name", ""});
      continue;
    }
    bool known = false;
    for (const Column& c : format) {
      if (c.name == name) {
        known = true;
        break;
      }
    }
    if (!known) {
      if (ignore_unknown_) continue;
      if (LooksLikeColumnName(name)) {
        errors.push_back({1, column, absl::StrCat("unknown column ", Av(name)), std::string(name)});
      } else {
        errors.push_back({1, column,
                          absl::StrCat("column ", column,
                                       " is not named like a column of this file (is the header row missing?)"),
                          ""});
      }
      continue;
    }
    if (Has(name)) {
      errors.push_back({1, column, absl::StrCat("duplicated column ", Av(name)), std::string(name)});
      continue;
    }
    positions_.emplace_back(std::string(name), static_cast<int>(i));
  }
  for (const Column& c : format) {
    if (c.required && !Has(c.name)) {
      errors.push_back({1, 0, absl::StrCat("missing required column ", c.name), c.name});
    }
  }
  return errors;
}

std::string_view CsvHeader::Get(const CsvRecord& record, std::string_view column) const {
  for (const auto& [name, index] : positions_) {
    if (name == column) {
      if (static_cast<size_t>(index) < record.fields.size()) return record.fields[index];
      return {};
    }
  }
  return {};
}

bool CsvHeader::Has(std::string_view column) const { return IndexOf(column) != 0; }

std::string_view CsvHeader::FirstMissingColumn(const CsvRecord& record) const {
  if (record.fields.size() >= width_) return "";
  const int missing = static_cast<int>(record.fields.size());  // 0-based position of the first absent field
  for (const auto& [name, index] : positions_) {
    if (index == missing) return name;
  }
  return "";
}

int CsvHeader::IndexOf(std::string_view column) const {
  for (const auto& [name, index] : positions_) {
    if (name == column) return index + 1;
  }
  return 0;
}

}  // namespace grassroots::common
