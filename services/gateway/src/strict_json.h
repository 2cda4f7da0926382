#pragma once
// A strict RFC 8259 syntax check, run before protobuf's JSON parser (which accepts trailing
// commas, unquoted keys, single quotes and duplicate keys). No DOM is built: the text is
// walked once and only the facts the transcoder needs are returned.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace grassroots::gateway {

struct JsonShape {
  // True when the top-level value is an object.
  bool is_object = false;
  // The keys of the top-level object (decoded), in document order. Empty for other values.
  std::vector<std::string> top_level_keys;
};

// Checks that `text` is exactly one JSON value (RFC 8259) surrounded by optional whitespace,
// valid UTF-8, with no duplicate key in any object (compared after unescaping) and nested at
// most `max_depth` deep. Errors are INVALID_ARGUMENT naming the byte offset and the problem.
absl::StatusOr<JsonShape> CheckStrictJson(std::string_view text, int max_depth = 64);

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool IsValidUtf8(std::string_view text);

}  // namespace grassroots::gateway
