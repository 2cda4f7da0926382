#include "organisation_logic.h"

#include "grassroots/common/import_errors.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grassroots/common/csv.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"
#include "change_feed.h"
#include "member_repository.h"
#include "organisation_rules.h"

namespace grassroots::membership {
namespace {

constexpr size_t kMaxPathLength = 700;
constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
// ListSubtree: a county's whole tree in one page (the default is the maximum).
constexpr int kMaxSubtreePageSize = 5000;

absl::Status ToInvalid(const std::vector<Violation>& violations, absl::string_view prefix) {
  std::vector<common::FieldViolation> fv;
  for (const auto& v : violations) fv.push_back({absl::StrCat(prefix, v.field), v.message});
  return common::InvalidFields(fv);
}

// A placement the hierarchy does not allow (CheckPlacement): FAILED_PRECONDITION naming the rule.
absl::Status Misplaced(const Violation& v, absl::string_view field) {
  return absl::FailedPreconditionError(absl::StrCat(v.code, ": ", field, ": ", v.message));
}

absl::Status NotFound(absl::string_view field, const std::string& code) {
  return absl::NotFoundError(absl::StrCat(field, ": organisation ", code, " does not exist"));
}

absl::Status CheckCodeArg(std::string_view field, const std::string& code) {
  if (code.empty()) return common::InvalidField(field, "is required");
  if (!common::IsCode(code)) return common::InvalidField(field, "must be 1 to 32 letters, digits or '-'");
  return absl::OkStatus();
}

// A page asked for: its size (0: `default_size`) and the org_code its token continues after
// ("" for the first page); INVALID_ARGUMENT naming page_size or page_token.
struct PageRequest {
  int size = 0;
  std::string after;
};
absl::StatusOr<PageRequest> ReadPageRequest(int page_size, const std::string& page_token, int default_size,
                                            int max_size, const std::string& scope) {
  PageRequest page;
  page.size = page_size == 0 ? default_size : page_size;
  if (page.size < 0 || page.size > max_size) {
    return common::InvalidField("page_size", absl::StrCat("must be between 1 and ", max_size));
  }
  if (!page_token.empty()) {
    auto raw = common::ReadPageToken(page_token, scope);
    if (!raw.ok()) return raw.status();
    page.after = std::move(*raw);
    if (!common::IsCode(page.after)) return common::InvalidField("page_token", "is not a token this service issued");
  }
  return page;
}

// Moves `rows` (one more than the page when there is a next one) into the response's
// organisations and sets its next_page_token.
template <typename Response>
void FillPage(std::vector<v1::Organisation>& rows, int page_size, const std::string& scope, Response& response) {
  if (static_cast<int>(rows.size()) > page_size) {
    rows.resize(page_size);
    response.set_next_page_token(common::MakePageToken(scope, rows.back().org_code()));
  }
  for (auto& o : rows) *response.add_organisations() = std::move(o);
}

const std::vector<common::CsvHeader::Column>& CsvFormat() {
  static const auto* f = new std::vector<common::CsvHeader::Column>{
      {"org_code", true},  {"name", true},          {"org_type", true},       {"org_kind", false},
      {"parent_code", false}, {"division_code", true}, {"established_on", false}, {"population", false}};
  return *f;
}

// The change feed's outbox row, written in the same transaction as the change.
absl::Status Outbox(sql::Connection& conn, const std::string& code, const std::string& kind,
                    const v1::Organisation& after) {
  return ChangeFeedRepository().AppendOrganisation(conn, code, kind, after);
}

}  // namespace

const std::vector<std::string>& OrganisationCsvColumns() {
  static const auto* c = [] {
    auto* v = new std::vector<std::string>;
    for (const auto& col : CsvFormat()) v->push_back(col.name);
    return v;
  }();
  return *c;
}

absl::StatusOr<v1::Organisation> OrganisationLogic::Create(v1::Organisation org, absl::Time deadline) {
  ApplyDefaults(org);
  org.clear_depth();
  org.clear_child_count();
  if (auto v = ValidateOrganisation(org); !v.empty()) return ToInvalid(v, "organisation.");
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  common::Transaction tx(**conn);
  if (auto s = tx.Begin(); !s.ok()) return Track(*conn, s);
  std::string path = absl::StrCat("/", org.org_code(), "/");
  int depth = 0;
  std::string parent_type;
  if (!org.parent_code().empty()) {
    auto parent = Track(*conn, repo_.Find(**conn, org.parent_code(), /*for_update=*/true));
    if (!parent.ok()) return parent.status();
    if (!parent->has_value()) return NotFound("organisation.parent_code", org.parent_code());
    path = absl::StrCat((*parent)->path, org.org_code(), "/");
    depth = (*parent)->org.depth() + 1;
    parent_type = (*parent)->org.org_type();
  }
  if (auto v = CheckPlacement(org.org_type(), parent_type)) return Misplaced(*v, "organisation.parent_code");
  if (path.size() > kMaxPathLength) {
    return absl::FailedPreconditionError("organisation.parent_code: the tree would be too deep");
  }
  if (auto s = Track(*conn, repo_.Insert(**conn, org, path, depth)); !s.ok()) {
    if (s.code() == absl::StatusCode::kAlreadyExists) {
      return absl::AlreadyExistsError(absl::StrCat("organisation.org_code: organisation ", org.org_code(), " already exists"));
    }
    return s;
  }
  org.set_depth(depth);
  org.set_child_count(0);
  if (auto s = Track(*conn, Outbox(**conn, org.org_code(), "created", org)); !s.ok()) return s;
  if (auto s = Track(*conn, tx.Commit()); !s.ok()) return s;
  return org;
}

absl::StatusOr<v1::Organisation> OrganisationLogic::Get(const std::string& code, absl::Time deadline) {
  if (auto s = CheckCodeArg("org_code", code); !s.ok()) return s;
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto found = Track(*conn, repo_.Find(**conn, code));
  if (!found.ok()) return found.status();
  if (!found->has_value()) return NotFound("org_code", code);
  return (*found)->org;
}

absl::StatusOr<v1::Organisation> OrganisationLogic::Update(const v1::UpdateOrganisationRequest& request,
                                                           absl::Time deadline) {
  const std::string& code = request.org_code();
  if (auto s = CheckCodeArg("org_code", code); !s.ok()) return s;
  const v1::Organisation& changes = request.organisation();
  if (!changes.org_code().empty() && changes.org_code() != code) {
    return common::InvalidField("organisation.org_code", "cannot be changed; it must be empty or equal org_code");
  }
  if (request.update_mask().paths().empty()) {
    return common::InvalidField("update_mask", "name the fields to change");
  }
  std::vector<std::string> fields;
  for (const std::string& path : request.update_mask().paths()) {
    if (path == "parent_code") {
      return common::InvalidField("update_mask", "parent_code is changed with MoveOrganisation");
    }
    const auto& allowed = UpdatableFields();
    if (std::find(allowed.begin(), allowed.end(), path) == allowed.end()) {
      return common::InvalidField("update_mask", absl::StrCat("field '", path.substr(0, 40), "' cannot be changed"));
    }
    fields.push_back(path);
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  common::Transaction tx(**conn);
  if (auto s = tx.Begin(); !s.ok()) return Track(*conn, s);
  auto found = Track(*conn, repo_.Find(**conn, code, /*for_update=*/true));
  if (!found.ok()) return found.status();
  if (!found->has_value()) return NotFound("org_code", code);
  v1::Organisation merged = (*found)->org;
  for (const std::string& f : fields) {
    if (f == "name") merged.set_name(changes.name());
    else if (f == "org_type") merged.set_org_type(changes.org_type());
    else if (f == "org_kind") merged.set_org_kind(changes.org_kind());
    else if (f == "division_code") merged.set_division_code(changes.division_code());
    else if (f == "established_on") merged.set_established_on(changes.established_on());
    else if (f == "population") {
      if (changes.has_population()) merged.set_population(changes.population()); else merged.clear_population();
    }
  }
  ApplyDefaults(merged);
  if (auto v = ValidateOrganisation(merged, fields); !v.empty()) return ToInvalid(v, "organisation.");
  if (merged.org_type() != (*found)->org.org_type()) {
    // The new type must fit where the organisation sits and what sits under it.
    std::string parent_type;
    if (!merged.parent_code().empty()) {
      auto parent = Track(*conn, repo_.Find(**conn, merged.parent_code()));
      if (!parent.ok()) return parent.status();
      if (parent->has_value()) parent_type = (*parent)->org.org_type();
    }
    if (auto v = CheckPlacement(merged.org_type(), parent_type)) return Misplaced(*v, "organisation.org_type");
    for (std::string after;;) {
      auto children = Track(*conn, repo_.ListChildren(**conn, code, after, kMaxPageSize));
      if (!children.ok()) return children.status();
      for (const auto& child : *children) {
        if (auto v = CheckPlacement(child.org_type(), merged.org_type())) {
          return Misplaced(*v, absl::StrCat("organisation.org_type (child ", child.org_code(), ")"));
        }
      }
      if (static_cast<int>(children->size()) < kMaxPageSize) break;
      after = children->back().org_code();
    }
  }
  if (auto s = Track(*conn, repo_.UpdateFields(**conn, merged)); !s.ok()) return s;
  if (auto s = Track(*conn, Outbox(**conn, code, "updated", merged)); !s.ok()) return s;
  if (auto s = Track(*conn, tx.Commit()); !s.ok()) return s;
  return merged;
}

absl::Status OrganisationLogic::Delete(const std::string& code, absl::Time deadline) {
  if (auto s = CheckCodeArg("org_code", code); !s.ok()) return s;
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  common::Transaction tx(**conn);
  if (auto s = tx.Begin(); !s.ok()) return Track(*conn, s);
  auto found = Track(*conn, repo_.Find(**conn, code, /*for_update=*/true));
  if (!found.ok()) return found.status();
  if (!found->has_value()) return NotFound("org_code", code);
  auto children = Track(*conn, repo_.CountChildren(**conn, code));
  if (!children.ok()) return children.status();
  if (*children > 0) {
    return absl::FailedPreconditionError(absl::StrCat("organisation ", code, " still has ", *children,
                                                      " sub-organisations; move or delete them first"));
  }
  auto members = Track(*conn, MemberRepository().CountInOrganisation(**conn, code));
  if (!members.ok()) return members.status();
  if (*members > 0) {
    return absl::FailedPreconditionError(absl::StrCat("organisation ", code, " has ", *members,
                                                      " members on record (current or past); move them first"));
  }
  if (auto s = Track(*conn, repo_.Delete(**conn, code)); !s.ok()) return s;
  if (auto s = Track(*conn, Outbox(**conn, code, "deleted", (*found)->org)); !s.ok()) return s;
  return Track(*conn, tx.Commit());
}

absl::StatusOr<v1::ListChildrenResponse> OrganisationLogic::ListChildren(const v1::ListChildrenRequest& request,
                                                                        absl::Time deadline) {
  if (auto s = CheckCodeArg("org_code", request.org_code()); !s.ok()) return s;
  const std::string scope = absl::StrCat("children:", request.org_code());
  auto page = ReadPageRequest(request.page_size(), request.page_token(), kDefaultPageSize, kMaxPageSize, scope);
  if (!page.ok()) return page.status();
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto parent = Track(*conn, repo_.Find(**conn, request.org_code()));
  if (!parent.ok()) return parent.status();
  if (!parent->has_value()) return NotFound("org_code", request.org_code());
  auto rows = Track(*conn, repo_.ListChildren(**conn, request.org_code(), page->after, page->size + 1));
  if (!rows.ok()) return rows.status();
  v1::ListChildrenResponse response;
  FillPage(*rows, page->size, scope, response);
  return response;
}

absl::StatusOr<v1::ListSubtreeResponse> OrganisationLogic::ListSubtree(const v1::ListSubtreeRequest& request,
                                                                      absl::Time deadline) {
  if (auto s = CheckCodeArg("org_code", request.org_code()); !s.ok()) return s;
  const std::string scope = absl::StrCat("subtree:", request.org_code());
  auto page = ReadPageRequest(request.page_size(), request.page_token(), kMaxSubtreePageSize, kMaxSubtreePageSize,
                              scope);
  if (!page.ok()) return page.status();
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  // The feed's position first: every change up to it committed before the reads below began
  // (numbers are handed out under the counter's row lock, held to commit), so the page holds
  // all of them; a change committed meanwhile may be in it too (a caller then drops it once more).
  auto as_of = Track(*conn, ChangeFeedRepository().LastCommitted(**conn));
  if (!as_of.ok()) return as_of.status();
  auto top = Track(*conn, repo_.Find(**conn, request.org_code()));
  if (!top.ok()) return top.status();
  if (!top->has_value()) return NotFound("org_code", request.org_code());
  auto rows = Track(*conn, repo_.ListSubtree(**conn, (*top)->path, page->after, page->size + 1));
  if (!rows.ok()) return rows.status();
  v1::ListSubtreeResponse response;
  FillPage(*rows, page->size, scope, response);
  response.set_as_of_seq(*as_of);
  return response;
}

absl::StatusOr<v1::GetAncestryResponse> OrganisationLogic::Ancestry(const std::string& code, absl::Time deadline) {
  if (auto s = CheckCodeArg("org_code", code); !s.ok()) return s;
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  auto found = Track(*conn, repo_.Find(**conn, code));
  if (!found.ok()) return found.status();
  if (!found->has_value()) return NotFound("org_code", code);
  std::vector<std::string> codes = absl::StrSplit((*found)->path, '/', absl::SkipEmpty());
  auto chain = Track(*conn, repo_.FindMany(**conn, codes));
  if (!chain.ok()) return chain.status();
  std::sort(chain->begin(), chain->end(),
            [](const StoredOrganisation& a, const StoredOrganisation& b) { return a.org.depth() < b.org.depth(); });
  v1::GetAncestryResponse response;
  for (auto& s : *chain) *response.add_organisations() = std::move(s.org);
  return response;
}

absl::StatusOr<v1::Organisation> OrganisationLogic::Move(const std::string& code, const std::string& new_parent,
                                                         absl::Time deadline) {
  if (auto s = CheckCodeArg("org_code", code); !s.ok()) return s;
  if (auto s = CheckCodeArg("new_parent_code", new_parent); !s.ok()) return s;
  if (code == new_parent) {
    return absl::FailedPreconditionError("new_parent_code: an organisation cannot be moved under itself");
  }
  auto conn = pool_.Acquire(deadline);
  if (!conn.ok()) return conn.status();
  common::Transaction tx(**conn);
  if (auto s = tx.Begin(); !s.ok()) return Track(*conn, s);
  // Lock both rows in a fixed order, so concurrent moves cannot build a cycle between them.
  std::optional<StoredOrganisation> org, parent;
  for (const std::string& c : {std::min(code, new_parent), std::max(code, new_parent)}) {
    auto found = Track(*conn, repo_.Find(**conn, c, /*for_update=*/true));
    if (!found.ok()) return found.status();
    (c == code ? org : parent) = std::move(*found);
  }
  if (!org.has_value()) return NotFound("org_code", code);
  if (!parent.has_value()) return NotFound("new_parent_code", new_parent);
  if (absl::StartsWith(parent->path, org->path)) {
    return absl::FailedPreconditionError(absl::StrCat("new_parent_code: ", new_parent, " lies inside the subtree of ",
                                                      code, "; the move would make a cycle"));
  }
  if (org->org.parent_code() == new_parent) return org->org;
  if (auto v = CheckPlacement(org->org.org_type(), parent->org.org_type())) return Misplaced(*v, "new_parent_code");
  const std::string new_path = absl::StrCat(parent->path, code, "/");
  // The deepest organisation of the subtree moves with it.
  auto longest = Track(*conn, repo_.LongestPathUnder(**conn, org->path));
  if (!longest.ok()) return longest.status();
  if (*longest - org->path.size() + new_path.size() > kMaxPathLength) {
    return absl::FailedPreconditionError("new_parent_code: the tree would be too deep");
  }
  const int delta = parent->org.depth() + 1 - org->org.depth();
  if (auto s = Track(*conn, repo_.MoveSubtree(**conn, code, new_parent, org->path, new_path, delta)); !s.ok()) return s;
  org->org.set_parent_code(new_parent);
  org->org.set_depth(org->org.depth() + delta);
  if (auto s = Track(*conn, Outbox(**conn, code, "moved", org->org)); !s.ok()) return s;
  if (auto s = Track(*conn, tx.Commit()); !s.ok()) return s;
  return org->org;
}

absl::Status OrganisationLogic::Export(const std::string& code, const std::function<bool(std::string_view)>& sink,
                                       size_t chunk_bytes) {
  if (auto s = CheckCodeArg("org_code", code); !s.ok()) return s;
  auto conn = pool_.Acquire(absl::InfiniteFuture());
  if (!conn.ok()) return conn.status();
  auto root = Track(*conn, repo_.Find(**conn, code));
  if (!root.ok()) return root.status();
  if (!root->has_value()) return NotFound("org_code", code);
  std::string buffer;
  common::AppendCsvRecord(buffer, OrganisationCsvColumns());
  int after_depth = -1;
  std::string after_code;
  constexpr int kPage = 1000;
  while (true) {
    auto page = Track(*conn, repo_.ScanSubtree(**conn, (*root)->path, after_depth, after_code, kPage));
    if (!page.ok()) return page.status();
    for (const StoredOrganisation& s : *page) {
      const v1::Organisation& o = s.org;
      common::AppendCsvRecord(buffer, {o.org_code(), o.name(), o.org_type(), o.org_kind(), o.parent_code(),
                                       o.division_code(), o.established_on(),
                                       o.has_population() ? std::to_string(o.population()) : ""});
      if (buffer.size() >= chunk_bytes) {
        if (!sink(buffer)) return absl::CancelledError("export cancelled by the receiver");
        buffer.clear();
      }
    }
    if (static_cast<int>(page->size()) < kPage) break;
    after_depth = page->back().org.depth();
    after_code = page->back().org.org_code();
  }
  if (!buffer.empty() && !sink(buffer)) return absl::CancelledError("export cancelled by the receiver");
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Import

struct OrganisationLogic::Import::State {
  struct Row {
    int64_t line = 0;
    v1::Organisation org;
    bool refused = false;
  };
  std::unique_ptr<common::CsvReader> reader;
  common::CsvHeader header;
  std::vector<std::string> header_names;
  bool have_header = false;
  bool file_refused = false;
  std::vector<Row> rows;
  std::unordered_map<std::string, size_t> index;  // org_code -> row
  std::unordered_map<std::string, int64_t> refused_codes;  // org_code -> line of a refused row
  exchange::v1::ImportReport report;

  void Error(int64_t line, std::string column, std::string code, std::string message) {
    auto* e = report.add_errors();
    e->set_line(line);
    // A column or message may repeat what the file held; the report's strings must be UTF-8.
    e->set_column(common::ValidUtf8(column));
    e->set_code(std::move(code));
    e->set_message(common::ValidUtf8(message));
  }

  void OnRecord(common::CsvRecord& record) {
    if (file_refused) return;
    if (!have_header) {
      have_header = true;
      header_names = record.fields;
      auto problems = header.Bind(record.fields, CsvFormat());
      for (const auto& p : problems) {
        Error(1, p.column_name, "BAD_HEADER", p.message);
      }
      if (!problems.empty()) file_refused = true;
      return;
    }
    report.set_rows(report.rows() + 1);
    Row row;
    row.line = record.line;
    v1::Organisation& o = row.org;
    o.set_org_code(std::string(header.Get(record, "org_code")));
    o.set_name(std::string(header.Get(record, "name")));
    o.set_org_type(std::string(header.Get(record, "org_type")));
    o.set_org_kind(std::string(header.Get(record, "org_kind")));
    o.set_parent_code(std::string(header.Get(record, "parent_code")));
    o.set_division_code(std::string(header.Get(record, "division_code")));
    o.set_established_on(std::string(header.Get(record, "established_on")));
    bool bad = false;
    if (record.fields.size() != header.width()) {
      Error(record.line, std::string(header.FirstMissingColumn(record)), "WRONG_FIELD_COUNT",
            absl::StrCat("has ", record.fields.size(), " fields; the header has ", header.width()));
      bad = true;
    }
    std::string_view population = header.Get(record, "population");
    if (!population.empty()) {
      auto n = common::ParseCount(population);
      if (!n.ok()) {
        Error(record.line, "population", "INVALID_NUMBER", std::string(n.status().message()));
        bad = true;
      } else {
        o.set_population(*n);
      }
    }
    ApplyDefaults(o);
    for (const Violation& v : ValidateOrganisation(o)) {
      Error(record.line, v.field, v.code, v.message);
      bad = true;
    }
    if (!bad) {
      if (auto it = index.find(o.org_code()); it != index.end()) {
        Error(record.line, "org_code", "DUPLICATE_IN_FILE",
              absl::StrCat("organisation ", o.org_code(), " already appears on line ", rows[it->second].line));
        bad = true;
      }
    }
    if (bad) {
      report.set_refused(report.refused() + 1);
      if (!o.org_code().empty() && !index.contains(o.org_code())) refused_codes.emplace(o.org_code(), record.line);
      return;
    }
    index.emplace(o.org_code(), rows.size());
    rows.push_back(std::move(row));
  }
};

OrganisationLogic::Import::Import(OrganisationLogic& logic) : logic_(logic), state_(std::make_unique<State>()) {
  State* st = state_.get();
  st->reader = std::make_unique<common::CsvReader>(
      [st](common::CsvRecord& r) { st->OnRecord(r); },
      [st](const common::CsvSyntaxError& e) {
        if (st->file_refused) return;
        if (!st->have_header) {
          st->Error(e.line, "", "BAD_HEADER", e.message);
          st->file_refused = true;
          return;
        }
        st->report.set_rows(st->report.rows() + 1);
        st->report.set_refused(st->report.refused() + 1);
        const std::string column = e.column >= 1 && static_cast<size_t>(e.column) <= st->header_names.size()
                                       ? st->header_names[e.column - 1]
                                       : std::string();
        st->Error(e.line, column, "CSV_SYNTAX", e.message);
      });
}
OrganisationLogic::Import::~Import() = default;

void OrganisationLogic::Import::Feed(std::string_view chunk) { state_->reader->Feed(chunk); }

std::unique_ptr<OrganisationLogic::Import> OrganisationLogic::StartImport() {
  return std::make_unique<Import>(*this);
}

absl::StatusOr<exchange::v1::ImportReport> OrganisationLogic::Import::Finish() {
  State& st = *state_;
  st.reader->Finish();
  auto sort_errors = [&st] {
    auto* errors = st.report.mutable_errors();
    std::stable_sort(errors->begin(), errors->end(),
                     [](const auto& a, const auto& b) { return a.line() < b.line(); });
  };
  if (!st.have_header && !st.file_refused) {
    st.Error(1, "", "EMPTY_FILE", "the file has no header row");
    st.file_refused = true;
  }
  if (st.file_refused) {
    exchange::v1::ImportReport report;
    report.set_file_refused(true);
    *report.mutable_errors() = st.report.errors();
    return report;
  }

  // One import of organisations at a time: a second one waits for the first to commit, then
  // finds its rows stored (side by side, their transactions could deadlock part-way).
  auto import_lock = common::NamedLock::Acquire(logic_.pool_.options(), "grassroots_membership_import_organisations",
                                                absl::Now() + absl::Minutes(15));
  if (absl::IsDeadlineExceeded(import_lock.status())) {
    return absl::UnavailableError("another import of organisations has been running for longer than this one waits; "
                                  "send the file again later");
  }
  if (!import_lock.ok()) return import_lock.status();
  auto conn = logic_.pool_.Acquire(absl::InfiniteFuture());
  if (!conn.ok()) return conn.status();
  const OrganisationRepository& repo = logic_.repo_;

  // What the database already holds for every code the file names.
  std::vector<std::string> codes;
  for (const auto& r : st.rows) {
    codes.push_back(r.org.org_code());
    if (!r.org.parent_code().empty() && !st.index.contains(r.org.parent_code())) codes.push_back(r.org.parent_code());
  }
  std::sort(codes.begin(), codes.end());
  codes.erase(std::unique(codes.begin(), codes.end()), codes.end());
  auto existing_rows = Track(*conn, repo.FindMany(**conn, codes));
  if (!existing_rows.ok()) return existing_rows.status();
  std::unordered_map<std::string, StoredOrganisation> existing;
  for (auto& s : *existing_rows) existing.emplace(s.org.org_code(), std::move(s));

  // Order parents before children; refuse rows whose parent is unknown, refused or in a cycle.
  enum class Mark { kNone, kVisiting, kDone };
  std::vector<Mark> marks(st.rows.size(), Mark::kNone);
  std::vector<size_t> order;
  // Decides row i once its parent's row in the file (if any) is decided, or is an ancestor of
  // i still being walked (a cycle). No recursion: a file's parent chain can be as long as the
  // file (a chain of 200,000 rows overflowed the stack of the recursive walk this replaced).
  auto decide = [&](size_t i) {
    auto& row = st.rows[i];
    const std::string& parent = row.org.parent_code();
    bool ok = true;
    if (!parent.empty()) {
      if (parent == row.org.org_code()) {
        st.Error(row.line, "parent_code", "CYCLE", "an organisation cannot be its own parent");
        ok = false;
      } else if (auto it = st.index.find(parent); it != st.index.end()) {
        const size_t p = it->second;
        if (marks[p] == Mark::kVisiting) {
          st.Error(row.line, "parent_code", "CYCLE",
                   absl::StrCat("parent ", parent, " (line ", st.rows[p].line, ") is its own descendant in this file"));
          ok = false;
        } else if (st.rows[p].refused && !existing.contains(parent)) {  // p is decided
          st.Error(row.line, "parent_code", "PARENT_REFUSED",
                   absl::StrCat("parent ", parent, " on line ", st.rows[p].line, " was refused"));
          ok = false;
        }
      } else if (existing.contains(parent)) {
        // Registered: the parent exists whether or not its own row in the file was refused.
      } else if (auto r = st.refused_codes.find(parent); r != st.refused_codes.end()) {
        st.Error(row.line, "parent_code", "PARENT_REFUSED",
                 absl::StrCat("parent ", parent, " on line ", r->second, " was refused"));
        ok = false;
      } else {
        st.Error(row.line, "parent_code", "UNKNOWN_PARENT",
                 absl::StrCat("parent organisation ", parent, " is neither in the file nor registered"));
        ok = false;
      }
    }
    if (ok) {
      // The parent as it will stand: its accepted row of this file, else as registered.
      std::string parent_type;
      if (!parent.empty()) {
        auto it = st.index.find(parent);
        if (it != st.index.end() && !st.rows[it->second].refused) {
          parent_type = st.rows[it->second].org.org_type();
        } else if (auto e = existing.find(parent); e != existing.end()) {
          parent_type = e->second.org.org_type();
        }
      }
      if (auto v = CheckPlacement(row.org.org_type(), parent_type)) {
        st.Error(row.line, v->field, v->code, v->message);
        ok = false;
      }
    }
    marks[i] = Mark::kDone;
    row.refused = !ok;
    if (ok) order.push_back(i);
  };
  std::vector<size_t> chain;  // a row, its parent row, its grandparent row, ... not yet decided
  for (size_t i = 0; i < st.rows.size(); ++i) {
    if (marks[i] != Mark::kNone) continue;
    chain.assign(1, i);
    marks[i] = Mark::kVisiting;
    for (;;) {
      const auto& org = st.rows[chain.back()].org;
      if (org.parent_code().empty() || org.parent_code() == org.org_code()) break;
      auto it = st.index.find(org.parent_code());
      if (it == st.index.end() || marks[it->second] != Mark::kNone) break;  // decided, or a cycle
      marks[it->second] = Mark::kVisiting;
      chain.push_back(it->second);
    }
    for (auto j = chain.rbegin(); j != chain.rend(); ++j) decide(*j);  // the topmost first
  }

  // Write in order; paths come from the database or from rows written earlier in this import.
  std::unordered_map<std::string, std::pair<std::string, int>> placed;  // code -> (path, depth)
  for (const auto& [code, s] : existing) placed.emplace(code, std::make_pair(s.path, s.org.depth()));
  constexpr size_t kCommitEvery = 500;
  auto tx = std::make_unique<common::Transaction>(**conn);
  if (auto s = Track(*conn, tx->Begin()); !s.ok()) return s;
  size_t in_tx = 0;
  for (size_t i : order) {
    auto& row = st.rows[i];
    v1::Organisation& o = row.org;
    std::string path = absl::StrCat("/", o.org_code(), "/");
    int depth = 0;
    if (!o.parent_code().empty()) {
      const auto p = placed.find(o.parent_code());
      if (p == placed.end()) {
        // The parent is a new row of this file that was refused while writing (too deep).
        const auto in_file = st.index.find(o.parent_code());
        st.Error(row.line, "parent_code", "PARENT_REFUSED",
                 in_file == st.index.end()
                     ? absl::StrCat("parent ", o.parent_code(), " was refused")
                     : absl::StrCat("parent ", o.parent_code(), " on line ", st.rows[in_file->second].line,
                                    " was refused"));
        row.refused = true;
        continue;
      }
      path = absl::StrCat(p->second.first, o.org_code(), "/");
      depth = p->second.second + 1;
    }
    auto current = existing.find(o.org_code());
    if (current == existing.end()) {
      if (path.size() > kMaxPathLength) {
        st.Error(row.line, "parent_code", "TOO_DEEP", "the tree would be too deep");
        row.refused = true;
        continue;
      }
      if (auto s = Track(*conn, repo.Insert(**conn, o, path, depth)); !s.ok()) return s;
      o.set_depth(depth);
      if (auto s = Track(*conn, Outbox(**conn, o.org_code(), "created", o)); !s.ok()) return s;
      o.clear_depth();
      st.report.set_inserted(st.report.inserted() + 1);
      placed[o.org_code()] = {path, depth};
    } else {
      v1::Organisation before = current->second.org;
      before.clear_depth();
      before.clear_child_count();
      if (SameContent(before, o)) {
        st.report.set_unchanged(st.report.unchanged() + 1);
        continue;
      }
      if (before.parent_code() != o.parent_code()) {
        // Re-read: earlier moves in this import may have changed paths.
        auto fresh = Track(*conn, repo.Find(**conn, o.org_code(), true));
        if (!fresh.ok()) return fresh.status();
        std::string parent_path = "/";
        int parent_depth = -1;
        if (!o.parent_code().empty()) {
          auto parent = Track(*conn, repo.Find(**conn, o.parent_code(), true));
          if (!parent.ok()) return parent.status();
          parent_path = (*parent)->path;
          parent_depth = (*parent)->org.depth();
        }
        const std::string& old_path = (*fresh)->path;
        if (absl::StartsWith(parent_path, old_path)) {
          st.Error(row.line, "parent_code", "CYCLE",
                   absl::StrCat("parent ", o.parent_code(), " lies inside the subtree of ", o.org_code()));
          row.refused = true;
          continue;
        }
        const std::string new_path = absl::StrCat(parent_path, o.org_code(), "/");
        auto longest = Track(*conn, repo.LongestPathUnder(**conn, old_path));
        if (!longest.ok()) return longest.status();
        if (*longest - old_path.size() + new_path.size() > kMaxPathLength) {
          st.Error(row.line, "parent_code", "TOO_DEEP", "the tree would be too deep below the moved organisation");
          row.refused = true;
          continue;
        }
        const int delta = parent_depth + 1 - (*fresh)->org.depth();
        if (auto s = Track(*conn, repo.MoveSubtree(**conn, o.org_code(), o.parent_code(), old_path, new_path, delta));
            !s.ok()) {
          return s;
        }
        // Paths below the moved organisation changed: re-read what we knew of them.
        std::vector<std::string> stale;
        for (const auto& [code, where] : placed) {
          if (absl::StartsWith(where.first, old_path)) stale.push_back(code);
        }
        for (const std::string& code : stale) {
          auto again = Track(*conn, repo.Find(**conn, code));
          if (!again.ok()) return again.status();
          if (again->has_value()) placed[code] = {(*again)->path, (*again)->org.depth()};
        }
      }
      if (auto s = Track(*conn, repo.UpdateFields(**conn, o)); !s.ok()) return s;
      if (auto s = Track(*conn, Outbox(**conn, o.org_code(), before.parent_code() != o.parent_code() ? "moved" : "updated", o));
          !s.ok()) {
        return s;
      }
      st.report.set_updated(st.report.updated() + 1);
    }
    if (++in_tx >= kCommitEvery) {
      if (auto s = Track(*conn, tx->Commit()); !s.ok()) return s;
      tx = std::make_unique<common::Transaction>(**conn);
      if (auto s = Track(*conn, tx->Begin()); !s.ok()) return s;
      in_tx = 0;
    }
  }
  if (auto s = Track(*conn, tx->Commit()); !s.ok()) return s;
  int64_t refused_now = 0;
  for (const auto& r : st.rows) refused_now += r.refused ? 1 : 0;
  st.report.set_refused(st.report.refused() + refused_now);
  sort_errors();
  // Every refused row reaches the caller: past what a report carries, kept for ListImportErrors.
  if (auto s = common::BoundImportReport(logic_.pool_, st.report); !s.ok()) return s;
  return st.report;
}

}  // namespace grassroots::membership
