#include "grassroots/common/validate.h"

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace grassroots::common {
namespace {

constexpr int64_t kChinaOffsetSeconds = 8 * 3600;
constexpr int64_t kSecondsPerDay = 86400;

// Debian's Abseil keeps its own string_view: convert at the boundary.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The value of `n` decimal digits at s[pos]; -1 when one of them is not a digit.
int DigitsAt(std::string_view s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!IsDigit(s[i])) return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && IsLeapYear(y)) return 29;
  return kDays[m - 1];
}

// Checks a year/month/day triple; an empty string when it is a real date, else why not.
std::string WhyNotRealDate(int y, int m, int d) {
  if (y < 1) return "year 0000 is not a real year";
  if (m < 1 || m > 12) return absl::StrFormat("month %02d does not exist", m);
  if (d < 1 || d > DaysInMonth(y, m)) {
    return absl::StrFormat("day %02d does not exist in %04d-%02d", d, y, m);
  }
  return "";
}

// Parses "YYYY-MM-DD" at the start of s (exactly 10 characters are looked at).
absl::StatusOr<absl::CivilDay> ParseDatePrefix(std::string_view s, std::string_view what) {
  if (s.size() < 10 || s[4] != '-' || s[7] != '-') {
    return absl::InvalidArgumentError(absl::StrCat(Av(what), " must have the form YYYY-MM-DD"));
  }
  const int y = DigitsAt(s, 0, 4);
  const int m = DigitsAt(s, 5, 2);
  const int d = DigitsAt(s, 8, 2);
  if (y < 0 || m < 0 || d < 0) {
    return absl::InvalidArgumentError(absl::StrCat(Av(what), " must have the form YYYY-MM-DD"));
  }
  if (std::string why = WhyNotRealDate(y, m, d); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(Av(what), " is not a real date: ", why));
  }
  return absl::CivilDay(y, m, d);
}

// Decodes one UTF-8 code point at s[i]; returns its length (1-4), or 0 when invalid.
int Utf8CodePointLength(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  int len = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min) return 0;                       // overlong
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;   // surrogate
  if (cp > 0x10FFFF) return 0;
  return len;
}

constexpr std::array<int, 17> kIdWeights = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
constexpr std::string_view kIdCheckChars = "10X98765432";

}  // namespace

absl::StatusOr<absl::CivilDay> ParseDate(std::string_view s) {
  if (s.size() != 10) {
    return absl::InvalidArgumentError("date must have the form YYYY-MM-DD");
  }
  return ParseDatePrefix(s, "date");
}

namespace {
// "%04d" of a year in 0..9999 and "%02d" of a month or day, without a format call (ingests and
// checks format one per row).
void AppendDigits(std::string& out, int64_t v, int width) {
  char buf[4];
  for (int i = width - 1; i >= 0; --i, v /= 10) buf[i] = static_cast<char>('0' + v % 10);
  out.append(buf, static_cast<size_t>(width));
}
}  // namespace

std::string FormatDate(absl::CivilDay d) {
  if (d.year() < 0 || d.year() > 9999) return absl::StrFormat("%04d-%02d-%02d", d.year(), d.month(), d.day());
  std::string out;
  out.reserve(10);
  AppendDigits(out, d.year(), 4);
  out += '-';
  AppendDigits(out, d.month(), 2);
  out += '-';
  AppendDigits(out, d.day(), 2);
  return out;
}

absl::TimeZone ChinaTimeZone() { return absl::FixedTimeZone(kChinaOffsetSeconds); }

absl::CivilDay TodayInChina(absl::Time now) { return ChinaDateOf(now); }

absl::CivilDay ChinaDateOf(absl::Time t) {
  // Fixed offset, no daylight saving: plain arithmetic is exact and much faster than a
  // time zone lookup (the disbursement checks call this for every payment).
  const int64_t local = absl::ToUnixSeconds(t) + kChinaOffsetSeconds;  // floors
  int64_t days = local / kSecondsPerDay;
  if (local % kSecondsPerDay < 0) --days;
  return absl::CivilDay(1970, 1, 1) + days;
}

