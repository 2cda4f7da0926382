#include "grassroots/common/validate.h"

#include <string>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grassroots::common {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Appends the ISO 7064 MOD 11-2 check character to 17 digits.
std::string WithCheck(const std::string& first17) {
  static constexpr int kW[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (first17[i] - '0') * kW[i];
  return first17 + "10X98765432"[sum % 11];
}

TEST(ParseDateTest, AcceptsRealDates) {
  EXPECT_EQ(*ParseDate("2026-09-14"), absl::CivilDay(2026, 9, 14));
  EXPECT_EQ(*ParseDate("2024-02-29"), absl::CivilDay(2024, 2, 29));
  EXPECT_EQ(*ParseDate("2000-02-29"), absl::CivilDay(2000, 2, 29));
  EXPECT_EQ(*ParseDate("1999-12-31"), absl::CivilDay(1999, 12, 31));
}

TEST(ParseDateTest, RejectsUnrealDates) {
  EXPECT_FALSE(ParseDate("2026-02-30").ok());
  EXPECT_FALSE(ParseDate("2023-02-29").ok());
  EXPECT_FALSE(ParseDate("1900-02-29").ok());
  EXPECT_FALSE(ParseDate("2026-13-01").ok());
  EXPECT_FALSE(ParseDate("2026-00-10").ok());
  EXPECT_FALSE(ParseDate("2026-04-31").ok());
  EXPECT_FALSE(ParseDate("2026-04-00").ok());
  EXPECT_FALSE(ParseDate("0000-01-01").ok());
  EXPECT_THAT(std::string(ParseDate("2026-02-30").status().message()), HasSubstr("real date"));
}

TEST(ParseDateTest, RejectsOtherShapes) {
  for (const char* s : {"2026-1-5", "2026-01-5", "26-01-05", "2026/01/05", "2026-01-05 ",
                        " 2026-01-05", "2026-01-05x", "20260105", "", "2026-01-0a",
                        "2026-01-05T00:00:00Z", "+026-01-05", "2026-+1-05"}) {
    EXPECT_FALSE(ParseDate(s).ok()) << s;
  }
}

TEST(FormatDateTest, PadsFields) {
  EXPECT_EQ(FormatDate(absl::CivilDay(2026, 1, 5)), "2026-01-05");
  EXPECT_EQ(FormatDate(absl::CivilDay(987, 11, 30)), "0987-11-30");
}

TEST(ParseTimestampTest, AcceptsOffsets) {
  const absl::Time utc = absl::FromCivil(absl::CivilSecond(2026, 9, 14, 2, 5, 0),
                                         absl::UTCTimeZone());
  EXPECT_EQ(*ParseTimestamp("2026-09-14T10:05:00+08:00"), utc);
  EXPECT_EQ(*ParseTimestamp("2026-09-14T02:05:00Z"), utc);
  EXPECT_EQ(*ParseTimestamp("2026-09-14t02:05:00z"), utc);
  EXPECT_EQ(*ParseTimestamp("2026-09-13T21:35:00-04:30"), utc);
  EXPECT_EQ(*ParseTimestamp("2026-09-14T02:05:00+00:00"), utc);
  EXPECT_EQ(*ParseTimestamp("2026-09-14T02:05:00-00:00"), utc);
}

TEST(ParseTimestampTest, FractionalSeconds) {
  const absl::Time base = *ParseTimestamp("2026-09-14T10:05:00+08:00");
  EXPECT_EQ(*ParseTimestamp("2026-09-14T10:05:00.5+08:00"), base + absl::Milliseconds(500));
  EXPECT_EQ(*ParseTimestamp("2026-09-14T10:05:00.123456789Z") - base,
            absl::Hours(8) + absl::Nanoseconds(123456789));
  // Digits past nanoseconds are accepted and ignored.
  EXPECT_EQ(*ParseTimestamp("2026-09-14T10:05:00.1234567891+08:00"),
            base + absl::Nanoseconds(123456789));
  EXPECT_FALSE(ParseTimestamp("2026-09-14T10:05:00.+08:00").ok());
}

TEST(ParseTimestampTest, RejectsMissingOffset) {
  const auto s = ParseTimestamp("2026-09-14T10:05:00");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("no offset"));
  EXPECT_FALSE(ParseTimestamp("2026-09-14T10:05:00.250").ok());
}

