#include "route_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "grassroots/membership/v1/membership.pb.h"
#include "linked_protos.h"

namespace grassroots::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

const RouteTable& MembershipRoutes() {
  static const RouteTable* table = [] {
    const auto* file = membership::v1::Organisation::descriptor()->file();
    auto built = RouteTable::Build({file});
    EXPECT_TRUE(built.ok()) << built.status();
    return built->release();
  }();
  return *table;
}

std::string RpcOf(const RouteMatch& m) { return m.route == nullptr ? "" : m.route->rpc_path; }

TEST(RouteTable, BuildsEveryAnnotatedMethodIncludingTheUpload) {
  const auto& routes = MembershipRoutes().routes();
  // Every method of the file (each has its annotation); ImportOrganisations is an upload of FileChunks.
  const auto* service = membership::v1::Organisation::descriptor()->file()->FindServiceByName("OrganisationService");
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(routes.size(), static_cast<size_t>(service->method_count()));
  EXPECT_GE(routes.size(), 9u);
  RouteMatch m = MembershipRoutes().Match("POST", "/v1/organisations:import");
  ASSERT_EQ(m.outcome, MatchOutcome::kMatched);
  EXPECT_EQ(RpcOf(m), "/grassroots.membership.v1.OrganisationService/ImportOrganisations");
  EXPECT_TRUE(m.route->method->client_streaming());
}

TEST(RouteTable, MatchesPlainPathAndBindsVariable) {
  RouteMatch m = MembershipRoutes().Match("GET", "/v1/organisations/430102001");
  ASSERT_EQ(m.outcome, MatchOutcome::kMatched);
  EXPECT_EQ(RpcOf(m), "/grassroots.membership.v1.OrganisationService/GetOrganisation");
  EXPECT_EQ(m.pattern, "/v1/organisations/{org_code}");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("org_code", "430102001")));
}

TEST(RouteTable, VerbSuffixSelectsTheVerbRoute) {
  RouteMatch m = MembershipRoutes().Match("POST", "/v1/organisations/A-1:move");
  ASSERT_EQ(m.outcome, MatchOutcome::kMatched);
  EXPECT_EQ(RpcOf(m), "/grassroots.membership.v1.OrganisationService/MoveOrganisation");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("org_code", "A-1")));

  m = MembershipRoutes().Match("GET", "/v1/organisations/A-1:export");
  ASSERT_EQ(m.outcome, MatchOutcome::kMatched);
  EXPECT_EQ(RpcOf(m), "/grassroots.membership.v1.OrganisationService/ExportOrganisations");
}

TEST(RouteTable, VerbRouteWithWrongMethodIs405NotTheGetRoute) {
  RouteMatch m = MembershipRoutes().Match("GET", "/v1/organisations/A-1:move");
  EXPECT_EQ(m.outcome, MatchOutcome::kMethodNotAllowed);
  EXPECT_THAT(m.allowed_methods, ElementsAre("POST"));
}

TEST(RouteTable, UnknownVerbFallsBackToPlainTemplate) {
  // No template has the verb ":frobnicate", so the segment is taken as a whole.
  RouteMatch m = MembershipRoutes().Match("GET", "/v1/organisations/A-1:frobnicate");
  ASSERT_EQ(m.outcome, MatchOutcome::kMatched);
  EXPECT_THAT(m.bindings, ElementsAre(Pair("org_code", "A-1:frobnicate")));
}

TEST(RouteTable, PostOnCollection) {
  RouteMatch m = MembershipRoutes().Match("POST", "/v1/organisations");
  ASSERT_EQ(m.outcome, MatchOutcome::kMatched);
  EXPECT_EQ(m.route->body, "organisation");
}

TEST(RouteTable, SubCollections) {
  EXPECT_EQ(RpcOf(MembershipRoutes().Match("GET", "/v1/organisations/x/children")),
            "/grassroots.membership.v1.OrganisationService/ListChildren");
  EXPECT_EQ(RpcOf(MembershipRoutes().Match("GET", "/v1/organisations/x/ancestry")),
            "/grassroots.membership.v1.OrganisationService/GetAncestry");
}

TEST(RouteTable, UnknownRoutesAreNotFound) {
  const auto& t = MembershipRoutes();
  EXPECT_EQ(t.Match("GET", "/v1/nothing").outcome, MatchOutcome::kNotFound);
  EXPECT_EQ(t.Match("GET", "/v1/organisations/x/unknown").outcome, MatchOutcome::kNotFound);
  EXPECT_EQ(t.Match("GET", "/v1/organisations/").outcome, MatchOutcome::kNotFound);
  EXPECT_EQ(t.Match("GET", "/v1/organisations/x/children/y").outcome, MatchOutcome::kNotFound);
  EXPECT_EQ(t.Match("GET", "").outcome, MatchOutcome::kNotFound);
  EXPECT_EQ(t.Match("GET", "/").outcome, MatchOutcome::kNotFound);
}

TEST(RouteTable, WrongMethodListsAllowedMethods) {
  RouteMatch m = MembershipRoutes().Match("PUT", "/v1/organisations/x");
  ASSERT_EQ(m.outcome, MatchOutcome::kMethodNotAllowed);
  EXPECT_THAT(m.allowed_methods, ElementsAre("DELETE", "GET", "PATCH"));
  EXPECT_EQ(m.pattern, "/v1/organisations/{org_code}");
  m = MembershipRoutes().Match("DELETE", "/v1/organisations");
  ASSERT_EQ(m.outcome, MatchOutcome::kMethodNotAllowed);
  EXPECT_THAT(m.allowed_methods, ElementsAre("POST"));
}