absl::StatusOr<absl::Time> ParseTimestamp(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  constexpr std::string_view kForm = "timestamp must be RFC 3339, e.g. 2026-09-14T10:05:00+08:00";
  if (s.size() < 19) return absl::InvalidArgumentError(Av(kForm));
  absl::StatusOr<absl::CivilDay> day = ParseDatePrefix(s, "timestamp date");
  if (!day.ok()) {
    if (absl::StrContains(day.status().message(), "real date")) return day.status();
    return absl::InvalidArgumentError(Av(kForm));
  }
  if (s[10] != 'T' && s[10] != 't') return absl::InvalidArgumentError(Av(kForm));
  if (s[13] != ':' || s[16] != ':') return absl::InvalidArgumentError(Av(kForm));
  const int hh = DigitsAt(s, 11, 2);
  const int mi = DigitsAt(s, 14, 2);
  const int ss = DigitsAt(s, 17, 2);
  if (hh < 0 || mi < 0 || ss < 0) return absl::InvalidArgumentError(Av(kForm));
  if (hh > 23 || mi > 59 || ss > 60) {
    return absl::InvalidArgumentError("timestamp time of day is out of range");
  }
  size_t pos = 19;
  int64_t nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const size_t start = pos;
    int64_t scale = 100000000;
    while (pos < s.size() && IsDigit(s[pos])) {
      if (scale > 0) {
        nanos += (s[pos] - '0') * scale;
        scale /= 10;
      }
      ++pos;
    }
    if (pos == start) return absl::InvalidArgumentError(Av(kForm));
  }
  if (pos >= s.size()) {
    return absl::InvalidArgumentError(
        "timestamp has no offset: add Z or +08:00 (e.g. 2026-09-14T10:05:00+08:00)");
  }
  int offset_seconds = 0;
  const char sign = s[pos];
  if (sign == 'Z' || sign == 'z') {
    ++pos;
  } else if (sign == '+' || sign == '-') {
    if (s.size() - pos != 6 || s[pos + 3] != ':') return absl::InvalidArgumentError(Av(kForm));
    const int oh = DigitsAt(s, pos + 1, 2);
    const int om = DigitsAt(s, pos + 4, 2);
    if (oh < 0 || om < 0) return absl::InvalidArgumentError(Av(kForm));
    if (oh > 23 || om > 59) return absl::InvalidArgumentError("timestamp offset is out of range");
    offset_seconds = (oh * 3600 + om * 60) * (sign == '-' ? -1 : 1);
    pos += 6;
  } else {
    return absl::InvalidArgumentError(Av(kForm));
  }
  if (pos != s.size()) return absl::InvalidArgumentError(Av(kForm));
  // A leap second (ss == 60) is normalised into the next minute.
  const absl::CivilSecond local(day->year(), day->month(), day->day(), hh, mi, ss);
  const absl::Time t = absl::FromCivil(local, absl::UTCTimeZone()) -
                       absl::Seconds(offset_seconds) + absl::Nanoseconds(nanos);
  return t;
}

absl::StatusOr<int64_t> ParseFen(std::string_view s, bool allow_negative) {
  if (s.empty()) return absl::InvalidArgumentError("amount is empty");
  bool negative = false;
  size_t pos = 0;
  if (s[0] == '-') {
    if (!allow_negative) {
      return absl::InvalidArgumentError("amount may not be negative here");
    }
    negative = true;
    pos = 1;
  }
  if (pos == s.size()) return absl::InvalidArgumentError("amount has no digits");
  // Magnitudes are accumulated as negatives so that INT64_MIN is representable.
  int64_t v = 0;
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  for (size_t i = pos; i < s.size(); ++i) {
    const char c = s[i];
    if (!IsDigit(c)) {
      if (c == '.' || c == ',') {
        return absl::InvalidArgumentError(
            "amount must be a whole number of fen (no decimal point: 120 yuan is 12000)");
      }
      return absl::InvalidArgumentError(
          "amount must be a whole number of fen: digits only, optionally after '-'");
    }
    const int d = c - '0';
    if (v < (kMin + d) / 10) return absl::InvalidArgumentError("amount is too large");
    v = v * 10 - d;
  }
  if (negative) return v;
  if (v == kMin) return absl::InvalidArgumentError("amount is too large");
  return -v;
}

absl::StatusOr<int64_t> ParseCount(std::string_view s) {
  if (s.empty()) return absl::InvalidArgumentError("number is empty");
  int64_t v = 0;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  for (const char c : s) {
    if (!IsDigit(c)) {
      return absl::InvalidArgumentError("must be a non-negative whole number (digits only)");
    }
    const int d = c - '0';
    if (v > (kMax - d) / 10) return absl::InvalidArgumentError("number is too large");
    v = v * 10 + d;
  }
  return v;
}

absl::CivilDay Period::first_day() const {
  return absl::CivilDay(year, monthly() ? month : 1, 1);
}

absl::CivilDay Period::last_day() const {
  if (monthly()) return absl::CivilDay(year, month, DaysInMonth(year, month));
  return absl::CivilDay(year, 12, 31);
}

std::string Period::ToString() const {
  if (year < 0 || year > 9999 || month < 0 || month > 99) {
    if (monthly()) return absl::StrFormat("%04d-%02d", year, month);
    return absl::StrFormat("%04d", year);
  }
  std::string out;
  out.reserve(7);
  AppendDigits(out, year, 4);
  if (monthly()) {
    out += '-';
    AppendDigits(out, month, 2);
  }
  return out;
}

