#include "strict_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace grassroots::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

void ExpectBad(std::string_view text, std::string_view why) {
  auto r = CheckStrictJson(text);
  ASSERT_FALSE(r.ok()) << "accepted: " << text;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(std::string(why))) << text;
}

TEST(StrictJson, AcceptsValidDocuments) {
  for (std::string_view ok : {
           R"({})", R"([])", R"("x")", "0", "-0.5e+10", "true", "null",
           R"({"a":1,"b":[1,2,{"c":null}],"d":"\u00e9\ud842\udfb7\n"})",
           " \t\r\n{ \"a\" : [ ] } \n", R"({"name":"𠮷中文"})", R"({"a":{"a":{"a":1}}})",
           R"([{"a":1},{"a":1}])",  // the same key in different objects
       }) {
    auto r = CheckStrictJson(ok);
    EXPECT_TRUE(r.ok()) << ok << ": " << r.status();
  }
}

TEST(StrictJson, ReportsTopLevelKeysDecoded) {
  auto r = CheckStrictJson(R"({"name":"x","org\u0054ype":"y","population":"5"})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_object);
  EXPECT_THAT(r->top_level_keys, ElementsAre("name", "orgType", "population"));
  auto arr = CheckStrictJson(R"([{"a":1}])");
  ASSERT_TRUE(arr.ok());
  EXPECT_FALSE(arr->is_object);
  EXPECT_TRUE(arr->top_level_keys.empty());
}

TEST(StrictJson, RefusesTrailingCommas) {
  ExpectBad(R"({"a":1,})", "trailing comma");
  ExpectBad(R"([1,2,])", "trailing comma");
}

TEST(StrictJson, RefusesUnquotedKeysAndSingleQuotes) {
  ExpectBad(R"({a:1})", "double-quoted");
  ExpectBad(R"({'a':1})", "single-quoted");
  ExpectBad(R"({"a":'x'})", "single-quoted");
}

TEST(StrictJson, RefusesDuplicateKeysEvenWhenEscapedDifferently) {
  ExpectBad(R"({"a":1,"a":2})", "duplicate key \"a\"");
  ExpectBad(R"({"a":1,"\u0061":2})", "duplicate key");
  ExpectBad(R"({"o":{"x":1,"x":1}})", "duplicate key \"x\"");
}

TEST(StrictJson, RefusesTrailingGarbageAndTruncation) {
  ExpectBad(R"({"a":1} x)", "after the JSON value");
  ExpectBad(R"({"a":1}{})", "after the JSON value");
  ExpectBad(R"({"a":1)", "unterminated object");
  ExpectBad(R"({"a":"x)", "unterminated string");
  ExpectBad("", "empty");
  ExpectBad("   ", "empty");
}

TEST(StrictJson, RefusesBadNumbersAndLiterals) {
  ExpectBad("01", "leading zeros");
  ExpectBad("1.", "decimal point");
  ExpectBad("+1", "unexpected character");
  ExpectBad("1e", "exponent");
  ExpectBad("NaN", "unexpected character");
  ExpectBad("tru", "invalid literal");
  ExpectBad("True", "unexpected character");
}

TEST(StrictJson, RefusesBadStrings) {
  ExpectBad("\"a\tb\"", "control characters");
  ExpectBad(R"("\x")", "invalid escape");
  ExpectBad(R"("\ud842")", "unpaired high surrogate");
  ExpectBad(R"("\udfb7")", "unpaired low surrogate");
  ExpectBad("\"\xff\"", "invalid UTF-8");
  ExpectBad("\"\xc0\xaf\"", "invalid UTF-8");           // overlong '/'
  ExpectBad("\"\xed\xa0\x80\"", "surrogate");           // UTF-8 encoded surrogate
  ExpectBad("\"\xe4\xb8\"", "");                        // truncated sequence
}

TEST(StrictJson, RefusesDeepNesting) {
  std::string deep(100, '[');
  deep += std::string(100, ']');
  ExpectBad(deep, "nested too deeply");
  EXPECT_TRUE(CheckStrictJson(std::string(10, '[') + std::string(10, ']')).ok());
}

TEST(Utf8, Validates) {
  EXPECT_TRUE(IsValidUtf8("abc 中文 𠮷"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xe4\xb8"));
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // > U+10FFFF
}

}  // namespace
}  // namespace grassroots::gateway
