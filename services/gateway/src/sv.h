#pragma once
// Debian's Abseil is built with its own absl::string_view (not std::string_view): these
// convert at the boundary between our std::string_view APIs and Abseil's.

#include <string_view>

#include "absl/strings/string_view.h"

namespace grassroots::gateway {

inline absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view ToStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace grassroots::gateway
