#pragma once
// Validation of the values that interchange files and RPCs share (formats.md).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace grassroots::common {

// "YYYY-MM-DD", a real calendar date (no 30 February).
absl::StatusOr<absl::CivilDay> ParseDate(std::string_view s);
std::string FormatDate(absl::CivilDay d);

// Today in China Standard Time.
absl::CivilDay TodayInChina(absl::Time now = absl::Now());
// UTC+8, fixed.
absl::TimeZone ChinaTimeZone();

// RFC 3339 with an explicit offset ("Z" accepted); no offset is an error.
absl::StatusOr<absl::Time> ParseTimestamp(std::string_view s);
// The calendar date of an instant in China Standard Time.
absl::CivilDay ChinaDateOf(absl::Time t);

// Integer fen: optional '-', digits only. "120.00" is an error.
absl::StatusOr<int64_t> ParseFen(std::string_view s, bool allow_negative = false);
// The row-error code of every money value an importer refuses, whichever file and service
// (formats.md: "Money is an integer number of fen"; it fixes no code, so this one place does):
// what ParseFen refuses, and a negative amount where none is allowed.
inline constexpr std::string_view kInvalidMoneyCode = "INVALID_MONEY";
// A non-negative integer (population, counts).
absl::StatusOr<int64_t> ParseCount(std::string_view s);

// A period: "YYYY-MM" (monthly) or "YYYY" (yearly).
struct Period {
  int year = 0;
  int month = 0;  // 0 for a yearly period
  bool monthly() const { return month != 0; }
  absl::CivilDay first_day() const;
  absl::CivilDay last_day() const;
  std::string ToString() const;
  friend bool operator==(const Period&, const Period&) = default;
  friend auto operator<=>(const Period&, const Period&) = default;
};
absl::StatusOr<Period> ParsePeriod(std::string_view s);

// 12 digits.
bool IsDivisionCode(std::string_view s);
// 1 to 32 of letters, digits, '-'.
bool IsCode(std::string_view s, size_t max_len = 32);
// Number of Unicode code points; -1 when not valid UTF-8.
int64_t Utf8Length(std::string_view s);

// FNV-1a, 64 bits, a stable fingerprint of text (the same in every process and release), for
// noticing edits (migrations) and naming things by their content (named locks). Its offset basis
// is 1469598103934665603, one digit short of the standard 14695981039346656037, as the migration
// runner has always used it: schema_migrations holds fingerprints made with it, so it stays.
uint64_t Fnv1a64(std::string_view text);
// `s` with every byte that does not belong to a valid UTF-8 sequence replaced by U+FFFD: for text
// a caller sent (a header name, a value) that goes back in a protobuf string field, which must be
// valid UTF-8 (a client refuses to parse the answer otherwise).
std::string ValidUtf8(std::string_view s);

// Resident ID number (GB 11643): 17 digits and a check character, ISO 7064 MOD 11-2;
// the embedded birth date must be a real date. Lower-case 'x' accepted; returns the
// normalised form (upper-case X). The message never repeats the number.
absl::StatusOr<std::string> NormaliseIdNumber(std::string_view s);
// The birth date inside a valid ID number.
absl::CivilDay BirthDateOfIdNumber(std::string_view normalised);
// "3207**********123X": first 4 and last 4 kept.
std::string MaskIdNumber(std::string_view id);
// `text` with every run that could be a resident ID number (15 to 18 digits, or 15 to 17 then X
// or x; not part of a longer run of digits, whatever letters are next to it) masked as
// MaskIdNumber does: for text a caller sent that goes back into an error message.
std::string MaskIdNumbersIn(std::string_view text);
// "张*明": first and last character kept (two characters: "张*").
std::string MaskName(std::string_view name);

}  // namespace grassroots::common
