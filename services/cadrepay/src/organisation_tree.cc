#include "organisation_tree.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grassroots/common/log.h"
#include "grassroots/common/status.h"
#include "grassroots/membership/v1/members.grpc.pb.h"
#include "grassroots/membership/v1/membership.grpc.pb.h"

namespace grassroots::cadrepay {

namespace mv1 = grassroots::membership::v1;

MembershipOrganisationTree::MembershipOrganisationTree(ListSubtreeCall call, std::string target, Options options,
                                                       OpenChangeStream watch)
    : call_(std::move(call)), target_(std::move(target)), options_(std::move(options)), watch_(std::move(watch)) {
  if (!options_.now) options_.now = [] { return absl::Now(); };
  if (watch_) follower_ = std::thread([this] { Follow(); });
}

MembershipOrganisationTree::~MembershipOrganisationTree() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (stream_ != nullptr) stream_->Cancel();
  }
  wake_.notify_all();
  if (follower_.joinable()) follower_.join();
}

absl::StatusOr<std::vector<std::string>> MembershipOrganisationTree::Subtree(const std::string& org_code,
                                                                             absl::Time deadline) {
  if (auto codes = Cached(org_code)) return *std::move(codes);
  auto entry = Fetch(org_code, deadline);
  if (!entry.ok()) return entry.status();
  std::vector<std::string> codes = entry->codes;
  Keep(org_code, *std::move(entry));
  return codes;
}

absl::Status MembershipOrganisationTree::Known(const std::string& org_code, absl::Time deadline) {
  return Subtree(org_code, deadline).status();
}

absl::StatusOr<MembershipOrganisationTree::Entry> MembershipOrganisationTree::Fetch(const std::string& org_code,
                                                                                    absl::Time deadline) {
  Entry entry;
  entry.fetched_at = Now();  // the answer is at least this old
  mv1::ListSubtreeRequest request;
  request.set_org_code(org_code);  // page_size 0: the largest page, a county's whole tree
  for (bool first = true;; first = false) {
    auto page = call_(request, deadline);
    if (!page.ok()) return Failure(org_code, page.status());
    // Every page reflects the feed up to its own position: the whole up to the smallest.
    entry.as_of_seq = first ? page->as_of_seq() : std::min(entry.as_of_seq, page->as_of_seq());
    for (const auto& o : page->organisations()) {
      entry.codes.push_back(o.org_code());
      if (entry.codes.size() > options_.max_organisations) {
        return absl::FailedPreconditionError(absl::StrCat("org_code: the subtree of ", org_code, " has more than ",
                                                          options_.max_organisations, " organisations"));
      }
    }
    if (page->next_page_token().empty()) break;
    request.set_page_token(page->next_page_token());
  }
  // Pages are in code order; a move between two pages can list a code twice.
  std::sort(entry.codes.begin(), entry.codes.end());
  entry.codes.erase(std::unique(entry.codes.begin(), entry.codes.end()), entry.codes.end());
  return entry;
}

absl::Status MembershipOrganisationTree::Failure(const std::string& org_code, const absl::Status& status) const {
  if (status.code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("org_code: no organisation ", org_code, " in the member registry"));
  }
  const bool transient =
      status.code() == absl::StatusCode::kUnavailable || status.code() == absl::StatusCode::kDeadlineExceeded;
  const std::string message =
      absl::StrCat("the member registry (membership at ", target_, ") could not be asked about organisation ", org_code,
                   " and the organisations under it: ", absl::StatusCodeToString(status.code()), ": ", status.message());
  return transient ? absl::UnavailableError(message) : absl::InternalError(message);
}

std::optional<std::vector<std::string>> MembershipOrganisationTree::Cached(const std::string& org_code) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(org_code);
  if (it == entries_.end()) return std::nullopt;
  const Entry& e = it->second;
  const absl::Duration age = Now() - e.fetched_at;
  if (age < options_.unfollowed_ttl || (e.followed && live_ && age < options_.followed_max_age)) return e.codes;
  cached_codes_ -= e.codes.size();
  entries_.erase(it);
  return std::nullopt;
}

void MembershipOrganisationTree::Keep(const std::string& org_code, Entry entry) {
  std::lock_guard<std::mutex> lock(mu_);
  // An organisation moved after this answer was read, and the follower has seen it already.
  if (entry.as_of_seq < last_tree_change_) return;
  if (entry.codes.size() > options_.max_cached_codes) return;
  if (watch_ && !followed_from_) {
    // The follower starts from the first answer's position.
    followed_from_ = entry.as_of_seq;
    followed_upto_ = entry.as_of_seq;
    wake_.notify_all();
  }
  entry.followed = followed_from_.has_value() && entry.as_of_seq >= *followed_from_;
  if (auto old = entries_.find(org_code); old != entries_.end()) {
    cached_codes_ -= old->second.codes.size();
    entries_.erase(old);
  }
  while (cached_codes_ + entry.codes.size() > options_.max_cached_codes && !entries_.empty()) {
    auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
      return a.second.fetched_at < b.second.fetched_at;
    });
    cached_codes_ -= oldest->second.codes.size();
    entries_.erase(oldest);
  }
  cached_codes_ += entry.codes.size();
  entries_.emplace(org_code, std::move(entry));
}

