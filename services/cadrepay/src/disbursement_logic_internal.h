// Shared by the source files of DisbursementLogic (disbursement_logic.cc: reads and disclosure;
// disbursement_ingest.cc: the file ingests; disbursement_check.cc: the check and its findings).
// Not an interface of the service: include it from those files only.
#ifndef GRASSROOTS_SERVICES_CADREPAY_SRC_DISBURSEMENT_LOGIC_INTERNAL_H_
#define GRASSROOTS_SERVICES_CADREPAY_SRC_DISBURSEMENT_LOGIC_INTERNAL_H_

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "disbursement/disbursement_engine.h"
#include "disbursement_logic.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {
namespace logic_internal {

// A page size as asked (0: the default), or INVALID_ARGUMENT naming `field`.
absl::StatusOr<int> PageSize(int requested, std::string_view field = "page_size");

// Page tokens: web-safe base64 of the request's scope (what a listing is of: its name and the
// request's own filters, e.g. "disclosure:V001/2026-03/GDBT") and the position's fields, joined
// by '\x1f'. ReadToken refuses (INVALID_ARGUMENT, page_token) a token of another scope (issued
// for another listing, village, programme, period or filter) or without `parts` fields, and
// returns the position's fields.
std::string MakeToken(const std::string& scope, const std::vector<std::string>& parts);
absl::StatusOr<std::vector<std::string>> ReadToken(const std::string& token, const std::string& scope, size_t parts);

std::string S(absl::string_view v);

// "programme X is monthly: its periods are YYYY-MM" (or yearly: YYYY).
std::string PeriodFormMessage(const std::string& program_code, const std::string& frequency);

// A code field (programme, organisation): INVALID_ARGUMENT when missing (if required) or malformed.
absl::Status CheckCode(std::string_view field, const std::string& code, bool required);
// A period field: required, YYYY-MM or YYYY.
absl::StatusOr<common::Period> CheckPeriod(std::string_view field, const std::string& period);
// NOT_FOUND naming the field and the programme.
absl::Status ProgrammeNotFound(std::string_view field, const std::string& code);

// A stored programme as the engine reads it.
Programme EngineProgramme(const ProgrammeRow& p);
}  // namespace logic_internal

// ---------------------------------------------------------------------------------------------
// Metrics

struct DisbursementLogic::Metrics {
  prometheus::Family<prometheus::Gauge>* findings = nullptr;
  prometheus::Family<prometheus::Counter>* rows = nullptr;
  prometheus::Counter* runs = nullptr;
  prometheus::Counter* failed_runs = nullptr;
  prometheus::Gauge* last_run_seconds = nullptr;
  prometheus::Counter* persons_from_cache = nullptr;
  prometheus::Counter* persons_from_database = nullptr;
  prometheus::Gauge* person_cache_entries = nullptr;

  explicit Metrics(prometheus::Registry* registry) {
    if (registry == nullptr) return;
    findings = &prometheus::BuildGauge()
                    .Name("grassroots_cadrepay_findings")
                    .Help("Findings of the latest disbursement check run, by rule (whatever its scope: one programme "
                          "and period, or all)")
                    .Register(*registry);
    rows = &prometheus::BuildCounter()
                .Name("grassroots_cadrepay_ingested_rows_total")
                .Help("Rows of interchange files ingested, by file and outcome")
                .Register(*registry);
    auto& run_family = prometheus::BuildCounter()
                           .Name("grassroots_cadrepay_check_runs_total")
                           .Help("Disbursement check runs, by result")
                           .Register(*registry);
    runs = &run_family.Add({{"result", "ok"}});
    failed_runs = &run_family.Add({{"result", "error"}});
    last_run_seconds = &prometheus::BuildGauge()
                            .Name("grassroots_cadrepay_check_run_seconds")
                            .Help("Duration of the latest disbursement check run")
                            .Register(*registry)
                            .Add({});
    for (int r = 0; r < kRuleCount; ++r) findings->Add({{"rule", std::string(RuleCode(static_cast<Rule>(r)))}});
    auto& lookups = prometheus::BuildCounter()
                        .Name("grassroots_cadrepay_person_number_lookups_total")
                        .Help("Persons an ingest looked for (not met earlier in its file): found in the cache, or looked "
                              "for in the database (found there, or new)")
                        .Register(*registry);
    persons_from_cache = &lookups.Add({{"source", "cache"}});
    persons_from_database = &lookups.Add({{"source", "database"}});
    person_cache_entries = &prometheus::BuildGauge()
                                .Name("grassroots_cadrepay_person_number_cache_entries")
                                .Help("Committed person numbers held by this process's person number cache")
                                .Register(*registry)
                                .Add({});
  }
  void PersonLookups(size_t from_cache, size_t from_database) {
    if (persons_from_cache == nullptr) return;
    persons_from_cache->Increment(static_cast<double>(from_cache));
    persons_from_database->Increment(static_cast<double>(from_database));
  }
  void PersonCacheSize(size_t entries) {
    if (person_cache_entries != nullptr) person_cache_entries->Set(static_cast<double>(entries));
  }
  void Ingested(FileKind kind, const exchange::v1::ImportReport& report) {
    if (rows == nullptr) return;
    const std::string file(FileKindName(kind));
    rows->Add({{"file", file}, {"outcome", "inserted"}}).Increment(static_cast<double>(report.inserted()));
    rows->Add({{"file", file}, {"outcome", "updated"}}).Increment(static_cast<double>(report.updated()));
    rows->Add({{"file", file}, {"outcome", "unchanged"}}).Increment(static_cast<double>(report.unchanged()));
    rows->Add({{"file", file}, {"outcome", "refused"}}).Increment(static_cast<double>(report.refused()));
  }
  void Ran(const std::array<int64_t, kRuleCount>& counts, double seconds) {
    if (findings == nullptr) return;
    runs->Increment();
    last_run_seconds->Set(seconds);
    for (int r = 0; r < kRuleCount; ++r) {
      findings->Add({{"rule", std::string(RuleCode(static_cast<Rule>(r)))}}).Set(static_cast<double>(counts[r]));
    }
  }
  void Failed() {
    if (failed_runs != nullptr) failed_runs->Increment();
  }
};

}  // namespace grassroots::cadrepay

#endif  // GRASSROOTS_SERVICES_CADREPAY_SRC_DISBURSEMENT_LOGIC_INTERNAL_H_
