#include "transcoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"
#include "grassroots/membership/v1/membership.pb.h"

namespace grassroots::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace mv1 = membership::v1;

const RouteTable& Routes() {
  static const RouteTable* table = [] {
    auto built = RouteTable::Build({mv1::Organisation::descriptor()->file()});
    EXPECT_TRUE(built.ok()) << built.status();
    return built->release();
  }();
  return *table;
}

// Matches like a request would, then builds the message.
absl::Status Build(std::string_view method, std::string_view path, std::string_view query,
                   std::string_view body, google::protobuf::Message* out) {
  RouteMatch m = Routes().Match(method, path);
  EXPECT_EQ(m.outcome, MatchOutcome::kMatched) << method << " " << path;
  if (m.outcome != MatchOutcome::kMatched) return absl::InternalError("no match");
  EXPECT_EQ(m.route->method->input_type(), out->GetDescriptor());
  return BuildRequestMessage(*m.route, m.bindings, query, body, out);
}

std::vector<std::string> ViolatedFields(const absl::Status& s) {
  std::vector<std::string> out;
  for (const auto& v : common::FieldViolationsOf(s)) out.push_back(v.field);
  return out;
}

TEST(Transcoder, BodyFieldTakesTheJsonInEitherNameForm) {
  mv1::CreateOrganisationRequest req;
  ASSERT_TRUE(Build("POST", "/v1/organisations", "",
                    R"({"orgCode":"A-1","name":"中共𠮷村支部","org_type":"branch","population":"1200"})",
                    &req).ok());
  EXPECT_EQ(req.organisation().org_code(), "A-1");
  EXPECT_EQ(req.organisation().name(), "中共𠮷村支部");
  EXPECT_EQ(req.organisation().org_type(), "branch");
  EXPECT_EQ(req.organisation().population(), 1200);
}

TEST(Transcoder, EmptyBodyIsAnEmptyMessage) {
  mv1::CreateOrganisationRequest req;
  ASSERT_TRUE(Build("POST", "/v1/organisations", "", "", &req).ok());
  EXPECT_FALSE(req.has_organisation());
  ASSERT_TRUE(Build("POST", "/v1/organisations", "", " \r\n", &req).ok());
}

TEST(Transcoder, UnknownFieldIsInvalidArgumentNamingTheField) {
  mv1::CreateOrganisationRequest req;
  absl::Status s = Build("POST", "/v1/organisations", "", R"({"name":"x","bogus":1})", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("bogus"));
  EXPECT_THAT(ViolatedFields(s), ElementsAre("organisation.bogus"));
}

TEST(Transcoder, WrongTypeIsInvalidArgumentNamingTheField) {
  mv1::CreateOrganisationRequest req;
  absl::Status s = Build("POST", "/v1/organisations", "", R"({"population":"many"})", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("population"));
  s = Build("POST", "/v1/organisations", "", R"({"population":true})", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("population"));
  s = Build("POST", "/v1/organisations", "", R"({"name":5})", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("name"));
}

TEST(Transcoder, MalformedJsonIsInvalidArgument) {
  mv1::CreateOrganisationRequest req;
  for (std::string_view bad : {R"({"name":"x",})", R"({name:"x"})", R"({'name':'x'})",
                               R"({"name":"x","name":"y"})", R"({"name":"x"} trailing)",
                               R"({"name":"x")", R"(["name"])"}) {
    absl::Status s = Build("POST", "/v1/organisations", "", bad, &req);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("request body")) << bad;
  }
}

TEST(Transcoder, PathVariableBinds) {
  mv1::GetOrganisationRequest req;
  ASSERT_TRUE(Build("GET", "/v1/organisations/%E6%9D%91-1", "", "", &req).ok());
  EXPECT_EQ(req.org_code(), "村-1");
}

TEST(Transcoder, GetWithABodyIsRefused) {
  mv1::GetOrganisationRequest req;
  absl::Status s = Build("GET", "/v1/organisations/x", "", R"({"orgCode":"y"})", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("takes no request body"));
}

TEST(Transcoder, QueryParametersFillTheRemainingFields) {
  mv1::ListChildrenRequest req;
  ASSERT_TRUE(Build("GET", "/v1/organisations/p/children", "page_size=10&pageToken=a%2Bb+c", "", &req).ok());
  EXPECT_EQ(req.org_code(), "p");
  EXPECT_EQ(req.page_size(), 10);
  EXPECT_EQ(req.page_token(), "a+b c");
}

