#pragma once
// Which organisations a read "by village subtree" covers: the organisation asked for and every
// organisation under it in the member registry's tree (county -> township -> village). The
// registry is membership's; cadrepay keeps no copy of the tree, only recent answers.
//
// MembershipOrganisationTree asks membership for the whole subtree in one call
// (OrganisationService.ListSubtree, from the paths membership stores; a page per 5,000
// organisations, so a county is one call) through common::PeerClient (the caller's deadline,
// request id, retries of UNAVAILABLE, metrics). Answers are kept per org_code:
// - while membership's change feed is followed (MemberService.WatchChanges, a thread of this
//   class, from the feed position the first answer reflects), an answer is kept until an
//   organisation is created, moved or deleted (a change of entity "organisation" other than
//   "updated", which changes no code's place), or for at most `followed_max_age`;
// - while the feed cannot be followed (membership down, the stream broken, no feed configured),
//   an answer is used for at most `unfollowed_ttl` (30 s) after it was fetched.
// Without a membership address (SingleOrganisation) an organisation stands for itself only: the
// roll of that one village, and an empty list for a code nobody registered.
//
// The fetching, paging, errors and cache are a plain class over a call function and a stream
// opener, so they are tested with fakes; GrpcListSubtree and GrpcWatchChanges are the real ones.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grassroots/common/peer_client.h"
#include "grassroots/membership/v1/members.pb.h"
#include "grassroots/membership/v1/membership.pb.h"

namespace grassroots::cadrepay {

class OrganisationTree {
 public:
  virtual ~OrganisationTree() = default;
  // The codes of `org_code` and of every organisation under it, sorted and distinct. NOT_FOUND
  // (naming the field org_code) when the registry has no such organisation; UNAVAILABLE when the
  // registry cannot be asked (a partial subtree is never returned).
  virtual absl::StatusOr<std::vector<std::string>> Subtree(const std::string& org_code) = 0;
  // OK when the registry knows `org_code`; NOT_FOUND and UNAVAILABLE as Subtree.
  virtual absl::Status Known(const std::string& org_code) = 0;
  // The same, within the caller's deadline (the deadline of the RPC being served): the calls to
  // the registry end by it. A tree that asks nobody ignores it.
  virtual absl::StatusOr<std::vector<std::string>> Subtree(const std::string& org_code, absl::Time deadline) {
    return Subtree(org_code);
  }
  virtual absl::Status Known(const std::string& org_code, absl::Time deadline) { return Known(org_code); }
};

// No member registry configured: the organisation alone.
class SingleOrganisation final : public OrganisationTree {
 public:
  using OrganisationTree::Known;
  using OrganisationTree::Subtree;
  absl::StatusOr<std::vector<std::string>> Subtree(const std::string& org_code) override {
    return std::vector<std::string>{org_code};
  }
  absl::Status Known(const std::string&) override { return absl::OkStatus(); }
};

// One ListSubtree call within `deadline`: membership's answer or the status the call ended with.
using ListSubtreeCall = std::function<absl::StatusOr<membership::v1::ListSubtreeResponse>(
    const membership::v1::ListSubtreeRequest&, absl::Time deadline)>;

// One open WatchChanges stream (follow = true).
class ChangeStream {
 public:
  virtual ~ChangeStream() = default;
  // The next change; false when the stream ended (then Finish says why).
  virtual bool Read(membership::v1::Change* change) = 0;
  virtual absl::Status Finish() = 0;
  // Ends a Read waiting in another thread (and any later one); callable before the first Read.
  virtual void Cancel() = 0;
};
// Opens the feed after `after_seq`. Cheap: the call itself starts on the first Read.
using OpenChangeStream = std::function<std::unique_ptr<ChangeStream>(int64_t after_seq)>;

class MembershipOrganisationTree final : public OrganisationTree {
 public:
  // A subtree larger than this is refused (FAILED_PRECONDITION): a province has some tens of
  // thousands of organisations; more would mean a tree gone wrong.
  static constexpr size_t kMaxOrganisations = 500'000;

