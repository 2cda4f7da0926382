#include "grassroots/common/csv.h"

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grassroots::common {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// What a reader reported, in order: "R<line>:[f1|f2]" per record, "E<line>:<col>:<message>"
// per syntax error.
struct Events {
  std::vector<std::string> log;
  std::vector<CsvRecord> records;
  std::vector<CsvSyntaxError> errors;
};


// Feeds `input` in chunks of the given sizes (cycled); sizes {} means in one piece.
Events ParseChunked(std::string_view input, const std::vector<size_t>& sizes) {
  Events ev;
  CsvReader reader(
      [&ev](CsvRecord& r) {
        ev.log.push_back(absl::StrCat("R", r.line, ":[", absl::StrJoin(r.fields, "|"), "]"));
        ev.records.push_back(r);
      },
      [&ev](const CsvSyntaxError& e) {
        ev.log.push_back(absl::StrCat("E", e.line, ":", e.column, ":", e.message));
        ev.errors.push_back(e);
      });
  if (sizes.empty()) {
    reader.Feed(input);
  } else {
    size_t pos = 0;
    size_t k = 0;
    while (pos < input.size()) {
      const size_t n = std::min(sizes[k++ % sizes.size()], input.size() - pos);
      reader.Feed(input.substr(pos, n));
      pos += n;
    }
  }
  reader.Finish();
  EXPECT_EQ(reader.bytes_fed(), static_cast<int64_t>(input.size()));
  return ev;
}

// Parses in one piece, byte by byte and in random chunks; all must agree.
Events Parse(std::string_view input) {
  Events whole = ParseChunked(input, {});
  EXPECT_EQ(ParseChunked(input, {1}).log, whole.log) << "byte by byte: " << input;
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::vector<size_t> sizes;
    for (int i = 0; i < 16; ++i) sizes.push_back(std::uniform_int_distribution<size_t>(1, 7)(rng));
    EXPECT_EQ(ParseChunked(input, sizes).log, whole.log) << "chunks, round " << round;
  }
  return whole;
}

std::vector<std::string> Log(std::string_view input) { return Parse(input).log; }

TEST(CsvReaderTest, LfAndCrLf) {
  EXPECT_THAT(Log("a,b\nc,d\n"), ElementsAre("R1:[a|b]", "R2:[c|d]"));
  EXPECT_THAT(Log("a,b\r\nc,d\r\n"), ElementsAre("R1:[a|b]", "R2:[c|d]"));
  EXPECT_THAT(Log("a,b\r\nc,d"), ElementsAre("R1:[a|b]", "R2:[c|d]"));
  EXPECT_THAT(Log("a,b\nc,d\r\ne\n"), ElementsAre("R1:[a|b]", "R2:[c|d]", "R3:[e]"));
}

TEST(CsvReaderTest, LoneCrEndsALine) {
  EXPECT_THAT(Log("a,b\rc,d\r"), ElementsAre("R1:[a|b]", "R2:[c|d]"));
  EXPECT_THAT(Log("a\r\r\nb"), ElementsAre("R1:[a]", "R3:[b]"));
}

TEST(CsvReaderTest, EmptyLinesAreSkipped) {
  EXPECT_THAT(Log("a\n\nb\r\n\r\nc\n\n"), ElementsAre("R1:[a]", "R3:[b]", "R5:[c]"));
  EXPECT_THAT(Log("\n\n"), IsEmpty());
  EXPECT_THAT(Log(""), IsEmpty());
}

TEST(CsvReaderTest, EmptyFieldsAreKept) {
  const Events ev = Parse("a,,c\n,\n\"\"\nx,\n");
  ASSERT_EQ(ev.records.size(), 4u);
  EXPECT_THAT(ev.records[0].fields, ElementsAre("a", "", "c"));
  EXPECT_THAT(ev.records[1].fields, ElementsAre("", ""));
  EXPECT_THAT(ev.records[2].fields, ElementsAre(""));  // a quoted empty field is a record
  EXPECT_THAT(ev.records[3].fields, ElementsAre("x", ""));
  EXPECT_THAT(Parse("x,").records[0].fields, ElementsAre("x", ""));
}

