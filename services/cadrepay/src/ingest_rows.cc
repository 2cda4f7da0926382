#include "ingest_rows.h"

#include "absl/strings/str_cat.h"

namespace grassroots::cadrepay {
namespace {

using Columns = std::vector<common::CsvHeader::Column>;

class RowReader final {
 public:
  RowReader(const common::CsvHeader& h, const common::CsvRecord& r) : h_(h), r_(r) {
    if (r.fields.size() != h.width()) {
      Problem(h.FirstMissingColumn(r), "WRONG_FIELD_COUNT", absl::StrCat("has ", r.fields.size(), " fields; the header has ", h.width()));
    }
  }
  std::string_view Get(std::string_view column) const { return h_.Get(r_, column); }
  void Problem(std::string_view column, std::string_view code, std::string_view message) {
    problems_.push_back({std::string(column), std::string(code), std::string(message)});
  }
  void Problem(std::string_view column, std::string_view code, const absl::Status& status) {
    problems_.push_back({std::string(column), std::string(code), std::string(status.message())});
  }
  bool Required(std::string_view column) {
    if (!Get(column).empty()) return true;
    Problem(column, "MISSING_VALUE", absl::StrCat(std::string(column), " is required"));
    return false;
  }
  std::string Code(std::string_view column, std::string_view what) {
    if (!Required(column)) return "";
    std::string v(Get(column));
    if (!common::IsCode(v)) {
      Problem(column, "INVALID_CODE", absl::StrCat(std::string(what), " must be 1 to 32 letters, digits or '-'"));
      return "";
    }
    return v;
  }
  std::string Reference(std::string_view column) {
    if (!Required(column)) return "";
    std::string v(Get(column));
    if (!IsReference(v)) {
      Problem(column, "INVALID_REFERENCE", "must be 1 to 64 printable ASCII characters without spaces");
      return "";
    }
    return v;
  }
  std::string IdNumber(std::string_view column) {
    if (!Required(column)) return "";
    auto id = common::NormaliseIdNumber(Get(column));
    if (!id.ok()) {
      Problem(column, "INVALID_ID_NUMBER", id.status());
      return "";
    }
    return *id;
  }
  std::optional<common::Period> Period(std::string_view column, bool required) {
    if (Get(column).empty()) {
      if (required) Required(column);
      return std::nullopt;
    }
    auto p = common::ParsePeriod(Get(column));
    if (!p.ok()) {
      Problem(column, "INVALID_PERIOD", p.status());
      return std::nullopt;
    }
    return *p;
  }
  std::optional<absl::CivilDay> Date(std::string_view column) {
    if (!Required(column)) return std::nullopt;
    auto d = common::ParseDate(Get(column));
    if (!d.ok()) {
      Problem(column, "INVALID_DATE", d.status());
      return std::nullopt;
    }
    return *d;
  }
  std::optional<int64_t> Fen(std::string_view column, bool required, bool allow_negative) {
    if (Get(column).empty()) {
      if (required) Required(column);
      return std::nullopt;
    }
    auto v = common::ParseFen(Get(column), allow_negative);
    if (!v.ok()) {
      Problem(column, common::kInvalidMoneyCode, v.status());
      return std::nullopt;
    }
    return *v;
  }
  std::optional<int64_t> Count(std::string_view column) {
    if (!Required(column)) return std::nullopt;
    auto v = common::ParseCount(Get(column));
    if (!v.ok()) {
      Problem(column, "INVALID_NUMBER", v.status());
      return std::nullopt;
    }
    return *v;
  }
  // "0" or "1"; empty is `fallback` unless required.
  bool Flag(std::string_view column, bool required, bool fallback = false) {
    std::string_view v = Get(column);
    if (v.empty()) {
      if (required) Required(column);
      return fallback;
    }
    if (v != "0" && v != "1") {
      Problem(column, "INVALID_FLAG", "must be 0 or 1");
      return fallback;
    }
    return v == "1";
  }
  std::string Account(std::string_view column) {
    if (!Required(column)) return "";
    std::string v(Get(column));
    if (!IsAccountNumber(v)) {
      Problem(column, "INVALID_ACCOUNT", absl::StrCat("account number must be 12 to 24 digits (has ", v.size(),
                                                      " characters)"));
      return "";
    }
    return v;
  }
  std::string Text(std::string_view column, int64_t max_chars, bool required) {
    std::string v(Get(column));
    if (v.empty()) {
      if (required) Required(column);
      return v;
    }
    const int64_t n = common::Utf8Length(v);
    if (n < 0) {
      Problem(column, "INVALID_TEXT", "is not valid UTF-8");
    } else if (n > max_chars) {
      Problem(column, "TOO_LONG", absl::StrCat("may have at most ", max_chars, " characters"));
    }
    return v;
  }
  RowProblems Take() { return std::move(problems_); }
  bool ok() const { return problems_.empty(); }

