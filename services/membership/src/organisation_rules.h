#pragma once
// The rules an organisation record must satisfy, shared by the RPCs and the file import.
// Pure functions: no database, no server.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "grassroots/membership/v1/membership.pb.h"

namespace grassroots::membership {

// One broken rule about one field.
struct Violation {
  std::string field;    // proto field / CSV column name, e.g. "division_code"
  std::string code;     // stable code for import reports, e.g. INVALID_DIVISION_CODE
  std::string message;  // says why, never repeats personal data
};

bool IsOrgType(std::string_view s);
bool IsOrgKind(std::string_view s);

// Checks every descriptive field of `org` (not the parent's existence). `fields` limits the
// check to the named fields (empty: all). org_kind may be empty (defaults to "village").
std::vector<Violation> ValidateOrganisation(const v1::Organisation& org,
                                            const std::vector<std::string>& fields = {});

// Where an organisation of `org_type` may sit (domain.md: "party group (党小组) inside a branch"):
// a group's parent is a branch (`parent_type` "" for the top of a tree), and nothing sits under a
// group, which holds members, not organisations. FAILED_PRECONDITION codes GROUP_OUTSIDE_BRANCH
// and UNDER_A_GROUP, on parent_code; nullopt when the placement is acceptable.
std::optional<Violation> CheckPlacement(std::string_view org_type, std::string_view parent_type);

// Fills defaults (org_kind "village").
void ApplyDefaults(v1::Organisation& org);

// True when two records hold the same descriptive fields and parent.
bool SameContent(const v1::Organisation& a, const v1::Organisation& b);

// The fields UpdateOrganisation may change.
const std::vector<std::string>& UpdatableFields();

}  // namespace grassroots::membership