TEST(CsvReaderTest, Bom) {
  EXPECT_THAT(Log("\xEF\xBB\xBFid,name\n1,a\n"), ElementsAre("R1:[id|name]", "R2:[1|a]"));
  // Looks like the start of a BOM but is not: the bytes are data.
  EXPECT_THAT(Log("\xEF\xBBx\n"), ElementsAre("R1:[\xEF\xBBx]"));
  EXPECT_THAT(Log("\xEF"), ElementsAre("R1:[\xEF]"));
  // Only at the very start.
  EXPECT_THAT(Log("a\n\xEF\xBB\xBF" "b\n"), ElementsAre("R1:[a]", "R2:[\xEF\xBB\xBF" "b]"));
  EXPECT_THAT(Log("\xEF\xBB\xBF"), IsEmpty());
  EXPECT_THAT(Log("\xEF\xBB\xBF\xEF\xBB\xBF" "a"), ElementsAre("R1:[\xEF\xBB\xBF" "a]"));
}

TEST(CsvReaderTest, QuotedFields) {
  const Events ev = Parse("\"a,b\",\"say \"\"hi\"\"\",\"\"\"\"\n");
  ASSERT_EQ(ev.records.size(), 1u);
  EXPECT_THAT(ev.records[0].fields, ElementsAre("a,b", "say \"hi\"", "\""));
}

TEST(CsvReaderTest, LineBreaksInsideQuotesCountLines) {
  const Events ev = Parse("h1,h2\n\"two\nlines\",x\n\"three\r\nlines\rhere\",y\nlast,z\n");
  ASSERT_EQ(ev.records.size(), 4u);
  EXPECT_EQ(ev.records[1].line, 2);
  EXPECT_THAT(ev.records[1].fields, ElementsAre("two\nlines", "x"));
  EXPECT_EQ(ev.records[2].line, 4);
  EXPECT_THAT(ev.records[2].fields, ElementsAre("three\r\nlines\rhere", "y"));
  EXPECT_EQ(ev.records[3].line, 7);
}

TEST(CsvReaderTest, StrayQuoteRefusesTheRecordOnly) {
  const Events ev = Parse("a,b,c\n1,2\"x,3\n4,5,6\n");
  EXPECT_THAT(ev.log[0], "R1:[a|b|c]");
  ASSERT_EQ(ev.errors.size(), 1u);
  EXPECT_EQ(ev.errors[0].line, 2);
  EXPECT_EQ(ev.errors[0].column, 2);
  EXPECT_THAT(ev.errors[0].message, HasSubstr("stray quote"));
  ASSERT_EQ(ev.records.size(), 2u);
  EXPECT_EQ(ev.records[1].line, 3);
  EXPECT_THAT(ev.records[1].fields, ElementsAre("4", "5", "6"));
}

TEST(CsvReaderTest, JunkAfterClosingQuote) {
  const Events ev = Parse("\"ab\"c,d\n\"ok\",e\n");
  ASSERT_EQ(ev.errors.size(), 1u);
  EXPECT_EQ(ev.errors[0].line, 1);
  EXPECT_EQ(ev.errors[0].column, 1);
  EXPECT_THAT(ev.errors[0].message, HasSubstr("after a closing quote"));
  ASSERT_EQ(ev.records.size(), 1u);
  EXPECT_EQ(ev.records[0].line, 2);
  EXPECT_THAT(ev.records[0].fields, ElementsAre("ok", "e"));
  // A space after the closing quote is junk too.
  EXPECT_EQ(Parse("\"a\" ,b\n").errors.size(), 1u);
}

TEST(CsvReaderTest, SkippingARefusedRecordRespectsQuotedLineBreaks) {
  // The refused record goes on over a quoted line break; the next record begins on line 3.
  const Events ev = Parse("x\"y,\"p\nq\",r\nnext,1\n");
  ASSERT_EQ(ev.errors.size(), 1u);
  EXPECT_EQ(ev.errors[0].line, 1);
  ASSERT_EQ(ev.records.size(), 1u);
  EXPECT_EQ(ev.records[0].line, 3);
  EXPECT_THAT(ev.records[0].fields, ElementsAre("next", "1"));
}

TEST(CsvReaderTest, ErrorsAreReportedInFileOrder) {
  EXPECT_THAT(Log("a\nb\"\nc\n\"d\"e\nf\n"),
              ElementsAre("R1:[a]",
                          "E2:1:stray quote in an unquoted field (quote the whole field and "
                          "double the quote)",
                          "R3:[c]",
                          "E4:1:unexpected character after a closing quote (a quote inside a "
                          "quoted field must be doubled)",
                          "R5:[f]"));
}

