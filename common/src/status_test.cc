#include "grassroots/common/status.h"

#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace grassroots::common {
namespace {

TEST(StatusTest, PageTokensContinueOnlyTheirOwnListing) {
  const std::string token = MakePageToken("members:B1/full", "42");
  EXPECT_EQ(ReadPageToken(token, "members:B1/full").value_or(""), "42");
  for (const std::string& bad : {MakePageToken("members:B2/full", "42"), std::string("!!"), std::string("NDI")}) {
    auto read = ReadPageToken(bad, "members:B1/full");
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(FieldViolationsOf(read.status())[0].field, "page_token");
  }
}

TEST(StatusTest, InvalidFieldNamesTheFieldAndCarriesBadRequest) {
  absl::Status s = InvalidField("organisation.division_code", "must be exactly 12 digits");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "organisation.division_code: must be exactly 12 digits");
  auto v = FieldViolationsOf(s);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].field, "organisation.division_code");
}

TEST(StatusTest, ToGrpcCarriesRpcStatusWithDetails) {
  grpc::Status g = ToGrpcStatus(InvalidFields({{"a", "bad"}, {"b", "worse"}}));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(g.error_message(), "a: bad (and 1 more)");
  google::rpc::Status rpc;
  ASSERT_TRUE(rpc.ParseFromString(g.error_details()));
  EXPECT_EQ(rpc.code(), 3);
  ASSERT_EQ(rpc.details_size(), 1);
  google::rpc::BadRequest bad;
  ASSERT_TRUE(rpc.details(0).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 2);
  EXPECT_EQ(bad.field_violations(1).field(), "b");
}

TEST(StatusTest, RoundTripsEveryCode) {
  for (int c = 1; c <= 16; ++c) {
    absl::Status s(static_cast<absl::StatusCode>(c), "m");
    absl::Status back = FromGrpcStatus(ToGrpcStatus(s));
    EXPECT_EQ(back.code(), s.code());
    EXPECT_EQ(back.message(), "m");
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(StatusTest, FromGrpcKeepsFieldViolations) {
  absl::Status back = FromGrpcStatus(ToGrpcStatus(InvalidField("name", "too long")));
  auto v = FieldViolationsOf(back);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].description, "too long");
}

}  // namespace
}  // namespace grassroots::common
