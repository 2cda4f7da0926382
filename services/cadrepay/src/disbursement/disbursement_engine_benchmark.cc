// Throughput of the disbursement checks on a synthetic province: N recipients in households of
// 1 to 4, about 2N payments for one month (a person programme for everyone, a second one for
// 60%, a household programme for every head), 1% planted anomalies, 0.5% reversals.
//
//   disbursement_engine_benchmark                        (N = 250,000 and 1,000,000)
//   GRASSROOTS_BENCH_PEOPLE=5000000 disbursement_engine_benchmark   (a province: 10M payments)
//   GRASSROOTS_BENCH_SHUFFLE=1 ...   rows in random order (the engine then sorts them)
//
// Reports payments per second and the process's peak RSS (input included).

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "disbursement/disbursement_engine.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {
namespace {

double PeakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

std::unique_ptr<DisbursementInput> MakeProvince(int64_t people) {
  auto in = std::make_unique<DisbursementInput>();
  std::mt19937_64 rng(20260315);
  auto chance = [&rng](int per_thousand) {
    return std::uniform_int_distribution<int>(0, 999)(rng) < per_thousand;
  };
  const PeriodCode march = PeriodCodeOf(*common::ParsePeriod("2026-03"));
  const PeriodCode from = PeriodCodeOf(*common::ParsePeriod("2025-01"));
  auto programme = [&](const char* code, int64_t amount, ProgrammeUnit unit, bool excludes) {
    Programme p;
    p.code = code;
    p.amount_fen = amount;
    p.unit = unit;
    p.valid_from = *common::ParsePeriod("2025-01");
    p.excludes_cadre_households = excludes;
    in->programmes.push_back(p);
    return in->symbols.Intern(code);
  };
  const Symbol pa = programme("GDLB", 12000, ProgrammeUnit::kPerson, true);
  const Symbol pb = programme("YLBX", 8000, ProgrammeUnit::kPerson, false);
  const Symbol ph = programme("HHDB", 30000, ProgrammeUnit::kHousehold, false);
  const Symbol batch_a = in->symbols.Intern("GDLB-2026-03");
  const Symbol batch_b = in->symbols.Intern("YLBX-2026-03");
  const Symbol batch_h = in->symbols.Intern("HHDB-2026-03");
  const absl::Time base = *common::ParseTimestamp("2026-03-15T09:00:00+08:00");
  const DayNumber since = DayNumberOf(absl::CivilDay(2024, 1, 1));

  in->recipients.reserve(people);
  in->enrolments.reserve(people * 2);
  in->payments.reserve(people * 21 / 10);
  int64_t serial = 0;
  std::string scratch;
  auto pay = [&](PersonKey person, Symbol program, Symbol batch, Symbol account, int64_t amount) {
    Payment p;
    scratch = absl::StrFormat("P%012d", ++serial);
    p.payment_id = in->text.Add(scratch);
    p.paid_at_us = PaidAtMicros(base + absl::Seconds(serial % 86400));
    p.person = person;
    p.amount_fen = amount;
    p.batch = batch;
    p.program = program;
    p.account = account;
    p.period = march;
    if (chance(10)) p.amount_fen += 100;                                   // over paid
    if (chance(5)) p.paid_at_us += int64_t{8} * 86400 * 1000000;          // late
    if (chance(5)) p.account = in->symbols.Intern(absl::StrCat("9", serial));  // wrong account
    in->payments.push_back(p);
    if (chance(5)) {  // reversed in part
      Payment r = p;
      scratch = absl::StrFormat("R%012d", serial);
      r.payment_id = in->text.Add(scratch);
      r.reverses = p.payment_id;
      r.amount_fen = -1000;
      r.paid_at_us += int64_t{2} * 3600 * 1000000;
      in->payments.push_back(r);
    }
  };
  int64_t n = 0;
  int64_t household = 0;
  while (n < people) {
    const Symbol hh = in->symbols.Intern(absl::StrFormat("32070200100%08d", ++household));
    const int size = std::uniform_int_distribution<int>(1, 4)(rng);
    for (int m = 0; m < size && n < people; ++m, ++n) {
      // Distinct, well-formed keys (the check digit does not matter to the engine).
      const PersonKey person = (320702195001010000ULL / 10 + static_cast<uint64_t>(n)) * 11;
      const Symbol account = in->symbols.Intern(absl::StrFormat("622848%012d", n));
      in->recipients.push_back(RecipientRow{person, hh, account, since, m == 0, chance(2)});
      if (chance(2)) {
        in->civil_events.push_back(CivilEvent{person, CivilEventKind::kDeath,
                                              absl::CivilDay(2026, 2, 1)});
      }
      in->enrolments.push_back(Enrolment{person, kProgrammeAmount, pa, from, kOpenPeriod});
      if (!chance(10)) pay(person, pa, batch_a, account, 12000);  // 1% unpaid
      if (chance(600)) {
        in->enrolments.push_back(Enrolment{person, kProgrammeAmount, pb, from, kOpenPeriod});
        pay(person, pb, batch_b, account, 8000);
      }
      if (m == 0) {
        in->enrolments.push_back(Enrolment{person, kProgrammeAmount, ph, from, kOpenPeriod});
        pay(person, ph, batch_h, account, 30000);
      }
    }
  }
  if (std::getenv("GRASSROOTS_BENCH_SHUFFLE") != nullptr) {  // rows in no particular order
    std::shuffle(in->payments.begin(), in->payments.end(), rng);
    std::shuffle(in->enrolments.begin(), in->enrolments.end(), rng);
    std::shuffle(in->recipients.begin(), in->recipients.end(), rng);
  }
  for (const Symbol b : {batch_a, batch_b, batch_h}) {
    const Symbol prog = b == batch_a ? pa : b == batch_b ? pb : ph;
    in->batches.push_back(Batch{b, prog, march, 1, 1, absl::CivilDay(2026, 3, 15)});
  }
  return in;
}

void BM_CheckDisbursements(benchmark::State& state) {
  const int64_t people = state.range(0);
  const std::unique_ptr<DisbursementInput> in = MakeProvince(people);
  const double input_rss = PeakRssMiB();
  CheckOptions options;
  options.as_of = absl::CivilDay(2026, 4, 30);
  options.period = *common::ParsePeriod("2026-03");
  int64_t findings = 0;
  for (auto _ : state) {
    absl::StatusOr<CheckResult> result = CheckDisbursements(*in, options);
    if (!result.ok()) {
      state.SkipWithError(std::string(result.status().message()).c_str());
      return;
    }
    findings = static_cast<int64_t>(result->findings.size());
    benchmark::DoNotOptimize(result->findings.data());
  }
  state.counters["payments"] = static_cast<double>(in->payments.size());
  state.counters["findings"] = static_cast<double>(findings);
  state.counters["payments_per_s"] = benchmark::Counter(
      static_cast<double>(in->payments.size()) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
  state.counters["rss_after_input_MiB"] = input_rss;
  state.counters["peak_rss_MiB"] = PeakRssMiB();
}

}  // namespace
}  // namespace grassroots::cadrepay

int main(int argc, char** argv) {
  auto* bm = benchmark::RegisterBenchmark("BM_CheckDisbursements",
                                          grassroots::cadrepay::BM_CheckDisbursements);
  bm->Unit(benchmark::kMillisecond)->Iterations(1);
  if (const char* env = std::getenv("GRASSROOTS_BENCH_PEOPLE")) {
    bm->Arg(std::atoll(env));
  } else {
    bm->Arg(250000)->Arg(1000000);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
