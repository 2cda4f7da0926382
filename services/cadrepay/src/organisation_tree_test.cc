// MembershipOrganisationTree over a fake ListSubtree and a fake change feed (no server): one call
// per subtree (pages past the first), what an unknown organisation or an unreachable registry
// gives, the caller's deadline, and how long an answer is kept: until the feed says an
// organisation moved while it is followed, 30 s while it is not.
#include "organisation_tree.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "grassroots/common/log.h"
#include "grassroots/common/server.h"
#include "grassroots/membership/v1/members.grpc.pb.h"
#include "grassroots/membership/v1/membership.grpc.pb.h"

namespace grassroots::cadrepay {
namespace {

namespace mv1 = membership::v1;

// The member registry's tree as parent -> children, answered by ListSubtree in pages of `page`
// codes (in code order, the top included), with the feed position `seq`.
class FakeRegistry {
 public:
  std::map<std::string, std::vector<std::string>> children;
  size_t page = 1000;
  int64_t seq = 5;
  std::vector<std::string> asked;   // org_code of each call
  std::vector<absl::Time> deadlines;
  int fail_from_call = -1;          // calls from this one on fail (0-based); -1 never
  absl::Status failure = absl::UnavailableError("failed to connect to all addresses");

  ListSubtreeCall Call() {
    return [this](const mv1::ListSubtreeRequest& request,
                  absl::Time deadline) -> absl::StatusOr<mv1::ListSubtreeResponse> {
      const int call = static_cast<int>(asked.size());
      asked.push_back(request.org_code());
      deadlines.push_back(deadline);
      if (fail_from_call >= 0 && call >= fail_from_call) return failure;
      if (!children.contains(request.org_code())) return absl::NotFoundError("org_code: no such organisation");
      std::set<std::string> all;
      Collect(request.org_code(), all);
      std::vector<std::string> sorted(all.begin(), all.end());
      size_t from = request.page_token().empty() ? 0 : std::stoul(request.page_token());
      mv1::ListSubtreeResponse response;
      for (size_t i = from; i < sorted.size() && i < from + page; ++i) {
        response.add_organisations()->set_org_code(sorted[i]);
      }
      if (from + page < sorted.size()) response.set_next_page_token(std::to_string(from + page));
      response.set_as_of_seq(seq);
      return response;
    };
  }

 private:
  void Collect(const std::string& code, std::set<std::string>& out) {
    if (!out.insert(code).second) return;
    for (const auto& c : children[code]) Collect(c, out);
  }
};

FakeRegistry County() {
  FakeRegistry t;
  t.children = {{"C", {"T1", "T2"}},
                {"T1", {"V3", "V1", "V2"}},
                {"T2", {"V4"}},
                {"V1", {}},
                {"V2", {}},
                {"V3", {}},
                {"V4", {}},
                {"X", {}}};
  return t;
}

// The change feed: streams opened (after which position), and changes handed to the open one.
class FakeFeed {
 public:
  std::vector<int64_t> opened;  // after_seq of each stream

  OpenChangeStream Open() {
    return [this](int64_t after_seq) -> std::unique_ptr<ChangeStream> {
      std::lock_guard<std::mutex> lock(mu_);
      opened.push_back(after_seq);
      end_.reset();
      cv_.notify_all();
      return std::make_unique<Stream>(*this);
    };
  }
  void Push(int64_t seq, const std::string& entity, const std::string& kind, const std::string& key = "K") {
    mv1::Change c;
    c.set_seq(seq);
    c.set_entity(entity);
    c.set_kind(kind);
    c.set_key(key);
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(c);
    cv_.notify_all();
  }
  // Ends the open stream with `status` once what was pushed is delivered.
  void End(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    end_ = status;
    cv_.notify_all();
  }
  size_t Opened() {
    std::lock_guard<std::mutex> lock(mu_);
    return opened.size();
  }

 private:
  class Stream final : public ChangeStream {
   public:
    explicit Stream(FakeFeed& feed) : feed_(feed) {}
    bool Read(mv1::Change* change) override {
      std::unique_lock<std::mutex> lock(feed_.mu_);
      feed_.cv_.wait(lock, [&] { return cancelled_ || !feed_.pending_.empty() || feed_.end_.has_value(); });
      if (cancelled_) {
        status_ = absl::CancelledError("cancelled");
        return false;
      }
      if (!feed_.pending_.empty()) {
        *change = feed_.pending_.front();
        feed_.pending_.pop_front();
        return true;
      }
      status_ = *feed_.end_;
      return false;
    }
    absl::Status Finish() override { return status_; }
    void Cancel() override {
      std::lock_guard<std::mutex> lock(feed_.mu_);
      cancelled_ = true;
      feed_.cv_.notify_all();
    }