TEST(ParseTimestampTest, RejectsBadShapes) {
  for (const char* s :
       {"2026-09-14 10:05:00+08:00", "2026-09-14T10:05+08:00", "2026-09-14T24:00:00Z",
        "2026-09-14T10:60:00Z", "2026-09-14T10:05:00+0800", "2026-09-14T10:05:00+08",
        "2026-09-14T10:05:00+08:00 ", "2026-09-14T10:05:00+24:00", "2026-02-30T10:05:00Z",
        "2026-09-14T10:05:00UTC", "2026-09-14", "", "2026-09-14T1:05:00Z",
        "2026-09-14T10:05:00ZZ", "2026-09-14T10:05:00+08:60"}) {
    EXPECT_FALSE(ParseTimestamp(s).ok()) << s;
  }
}

TEST(ParseTimestampTest, LeapSecondNormalised) {
  EXPECT_EQ(*ParseTimestamp("2016-12-31T23:59:60Z"), *ParseTimestamp("2017-01-01T00:00:00Z"));
}

TEST(ChinaDateTest, DateOfInstant) {
  EXPECT_EQ(ChinaDateOf(*ParseTimestamp("2026-09-14T15:59:59Z")), absl::CivilDay(2026, 9, 14));
  EXPECT_EQ(ChinaDateOf(*ParseTimestamp("2026-09-14T16:00:00Z")), absl::CivilDay(2026, 9, 15));
  EXPECT_EQ(ChinaDateOf(*ParseTimestamp("2026-09-15T00:00:00+08:00")),
            absl::CivilDay(2026, 9, 15));
  EXPECT_EQ(ChinaDateOf(*ParseTimestamp("1969-12-31T15:59:59Z")), absl::CivilDay(1969, 12, 31));
  EXPECT_EQ(ChinaDateOf(*ParseTimestamp("1969-12-31T16:00:00Z")), absl::CivilDay(1970, 1, 1));
  EXPECT_EQ(ChinaDateOf(*ParseTimestamp("1969-12-31T15:59:59.5Z")),
            absl::CivilDay(1969, 12, 31));
  const absl::Time t = *ParseTimestamp("2026-03-01T01:00:00+08:00");
  EXPECT_EQ(TodayInChina(t), absl::CivilDay(2026, 3, 1));
  EXPECT_EQ(absl::ToCivilDay(t, ChinaTimeZone()), absl::CivilDay(2026, 3, 1));
}

