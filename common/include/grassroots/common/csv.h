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

// A syntax error in the file: the record it is in is refused (a stray quote, junk after a
// closing quote, a quote left open at the end of the file, a record over the length limit).
// A record refused after one of its quoted fields crossed a line break is refused on its first
// line and read again from its second line, which begins a record of its own: a stray opening
// quote costs its own line, not the lines it would have swallowed.
struct CsvSyntaxError {
  int64_t line = 0;
  int column = 0;  // 1-based field index
  std::string message;
  std::string column_name;  // CsvHeader::Bind: the column concerned ("" for an unnamed one)
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

  // A record longer than this (bytes of field content) is refused with a syntax error, so
  // that a stray quote cannot make the reader hold the rest of a huge file. Default 1 MiB.
  void set_max_record_bytes(size_t n) { max_record_bytes_ = n; }

 private:
  enum class State : uint8_t {
    kRecordStart,       // nothing of a record yet: a line end here is an empty line
    kFieldStart,        // after a separator
    kUnquoted,          // inside an unquoted field
    kQuoted,            // inside a quoted field
    kQuoteInQuoted,     // a quote in a quoted field: its end, or the first of a doubled quote
    kAfterCr,           // a CR ended a line; a LF right after it is part of that line end
    kBadFieldStart,     // skipping a refused record: at the start of a field
    kBadUnquoted,       // skipping: inside an unquoted field
    kBadQuoted,         // skipping: inside a quoted field
    kBadQuoteInQuoted,  // skipping: a quote inside a quoted field
    kReadAgain,         // a record refused after a quoted line break: read again from its second line
  };
  void Process(const char* p, const char* end);
  // Reads again, from its second line, a record refused after a quoted line break.
  void ReadAgain(std::string bytes);
  void BeginRecord();
  void BeginField();
  void EmitRecord();
  void Refuse(std::string message, bool in_quotes);
  bool Grow(size_t n, bool in_quotes);  // counts field bytes; false when the record is refused

  RecordFn on_record_;
  ErrorFn on_error_;
  State state_ = State::kRecordStart;
  CsvRecord record_;           // fields are reused record to record (no per-byte allocation)
  size_t nfields_ = 0;         // fields of record_.fields in use by the current record
  int64_t line_ = 1;           // the line the reader is on
  int64_t record_line_ = 1;    // the line the current record began on
  bool quoted_cr_ = false;     // last byte inside quotes was a CR (CRLF is one line break)
  // The current record crossed a line break inside quotes; its bytes after that first break are
  // kept in after_break_ (bounded by the record limit) while read for the first time, so that
  // they can be read again if the record is refused (once: not while reading them again).
  bool crossed_break_ = false;
  bool keeping_ = false;       // after_break_ holds the current record's bytes after its first break
  bool first_break_cr_ = false;
  bool reading_again_ = false;
  std::string after_break_;
  int64_t bytes_ = 0;
  size_t record_bytes_ = 0;
  size_t max_record_bytes_ = size_t{1} << 20;
  bool bom_checked_ = false;
  std::string bom_buffer_;
};

// Appends one field, quoted when it holds a comma, quote, CR or LF or begins or ends with a
// space or a byte-order mark (quotes doubled).
void AppendCsvField(std::string& out, std::string_view field);
// Appends a whole record and a LF. A record of one empty field is written as "" so that it
// is not read back as an empty line.
void AppendCsvRecord(std::string& out, const std::vector<std::string>& fields);

// Maps a header row to column positions and checks it against a format: required columns
// present, no unknown or repeated column. Field access by column name.
class CsvHeader final {
 public:
  struct Column {
    std::string name;
    bool required;
  };
  // Errors (line 1) for every problem of the header, each naming its column; empty when it is
  // acceptable.
  // Header names are trimmed of surrounding spaces and tabs before matching.
  std::vector<CsvSyntaxError> Bind(const std::vector<std::string>& header,
                                   const std::vector<Column>& format);
  // For formats that allow them: unknown columns are ignored instead of reported.
  void set_ignore_unknown_columns(bool ignore) { ignore_unknown_ = ignore; }
  // The value of a column in a record ("" when the column is absent or the record short).
  std::string_view Get(const CsvRecord& record, std::string_view column) const;
  bool Has(std::string_view column) const;
  // 1-based column index in the file, 0 when absent (for error reports).
  int IndexOf(std::string_view column) const;
  size_t width() const { return width_; }
  // For a record with the wrong number of fields, the column to name in its error: the first
  // column the record lacks ("" when it has too many: that field has no column).
  std::string_view FirstMissingColumn(const CsvRecord& record) const;
 private:
  std::vector<std::pair<std::string, int>> positions_;
  size_t width_ = 0;
  bool ignore_unknown_ = false;
};

}  // namespace grassroots::common