   private:
    FakeFeed& feed_;
    bool cancelled_ = false;
    absl::Status status_;
  };

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<mv1::Change> pending_;
  std::optional<absl::Status> end_;
};

// Waits (a few seconds at most) until `done` holds.
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 500; ++i) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return done();
}

struct Clock {
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  MembershipOrganisationTree::Options Options() {
    MembershipOrganisationTree::Options o;
    o.now = [this] { return now; };
    o.reconnect.initial_backoff = absl::Milliseconds(1);
    o.reconnect.max_backoff = absl::Milliseconds(5);
    return o;
  }
};

// A county's tree whose feed is followed: the first answer (C, as of 5) is kept and the
// follower's stream is open.
class FollowedTree : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = std::make_unique<MembershipOrganisationTree>(t_.Call(), "membership:1", clock_.Options(), feed_.Open());
    ASSERT_TRUE(tree_->Subtree("C").ok());
    ASSERT_TRUE(Eventually([&] { return tree_->following(); }));
  }
  void TearDown() override { tree_.reset(); }
  bool FollowedUpTo(int64_t seq) {
    return Eventually([&] { return tree_->followed_upto() == seq; });
  }
  FakeRegistry t_ = County();
  FakeFeed feed_;
  Clock clock_;
  std::unique_ptr<MembershipOrganisationTree> tree_;
};

TEST(MembershipOrganisationTree, OneCallForTheWholeSubtreeSorted) {
  FakeRegistry t = County();
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  auto codes = tree.Subtree("C");
  ASSERT_TRUE(codes.ok()) << codes.status();
  EXPECT_EQ(*codes, (std::vector<std::string>{"C", "T1", "T2", "V1", "V2", "V3", "V4"}));
  EXPECT_EQ(t.asked, std::vector<std::string>{"C"});
  auto township = tree.Subtree("T2");
  ASSERT_TRUE(township.ok());
  EXPECT_EQ(*township, (std::vector<std::string>{"T2", "V4"}));
  auto village = tree.Subtree("V1");
  ASSERT_TRUE(village.ok());
  EXPECT_EQ(*village, (std::vector<std::string>{"V1"}));
  EXPECT_EQ(t.asked.size(), 3u);
}

TEST(MembershipOrganisationTree, ATreeLargerThanAPageIsAskedPageByPage) {
  FakeRegistry t = County();
  t.page = 3;
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  auto codes = tree.Subtree("C");
  ASSERT_TRUE(codes.ok()) << codes.status();
  EXPECT_EQ(*codes, (std::vector<std::string>{"C", "T1", "T2", "V1", "V2", "V3", "V4"}));
  EXPECT_EQ(t.asked.size(), 3u);
}

TEST(MembershipOrganisationTree, TheCallersDeadlineIsPassedOn) {
  FakeRegistry t = County();
  t.page = 4;
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  ASSERT_TRUE(tree.Subtree("C", deadline).ok());
  EXPECT_EQ(t.deadlines, (std::vector<absl::Time>{deadline, deadline}));  // both pages
  ASSERT_TRUE(tree.Known("X", deadline).ok());
  EXPECT_EQ(t.deadlines.back(), deadline);
  // Without one (a caller that has none), the peer's own call timeout bounds the call.
  ASSERT_TRUE(tree.Subtree("T1").ok());
  EXPECT_EQ(t.deadlines.back(), absl::InfiniteFuture());
}