 private:
  const common::CsvHeader& h_;
  const common::CsvRecord& r_;
  RowProblems problems_;
};

}  // namespace

bool IsAccountNumber(std::string_view s) {
  if (s.size() < 12 || s.size() > 24) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool IsReference(std::string_view s, size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  for (char c : s) {
    if (c <= ' ' || c > '~' || c == ',') return false;
  }
  return true;
}

bool PeriodFits(const common::Period& p, std::string_view frequency) {
  return frequency == "monthly" ? p.monthly() : !p.monthly();
}

const Columns& ProgrammeColumns() {
  static const auto* c = new Columns{{"program_code", true}, {"name", true},       {"unit", true},
                                     {"frequency", true},    {"amount_fen", true}, {"valid_from", true},
                                     {"valid_to", false},    {"excludes_cadre_households", false},
                                     {"grace_days", false}};
  return *c;
}
const Columns& EnrolmentColumns() {
  static const auto* c = new Columns{{"program_code", true}, {"id_number", true}, {"amount_fen", false},
                                     {"from_period", true},  {"to_period", false}};
  return *c;
}
const Columns& RecipientColumns() {
  static const auto* c = new Columns{{"id_number", true},   {"name", true},          {"org_code", true},
                                     {"household_id", true}, {"is_household_head", true}, {"account_no", true},
                                     {"account_since", true}, {"is_cadre", false}};
  return *c;
}
const Columns& PaymentColumns() {
  static const auto* c = new Columns{{"payment_id", true}, {"batch_id", true},   {"program_code", true},
                                     {"period", true},     {"id_number", true},  {"account_no", true},
                                     {"amount_fen", true}, {"paid_at", true},    {"reverses", false}};
  return *c;
}
const Columns& BatchColumns() {
  static const auto* c = new Columns{{"batch_id", true},       {"program_code", true},       {"period", true},
                                     {"declared_count", true}, {"declared_total_fen", true}, {"scheduled_on", true}};
  return *c;
}
const Columns& CivilEventColumns() {
  static const auto* c = new Columns{
      {"id_number", true}, {"event", true}, {"event_date", true}, {"source_ref", false}};
  return *c;
}

RowProblems ParseProgramme(const common::CsvHeader& h, const common::CsvRecord& r, ProgrammeRow& out) {
  RowReader rr(h, r);
  out.program_code = rr.Code("program_code", "program_code");
  out.name = rr.Text("name", 100, true);
  out.unit = std::string(rr.Get("unit"));
  if (rr.Required("unit") && out.unit != "person" && out.unit != "household") {
    rr.Problem("unit", "INVALID_VALUE", "must be person or household");
  }
  out.frequency = std::string(rr.Get("frequency"));
  const bool freq_ok = rr.Required("frequency") && (out.frequency == "monthly" || out.frequency == "yearly");
  if (!out.frequency.empty() && !freq_ok) rr.Problem("frequency", "INVALID_VALUE", "must be monthly or yearly");
  if (auto a = rr.Fen("amount_fen", true, false)) out.amount_fen = *a;
  auto from = rr.Period("valid_from", true);
  out.valid_to = rr.Period("valid_to", false);
  if (from) out.valid_from = *from;
  if (freq_ok && from && !PeriodFits(*from, out.frequency)) {
    rr.Problem("valid_from", "PERIOD_FORM", absl::StrCat("a ", out.frequency, " programme's periods are ",
                                                         out.frequency == "monthly" ? "YYYY-MM" : "YYYY"));
  }
  if (freq_ok && out.valid_to && !PeriodFits(*out.valid_to, out.frequency)) {
    rr.Problem("valid_to", "PERIOD_FORM", absl::StrCat("a ", out.frequency, " programme's periods are ",
                                                       out.frequency == "monthly" ? "YYYY-MM" : "YYYY"));
  } else if (from && out.valid_to && *out.valid_to < *from) {
    rr.Problem("valid_to", "BEFORE_START", "valid_to is before valid_from");
  }
  out.excludes_cadre_households = rr.Flag("excludes_cadre_households", false);
  out.grace_days = 5;
  if (!rr.Get("grace_days").empty()) {
    auto g = common::ParseCount(rr.Get("grace_days"));
    if (!g.ok() || *g > 366) {
      rr.Problem("grace_days", "INVALID_NUMBER", "must be a whole number of days from 0 to 366");
    } else {
      out.grace_days = static_cast<int>(*g);
    }
  }
  return rr.Take();
}

RowProblems ParseEnrolment(const common::CsvHeader& h, const common::CsvRecord& r, EnrolmentRow& out) {
  RowReader rr(h, r);
  out.program_code = rr.Code("program_code", "program_code");
  out.id_number = rr.IdNumber("id_number");
  out.amount_fen = rr.Fen("amount_fen", false, false);
  auto from = rr.Period("from_period", true);
  if (from) out.from_period = *from;
  out.to_period = rr.Period("to_period", false);
  if (from && out.to_period) {
    if (from->monthly() != out.to_period->monthly()) {
      rr.Problem("to_period", "PERIOD_FORM", "to_period must have the same form as from_period");
    } else if (*out.to_period < *from) {
      rr.Problem("to_period", "BEFORE_START", "to_period is before from_period");
    }
  }
  return rr.Take();
}

RowProblems ParseRecipient(const common::CsvHeader& h, const common::CsvRecord& r, RecipientCsvRow& out) {
  RowReader rr(h, r);
  out.id_number = rr.IdNumber("id_number");
  out.name = rr.Text("name", 50, true);
  out.org_code = rr.Code("org_code", "org_code");
  out.household_id = rr.Reference("household_id");
  out.is_household_head = rr.Flag("is_household_head", true);
  out.account_no = rr.Account("account_no");
  if (auto d = rr.Date("account_since")) out.account_since = *d;
  out.is_cadre = rr.Flag("is_cadre", false);
  return rr.Take();
}

RowProblems ParsePayment(const common::CsvHeader& h, const common::CsvRecord& r, PaymentRow& out) {
  RowReader rr(h, r);
  out.payment_id = rr.Reference("payment_id");
  out.batch_id = rr.Reference("batch_id");
  out.program_code = rr.Code("program_code", "program_code");
  if (auto p = rr.Period("period", true)) out.period = *p;
  out.id_number = rr.IdNumber("id_number");
  out.account_no = rr.Account("account_no");
  out.reverses.clear();
  if (!rr.Get("reverses").empty()) out.reverses = rr.Reference("reverses");
  const bool reversal = !rr.Get("reverses").empty();
  if (auto a = rr.Fen("amount_fen", true, /*allow_negative=*/true)) {
    out.amount_fen = *a;
    if (*a < 0 && !reversal) {
      rr.Problem("amount_fen", "NEGATIVE_AMOUNT", "a negative amount is a reversal and must name the payment it reverses");
    } else if (reversal && *a >= 0) {
      rr.Problem("amount_fen", "REVERSAL_NOT_NEGATIVE", "a reversal must have a negative amount");
    }
  }
  if (reversal && !out.reverses.empty() && out.reverses == out.payment_id) {
    rr.Problem("reverses", "SELF_REVERSAL", "a payment cannot reverse itself");
  }
  if (rr.Required("paid_at")) {
    auto t = common::ParseTimestamp(rr.Get("paid_at"));
    if (!t.ok()) {
      rr.Problem("paid_at", "INVALID_TIMESTAMP", t.status());
    } else {
      out.paid_at = *t;
    }
  }
  return rr.Take();
}

RowProblems ParseBatch(const common::CsvHeader& h, const common::CsvRecord& r, BatchRow& out) {
  RowReader rr(h, r);
  out.batch_id = rr.Reference("batch_id");
  out.program_code = rr.Code("program_code", "program_code");
  if (auto p = rr.Period("period", true)) out.period = *p;
  if (auto c = rr.Count("declared_count")) out.declared_count = *c;
  if (auto t = rr.Fen("declared_total_fen", true, true)) out.declared_total_fen = *t;
  if (auto d = rr.Date("scheduled_on")) out.scheduled_on = *d;
  return rr.Take();
}

RowProblems ParseCivilEvent(const common::CsvHeader& h, const common::CsvRecord& r, CivilEventRow& out) {
  RowReader rr(h, r);
  out.id_number = rr.IdNumber("id_number");
  out.event = std::string(rr.Get("event"));
  if (rr.Required("event") && out.event != "death" && out.event != "emigration" && out.event != "imprisonment" &&
      out.event != "released") {
    rr.Problem("event", "INVALID_VALUE", "must be death, emigration, imprisonment or released");
  }
  if (auto d = rr.Date("event_date")) out.event_date = *d;
  out.source_ref = rr.Text("source_ref", 128, false);
  return rr.Take();
}

}  // namespace grassroots::cadrepay
