// PeerClient's policy over a fake call (no network): what is retried and how often, the waits,
// the deadline, the metadata every attempt carries, and the metrics.
#include "grassroots/common/peer_client.h"

#include <google/protobuf/wrappers.pb.h>
#include <gtest/gtest.h>
#include <grpcpp/test/client_context_test_peer.h>
#include <grpcpp/test/server_context_test_spouse.h>
#include <prometheus/registry.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "grassroots/common/log.h"
#include "grassroots/common/server.h"

namespace grassroots::common {
namespace {

// A method this binary knows (MethodLabel keeps it); the health service is always known.
constexpr char kMethod[] = "/grpc.health.v1.Health/Check";

// A clock that moves only when the client waits or an attempt takes time.
struct FakeTime {
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  std::vector<absl::Duration> waits;
  PeerClientOptions Options(double draw = 0.5) {
    PeerClientOptions o;
    o.now = [this] { return now; };
    o.sleep = [this](absl::Duration d) {
      waits.push_back(d);
      now += d;
    };
    o.uniform01 = [draw] { return draw; };  // 0.5: no jitter
    return o;
  }
};

// One attempt as the fake peer saw it.
struct Seen {
  absl::Time deadline;
  std::multimap<std::string, std::string> metadata;
};

// Answers the codes in turn (the last one again once they run out); each attempt takes `takes`.
class FakePeer {
 public:
  FakePeer(FakeTime& time, std::vector<grpc::StatusCode> codes, absl::Duration takes = absl::Milliseconds(10))
      : time_(time), codes_(std::move(codes)), takes_(takes) {}
  grpc::Status operator()(grpc::ClientContext& context) const {  // const: absl::FunctionRef calls it so
    seen.push_back({absl::FromChrono(context.deadline()),
                    grpc::testing::ClientContextTestPeer(&context).GetSendInitialMetadata()});
    time_.now += takes_;
    const grpc::StatusCode code = codes_[std::min(seen.size(), codes_.size()) - 1];
    return code == grpc::StatusCode::OK ? grpc::Status::OK : grpc::Status(code, "fake answer");
  }
  mutable std::vector<Seen> seen;