TEST(MembershipOrganisationTree, AnUnknownOrganisationIsNotFoundAndNamesTheField) {
  FakeRegistry t = County();
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  auto codes = tree.Subtree("NOPE");
  EXPECT_EQ(codes.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(codes.status().message().find("org_code"), std::string::npos);
  EXPECT_NE(codes.status().message().find("NOPE"), std::string::npos);
  EXPECT_EQ(tree.Known("NOPE").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(t.asked.size(), 2u);  // a refusal is not kept
}

TEST(MembershipOrganisationTree, AnUnreachableRegistryIsUnavailableNeverAPartialSubtree) {
  FakeRegistry t = County();
  t.page = 2;
  t.fail_from_call = 1;  // the first page answers, then nothing does
  MembershipOrganisationTree tree(t.Call(), "membership:1");
  auto codes = tree.Subtree("C");
  EXPECT_EQ(codes.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(codes.status().message().find("membership at membership:1"), std::string::npos) << codes.status();
  t.failure = absl::DeadlineExceededError("Deadline Exceeded");
  EXPECT_EQ(tree.Subtree("C").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(tree.Known("C").code(), absl::StatusCode::kUnavailable);
  t.failure = absl::PermissionDeniedError("no");
  t.fail_from_call = 0;
  EXPECT_EQ(tree.Subtree("C").status().code(), absl::StatusCode::kInternal);
  // Back: the whole subtree (nothing of the failed attempts was kept).
  t.fail_from_call = -1;
  auto back = tree.Subtree("C");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->size(), 7u);
}

TEST(MembershipOrganisationTree, ATreeLargerThanTheLimitIsRefused) {
  FakeRegistry t = County();
  Clock clock;
  auto o = clock.Options();
  o.max_organisations = 4;
  MembershipOrganisationTree tree(t.Call(), "membership:1", o);
  EXPECT_EQ(tree.Subtree("C").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(tree.Subtree("T1").ok());  // 4 codes
}

TEST(MembershipOrganisationTree, WithoutTheFeedAnAnswerLivesThirtySeconds) {
  FakeRegistry t = County();
  Clock clock;
  MembershipOrganisationTree tree(t.Call(), "membership:1", clock.Options());
  ASSERT_TRUE(tree.Subtree("C").ok());
  clock.now += absl::Seconds(29);
  ASSERT_TRUE(tree.Subtree("C").ok());
  ASSERT_TRUE(tree.Known("C").ok());
  EXPECT_EQ(t.asked.size(), 1u);
  t.children["T2"].push_back("V5");
  t.children["V5"] = {};
  clock.now += absl::Seconds(2);
  auto fresh = tree.Subtree("C");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->size(), 8u);
  EXPECT_EQ(t.asked.size(), 2u);
  EXPECT_FALSE(tree.followed_upto().has_value());
}

TEST_F(FollowedTree, AnAnswerLivesUntilAnOrganisationMoves) {
  // The follower starts from the position of the first answer.
  EXPECT_EQ(feed_.opened, std::vector<int64_t>{5});
  ASSERT_TRUE(tree_->Subtree("T1").ok());
  EXPECT_EQ(t_.asked.size(), 2u);

  // Long past the short TTL, while nothing moved: kept. Members, kin and renames move nothing.
  clock_.now += absl::Minutes(5);
  feed_.Push(6, "member", "admitted");
  feed_.Push(7, "kin", "added");
  feed_.Push(8, "organisation", "updated", "V1");
  ASSERT_TRUE(FollowedUpTo(8));
  ASSERT_TRUE(tree_->Subtree("C").ok());
  ASSERT_TRUE(tree_->Subtree("T1").ok());
  EXPECT_EQ(t_.asked.size(), 2u);

  // An organisation moves: every answer older than the change is asked again.
  t_.children["T1"].erase(t_.children["T1"].begin());  // V3 moves to T2
  t_.children["T2"].push_back("V3");
  t_.seq = 9;
  feed_.Push(9, "organisation", "moved", "V3");
  ASSERT_TRUE(FollowedUpTo(9));
  auto t1 = tree_->Subtree("T1");
  ASSERT_TRUE(t1.ok());
  EXPECT_EQ(*t1, (std::vector<std::string>{"T1", "V1", "V2"}));
  auto t2 = tree_->Subtree("T2");
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(*t2, (std::vector<std::string>{"T2", "V3", "V4"}));
  EXPECT_EQ(t_.asked.size(), 4u);
  ASSERT_TRUE(tree_->Subtree("T1").ok());  // the new answer (as of 9) is kept
  EXPECT_EQ(t_.asked.size(), 4u);

  // Not even a followed answer lives past the longest age.
  clock_.now += absl::Minutes(11);
  ASSERT_TRUE(tree_->Subtree("T1").ok());
  EXPECT_EQ(t_.asked.size(), 5u);
}

TEST_F(FollowedTree, AnAnswerOlderThanAMoveAlreadySeenIsNotKept) {
  feed_.Push(6, "organisation", "created", "V9");
  ASSERT_TRUE(FollowedUpTo(6));
  // A slow read that began before the change answers as of 5.
  ASSERT_TRUE(tree_->Subtree("C").ok());
  ASSERT_TRUE(tree_->Subtree("C").ok());
  EXPECT_EQ(t_.asked, (std::vector<std::string>{"C", "C", "C"}));
}

TEST_F(FollowedTree, WhenTheFeedBreaksAnswersLiveThirtySecondsAndItIsFollowedAgainFromWhereItWas) {
  feed_.Push(6, "member", "admitted");
  ASSERT_TRUE(FollowedUpTo(6));
  clock_.now += absl::Seconds(20);
  feed_.End(absl::UnavailableError("membership went away"));
  // Reopened (after a short wait) from the last change seen.
  ASSERT_TRUE(Eventually([&] { return feed_.Opened() == 2; }));
  EXPECT_EQ(feed_.opened, (std::vector<int64_t>{5, 6}));
  // The answer from before the break is no longer followed: it lives 30 s from when it was read.
  ASSERT_TRUE(tree_->Subtree("C").ok());
  EXPECT_EQ(t_.asked.size(), 1u);
  clock_.now += absl::Seconds(11);
  ASSERT_TRUE(tree_->Subtree("C").ok());
  EXPECT_EQ(t_.asked.size(), 2u);
  // The new one is followed by the reopened stream.
  ASSERT_TRUE(Eventually([&] { return tree_->following(); }));
  clock_.now += absl::Minutes(1);
  ASSERT_TRUE(tree_->Subtree("C").ok());
  EXPECT_EQ(t_.asked.size(), 2u);
}

TEST_F(FollowedTree, AFeedThatNoLongerReachesThePositionDropsEverything) {
  feed_.End(absl::OutOfRangeError("after_seq: 5 is beyond the last change (2)"));
  ASSERT_TRUE(Eventually([&] { return !tree_->followed_upto().has_value(); }));
  ASSERT_TRUE(tree_->Subtree("C").ok());
  EXPECT_EQ(t_.asked.size(), 2u);
  // Followed again from the new answer's position.
  ASSERT_TRUE(Eventually([&] { return feed_.Opened() == 2; }));
  EXPECT_EQ(feed_.opened, (std::vector<int64_t>{5, 5}));
}

TEST_F(FollowedTree, EndsItsFollowerWhenDestroyed) {
  tree_.reset();  // the open stream is cancelled and the thread joined
  EXPECT_EQ(feed_.Opened(), 1u);
}

TEST(MembershipOrganisationTree, TheKeptCodesAreBounded) {
  FakeRegistry t = County();
  Clock clock;
  auto o = clock.Options();
  o.max_cached_codes = 5;
  MembershipOrganisationTree tree(t.Call(), "membership:1", o);
  ASSERT_TRUE(tree.Subtree("T1").ok());  // 4 codes
  clock.now += absl::Seconds(1);
  ASSERT_TRUE(tree.Subtree("T2").ok());  // 2 more: T1's answer, the oldest, goes
  ASSERT_TRUE(tree.Subtree("T2").ok());
  EXPECT_EQ(t.asked.size(), 2u);
  ASSERT_TRUE(tree.Subtree("T1").ok());
  EXPECT_EQ(t.asked.size(), 3u);
  ASSERT_TRUE(tree.Subtree("C").ok());  // 7: larger than the bound, never kept
  ASSERT_TRUE(tree.Subtree("C").ok());
  EXPECT_EQ(t.asked.size(), 5u);
}

// membership in this process (a server without a port: gRPC logs once that its channel is "not a
// client channel" when the stream asks for its state): ListSubtree, shedding its first call,
// and a feed that reports one move after the position asked, then stays open.
class InProcessOrganisations final : public mv1::OrganisationService::Service {
 public:
  grpc::Status ListSubtree(grpc::ServerContext* ctx, const mv1::ListSubtreeRequest* req,
                           mv1::ListSubtreeResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu);
    deadlines.push_back(common::DeadlineOf(*ctx));
    request_ids.push_back(common::RequestIdOf(*ctx));
    if (calls++ == 0) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shedding load");
    resp->add_organisations()->set_org_code("V1");
    resp->add_organisations()->set_org_code(req->org_code());
    resp->set_as_of_seq(3);
    return grpc::Status::OK;
  }
  std::mutex mu;
  int calls = 0;
  std::vector<absl::Time> deadlines;
  std::vector<std::string> request_ids;
};

class InProcessFeed final : public mv1::MemberService::Service {
 public:
  grpc::Status WatchChanges(grpc::ServerContext* ctx, const mv1::WatchChangesRequest* req,
                            grpc::ServerWriter<mv1::Change>* writer) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      asked.push_back(absl::StrCat(req->after_seq(), req->follow() ? " follow" : ""));
    }
    mv1::Change c;
    c.set_seq(req->after_seq() + 1);
    c.set_entity("organisation");
    c.set_kind("moved");
    c.set_key("V1");
    writer->Write(c);
    while (!ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status(grpc::StatusCode::CANCELLED, "the caller went away");
  }
  std::mutex mu;
  std::vector<std::string> asked;
};

TEST(GrpcMembership, TheSubtreeAndTheFeedGoThroughThePeerClient) {
  InProcessOrganisations organisations;
  InProcessFeed feed;
  grpc::ServerBuilder builder;
  builder.RegisterService(&organisations);
  builder.RegisterService(&feed);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  prometheus::Registry registry;
  common::PeerClientOptions po;
  po.retry.initial_backoff = absl::Milliseconds(1);
  auto peer = std::make_shared<common::PeerClient>("membership", server->InProcessChannel(grpc::ChannelArguments()),
                                                   &registry, po);
  {
    Clock clock;
    MembershipOrganisationTree tree(GrpcListSubtree(peer), "in-process", clock.Options(), GrpcWatchChanges(peer));
    common::RequestScope scope("req-tree-1");
    const absl::Time deadline = absl::Now() + absl::Seconds(3);  // before the call timeout (10 s)
    auto codes = tree.Subtree("C", deadline);
    ASSERT_TRUE(codes.ok()) << codes.status();
    EXPECT_EQ(*codes, (std::vector<std::string>{"C", "V1"}));
    {
      std::lock_guard<std::mutex> lock(organisations.mu);
      EXPECT_EQ(organisations.calls, 2);  // UNAVAILABLE once, then the answer
      EXPECT_EQ(organisations.request_ids, (std::vector<std::string>{"req-tree-1", "req-tree-1"}));
      for (absl::Time d : organisations.deadlines) EXPECT_LT(absl::AbsDuration(d - deadline), absl::Seconds(1));
    }
    // The follower asked for the feed after the answer's position, and took the move after it.
    ASSERT_TRUE(Eventually([&] { return tree.followed_upto() == 4; }));
    {
      std::lock_guard<std::mutex> lock(feed.mu);
      EXPECT_EQ(feed.asked, std::vector<std::string>{"3 follow"});
    }
    ASSERT_TRUE(tree.Subtree("C", deadline).ok());  // an answer as of 3 predates the move: asked again
    std::lock_guard<std::mutex> lock(organisations.mu);
    EXPECT_EQ(organisations.calls, 3);
  }  // the open stream is cancelled, the follower ends
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));

  auto value = [&](const std::string& name, const std::map<std::string, std::string>& labels) -> double {
    for (const auto& f : registry.Collect()) {
      if (f.name != name) continue;
      for (const auto& m : f.metric) {
        std::map<std::string, std::string> have;
        for (const auto& l : m.label) have[l.name] = l.value;
        if (have == labels) return f.type == prometheus::MetricType::Histogram
                                       ? static_cast<double>(m.histogram.sample_count)
                                       : m.counter.value;
      }
    }
    return -1;
  };
  const std::string method = "/grassroots.membership.v1.OrganisationService/ListSubtree";
  EXPECT_EQ(value("grassroots_peer_calls_total", {{"peer", "membership"}, {"method", method}, {"code", "OK"}}), 2);
  EXPECT_EQ(value("grassroots_peer_call_retries_total", {{"peer", "membership"}, {"method", method}}), 1);
  EXPECT_EQ(value("grassroots_peer_call_seconds", {{"peer", "membership"}, {"method", method}}), 2);
}

TEST(SingleOrganisation, IsTheOrganisationAlone) {
  SingleOrganisation tree;
  auto codes = tree.Subtree("V9");
  ASSERT_TRUE(codes.ok());
  EXPECT_EQ(*codes, (std::vector<std::string>{"V9"}));
  EXPECT_TRUE(tree.Known("V9").ok());
  EXPECT_TRUE(tree.Subtree("V9", absl::Now()).ok());
}

}  // namespace
}  // namespace grassroots::cadrepay