void MembershipOrganisationTree::Apply(const mv1::Change& change) {
  std::lock_guard<std::mutex> lock(mu_);
  if (change.seq() <= followed_upto_) return;
  followed_upto_ = change.seq();
  // Members and kin do not move organisations; an "updated" organisation keeps its place (its
  // parent is changed by a move only).
  if (change.entity() != "organisation" || change.kind() == "updated") return;
  last_tree_change_ = change.seq();
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.as_of_seq < change.seq()) {
      cached_codes_ -= it->second.codes.size();
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

void MembershipOrganisationTree::Follow() {
  common::Backoff backoff(options_.reconnect);
  bool warned = false;  // once per run of failures
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || followed_from_.has_value(); });
    if (stopping_) return;
    const int64_t after = followed_upto_;
    lock.unlock();
    std::unique_ptr<ChangeStream> stream = watch_(after);
    lock.lock();
    if (stopping_) return;
    stream_ = stream.get();
    live_ = true;
    lock.unlock();

    const absl::Time opened = absl::Now();
    int64_t delivered = 0;
    for (mv1::Change change; stream->Read(&change); ++delivered) Apply(change);
    const absl::Status status = stream->Finish();

    lock.lock();
    stream_ = nullptr;
    live_ = false;
    // Whatever the feed brings from here on may come late: what is kept lives the short TTL.
    for (auto& [code, entry] : entries_) entry.followed = false;
    if (stopping_) return;
    if (status.code() == absl::StatusCode::kOutOfRange) {
      // The feed no longer reaches this far (membership's history was replaced): nothing kept can
      // be trusted; follow again from the next answer's position.
      entries_.clear();
      cached_codes_ = 0;
      followed_from_.reset();
      followed_upto_ = 0;
      last_tree_change_ = 0;
      common::LogWarning("membership's change feed is behind the position followed; cached subtrees dropped",
                         {{"target", target_}, {"after_seq", after}});
      continue;
    }
    const bool healthy = delivered > 0 || absl::Now() - opened > absl::Seconds(5);
    if (healthy) {
      backoff.Reset();
      warned = false;
    }
    if (!warned) {
      common::LogWarning("membership's change feed is not followed; cached subtrees are used for 30 s at most",
                         {{"target", target_},
                          {"code", absl::StatusCodeToString(status.code())},
                          {"followed_upto", followed_upto_}});
      warned = true;
    }
    wake_.wait_for(lock, absl::ToChronoMilliseconds(backoff.Next()), [this] { return stopping_; });
    if (stopping_) return;
  }
}

std::optional<int64_t> MembershipOrganisationTree::followed_upto() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!followed_from_) return std::nullopt;
  return followed_upto_;
}

bool MembershipOrganisationTree::following() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_;
}

ListSubtreeCall GrpcListSubtree(std::shared_ptr<common::PeerClient> peer) {
  std::shared_ptr<mv1::OrganisationService::Stub> stub = mv1::OrganisationService::NewStub(peer->channel());
  const std::string method = absl::StrCat("/", mv1::OrganisationService::service_full_name(), "/ListSubtree");
  return [peer, stub, method](const mv1::ListSubtreeRequest& request,
                              absl::Time deadline) -> absl::StatusOr<mv1::ListSubtreeResponse> {
    common::CallOptions options;
    options.deadline = deadline;
    return peer->Call(*stub, &mv1::OrganisationService::Stub::ListSubtree, method, request, options);
  };
}

namespace {

class GrpcChangeStream final : public ChangeStream {
 public:
  GrpcChangeStream(std::shared_ptr<grpc::Channel> channel, std::shared_ptr<mv1::MemberService::Stub> stub,
                   std::unique_ptr<grpc::ClientContext> context, int64_t after_seq)
      : channel_(std::move(channel)), stub_(std::move(stub)), context_(std::move(context)), after_seq_(after_seq) {}
  ~GrpcChangeStream() override {
    done_ = true;
    if (watcher_.joinable()) watcher_.join();
  }
  bool Read(mv1::Change* change) override {
    if (!reader_) {
      mv1::WatchChangesRequest request;
      request.set_after_seq(after_seq_);
      request.set_follow(true);
      reader_ = stub_->WatchChanges(context_.get(), request);
      watcher_ = std::thread([this] { EndWhenTheConnectionGoes(); });
    }
    return reader_->Read(change);
  }
  absl::Status Finish() override {
    if (!reader_) return absl::CancelledError("the change feed was never opened");
    return common::FromGrpcStatus(reader_->Finish());
  }
  void Cancel() override { context_->TryCancel(); }

 private:
  // A membership that drains (SIGTERM, a rolling update) says so on the connection (GOAWAY: the
  // channel leaves READY) but lets an open stream run until its drain timeout; ending the stream
  // then lets it stop at once, and the follower reopens the feed (on another replica, or later).
  void EndWhenTheConnectionGoes() {
    bool was_ready = false;
    grpc_connectivity_state state = channel_->GetState(false);
    if (state == GRPC_CHANNEL_SHUTDOWN) return;  // not a channel to a server (an in-process one)
    while (!done_) {
      if (state == GRPC_CHANNEL_READY) {
        was_ready = true;
      } else if (was_ready) {
        context_->TryCancel();
        return;
      }
      if (channel_->WaitForStateChange(state, std::chrono::system_clock::now() + std::chrono::milliseconds(250))) {
        state = channel_->GetState(false);
      }
    }
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<mv1::MemberService::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> context_;
  int64_t after_seq_;
  std::unique_ptr<grpc::ClientReader<mv1::Change>> reader_;
  std::atomic<bool> done_{false};
  std::thread watcher_;
};

}  // namespace

OpenChangeStream GrpcWatchChanges(std::shared_ptr<common::PeerClient> peer) {
  std::shared_ptr<mv1::MemberService::Stub> stub = mv1::MemberService::NewStub(peer->channel());
  return [peer, stub](int64_t after_seq) -> std::unique_ptr<ChangeStream> {
    // No deadline: the stream follows the feed until it breaks or is cancelled.
    return std::make_unique<GrpcChangeStream>(peer->channel(), stub,
                                              peer->NewContext(common::CallOptions(), absl::InfiniteFuture()),
                                              after_seq);
  };
}

}  // namespace grassroots::cadrepay
