#pragma once
// The member use cases: register, read, list, lifecycle steps, corrections, history, the
// date-rule run, kinship, the type-fit report, import and export of members.csv. Plain class
// over a connection pool; the gRPC handler is a thin adapter. Every change of a member writes
// the members row and its member_events row (with its change-feed sequence) in one transaction.
//
// `pii` arguments: true when the caller may see personal data (clear ID and phone numbers).

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "change_feed.h"
#include "grassroots/common/db.h"
#include "grassroots/common/pii.h"
#include "grassroots/exchange/v1/exchange.pb.h"
#include "grassroots/membership/v1/members.pb.h"
#include "member_cache.h"
#include "member_repository.h"
#include "organisation_repository.h"

namespace grassroots::membership {

class MemberLogic final {
 public:
  // The errors of an import whose report could not carry them all (common/import_errors.h).
  absl::StatusOr<exchange::v1::ListImportErrorsResponse> ListImportErrors(
      const exchange::v1::ListImportErrorsRequest& request, absl::Time deadline);
  using Clock = std::function<absl::CivilDay()>;
  MemberLogic(common::ConnectionPool& pool, common::PiiProtector pii, Clock today = nullptr);

  absl::StatusOr<v1::Member> Create(const v1::CreateMemberRequest& request, bool pii, absl::Time deadline);
  absl::StatusOr<v1::Member> Get(int64_t member_id, bool pii, absl::Time deadline);
  // Reads go through `cache` from now on (GetMember's path; the cache must outlive this).
  void AttachCache(MemberCache* cache) { cache_ = cache; }
  // Several reads at once (the GetMember coalescer's batch), answered by one query: one result
  // per read, in order, each as Get would answer it alone.
  struct Read {
    int64_t member_id = 0;
    bool pii = false;
    absl::Time deadline = absl::InfiniteFuture();
    bool cache_missed = false;  // GetCached just missed: go straight to the database
  };
  std::vector<absl::StatusOr<v1::Member>> GetMany(const std::vector<Read>& reads);
  // The answer to `read` from the cache alone, or nothing (a miss: ask GetMany).
  std::optional<absl::StatusOr<v1::Member>> GetCached(const Read& read);
  absl::StatusOr<v1::Member> FindByIdNumber(const std::string& id_number, bool pii, absl::Time deadline);
  absl::StatusOr<v1::ListMembersResponse> List(const v1::ListMembersRequest& request, bool pii, absl::Time deadline);
  absl::StatusOr<v1::Member> Step(const v1::StepMemberRequest& request, bool pii, absl::Time deadline);
  absl::StatusOr<v1::Member> Correct(const v1::CorrectMemberRequest& request, bool pii, absl::Time deadline);
  absl::StatusOr<v1::ListMemberEventsResponse> Events(int64_t member_id, absl::Time deadline);
  absl::StatusOr<v1::ListOverdueProbationResponse> Overdue(const v1::ListOverdueProbationRequest& request, bool pii,
                                                           absl::Time deadline);
  // The scheduled date-rule run over the whole registry: the number of overdue probations.
  absl::StatusOr<int64_t> CountOverdue(absl::Time deadline);
  absl::StatusOr<v1::KinRelation> AddKin(const v1::AddKinRequest& request, bool pii, absl::Time deadline);
  absl::StatusOr<v1::ListKinResponse> ListKin(const v1::ListKinRequest& request, bool pii, absl::Time deadline);
  // The recorded kin of a batch of persons by clear ID number (for service peers): one answer
  // per number asked, in the request's order.
  absl::StatusOr<v1::ListKinOfPersonsResponse> ListKinOfPersons(const v1::ListKinOfPersonsRequest& request, bool pii,
                                                                absl::Time deadline);
  absl::StatusOr<v1::TypeFitReport> TypeFit(const std::string& org_code, absl::Time deadline);

  // Streams a subtree's members as members.csv in chunks (constant memory: keyset pages per
  // organisation). `sink` returns false to stop.
  absl::Status Export(const std::string& org_code, bool pii, const std::function<bool(std::string_view)>& sink,
                      size_t chunk_bytes = 64 * 1024);

  // Reads members.csv fed in chunks; validated rows are written in batches while feeding.
  class Import;
  std::unique_ptr<Import> StartImport(std::string recorded_by = "import");

  absl::CivilDay Today() const { return today_(); }

 private:
  friend class Import;
  struct Pending {
    StoredMember* row;   // new state (member_id allocated for a new member)
    EventRow event;      // member_id, version and change_seq filled by Write
    bool fresh = false;  // a new member: inserted, not overwritten
  };
  // Writes the rows and their events (multi-row statements) in the caller's transaction.
  absl::Status Write(sql::Connection& conn, std::vector<Pending>& pending);
  v1::Member Output(const StoredMember& s, bool pii) const;
  v1::Member Output(const CachedMember& c, bool pii) const;
  static std::shared_ptr<const CachedMember> ToCached(const StoredMember& s);
  // After a commit that changed these members: the cache forgets them.
  void Invalidate(const std::vector<int64_t>& member_ids) {
    if (cache_ != nullptr) cache_->Invalidate(member_ids);
  }
  // A relative's ID number as the caller may see it: clear with the right (when it opens), else masked.
  std::string KinIdNumber(const KinRow& k, bool pii) const;
  absl::StatusOr<std::string> SubtreePath(sql::Connection& conn, const std::string& org_code);

  common::ConnectionPool& pool_;
  common::PiiProtector pii_;
  Clock today_;
  MemberRepository repo_;
  OrganisationRepository orgs_;
  ChangeFeedRepository feed_;
  MemberCache* cache_ = nullptr;
};

class MemberLogic::Import final {
 public:
  Import(MemberLogic& logic, std::string recorded_by);
  ~Import();
  void Feed(std::string_view chunk);
  // Writes what is left; returns the report (or the database error that stopped the import:
  // rows committed before it stay, each with its event).
  absl::StatusOr<exchange::v1::ImportReport> Finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace grassroots::membership