TEST(CsvReaderTest, UnterminatedQuoteAtEndOfFile) {
  const Events ev = Parse("a,b\nc,\"open\nstill open\n");
  ASSERT_EQ(ev.errors.size(), 1u);
  EXPECT_EQ(ev.errors[0].line, 2);
  EXPECT_EQ(ev.errors[0].column, 2);
  EXPECT_THAT(ev.errors[0].message, HasSubstr("unterminated"));
  // The line after the refused one is read again on its own.
  ASSERT_EQ(ev.records.size(), 2u);
  EXPECT_EQ(ev.records[1].line, 3);
  EXPECT_THAT(ev.records[1].fields, ElementsAre("still open"));
}

// A stray opening quote would swallow the lines after it into one field: the record is refused
// on its first line and the reader starts again on the next one, so the stray quote costs its
// own line only, whatever follows (nothing quoted, a quoted line break, CRLF line ends).
TEST(CsvReaderTest, StrayOpeningQuoteCostsItsOwnLineOnly) {
  EXPECT_THAT(Log("a,b\n\"bad,1\ngood,2\ngood,3\n"),
              ElementsAre("R1:[a|b]", "E2:1:unterminated quoted field at end of file (a quote is missing)",
                          "R3:[good|2]", "R4:[good|3]"));
  EXPECT_THAT(Log("a,b\r\n\"bad,1\r\ngood,2\r\nx,\"multi\r\nline\"\r\nlast,4\r\n"),
              ElementsAre("R1:[a|b]",
                          "E2:1:unexpected character after a closing quote (a quote inside a "
                          "quoted field must be doubled)",
                          "R3:[good|2]", "R4:[x|multi\r\nline]", "R6:[last|4]"));
  // Past the length limit: the same.
  std::vector<std::string> log;
  CsvReader reader([&](CsvRecord& r) { log.push_back(absl::StrCat("R", r.line, ":", r.fields[0])); },
                   [&](const CsvSyntaxError& e) { log.push_back(absl::StrCat("E", e.line)); });
  reader.set_max_record_bytes(20);
  reader.Feed("h\n\"x\n");
  for (int i = 0; i < 10; ++i) reader.Feed(absl::StrCat("row", i, "\n"));
  reader.Finish();
  EXPECT_THAT(log, ElementsAre("R1:h", "E2", "R3:row0", "R4:row1", "R5:row2", "R6:row3", "R7:row4", "R8:row5",
                               "R9:row6", "R10:row7", "R11:row8", "R12:row9"));
}

// A record broken after a quoted line break is read again from its second line, each line on
// its own.
TEST(CsvReaderTest, ARecordBrokenAfterAQuotedLineBreakIsReadAgainFromItsSecondLine) {
  constexpr char kJunk[] =
      "unexpected character after a closing quote (a quote inside a quoted field must be doubled)";
  constexpr char kStray[] = "stray quote in an unquoted field (quote the whole field and double the quote)";
  EXPECT_THAT(Log("\"a\nb\"x\nc\nd\n"),
              ElementsAre(absl::StrCat("E1:1:", kJunk), absl::StrCat("E2:1:", kStray), "R3:[c]", "R4:[d]"));
  EXPECT_THAT(Log("\"a\n\"b\nc\"x\nd\n"),
              ElementsAre(absl::StrCat("E1:1:", kJunk), absl::StrCat("E2:1:", kJunk), absl::StrCat("E3:1:", kStray),
                          "R4:[d]"));
  // Every line of a file of stray opening quotes is refused on its own line.
  std::string many = "h\n";
  for (int i = 0; i < 20000; ++i) many += "\"x\n";
  const Events ev = ParseChunked(many, {4096});
  EXPECT_EQ(ev.records.size(), 1u);
  ASSERT_EQ(ev.errors.size(), 20000u);
  EXPECT_EQ(ev.errors.back().line, 20001);
}

TEST(CsvReaderTest, ClosingQuoteAtEndOfFileIsFine) {
  EXPECT_THAT(Log("a,\"b\""), ElementsAre("R1:[a|b]"));
  EXPECT_THAT(Log("a,\"b\"\r\n"), ElementsAre("R1:[a|b]"));
}

TEST(CsvReaderTest, OverlongRecordIsRefused) {
  std::vector<std::string> log;
  CsvReader reader([&](CsvRecord& r) { log.push_back(absl::StrCat("R", r.line)); },
                   [&](const CsvSyntaxError& e) { log.push_back(absl::StrCat("E", e.line)); });
  reader.set_max_record_bytes(10);
  reader.Feed("short,ok\n\"");
  reader.Feed(std::string(100, 'x'));
  reader.Feed("\nstill in quotes\"\n0123456789\n01234567890\nend\n");
  reader.Finish();
  EXPECT_THAT(log, ElementsAre("R1", "E2", "R4", "E5", "R6"));
}

