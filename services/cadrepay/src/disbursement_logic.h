#pragma once
// The disbursement use cases: ingest of the six interchange files, the roll and entitlement
// reads, the check (load the scope, run the pure engine, store the run and its findings),
// findings export and review, and public disclosure. Plain class over a connection pool; the
// gRPC handler is a thin adapter around it.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "disbursement/disbursement_engine.h"
#include "disbursement_repository.h"
#include "grassroots/cadrepay/v1/cadrepay.pb.h"
#include "grassroots/common/checks/operations.h"
#include "grassroots/common/checks/review_store.h"
#include "grassroots/common/db.h"
#include "grassroots/common/pii.h"
#include "grassroots/common/validate.h"
#include "grassroots/exchange/v1/exchange.pb.h"
#include "kinship_source.h"
#include "organisation_tree.h"
#include "person_number_cache.h"

namespace prometheus {
class Registry;
}

namespace grassroots::cadrepay {

enum class FileKind { kProgrammes, kEnrolments, kRecipients, kPayments, kBatches, kCivilEvents };
std::string_view FileKindName(FileKind kind);

// A programme and period whose batch is due for an automatic check.
struct DueScope {
  std::string program_code;
  std::string period;
};

class DisbursementLogic final {
 public:
  using Clock = std::function<absl::Time()>;
  // Entries of the person number cache (PersonNumberCache) by default: at 5,000,000 persons it
  // holds about 210 MB; 7,000,000 stay within the same table size (its next growth doubles it).
  static constexpr size_t kDefaultPersonCacheEntries = 7'000'000;
  // `registry` may be null (tests). `clock` defaults to absl::Now. `person_cache_entries`: 0
  // disables the cache (every ingest looks its persons up in the database). `tree`: the
  // organisations under an organisation, for reads by village subtree; null: an organisation
  // stands for itself only (SingleOrganisation).
  DisbursementLogic(common::ConnectionPool& pool, const common::PiiProtector& pii, KinshipSource& kinship,
                    prometheus::Registry* registry, Clock clock = nullptr,
                    size_t person_cache_entries = kDefaultPersonCacheEntries, OrganisationTree* tree = nullptr);
  ~DisbursementLogic();

  // Reads one file fed in chunks, writing as it goes inside one transaction committed by
  // Finish() (a cancelled ingest writes nothing).
  class Ingest {
   public:
    virtual ~Ingest() = default;
    virtual void Feed(std::string_view chunk) = 0;
    virtual absl::StatusOr<exchange::v1::ImportReport> Finish() = 0;
  };
  std::unique_ptr<Ingest> StartIngest(FileKind kind);

  // The errors of an ingest whose report could not carry them all (common/import_errors.h).
  absl::StatusOr<exchange::v1::ListImportErrorsResponse> ListImportErrors(
      const exchange::v1::ListImportErrorsRequest& request, absl::Time deadline);
  absl::StatusOr<v1::ListProgrammesResponse> ListProgrammes(absl::Time deadline);
  // The rolls of every village in the subtree of request.org_code (NOT_FOUND for an organisation
  // the member registry does not know). `pii`: the caller may see personal data (clear ID
  // numbers, names, account numbers).
  absl::StatusOr<v1::ListRecipientsResponse> ListRecipients(const v1::ListRecipientsRequest& request, bool pii,
                                                            absl::Time deadline);
  // The enrolments (ListEnrolments) and civil events (ListCivilEvents) of the persons on the
  // rolls of every village in the subtree of request.org_code, as ListRecipients.
  absl::StatusOr<v1::ListEnrolmentsResponse> ListEnrolments(const v1::ListEnrolmentsRequest& request, bool pii,
                                                            absl::Time deadline);
  absl::StatusOr<v1::ListCivilEventsResponse> ListCivilEvents(const v1::ListCivilEventsRequest& request, bool pii,
                                                              absl::Time deadline);
  absl::StatusOr<v1::ListEntitlementsResponse> ListEntitlements(const v1::ListEntitlementsRequest& request, bool pii,
                                                                absl::Time deadline);

  // Who asks for the automated check.
  static constexpr const char* kScheduler = "scheduler";
  // How long RunCheck waits for the run before answering with it RUNNING.
  static constexpr absl::Duration kAnswerWithin = absl::Seconds(10);
  // Starts the check over the scope (or joins the run of that scope going, on any replica: the
  // shared operations, common/checks), then answers with the run when it ends, or RUNNING with
  // its progress after `answer_within` or half a second before `deadline`. A run that failed
  // within the wait answers its error (NOT_FOUND, FAILED_PRECONDITION... as before). The run goes
  // on whether or not the caller stays. `requested_by`: the caller's identity, or kScheduler.
  absl::StatusOr<v1::CheckRun> RunCheck(const v1::RunCheckRequest& request, const std::string& requested_by = "",
                                        absl::Time deadline = absl::InfiniteFuture(),
                                        absl::Duration answer_within = kAnswerWithin);
  // A run by id (state and progress while it goes), or "latest": the most recent finished run.
  absl::StatusOr<v1::CheckRun> GetCheckRun(const std::string& run_id, absl::Time deadline);
  // Waits until the run has ended or `until`; the run as it stands then.
  absl::StatusOr<v1::CheckRun> WaitCheckRun(const std::string& run_id, absl::Time until);
  // A finding of the latest run that has it, with its review history.
  absl::StatusOr<v1::Finding> GetFinding(const std::string& finding_id, bool pii, absl::Time deadline);
  // ID numbers clear when `pii` (the caller may see personal data), masked otherwise.
  absl::StatusOr<v1::ListFindingsResponse> ListFindings(const v1::ListFindingsRequest& request, bool pii,
                                                        absl::Time deadline);
  // findings.csv of a run, in chunks. `sink` returns false to stop.
  absl::Status ExportFindings(const v1::ExportFindingsRequest& request,
                              const std::function<bool(std::string_view)>& sink);
  // The finding after the review, shown as ListFindings shows it, with its review history.
  // `reviewer`: the caller's identity (never request.reviewer).
  absl::StatusOr<v1::Finding> ReviewFinding(const v1::ReviewFindingRequest& request, const std::string& reviewer,
                                            bool pii, absl::Time deadline);
  absl::StatusOr<v1::ListDisclosureResponse> ListDisclosure(const v1::ListDisclosureRequest& request,
                                                            absl::Time deadline);

