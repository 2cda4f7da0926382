#pragma once
// RFC 4180 CSV, as spreadsheets write it: optional UTF-8 BOM, LF or CRLF, quoted fields with
// commas, doubled quotes and line breaks. Push parser: feed chunks as they arrive (a chunk may
// end anywhere), records come out with the line they begin on. Constant memory per record.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace grassroots::common {

struct CsvRecord {
  int64_t line = 0;                 // line the record begins on (1 = header)
  std::vector<std::string> fields;
};

// A syntax error in the file: the record it is in is refused (a stray quote) or the rest of
// the file cannot be read (unterminated quote at end of file).
struct CsvSyntaxError {
  int64_t line = 0;
  int column = 0;  // 1-based field index
  std::string message;
};

class CsvReader final {
 public:
  using RecordFn = std::function<void(CsvRecord&)>;
  using ErrorFn = std::function<void(const CsvSyntaxError&)>;
  CsvReader(RecordFn on_record, ErrorFn on_error);
  // Feeds the next bytes of the file.
  void Feed(std::string_view chunk);
  // Ends the file: flushes the last record (with or without a final line break).
  void Finish();
  int64_t bytes_fed() const { return bytes_; }

 private:
  enum class State { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted, kAfterCr, kBadRecord };
  void EndField();
  void EndRecord();
  void StartRecordIfNeeded();
  RecordFn on_record_;
  ErrorFn on_error_;
  State state_ = State::kFieldStart;
  CsvRecord record_;
  std::string field_;
  int64_t line_ = 1;
  int64_t bytes_ = 0;
  bool record_started_ = false;
  bool bom_checked_ = false;
  std::string bom_buffer_;
  bool bad_ = false;
  CsvSyntaxError bad_error_;
  bool quoted_field_ = false;
};

// Appends one field, quoted when it holds a comma, quote, CR or LF.
void AppendCsvField(std::string& out, std::string_view field);
// Appends a whole record and a LF.
void AppendCsvRecord(std::string& out, const std::vector<std::string>& fields);

// Maps a header row to column positions and checks it against a format: required columns
// present, no unknown or repeated column. Field access by column name.
class CsvHeader final {
 public:
  struct Column {
    std::string name;
    bool required;
  };
  // Errors (line 1) for every problem of the header; empty when it is acceptable.
  std::vector<CsvSyntaxError> Bind(const std::vector<std::string>& header,
                                   const std::vector<Column>& format);
  // The value of a column in a record ("" when the column is absent or the record short).
  std::string_view Get(const CsvRecord& record, std::string_view column) const;
  bool Has(std::string_view column) const;
  // 1-based column index in the file, 0 when absent (for error reports).
  int IndexOf(std::string_view column) const;
  size_t width() const { return width_; }
 private:
  std::vector<std::pair<std::string, int>> positions_;
  size_t width_ = 0;
};

}  // namespace grassroots::common