TEST(Transcoder, UnknownQueryParameterIsRefusedByName) {
  mv1::ListChildrenRequest req;
  absl::Status s = Build("GET", "/v1/organisations/p/children", "pageSize=1&colour=red", "", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown query parameter \"colour\""));
  EXPECT_THAT(ViolatedFields(s), ElementsAre("colour"));
}

TEST(Transcoder, BadQueryValuesAreRefused) {
  mv1::ListChildrenRequest req;
  absl::Status s = Build("GET", "/v1/organisations/p/children", "page_size=ten", "", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("page_size"));
  s = Build("GET", "/v1/organisations/p/children", "page_size=1&page_size=2", "", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("more than once"));
  s = Build("GET", "/v1/organisations/p/children", "org_code=q", "", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("comes from the path"));
  s = Build("GET", "/v1/organisations/p/children", "page_token=%zz", "", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  s = Build("GET", "/v1/organisations/p/children", "page_size=99999999999", "", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(Transcoder, QueryParametersReachSubMessagesAndRefuseBodyFields) {
  mv1::UpdateOrganisationRequest req;
  ASSERT_TRUE(Build("PATCH", "/v1/organisations/x", "update_mask=name,orgType", R"({"name":"n"})", &req).ok());
  EXPECT_THAT(req.update_mask().paths(), ElementsAre("name", "org_type"));
  absl::Status s = Build("PATCH", "/v1/organisations/x", "organisation.name=n", "", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("comes from the body"));
}

TEST(Transcoder, WholeBodyPlusPathVariable) {
  mv1::MoveOrganisationRequest req;
  ASSERT_TRUE(Build("POST", "/v1/organisations/A:move", "", R"({"newParentCode":"B"})", &req).ok());
  EXPECT_EQ(req.org_code(), "A");
  EXPECT_EQ(req.new_parent_code(), "B");
  // The path wins over the body.
  ASSERT_TRUE(Build("POST", "/v1/organisations/A:move", "", R"({"orgCode":"Z","new_parent_code":"B"})", &req).ok());
  EXPECT_EQ(req.org_code(), "A");
  // No query parameters when the body carries the whole request.
  absl::Status s = Build("POST", "/v1/organisations/A:move", "newParentCode=B", "", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // A whole-request body must be an object.
  s = Build("POST", "/v1/organisations/A:move", "", "[]", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(Transcoder, PatchWithoutMaskInfersItFromTheBodyKeys) {
  mv1::UpdateOrganisationRequest req;
  ASSERT_TRUE(Build("PATCH", "/v1/organisations/x", "",
                    R"({"name":"新名","divisionCode":"430102001001","population":null})", &req).ok());
  EXPECT_EQ(req.org_code(), "x");
  EXPECT_EQ(req.organisation().name(), "新名");
  EXPECT_THAT(req.update_mask().paths(), ElementsAre("name", "division_code", "population"));
}

TEST(Transcoder, PatchWithEmptyBodyLeavesTheMaskEmpty) {
  mv1::UpdateOrganisationRequest req;
  ASSERT_TRUE(Build("PATCH", "/v1/organisations/x", "", "", &req).ok());
  EXPECT_FALSE(req.has_update_mask());
  ASSERT_TRUE(Build("PATCH", "/v1/organisations/x", "", "{}", &req).ok());
  EXPECT_EQ(req.update_mask().paths_size(), 0);
}

TEST(Transcoder, ResponseJsonIsCamelCaseWithDefaultsAndInt64Strings) {
  RouteMatch m = Routes().Match("GET", "/v1/organisations/x");
  mv1::Organisation org;
  org.set_org_code("A-1");
  org.set_name("𠮷 中文");
  org.set_population(1200);
  auto json = ResponseToJson(*m.route, org);
  ASSERT_TRUE(json.ok());
  EXPECT_THAT(*json, HasSubstr(R"("orgCode":"A-1")"));
  EXPECT_THAT(*json, HasSubstr(R"("name":"𠮷 中文")"));  // raw UTF-8, not \u escapes
  EXPECT_THAT(*json, HasSubstr(R"("population":"1200")"));
  EXPECT_THAT(*json, HasSubstr(R"("depth":0)"));
  EXPECT_THAT(*json, HasSubstr(R"("childCount":0)"));
  EXPECT_THAT(*json, HasSubstr(R"("parentCode":"")"));
}

TEST(Transcoder, NonBmpTextRoundTrips) {
  mv1::CreateOrganisationRequest req;
  ASSERT_TRUE(Build("POST", "/v1/organisations", "", R"({"name":"𠮷\ud842\udfb7"})", &req).ok());
  EXPECT_EQ(req.organisation().name(), "𠮷𠮷");
  RouteMatch m = Routes().Match("GET", "/v1/organisations/x");
  auto json = ResponseToJson(*m.route, req.organisation());
  ASSERT_TRUE(json.ok());
  EXPECT_THAT(*json, HasSubstr(R"("name":"𠮷𠮷")"));
}

TEST(Transcoder, StatusFromGrpcKeepsBinaryDetails) {
  grpc::Status g = common::ToGrpcStatus(common::InvalidField("organisation.division_code", "must be 12 digits"));
  google::rpc::Status rpc = RpcStatusFromGrpc(g);
  EXPECT_EQ(rpc.code(), 3);
  ASSERT_EQ(rpc.details_size(), 1);
  std::string json = StatusToJson(rpc);
  EXPECT_THAT(json, HasSubstr(R"("code":3)"));
  EXPECT_THAT(json, HasSubstr(R"("@type":"type.googleapis.com/google.rpc.BadRequest")"));
  EXPECT_THAT(json, HasSubstr(R"("fieldViolations":[{"field":"organisation.division_code","description":"must be 12 digits"}])"));
}

TEST(Transcoder, StatusWithoutDetailsIsBuiltFromCodeAndMessage) {
  google::rpc::Status rpc = RpcStatusFromGrpc(grpc::Status(grpc::StatusCode::NOT_FOUND, "无此组织"));
  EXPECT_EQ(StatusToJson(rpc), R"({"code":5,"message":"无此组织","details":[]})");
  rpc = RpcStatusFromGrpc(grpc::Status(grpc::StatusCode::INTERNAL, "x", "not a proto \xff"));
  EXPECT_EQ(rpc.code(), 13);
  EXPECT_EQ(rpc.message(), "x");
}

// A value the caller sent comes back in a parse error; an ID number never does (in the message
// or in the field violations), whether it was sent as a JSON number or in the path.
TEST(Transcoder, ErrorsNeverEchoAnIdNumber) {
  mv1::CreateOrganisationRequest req;
  absl::Status s = Build("POST", "/v1/organisations", "", R"({"name":320723198001010010})", &req);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  std::string json = StatusToJson(RpcStatusFromAbsl(s));
  EXPECT_EQ(json.find("320723198001010010"), std::string::npos) << json;
  EXPECT_THAT(json, HasSubstr("3207**********0010"));
  s = common::InvalidField("member_id", "invalid value \"32072319800101001X\": expected an integer");
  json = StatusToJson(RpcStatusFromAbsl(s));
  EXPECT_EQ(json.find("32072319800101001X"), std::string::npos) << json;
  EXPECT_THAT(json, HasSubstr("3207**********001X"));
  // Letters right before the number (a JSON escape, a percent-encoded line break) do not hide it.
  EXPECT_EQ(common::MaskIdNumbersIn("value \\n320723198001010010, %0A32072319800101001x, n320723198001010010z"),
            "value \\n3207**********0010, %0A3207**********001x, n3207**********0010z");
  // Codes, short numbers and longer digit runs are left as they are.
  EXPECT_EQ(common::MaskIdNumbersIn("code 3, 12 digits, 622848000000000000001 x"),
            "code 3, 12 digits, 622848000000000000001 x");
}

TEST(Transcoder, UnknownDetailTypesAreKeptAsBase64) {
  google::rpc::Status rpc;
  rpc.set_code(9);
  rpc.set_message("m");
  auto* any = rpc.add_details();
  any->set_type_url("type.googleapis.com/some.Unknown");
  any->set_value("ab");
  EXPECT_EQ(StatusToJson(rpc),
            R"({"code":9,"message":"m","details":[{"@type":"type.googleapis.com/some.Unknown","value":"YWI="}]})");
}

TEST(Transcoder, StreamLines) {
  EXPECT_EQ(StreamResultLine(R"({"data":"YQ=="})"), "{\"result\":{\"data\":\"YQ==\"}}\n");
  google::rpc::Status rpc;
  rpc.set_code(4);
  rpc.set_message("late");
  EXPECT_EQ(StreamErrorLine(rpc), "{\"error\":{\"code\":4,\"message\":\"late\",\"details\":[]}}\n");
}

TEST(Transcoder, HttpStatusTable) {
  const std::pair<int, int> table[] = {
      {0, 200},  {1, 499},  {2, 500},  {3, 400},  {4, 504},  {5, 404},
      {6, 409},  {7, 403},  {8, 429},  {9, 400},  {10, 409}, {11, 400},
      {12, 501}, {13, 500}, {14, 503}, {15, 500}, {16, 401}, {99, 500}};
  for (auto [code, http] : table) EXPECT_EQ(HttpStatusFromGrpcCode(code), http) << code;
}

}  // namespace
}  // namespace grassroots::gateway