 private:
  FakeTime& time_;
  std::vector<grpc::StatusCode> codes_;
  absl::Duration takes_;
};

std::optional<std::string> One(const std::multimap<std::string, std::string>& md, const std::string& key) {
  auto it = md.find(key);
  if (it == md.end() || md.count(key) != 1) return std::nullopt;
  return it->second;
}

TEST(BackoffTest, GrowsByTheMultiplierUpToTheMaximumWithinTheJitter) {
  RetryPolicy p;
  p.initial_backoff = absl::Milliseconds(100);
  p.max_backoff = absl::Milliseconds(700);
  p.multiplier = 2;
  p.jitter = 0.2;
  Backoff middle(p, [] { return 0.5; });
  EXPECT_EQ(middle.Next(), absl::Milliseconds(100));
  EXPECT_EQ(middle.Next(), absl::Milliseconds(200));
  EXPECT_EQ(middle.Next(), absl::Milliseconds(400));
  EXPECT_EQ(middle.Next(), absl::Milliseconds(700));
  EXPECT_EQ(middle.Next(), absl::Milliseconds(700));
  middle.Reset();
  EXPECT_EQ(middle.Next(), absl::Milliseconds(100));
  Backoff low(p, [] { return 0.0; });
  EXPECT_EQ(low.Next(), absl::Milliseconds(80));
  Backoff high(p, [] { return 0.999999; });
  const absl::Duration h = high.Next();
  EXPECT_GT(h, absl::Milliseconds(119));
  EXPECT_LE(h, absl::Milliseconds(120));
  // The real generator stays within the jitter.
  Backoff random(p);
  for (int i = 0; i < 100; ++i) {
    random.Reset();
    const absl::Duration d = random.Next();
    EXPECT_GE(d, absl::Milliseconds(80));
    EXPECT_LE(d, absl::Milliseconds(120));
  }
}

TEST(PeerClientTest, UnavailableIsTriedAgainAfterGrowingWaitsAndTheAnswerReturned) {
  FakeTime time;
  PeerClient client("membership", nullptr, nullptr, time.Options());
  FakePeer peer(time, {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::OK});
  EXPECT_TRUE(client.Run(kMethod, {}, peer).ok());
  EXPECT_EQ(peer.seen.size(), 3u);
  EXPECT_EQ(time.waits, (std::vector<absl::Duration>{absl::Milliseconds(100), absl::Milliseconds(200)}));
}

TEST(PeerClientTest, OnlyUnavailableIsTriedAgain) {
  for (grpc::StatusCode code :
       {grpc::StatusCode::NOT_FOUND, grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::DEADLINE_EXCEEDED,
        grpc::StatusCode::INTERNAL, grpc::StatusCode::CANCELLED, grpc::StatusCode::RESOURCE_EXHAUSTED,
        grpc::StatusCode::ABORTED, grpc::StatusCode::UNKNOWN}) {
    FakeTime time;
    PeerClient client("membership", nullptr, nullptr, time.Options());
    FakePeer peer(time, {code, grpc::StatusCode::OK});
    const absl::Status s = client.Run(kMethod, {}, peer);
    EXPECT_EQ(static_cast<int>(s.code()), static_cast<int>(code));
    EXPECT_EQ(s.message(), "fake answer");
    EXPECT_EQ(peer.seen.size(), 1u) << code;
    EXPECT_TRUE(time.waits.empty());
  }
}

TEST(PeerClientTest, AttemptsAreBoundedAndTheLastAnswerStands) {
  FakeTime time;
  PeerClientOptions o = time.Options();
  o.retry.max_attempts = 4;
  PeerClient client("membership", nullptr, nullptr, o);
  FakePeer peer(time, {grpc::StatusCode::UNAVAILABLE});
  const absl::Status s = client.Run(kMethod, {}, peer);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(peer.seen.size(), 4u);
  EXPECT_EQ(time.waits.size(), 3u);
  // A call that must not be repeated: one attempt.
  FakePeer once(time, {grpc::StatusCode::UNAVAILABLE});
  CallOptions single;
  single.max_attempts = 1;
  EXPECT_EQ(client.Run(kMethod, single, once).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(once.seen.size(), 1u);
}

TEST(PeerClientTest, TheDeadlineIsTheCallersBoundedByTheCallTimeoutAndNoWaitGoesPastIt) {
  FakeTime time;
  PeerClientOptions o = time.Options();
  o.call_timeout = absl::Milliseconds(250);
  o.retry.max_attempts = 10;
  PeerClient client("membership", nullptr, nullptr, o);
  const absl::Time start = time.now;
  // No caller's deadline: the call timeout. Attempt at 0 (50 ms), wait 100, attempt at 150 (till
  // 200); a wait of 200 would pass 250: the second UNAVAILABLE is the answer.
  FakePeer peer(time, {grpc::StatusCode::UNAVAILABLE}, absl::Milliseconds(50));
  EXPECT_EQ(client.Run(kMethod, {}, peer).code(), absl::StatusCode::kUnavailable);
  ASSERT_EQ(peer.seen.size(), 2u);
  EXPECT_EQ(time.waits, std::vector<absl::Duration>{absl::Milliseconds(100)});
  for (const Seen& s : peer.seen) EXPECT_EQ(s.deadline, start + absl::Milliseconds(250));
  EXPECT_LE(time.now, start + absl::Milliseconds(250));

  // The caller's deadline, when earlier, is every attempt's.
  const absl::Time caller = time.now + absl::Milliseconds(120);
  FakePeer sooner(time, {grpc::StatusCode::UNAVAILABLE}, absl::Milliseconds(30));
  CallOptions by;
  by.deadline = caller;
  EXPECT_EQ(client.Run(kMethod, by, sooner).code(), absl::StatusCode::kUnavailable);
  ASSERT_EQ(sooner.seen.size(), 1u);  // 30 ms + a wait of 100 would pass 120
  EXPECT_EQ(sooner.seen[0].deadline, caller);

  // A later caller's deadline is cut to the call timeout.
  FakePeer later(time, {grpc::StatusCode::OK});
  by.deadline = time.now + absl::Hours(1);
  const absl::Time now = time.now;
  EXPECT_TRUE(client.Run(kMethod, by, later).ok());
  EXPECT_EQ(later.seen[0].deadline, now + absl::Milliseconds(250));

  // A deadline already past: no attempt at all.
  FakePeer none(time, {grpc::StatusCode::OK});
  by.deadline = time.now - absl::Milliseconds(1);
  EXPECT_EQ(client.Run(kMethod, by, none).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(none.seen.empty());
}

TEST(PeerClientTest, EveryAttemptCarriesTheRequestIdAndTheMetadataAskedFor) {
  FakeTime time;
  PeerClient client("membership", nullptr, nullptr, time.Options());
  {
    RequestScope scope("req-0123456789ab");
    FakePeer peer(time, {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::OK});
    CallOptions o;
    o.personal_data = true;
    o.metadata = {{"x-extra", "1"}};
    ASSERT_TRUE(client.Run(kMethod, o, peer).ok());
    ASSERT_EQ(peer.seen.size(), 2u);
    for (const Seen& s : peer.seen) {
      EXPECT_EQ(One(s.metadata, "x-request-id"), "req-0123456789ab");
      EXPECT_EQ(One(s.metadata, kPiiMetadata), "allow");
      EXPECT_EQ(One(s.metadata, "x-extra"), "1");
    }
  }
  // No personal-data right unless asked; without a request scope one new id for all attempts.
  FakePeer peer(time, {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::OK});
  ASSERT_TRUE(client.Run(kMethod, {}, peer).ok());
  ASSERT_EQ(peer.seen.size(), 2u);
  EXPECT_EQ(peer.seen[0].metadata.count(kPiiMetadata), 0u);
  const auto id = One(peer.seen[0].metadata, "x-request-id");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->size(), 16u);
  EXPECT_EQ(One(peer.seen[1].metadata, "x-request-id"), id);
}

TEST(PeerClientTest, TheIncomingCallsRequestIdIsUsed) {
  FakeTime time;
  PeerClient client("membership", nullptr, nullptr, time.Options());
  grpc::ServerContext incoming;
  grpc::testing::ServerContextTestSpouse spouse(&incoming);
  spouse.AddClientMetadata("x-request-id", "from-the-caller");
  FakePeer peer(time, {grpc::StatusCode::OK});
  CallOptions o;
  o.parent = &incoming;
  ASSERT_TRUE(client.Run(kMethod, o, peer).ok());
  EXPECT_EQ(One(peer.seen[0].metadata, "x-request-id"), "from-the-caller");
  // The work's own request id (RequestScope) comes first.
  RequestScope scope("the-scope");
  FakePeer again(time, {grpc::StatusCode::OK});
  ASSERT_TRUE(client.Run(kMethod, o, again).ok());
  EXPECT_EQ(One(again.seen[0].metadata, "x-request-id"), "the-scope");
}

TEST(PeerClientTest, CallUsesTheStubMethodAndReturnsItsAnswer) {
  // A stand-in for a generated stub's blocking method.
  struct Stub {
    int calls = 0;
    grpc::Status Get(grpc::ClientContext*, const google::protobuf::StringValue& request,
                     google::protobuf::StringValue* response) {
      ++calls;
      if (calls == 1) {
        response->set_value("partial answer of a failed attempt");
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
      }
      response->set_value(response->value() + "answer to " + request.value());
      return grpc::Status::OK;
    }
  };
  FakeTime time;
  PeerClient client("membership", nullptr, nullptr, time.Options());
  Stub stub;
  google::protobuf::StringValue q;
  q.set_value("q");
  auto r = client.Call(stub, &Stub::Get, kMethod, q);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->value(), "answer to q");  // nothing of the failed attempt
  EXPECT_EQ(stub.calls, 2);
}

double Value(prometheus::Registry& registry, const std::string& family,
             const std::map<std::string, std::string>& labels, bool count = false) {
  for (const auto& f : registry.Collect()) {
    if (f.name != family) continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : m.label) have[l.name] = l.value;
      if (have != labels) continue;
      if (count) return static_cast<double>(m.histogram.sample_count);
      return m.counter.value;
    }
  }
  return -1;
}