TEST(CsvReaderTest, FieldsAreReusedAndCallbackMayTakeThem) {
  std::vector<std::vector<std::string>> taken;
  CsvReader reader([&](CsvRecord& r) { taken.push_back(std::move(r.fields)); },
                   [](const CsvSyntaxError&) {});
  reader.Feed("a,b,c\nd\ne,f\n");
  reader.Finish();
  EXPECT_THAT(taken, ElementsAre(ElementsAre("a", "b", "c"), ElementsAre("d"),
                                 ElementsAre("e", "f")));
}

TEST(CsvReaderTest, FinishTwiceIsHarmless) {
  int records = 0;
  CsvReader reader([&](CsvRecord&) { ++records; }, [](const CsvSyntaxError&) {});
  reader.Feed("a,b");
  reader.Finish();
  reader.Finish();
  EXPECT_EQ(records, 1);
}

TEST(CsvWriterTest, QuotesOnlyWhenNeeded) {
  auto field = [](std::string_view f) {
    std::string out;
    AppendCsvField(out, f);
    return out;
  };
  EXPECT_EQ(field("plain"), "plain");
  EXPECT_EQ(field(""), "");
  EXPECT_EQ(field("张三"), "张三");
  EXPECT_EQ(field("a,b"), "\"a,b\"");
  EXPECT_EQ(field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(field("cr\rhere"), "\"cr\rhere\"");
  EXPECT_EQ(field(" lead"), "\" lead\"");
  EXPECT_EQ(field("trail "), "\"trail \"");
  EXPECT_EQ(field("in side"), "in side");
  EXPECT_EQ(field("\xEF\xBB\xBFx"), "\"\xEF\xBB\xBFx\"");
}

TEST(CsvWriterTest, Records) {
  std::string out;
  AppendCsvRecord(out, {"a", "b,c", ""});
  AppendCsvRecord(out, {""});
  AppendCsvRecord(out, {"", ""});
  EXPECT_EQ(out, "a,\"b,c\",\n\"\"\n,\n");
}

TEST(CsvRoundTripTest, WriteThenRead) {
  const std::vector<std::vector<std::string>> rows = {
      {"id_number", "name", "note"},
      {"11010519491231002X", "张三明", "耕地地力保护补贴, 第一批"},
      {"320702198001011230", "𠮷野家", "line one\nline two\r\nline three"},
      {"440304202402290012", "欧阳小明", "他说\"你好\""},
      {"", "", ""},
      {""},
      {" spaced ", "\"", ",\r"},
      {"𠮷", "a\rb", "\n"},
  };
  std::string file = "\xEF\xBB\xBF";
  for (const auto& r : rows) AppendCsvRecord(file, r);
  const Events ev = Parse(file);
  EXPECT_THAT(ev.errors, IsEmpty());
  ASSERT_EQ(ev.records.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(ev.records[i].fields, rows[i]) << i;
  EXPECT_EQ(ev.records[3].line, 6);  // record 2 spans lines 3 to 5
}

TEST(CsvRoundTripTest, RandomFields) {
  std::mt19937 rng(7);
  const std::vector<std::string> alphabet = {"a", "Z", "0", ",", "\"", "\n", "\r", " ",
                                             "张", "𠮷", "\xEF\xBB\xBF", "\r\n", "x"};
  std::vector<std::vector<std::string>> rows;
  for (int r = 0; r < 200; ++r) {
    std::vector<std::string> row(std::uniform_int_distribution<int>(1, 5)(rng));
    for (auto& f : row) {
      const int n = std::uniform_int_distribution<int>(0, 6)(rng);
      for (int k = 0; k < n; ++k) {
        f += alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(rng)];
      }
    }
    rows.push_back(row);
  }
  std::string file;
  for (const auto& r : rows) AppendCsvRecord(file, r);
  const Events ev = Parse(file);
  EXPECT_THAT(ev.errors, IsEmpty());
  for (size_t i = 0; i < std::min(rows.size(), ev.records.size()); ++i) {
    ASSERT_EQ(ev.records[i].fields, rows[i]) << i << " " << absl::StrJoin(rows[i], "|");
  }
  ASSERT_EQ(ev.records.size(), rows.size());
}

const std::vector<CsvHeader::Column> kFormat = {
    {"id_number", true}, {"name", true}, {"phone", false}};

TEST(CsvHeaderTest, BindsInAnyOrderWithTrimmedNames) {
  CsvHeader h;
  EXPECT_THAT(h.Bind({" name", "id_number ", "\tphone"}, kFormat), IsEmpty());
  EXPECT_EQ(h.width(), 3u);
  EXPECT_EQ(h.IndexOf("name"), 1);
  EXPECT_EQ(h.IndexOf("id_number"), 2);
  EXPECT_TRUE(h.Has("phone"));
  CsvRecord r{2, {"张三", "11010519491231002X", "13800000000"}};
  EXPECT_EQ(h.Get(r, "id_number"), "11010519491231002X");
  EXPECT_EQ(h.Get(r, "name"), "张三");
  EXPECT_EQ(h.Get(r, "nonexistent"), "");
  CsvRecord short_record{3, {"李四"}};
  EXPECT_EQ(h.Get(short_record, "id_number"), "");
}

TEST(CsvHeaderTest, ARecordWithTooFewFieldsLacksItsFirstMissingColumn) {
  CsvHeader h;
  EXPECT_THAT(h.Bind({"name", "id_number", "phone"}, kFormat), IsEmpty());
  EXPECT_EQ(h.FirstMissingColumn(CsvRecord{2, {"张三"}}), "id_number");
  EXPECT_EQ(h.FirstMissingColumn(CsvRecord{2, {"张三", "x"}}), "phone");
  EXPECT_EQ(h.FirstMissingColumn(CsvRecord{2, {"张三", "x", "y"}}), "");       // complete
  EXPECT_EQ(h.FirstMissingColumn(CsvRecord{2, {"张三", "x", "y", "z"}}), "");  // an extra field has no column
}

TEST(CsvHeaderTest, OptionalColumnMayBeAbsent) {
  CsvHeader h;
  EXPECT_THAT(h.Bind({"id_number", "name"}, kFormat), IsEmpty());
  EXPECT_FALSE(h.Has("phone"));
  EXPECT_EQ(h.IndexOf("phone"), 0);
  EXPECT_EQ(h.Get(CsvRecord{2, {"x", "y"}}, "phone"), "");
}

TEST(CsvHeaderTest, ReportsEveryProblem) {
  CsvHeader h;
  const auto errors = h.Bind({"id_number", "nmae", "id_number", ""}, kFormat);
  std::vector<std::string> got;
  for (const auto& e : errors) got.push_back(absl::StrCat(e.line, ":", e.column, ":", e.message));
  EXPECT_THAT(got, ElementsAre("1:2:unknown column nmae", "1:3:duplicated column id_number",
                               "1:4:empty column name", "1:0:missing required column name"));
  // Each names the column concerned (for the column of a `line,column,code,message` report).
  std::vector<std::string> names;
  for (const auto& e : errors) names.push_back(e.column_name);
  EXPECT_THAT(names, ElementsAre("nmae", "id_number", "", "name"));
}

// A file sent without its header row: its first record is taken for the header, and its cells
// (an ID number, a name, a phone number) are personal data, never repeated in the report. A cell
// shaped like a column name (a typo such as "nmae") is still named.
TEST(CsvHeaderTest, AHeaderOfDataIsRefusedWithoutRepeatingIt) {
  CsvHeader h;
  const auto errors = h.Bind({"11010519491231002X", "张三", "13800000000", "Name", "full_name"}, kFormat);
  std::vector<std::string> got;
  for (const auto& e : errors) {
    got.push_back(absl::StrCat(e.line, ":", e.column, ":", e.column_name));
    for (const std::string_view cell : {"1101051949", "张三", "13800000000", "Name"}) {
      EXPECT_EQ(e.message.find(cell), std::string::npos) << e.message;
      EXPECT_EQ(e.column_name.find(cell), std::string::npos) << e.column_name;
    }
  }
  EXPECT_THAT(got, ElementsAre("1:1:", "1:2:", "1:3:", "1:4:", "1:5:full_name", "1:0:id_number", "1:0:name"));
  EXPECT_THAT(errors[0].message, ::testing::HasSubstr("header row"));
  EXPECT_EQ(errors[4].message, "unknown column full_name");
}

TEST(CsvHeaderTest, UnknownColumnsMayBeIgnored) {
  CsvHeader h;
  h.set_ignore_unknown_columns(true);
  EXPECT_THAT(h.Bind({"id_number", "extra", "name"}, kFormat), IsEmpty());
  EXPECT_EQ(h.IndexOf("name"), 3);
}

}  // namespace
}  // namespace grassroots::common
