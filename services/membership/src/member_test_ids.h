#pragma once
// Test helper: valid resident ID numbers (GB 11643 check character computed).
#include <string>

namespace grassroots::membership::testing {

// `area` 6 digits, `birth` "YYYYMMDD", `seq` 3 digits.
inline std::string MakeId(const std::string& area, const std::string& birth, const std::string& seq) {
  static const int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  static const char kCheck[] = "10X98765432";
  std::string s = area + birth + seq;
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (s[i] - '0') * kWeights[i];
  return s + kCheck[sum % 11];
}

}  // namespace grassroots::membership::testing