absl::StatusOr<Period> ParsePeriod(std::string_view s) {
  constexpr std::string_view kForm = "period must be YYYY-MM (monthly) or YYYY (yearly)";
  if (s.size() != 4 && s.size() != 7) return absl::InvalidArgumentError(Av(kForm));
  const int y = DigitsAt(s, 0, 4);
  if (y < 0) return absl::InvalidArgumentError(Av(kForm));
  if (y < 1) return absl::InvalidArgumentError("period year 0000 is not a real year");
  Period p;
  p.year = y;
  if (s.size() == 7) {
    if (s[4] != '-') return absl::InvalidArgumentError(Av(kForm));
    const int m = DigitsAt(s, 5, 2);
    if (m < 0) return absl::InvalidArgumentError(Av(kForm));
    if (m < 1 || m > 12) {
      return absl::InvalidArgumentError(absl::StrFormat("period month %02d does not exist", m));
    }
    p.month = m;
  }
  return p;
}

bool IsDivisionCode(std::string_view s) {
  if (s.size() != 12) return false;
  for (const char c : s) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

bool IsCode(std::string_view s, size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  for (const char c : s) {
    const bool ok = IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
    if (!ok) return false;
  }
  return true;
}

int64_t Utf8Length(std::string_view s) {
  int64_t n = 0;
  size_t i = 0;
  while (i < s.size()) {
    const int len = Utf8CodePointLength(s, i);
    if (len == 0) return -1;
    i += len;
    ++n;
  }
  return n;
}

std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const int len = Utf8CodePointLength(s, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

absl::StatusOr<std::string> NormaliseIdNumber(std::string_view s) {
  if (s.size() != 18) {
    return absl::InvalidArgumentError(
        absl::StrCat("ID number must have 18 characters, not ", s.size()));
  }
  for (size_t i = 0; i < 17; ++i) {
    if (!IsDigit(s[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("ID number must have digits in its first 17 places (place ", i + 1,
                       " is not a digit)"));
    }
  }
  char check = s[17];
  if (check == 'x') check = 'X';
  if (!IsDigit(check) && check != 'X') {
    return absl::InvalidArgumentError("ID number must end with a digit or X");
  }
  int sum = 0;
  for (size_t i = 0; i < 17; ++i) sum += (s[i] - '0') * kIdWeights[i];
  if (kIdCheckChars[sum % 11] != check) {
    return absl::InvalidArgumentError("ID number check digit does not match (mistyped number?)");
  }
  const int y = DigitsAt(s, 6, 4);
  const int m = DigitsAt(s, 10, 2);
  const int d = DigitsAt(s, 12, 2);
  if (!WhyNotRealDate(y, m, d).empty()) {
    return absl::InvalidArgumentError("birth date inside the ID number is not a real date");
  }
  std::string out(s);
  out[17] = check;
  return out;
}

absl::CivilDay BirthDateOfIdNumber(std::string_view normalised) {
  if (normalised.size() < 14) return absl::CivilDay();
  return absl::CivilDay(DigitsAt(normalised, 6, 4), DigitsAt(normalised, 10, 2),
                        DigitsAt(normalised, 12, 2));
}

std::string MaskIdNumber(std::string_view id) {
  if (id.size() <= 8) return std::string(id.size(), '*');
  std::string out(id);
  for (size_t i = 4; i + 4 < out.size(); ++i) out[i] = '*';
  return out;
}

std::string MaskIdNumbersIn(std::string_view text) {
  // Runs of digits, whatever is next to them: escapes and encodings put letters right before a
  // number ("\n3207...", "%0A3207...") and must not hide it. A run of 15 to 18 digits, or of 15 to
  // 17 followed by X or x, is masked; shorter and longer runs (codes, account numbers) are not.
  std::string out(text);
  auto digit = [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); };
  size_t i = 0;
  while (i < out.size()) {
    if (!digit(out[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < out.size() && digit(out[end])) ++end;
    const size_t digits = end - i;
    size_t len = digits;
    if (digits >= 15 && digits <= 17 && end < out.size() && (out[end] == 'X' || out[end] == 'x')) ++len;
    if (digits >= 15 && len <= 18) {
      const std::string masked = MaskIdNumber(std::string_view(out).substr(i, len));
      out.replace(i, len, masked);
      end = i + masked.size();
    }
    i = end;
  }
  return out;
}

std::string MaskName(std::string_view name) {
  // Split into code points; text that is not UTF-8 is never shown.
  std::array<size_t, 2> first_last{};  // byte offsets of first and last code points
  size_t last_len = 0;
  size_t first_len = 0;
  int64_t n = 0;
  size_t i = 0;
  while (i < name.size()) {
    const int len = Utf8CodePointLength(name, i);
    if (len == 0) return name.empty() ? "" : "*";
    if (n == 0) {
      first_last[0] = i;
      first_len = len;
    }
    first_last[1] = i;
    last_len = len;
    i += len;
    ++n;
  }
  if (n == 0) return "";
  if (n == 1) return "*";  // one character is the whole name: nothing of it is shown
  std::string out(name.substr(first_last[0], first_len));
  if (n == 2) {
    out.push_back('*');
    return out;
  }
  out.append(static_cast<size_t>(n - 2), '*');
  out.append(name.substr(first_last[1], last_len));
  return out;
}

uint64_t Fnv1a64(std::string_view text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace grassroots::common