TEST(RouteTable, PercentDecodesVariables) {
  RouteMatch m = MembershipRoutes().Match("GET", "/v1/organisations/%E4%B8%AD%2Fx");
  ASSERT_EQ(m.outcome, MatchOutcome::kMatched);
  EXPECT_THAT(m.bindings, ElementsAre(Pair("org_code", "中/x")));
  EXPECT_EQ(MembershipRoutes().Match("GET", "/v1/organisations/%zz").outcome,
            MatchOutcome::kNotFound);
}

TEST(PathTemplate, ParsesTheGrammar) {
  auto t = PathTemplate::Parse("/v1/{name=projects/*/items/**}:cancel");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->verb(), "cancel");
  ASSERT_EQ(t->variables().size(), 1u);
  EXPECT_EQ(t->variables()[0].begin, 1);
  EXPECT_EQ(t->variables()[0].end, 5);
  std::vector<std::pair<std::string, std::string>> b;
  EXPECT_EQ(t->Match("/v1/projects/p1/items/a/b%2Fc:cancel", &b), 3);
  EXPECT_THAT(b, ElementsAre(Pair("name", "projects/p1/items/a/b%2Fc")));
  EXPECT_EQ(t->Match("/v1/projects/p1/items/a", &b), -1);  // verb missing
  EXPECT_EQ(t->Match("/v1/other/p1/items/a:cancel", &b), -1);

  auto nested = PathTemplate::Parse("/v1/{organisation.org_code}/x/*");
  ASSERT_TRUE(nested.ok());
  EXPECT_EQ(nested->Match("/v1/abc/x/y", &b), 2);
  EXPECT_THAT(b, ElementsAre(Pair("organisation.org_code", "abc")));
}

TEST(PathTemplate, RefusesMalformedTemplates) {
  EXPECT_FALSE(PathTemplate::Parse("v1/x").ok());
  EXPECT_FALSE(PathTemplate::Parse("/v1/{x").ok());
  EXPECT_FALSE(PathTemplate::Parse("/v1/{x}}").ok());
  EXPECT_FALSE(PathTemplate::Parse("/v1/**/x").ok());
  EXPECT_FALSE(PathTemplate::Parse("/v1/{a}/{a}").ok());
  EXPECT_FALSE(PathTemplate::Parse("/v1/{a{b}}").ok());
  EXPECT_FALSE(PathTemplate::Parse("/v1/{1a}").ok());
  EXPECT_FALSE(PathTemplate::Parse("/v1//x").ok());
}

TEST(ResolveFieldPath, AcceptsBothNameForms) {
  std::vector<const google::protobuf::FieldDescriptor*> chain;
  const auto* d = membership::v1::UpdateOrganisationRequest::descriptor();
  ASSERT_TRUE(ResolveFieldPath(d, "organisation.division_code", &chain));
  EXPECT_EQ(chain.back()->name(), "division_code");
  ASSERT_TRUE(ResolveFieldPath(d, "organisation.divisionCode", &chain));
  EXPECT_EQ(chain.back()->name(), "division_code");
  EXPECT_FALSE(ResolveFieldPath(d, "organisation.nope", &chain));
  EXPECT_FALSE(ResolveFieldPath(d, "org_code.x", &chain));
  EXPECT_FALSE(ResolveFieldPath(d, "", &chain));
}

TEST(LinkedProtos, FindsEveryServedPackage) {
  auto files = LinkedServiceFiles();
  std::vector<std::string> packages;
  for (const auto* f : files) packages.push_back(f->package());
  EXPECT_THAT(packages, ::testing::IsSupersetOf({"grassroots.membership.v1",
                                                 "grassroots.cadrepay.v1", "grassroots.assets.v1",
                                                 "grassroots.mobility.v1"}));
  for (const auto& p : packages) EXPECT_TRUE(IsServedPackage(p)) << p;
  EXPECT_FALSE(IsServedPackage("grassroots.v1"));
  EXPECT_FALSE(IsServedPackage("grassroots.a.b.v1"));
  EXPECT_FALSE(IsServedPackage("google.rpc"));
  // And every linked file's annotations build.
  auto built = RouteTable::Build(files);
  EXPECT_TRUE(built.ok()) << built.status();
}

// Every part is reachable through the gateway as HTTP/JSON as well as gRPC: every method of every
// served service has a route, but the calls between services named here (documented in their
// protos as internal).
TEST(LinkedProtos, EveryMethodHasARouteButTheInternalOnes) {
  const std::set<std::string> internal = {"grassroots.membership.v1.MemberService.ListKinOfPersons"};
  auto files = LinkedServiceFiles();
  auto built = RouteTable::Build(files);
  ASSERT_TRUE(built.ok()) << built.status();
  std::set<std::string> routed;
  for (const auto& route : (*built)->routes()) routed.insert(route.method->full_name());
  int methods = 0;
  for (const auto* file : files) {
    for (int s = 0; s < file->service_count(); ++s) {
      for (int m = 0; m < file->service(s)->method_count(); ++m) {
        const std::string name = file->service(s)->method(m)->full_name();
        ++methods;
        EXPECT_NE(routed.contains(name), internal.contains(name)) << name;
      }
    }
  }
  EXPECT_GT(methods, 40);  // membership's and cadrepay's services were all looked at
}

}  // namespace
}  // namespace grassroots::gateway
