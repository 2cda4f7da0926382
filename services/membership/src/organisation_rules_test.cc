#include "organisation_rules.h"

#include <gtest/gtest.h>

namespace grassroots::membership {
namespace {

v1::Organisation Valid() {
  v1::Organisation o;
  o.set_org_code("320723100201-B");
  o.set_name("城头村党支部");
  o.set_org_type("branch");
  o.set_org_kind("village");
  o.set_parent_code("320723100-T");
  o.set_division_code("320723100201");
  o.set_established_on("1998-07-01");
  o.set_population(2800);
  return o;
}

std::vector<std::string> Fields(const std::vector<Violation>& v) {
  std::vector<std::string> out;
  for (const auto& x : v) out.push_back(x.field);
  return out;
}

TEST(OrganisationRulesTest, AcceptsAValidRecord) { EXPECT_TRUE(ValidateOrganisation(Valid()).empty()); }

TEST(OrganisationRulesTest, DivisionCodeMustBeTwelveDigits) {
  auto o = Valid();
  o.set_division_code("32072310020");  // 11 digits
  auto v = ValidateOrganisation(o);
  ASSERT_EQ(Fields(v), std::vector<std::string>{"division_code"});
  EXPECT_EQ(v[0].code, "INVALID_DIVISION_CODE");
  o.set_division_code("32072310020X");
  EXPECT_EQ(Fields(ValidateOrganisation(o)), std::vector<std::string>{"division_code"});
  o.set_division_code("");
  EXPECT_EQ(ValidateOrganisation(o)[0].code, "MISSING_VALUE");
}

TEST(OrganisationRulesTest, TypeAndKindMustBeKnown) {
  auto o = Valid();
  o.set_org_type("cell");
  auto v = ValidateOrganisation(o);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].code, "UNKNOWN_ORG_TYPE");
  o = Valid();
  o.set_org_kind("factory");
  EXPECT_EQ(ValidateOrganisation(o)[0].code, "UNKNOWN_ORG_KIND");
  o.set_org_kind("");
  EXPECT_TRUE(ValidateOrganisation(o).empty());  // defaults to village
  ApplyDefaults(o);
  EXPECT_EQ(o.org_kind(), "village");
}

TEST(OrganisationRulesTest, RefusedTypeAndKindAreNotRepeated) {
  const std::string id = "32072319800115123X";  // a value from the wrong column
  auto o = Valid();
  o.set_org_type(id);
  o.set_org_kind(id);
  auto v = ValidateOrganisation(o);
  ASSERT_EQ(Fields(v), (std::vector<std::string>{"org_type", "org_kind"}));
  for (const auto& x : v) {
    EXPECT_EQ(x.message.find("3207231980"), std::string::npos) << x.message;
    EXPECT_NE(x.message.find("must be "), std::string::npos) << x.message;
  }
}

TEST(OrganisationRulesTest, NameIsCountedInCharactersNotBytes) {
  auto o = Valid();
  std::string hundred;
  for (int i = 0; i < 100; ++i) hundred += "𠮷";  // 4 bytes each, outside the BMP
  o.set_name(hundred);
  EXPECT_TRUE(ValidateOrganisation(o).empty());
  o.set_name(hundred + "村");
  auto v = ValidateOrganisation(o);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].code, "TOO_LONG");
  o.set_name(std::string(300, 'a'));
  EXPECT_EQ(ValidateOrganisation(o)[0].field, "name");
  o.set_name("");
  EXPECT_EQ(ValidateOrganisation(o)[0].code, "MISSING_VALUE");
}

TEST(OrganisationRulesTest, CodesAreLettersDigitsAndDashesUpTo32) {
  auto o = Valid();
  o.set_org_code("a b");
  EXPECT_EQ(ValidateOrganisation(o)[0].field, "org_code");
  o.set_org_code(std::string(33, 'A'));
  EXPECT_EQ(ValidateOrganisation(o)[0].field, "org_code");
  o.set_org_code(std::string(32, 'A'));
  EXPECT_TRUE(ValidateOrganisation(o).empty());
  o.set_parent_code("x/y");
  EXPECT_EQ(ValidateOrganisation(o)[0].field, "parent_code");
}

TEST(OrganisationRulesTest, DatesMustBeRealAndNotInTheFuture) {
  auto o = Valid();
  o.set_established_on("2023-02-30");
  EXPECT_EQ(ValidateOrganisation(o)[0].code, "INVALID_DATE");
  o.set_established_on("2999-01-01");
  EXPECT_EQ(ValidateOrganisation(o)[0].code, "DATE_IN_FUTURE");
}

TEST(OrganisationRulesTest, OnlyRequestedFieldsAreChecked) {
  auto o = Valid();
  o.set_org_type("cell");
  EXPECT_TRUE(ValidateOrganisation(o, {"name"}).empty());
  EXPECT_FALSE(ValidateOrganisation(o, {"org_type"}).empty());
}

TEST(OrganisationRulesTest, SameContentComparesEveryField) {
  auto a = Valid(), b = Valid();
  EXPECT_TRUE(SameContent(a, b));
  b.clear_population();
  EXPECT_FALSE(SameContent(a, b));
  b = Valid();
  b.set_parent_code("other");
  EXPECT_FALSE(SameContent(a, b));
}

}  // namespace
}  // namespace grassroots::membership