  struct Options {
    size_t max_organisations = kMaxOrganisations;
    // How long an answer is used while the feed is not followed.
    absl::Duration unfollowed_ttl = absl::Seconds(30);
    // How long an answer is used at most while the feed is followed.
    absl::Duration followed_max_age = absl::Minutes(10);
    // Codes kept in all (about 40 bytes each); the answers fetched first go first beyond it.
    size_t max_cached_codes = 500'000;
    // The follower's waits between attempts to reopen the feed (max_attempts is not used).
    common::RetryPolicy reconnect = {.initial_backoff = absl::Milliseconds(500), .max_backoff = absl::Seconds(10)};
    // The clock of the cache (tests).
    std::function<absl::Time()> now;
  };

  // `target` names membership in errors ("membership at host:port"). Without `watch` no feed is
  // followed and every answer lives `unfollowed_ttl`. With it, a thread follows the feed from
  // the first answer on; it ends with this object.
  MembershipOrganisationTree(ListSubtreeCall call, std::string target, Options options,
                             OpenChangeStream watch = nullptr);
  MembershipOrganisationTree(ListSubtreeCall call, std::string target)
      : MembershipOrganisationTree(std::move(call), std::move(target), Options()) {}
  ~MembershipOrganisationTree() override;

  absl::StatusOr<std::vector<std::string>> Subtree(const std::string& org_code) override {
    return Subtree(org_code, absl::InfiniteFuture());
  }
  absl::Status Known(const std::string& org_code) override { return Known(org_code, absl::InfiniteFuture()); }
  absl::StatusOr<std::vector<std::string>> Subtree(const std::string& org_code, absl::Time deadline) override;
  // The subtree's first answer (kept as Subtree keeps it).
  absl::Status Known(const std::string& org_code, absl::Time deadline) override;

  // The feed's position the follower has applied (nullopt before it started), and whether its
  // stream is open: for tests and logs.
  std::optional<int64_t> followed_upto() const;
  bool following() const;

 private:
  struct Entry {
    std::vector<std::string> codes;
    int64_t as_of_seq = 0;
    absl::Time fetched_at;
    // The follower will see every change after as_of_seq (it is not, once its stream broke:
    // then the answer lives unfollowed_ttl).
    bool followed = false;
  };
  // The whole subtree from membership, page by page, with the feed position of its first page.
  absl::StatusOr<Entry> Fetch(const std::string& org_code, absl::Time deadline);
  // The status of a failed call about `org_code`, as the caller should see it.
  absl::Status Failure(const std::string& org_code, const absl::Status& status) const;
  std::optional<std::vector<std::string>> Cached(const std::string& org_code);
  void Keep(const std::string& org_code, Entry entry);
  void Apply(const membership::v1::Change& change);
  void Follow();
  absl::Time Now() const { return options_.now(); }

  ListSubtreeCall call_;
  std::string target_;
  Options options_;
  OpenChangeStream watch_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::map<std::string, Entry> entries_;
  size_t cached_codes_ = 0;
  // The follower: where its feed began (answers reflecting an earlier position were not
  // followed from their own), how far it has applied the feed, and the last change that moved an
  // organisation (an answer older than it is out of date).
  std::optional<int64_t> followed_from_;
  int64_t followed_upto_ = 0;
  int64_t last_tree_change_ = 0;
  bool live_ = false;
  bool stopping_ = false;
  ChangeStream* stream_ = nullptr;  // the open stream, to cancel it
  std::thread follower_;
};

// OrganisationService.ListSubtree through `peer` (common::PeerClient: deadline, request id,
// retries of UNAVAILABLE, metrics).
ListSubtreeCall GrpcListSubtree(std::shared_ptr<common::PeerClient> peer);
// MemberService.WatchChanges (follow = true) through `peer`'s channel, with its request id.
OpenChangeStream GrpcWatchChanges(std::shared_ptr<common::PeerClient> peer);

}  // namespace grassroots::cadrepay