TEST(ParseFenTest, Accepts) {
  EXPECT_EQ(*ParseFen("12000"), 12000);
  EXPECT_EQ(*ParseFen("0"), 0);
  EXPECT_EQ(*ParseFen("007"), 7);
  EXPECT_EQ(*ParseFen("-1500", true), -1500);
  EXPECT_EQ(*ParseFen("-0", true), 0);
  EXPECT_EQ(*ParseFen("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(*ParseFen("-9223372036854775808", true), INT64_MIN);
}

TEST(ParseFenTest, Rejects) {
  EXPECT_FALSE(ParseFen("-1500").ok());
  EXPECT_FALSE(ParseFen("120.00").ok());
  EXPECT_THAT(std::string(ParseFen("120.00").status().message()), HasSubstr("decimal point"));
  for (const char* s : {"", "-", "+12", " 12", "12 ", "1,200", "1e3", "12a", "--1", "0x10",
                        "9223372036854775808", "-9223372036854775809",
                        "99999999999999999999"}) {
    EXPECT_FALSE(ParseFen(s, true).ok()) << s;
  }
}

TEST(ParseCountTest, AcceptsAndRejects) {
  EXPECT_EQ(*ParseCount("3000"), 3000);
  EXPECT_EQ(*ParseCount("0"), 0);
  EXPECT_FALSE(ParseCount("-1").ok());
  EXPECT_FALSE(ParseCount("").ok());
  EXPECT_FALSE(ParseCount("1.5").ok());
  EXPECT_FALSE(ParseCount("9223372036854775808").ok());
}

TEST(PeriodTest, ParseAndFormat) {
  const Period m = *ParsePeriod("2026-03");
  EXPECT_EQ(m.year, 2026);
  EXPECT_EQ(m.month, 3);
  EXPECT_TRUE(m.monthly());
  EXPECT_EQ(m.ToString(), "2026-03");
  EXPECT_EQ(m.first_day(), absl::CivilDay(2026, 3, 1));
  EXPECT_EQ(m.last_day(), absl::CivilDay(2026, 3, 31));
  const Period y = *ParsePeriod("2026");
  EXPECT_FALSE(y.monthly());
  EXPECT_EQ(y.ToString(), "2026");
  EXPECT_EQ(y.first_day(), absl::CivilDay(2026, 1, 1));
  EXPECT_EQ(y.last_day(), absl::CivilDay(2026, 12, 31));
  EXPECT_EQ(ParsePeriod("2024-02")->last_day(), absl::CivilDay(2024, 2, 29));
  EXPECT_EQ(ParsePeriod("2023-02")->last_day(), absl::CivilDay(2023, 2, 28));
  EXPECT_LT(*ParsePeriod("2026-01"), *ParsePeriod("2026-02"));
  EXPECT_LT(*ParsePeriod("2025-12"), *ParsePeriod("2026-01"));
}

TEST(PeriodTest, Rejects) {
  for (const char* s : {"2026-13", "2026-00", "2026-1", "26", "2026-", "2026-01-01", "202601",
                        "2026/01", "", "0000", "2026-1a", " 2026", "2026 "}) {
    EXPECT_FALSE(ParsePeriod(s).ok()) << s;
  }
}

TEST(CodesTest, DivisionAndCode) {
  EXPECT_TRUE(IsDivisionCode("320702001001"));
  EXPECT_FALSE(IsDivisionCode("32070200100"));
  EXPECT_FALSE(IsDivisionCode("32070200100a"));
  EXPECT_TRUE(IsCode("ORG-001"));
  EXPECT_TRUE(IsCode(std::string(32, 'a')));
  EXPECT_FALSE(IsCode(std::string(33, 'a')));
  EXPECT_FALSE(IsCode(""));
  EXPECT_FALSE(IsCode("ORG_001"));
  EXPECT_FALSE(IsCode("ORG 1"));
  EXPECT_TRUE(IsCode("ABCD", 4));
  EXPECT_FALSE(IsCode("ABCDE", 4));
}

TEST(Utf8LengthTest, CountsCodePoints) {
  EXPECT_EQ(Utf8Length(""), 0);
  EXPECT_EQ(Utf8Length("abc"), 3);
  EXPECT_EQ(Utf8Length("张三明"), 3);
  EXPECT_EQ(Utf8Length("\xF0\xA0\xAE\xB7"), 1);  // 𠮷, outside the BMP
  EXPECT_EQ(Utf8Length("a\xC3\xA9"), 2);
}

TEST(ValidUtf8Test, KeepsValidTextAndReplacesEveryBadByte) {
  EXPECT_EQ(ValidUtf8(""), "");
  EXPECT_EQ(ValidUtf8("org_type 张三明 \xF0\xA0\xAE\xB7"), "org_type 张三明 \xF0\xA0\xAE\xB7");
  EXPECT_EQ(ValidUtf8("\xFF\xFE" "bad"), "\xEF\xBF\xBD\xEF\xBF\xBD" "bad");       // a UTF-16 BOM
  EXPECT_EQ(ValidUtf8("b\xE5\xBC"), "b\xEF\xBF\xBD\xEF\xBF\xBD");                // truncated at the end
  EXPECT_EQ(ValidUtf8("\xC0\xAF/"), "\xEF\xBF\xBD\xEF\xBF\xBD/");                // overlong
  EXPECT_EQ(ValidUtf8("\xD5\xC5\xC8\xFD"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // 张三 in GBK
  EXPECT_EQ(Utf8Length(ValidUtf8("\x80\xED\xA0\x80x\xF4\x90\x80\x80")), 9);
}

TEST(Utf8LengthTest, RejectsInvalid) {
  EXPECT_EQ(Utf8Length("\xC0\xAF"), -1);              // overlong '/'
  EXPECT_EQ(Utf8Length("\xE0\x80\xAF"), -1);          // overlong
  EXPECT_EQ(Utf8Length("\xF0\x82\x82\xAC"), -1);      // overlong
  EXPECT_EQ(Utf8Length("\xED\xA0\x80"), -1);          // surrogate U+D800
  EXPECT_EQ(Utf8Length("\xED\xBF\xBF"), -1);          // surrogate U+DFFF
  EXPECT_EQ(Utf8Length("\xF4\x90\x80\x80"), -1);      // above U+10FFFF
  EXPECT_EQ(Utf8Length("\xE5\xBC"), -1);              // truncated
  EXPECT_EQ(Utf8Length("abc\xE5"), -1);               // truncated at end
  EXPECT_EQ(Utf8Length("\x80"), -1);                  // lone continuation
  EXPECT_EQ(Utf8Length("\xFF"), -1);
  EXPECT_EQ(Utf8Length("\xE5\x41\x41"), -1);          // bad continuation
  EXPECT_EQ(Utf8Length("\xED\x9F\xBF"), 1);           // U+D7FF is fine
  EXPECT_EQ(Utf8Length("\xF4\x8F\xBF\xBF"), 1);       // U+10FFFF is fine
}

TEST(IdNumberTest, AcceptsValid) {
  EXPECT_EQ(*NormaliseIdNumber("11010519491231002X"), "11010519491231002X");
  EXPECT_EQ(*NormaliseIdNumber("11010519491231002x"), "11010519491231002X");
  EXPECT_EQ(*NormaliseIdNumber("320702198001011230"), "320702198001011230");
  EXPECT_EQ(*NormaliseIdNumber("440304202402290012"), "440304202402290012");  // 2024-02-29
  EXPECT_EQ(*NormaliseIdNumber("11010520000229003X"), "11010520000229003X");
  EXPECT_EQ(*NormaliseIdNumber(WithCheck("32070219900515001")),
            WithCheck("32070219900515001"));
}

TEST(IdNumberTest, RejectsWithoutRepeatingTheNumber) {
  const std::string wrong_check = "110105194912310021";
  const auto a = NormaliseIdNumber(wrong_check);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(std::string(a.status().message()), HasSubstr("check digit does not match"));
  EXPECT_THAT(std::string(a.status().message()), Not(HasSubstr("1101051949")));

  const std::string bad_birth = WithCheck("32070220230229001");  // 2023-02-29
  const auto b = NormaliseIdNumber(bad_birth);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("birth date inside the ID number is not a real date"));
  EXPECT_THAT(std::string(b.status().message()), Not(HasSubstr("3207022023")));
  EXPECT_FALSE(NormaliseIdNumber(WithCheck("32070219901301001")).ok());  // month 13
  EXPECT_FALSE(NormaliseIdNumber(WithCheck("32070219900100001")).ok());  // day 00

  const auto c = NormaliseIdNumber("11010519491231002");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("18 characters"));
  EXPECT_FALSE(NormaliseIdNumber("11010519491231002XX").ok());
  EXPECT_FALSE(NormaliseIdNumber("1101051949123100 X").ok());
  EXPECT_FALSE(NormaliseIdNumber("11010519491231002Y").ok());
  EXPECT_FALSE(NormaliseIdNumber("X10105194912310021").ok());
  EXPECT_FALSE(NormaliseIdNumber("").ok());
}

TEST(IdNumberTest, BirthDate) {
  EXPECT_EQ(BirthDateOfIdNumber("11010519491231002X"), absl::CivilDay(1949, 12, 31));
  EXPECT_EQ(BirthDateOfIdNumber("440304202402290012"), absl::CivilDay(2024, 2, 29));
}

TEST(MaskTest, IdNumber) {
  EXPECT_EQ(MaskIdNumber("32070219900515123X"), "3207**********123X");
  EXPECT_EQ(MaskIdNumber("11010519491231002X"), "1101**********002X");
  EXPECT_EQ(MaskIdNumber("123456789"), "1234*6789");
  EXPECT_EQ(MaskIdNumber("12345678"), "********");
  EXPECT_EQ(MaskIdNumber(""), "");
}

TEST(MaskTest, Name) {
  EXPECT_EQ(MaskName("张"), "*");  // the whole name would show
  EXPECT_EQ(MaskName("张三"), "张*");
  EXPECT_EQ(MaskName("张三明"), "张*明");
  EXPECT_EQ(MaskName("欧阳小明"), "欧**明");
  EXPECT_EQ(MaskName("𠮷野家"), "𠮷*家");
  EXPECT_EQ(MaskName("Li"), "L*");
  EXPECT_EQ(MaskName(""), "");
  EXPECT_EQ(MaskName("\xE5\xBC"), "*");  // not UTF-8: never shown
}

}  // namespace
}  // namespace grassroots::common

namespace grassroots::common {
namespace {

// Pinned: applied migrations are recorded with these fingerprints; another value would make every
// applied migration look edited (the offset basis is not the standard one, see validate.h).
TEST(Fnv1a64Test, KeepsTheFingerprintsMigrationsWereRecordedWith) {
  EXPECT_EQ(Fnv1a64(""), 0x14650fb0739d0383ULL);
  EXPECT_EQ(Fnv1a64("a"), 0x44bd8ad473cd9906ULL);
}

}  // namespace
}  // namespace grassroots::common