  // Scheduler support: the (programme, period) of every batch whose scheduled_on + grace_days
  // is before `today` and which no run has checked at the current data generation.
  absl::StatusOr<std::vector<DueScope>> DueScopes(absl::CivilDay today);

  // Tests only: runs on a check's second connection after its persons are read, before it takes
  // its own snapshot (so a test can commit an ingest in between).
  void SetBeforeSecondSnapshotForTest(std::function<void()> hook) { before_second_snapshot_ = std::move(hook); }

  const common::PiiProtector& pii() const { return pii_; }
  absl::Time Now() const { return clock_(); }

 private:
  // What every read by village subtree starts with: the page size, the page token (its village
  // and the last row's key there, `key_parts` values, the person number second), the
  // organisations under org_code in code order (OrganisationTree), and a connection.
  struct SubtreeRead {
    int page_size = 0;
    std::optional<std::pair<std::string, SqlRow>> token;
    std::vector<std::string> villages;
    common::PooledConnection conn;
  };
  // `scope` names the listing and the request's filters: a token of another is refused.
  absl::StatusOr<SubtreeRead> StartSubtreeRead(const std::string& org_code, int page_size,
                                               const std::string& page_token, const std::string& scope,
                                               size_t key_parts, absl::Time deadline);
  // These persons' ID numbers by hash, in clear with the right to see personal data, masked otherwise.
  absl::StatusOr<std::unordered_map<std::string, std::string>> ShownIdNumbers(common::PooledConnection& conn,
                                                                              const std::vector<std::string>& hashes,
                                                                              bool pii);
  // OK for an empty code or a stored programme; NOT_FOUND naming program_code otherwise; with
  // `period`, INVALID_ARGUMENT naming period when it is not of the programme's form.
  absl::Status KnownProgramme(common::PooledConnection& conn, const std::string& program_code,
                              const common::Period* period = nullptr);
  // The engine's input for deciding the entitlements of these enrolled persons to `programme`
  // (ListEntitlements), and each person's key (ID number) by hash.
  struct EntitlementData {
    DisbursementInput in;
    absl::flat_hash_map<std::string, PersonKey> key_of_hash;
  };
  absl::StatusOr<EntitlementData> EntitlementInput(common::PooledConnection& conn,
                                                   const std::vector<ProgrammeRow>& programmes,
                                                   const ProgrammeRow& programme,
                                                   const std::vector<std::string>& hashes);
  // The run of a check as the caller sees it: the stored run once it succeeded, else what its
  // operation says.
  absl::StatusOr<v1::CheckRun> ShownRun(const common::checks::Operation& op);
  // The check itself (what RunCheck starts): reads the scope, runs the engine, stores the run
  // and its findings under `run_id`.
  absl::Status ExecuteCheck(const v1::RunCheckRequest& request, std::optional<common::Period> period,
                            absl::CivilDay as_of, absl::Time started, const std::string& run_id,
                            const std::string& triggered_by, common::checks::ProgressReporter& progress);
  // The finding with its review history, as shown to the caller.
  absl::StatusOr<v1::Finding> FindingWithHistory(common::PooledConnection& conn, const FindingRecord& f, bool pii);
  friend class IngestBase;
  struct Metrics;
  common::ConnectionPool& pool_;
  const common::PiiProtector& pii_;
  KinshipSource& kinship_;
  std::unique_ptr<OrganisationTree> own_tree_;  // when none was given
  OrganisationTree& tree_;
  Clock clock_;
  DisbursementRepository repo_;
  PersonNumberCache person_numbers_;
  std::unique_ptr<Metrics> metrics_;
  std::function<void()> before_second_snapshot_;  // tests only
  common::checks::ReviewStore reviews_;
  std::unique_ptr<common::checks::OperationRunner> runs_;  // last: its runs end before the rest goes
};

// An id for a check run started at `started` (time and random suffix, at most 40 characters).
std::string NewCheckRunId(absl::Time started);

// The stable identity of a finding across runs (32 hex characters).
std::string FindingIdOf(std::string_view rule, std::string_view program_code, std::string_view period,
                        std::string_view id_hash, std::string_view payment_id, std::string_view batch_id);

}  // namespace grassroots::cadrepay
