#include "organisation_rules.h"

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "grassroots/common/validate.h"

namespace grassroots::membership {
namespace {

constexpr std::array<std::string_view, 4> kTypes = {"committee", "general_branch", "branch", "group"};
constexpr std::array<std::string_view, 8> kKinds = {"village", "community", "township", "county",
                                                     "two_new", "industrial", "mobile", "joint"};
constexpr int kMaxNameLength = 100;

bool Wanted(const std::vector<std::string>& fields, std::string_view f) {
  return fields.empty() || std::find(fields.begin(), fields.end(), f) != fields.end();
}

}  // namespace

bool IsOrgType(std::string_view s) { return std::find(kTypes.begin(), kTypes.end(), s) != kTypes.end(); }
bool IsOrgKind(std::string_view s) { return std::find(kKinds.begin(), kKinds.end(), s) != kKinds.end(); }

std::vector<Violation> ValidateOrganisation(const v1::Organisation& org, const std::vector<std::string>& fields) {
  std::vector<Violation> out;
  if (Wanted(fields, "org_code")) {
    if (org.org_code().empty()) {
      out.push_back({"org_code", "MISSING_VALUE", "is required"});
    } else if (!common::IsCode(org.org_code())) {
      out.push_back({"org_code", "INVALID_CODE", "must be 1 to 32 letters, digits or '-'"});
    }
  }
  if (Wanted(fields, "name")) {
    const int64_t len = common::Utf8Length(org.name());
    if (org.name().empty()) {
      out.push_back({"name", "MISSING_VALUE", "must not be empty"});
    } else if (len < 0) {
      out.push_back({"name", "INVALID_TEXT", "is not valid UTF-8"});
    } else if (len > kMaxNameLength) {
      out.push_back({"name", "TOO_LONG", absl::StrCat("has ", len, " characters; at most ", kMaxNameLength, " allowed")});
    }
  }
  if (Wanted(fields, "org_type")) {
    if (org.org_type().empty()) {
      out.push_back({"org_type", "MISSING_VALUE", "is required: committee, general_branch, branch or group"});
    } else if (!IsOrgType(org.org_type())) {
      out.push_back({"org_type", "UNKNOWN_ORG_TYPE", "must be committee, general_branch, branch or group"});
    }
  }
  if (Wanted(fields, "org_kind") && !org.org_kind().empty() && !IsOrgKind(org.org_kind())) {
    out.push_back({"org_kind", "UNKNOWN_ORG_KIND",
                   "must be village, community, township, county, two_new, industrial, mobile or joint"});
  }
  if (Wanted(fields, "parent_code") && !org.parent_code().empty() && !common::IsCode(org.parent_code())) {
    out.push_back({"parent_code", "INVALID_CODE", "must be 1 to 32 letters, digits or '-'"});
  }
  if (Wanted(fields, "division_code")) {
    if (org.division_code().empty()) {
      out.push_back({"division_code", "MISSING_VALUE", "is required: the 12-digit division code"});
    } else if (!common::IsDivisionCode(org.division_code())) {
      out.push_back({"division_code", "INVALID_DIVISION_CODE",
                     absl::StrCat("must be exactly 12 digits, got ", org.division_code().size(), " characters")});
    }
  }
  if (Wanted(fields, "established_on") && !org.established_on().empty()) {
    auto d = common::ParseDate(org.established_on());
    if (!d.ok()) {
      out.push_back({"established_on", "INVALID_DATE", std::string(d.status().message())});
    } else if (*d > common::TodayInChina()) {
      out.push_back({"established_on", "DATE_IN_FUTURE", "must not be in the future"});
    }
  }
  if (Wanted(fields, "population") && org.has_population() && org.population() < 0) {
    out.push_back({"population", "INVALID_NUMBER", "must not be negative"});
  }
  return out;
}

std::optional<Violation> CheckPlacement(std::string_view org_type, std::string_view parent_type) {
  if (parent_type == "group") {
    return Violation{"parent_code", "UNDER_A_GROUP", "a party group holds members, not organisations"};
  }
  if (org_type == "group" && parent_type != "branch") {
    return Violation{"parent_code", "GROUP_OUTSIDE_BRANCH", "a party group sits inside a party branch"};
  }
  return std::nullopt;
}

void ApplyDefaults(v1::Organisation& org) {
  if (org.org_kind().empty()) org.set_org_kind("village");
}

bool SameContent(const v1::Organisation& a, const v1::Organisation& b) {
  return a.org_code() == b.org_code() && a.name() == b.name() && a.org_type() == b.org_type() &&
         a.org_kind() == b.org_kind() && a.parent_code() == b.parent_code() &&
         a.division_code() == b.division_code() && a.established_on() == b.established_on() &&
         a.has_population() == b.has_population() && a.population() == b.population();
}

const std::vector<std::string>& UpdatableFields() {
  static const auto* f = new std::vector<std::string>{"name", "org_type", "org_kind", "division_code",
                                                      "established_on", "population"};
  return *f;
}

}  // namespace grassroots::membership