TEST(PeerClientTest, CallsAreCountedPerPeerMethodAndCode) {
  FakeTime time;
  prometheus::Registry registry;
  PeerClient membership("membership", nullptr, &registry, time.Options());
  PeerClient other("cadrepay", nullptr, &registry, time.Options());  // the same families
  FakePeer ok_after_one(time, {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::OK});
  ASSERT_TRUE(membership.Run(kMethod, {}, ok_after_one).ok());
  FakePeer down(time, {grpc::StatusCode::UNAVAILABLE});
  EXPECT_FALSE(membership.Run(kMethod, {}, down).ok());
  FakePeer missing(time, {grpc::StatusCode::NOT_FOUND});
  EXPECT_FALSE(other.Run(kMethod, {}, missing).ok());
  // A method this binary does not know is "unknown", never the text given.
  FakePeer made_up(time, {grpc::StatusCode::OK});
  EXPECT_TRUE(membership.Run("/made.Up/Method", {}, made_up).ok());

  auto labels = [](std::string peer, std::string method, std::string code = "") {
    std::map<std::string, std::string> l{{"peer", peer}, {"method", method}};
    if (!code.empty()) l["code"] = code;
    return l;
  };
  EXPECT_EQ(Value(registry, "grassroots_peer_calls_total", labels("membership", kMethod, "OK")), 1);
  EXPECT_EQ(Value(registry, "grassroots_peer_calls_total", labels("membership", kMethod, "UNAVAILABLE")), 1);
  EXPECT_EQ(Value(registry, "grassroots_peer_calls_total", labels("cadrepay", kMethod, "NOT_FOUND")), 1);
  EXPECT_EQ(Value(registry, "grassroots_peer_calls_total", labels("membership", "unknown", "OK")), 1);
  EXPECT_EQ(Value(registry, "grassroots_peer_call_seconds", labels("membership", kMethod), true), 2);
  EXPECT_EQ(Value(registry, "grassroots_peer_call_retries_total", labels("membership", kMethod)), 1 + 2);
  EXPECT_EQ(Value(registry, "grassroots_peer_call_retries_total", labels("cadrepay", kMethod)), 0);
}

}  // namespace
}  // namespace grassroots::common
