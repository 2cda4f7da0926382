#include "route_table.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/api/annotations.pb.h"
#include "google/api/http.pb.h"
#include "sv.h"

namespace grassroots::gateway {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::MethodDescriptor;

bool IsIdentifier(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return !absl::ascii_isdigit(static_cast<unsigned char>(s[0]));
}

bool IsLiteral(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c == '{' || c == '}' || c == '*' || c == '/' || c == ':' || c == '=' || c == '?' ||
        c == '#' || static_cast<unsigned char>(c) <= 0x20) {
      return false;
    }
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits "a/{b=c/*}/d" at the slashes outside braces.
absl::StatusOr<std::vector<absl::string_view>> SplitTopLevel(absl::string_view s) {
  std::vector<absl::string_view> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '{') {
      if (++depth > 1) return absl::InvalidArgumentError("nested variables");
    } else if (s[i] == '}') {
      if (--depth < 0) return absl::InvalidArgumentError("unbalanced '}'");
    } else if (s[i] == '/' && depth == 0) {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  if (depth != 0) return absl::InvalidArgumentError("unbalanced '{'");
  parts.push_back(s.substr(start));
  return parts;
}

absl::Status AddPlainSegment(absl::string_view part, std::vector<PathTemplate::Segment>* out) {
  PathTemplate::Segment seg;
  if (part == "*") {
    seg.kind = PathTemplate::Segment::Kind::kSingleWildcard;
  } else if (part == "**") {
    seg.kind = PathTemplate::Segment::Kind::kMultiWildcard;
  } else if (IsLiteral(part)) {
    seg.literal = std::string(part);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("invalid segment \"", part, "\""));
  }
  out->push_back(std::move(seg));
  return absl::OkStatus();
}

bool IsScalarBindable(const FieldDescriptor* f) {
  if (f->is_repeated()) return false;
  return f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE;
}

}  // namespace

bool PercentDecode(std::string_view in, bool keep_slash_escapes, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = HexValue(in[i + 1]);
    int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    char c = static_cast<char>(hi * 16 + lo);
    if (keep_slash_escapes && c == '/') {
      out->append(in.substr(i, 3));
    } else {
      out->push_back(c);
    }
    i += 2;
  }
  return true;
}

bool ResolveFieldPath(const Descriptor* message, std::string_view path_std,
                      std::vector<const FieldDescriptor*>* chain) {
  chain->clear();
  const Descriptor* current = message;
  std::vector<absl::string_view> parts = absl::StrSplit(ToAbsl(path_std), '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    if (current == nullptr || parts[i].empty()) return false;
    const FieldDescriptor* f = current->FindFieldByName(std::string(parts[i]));
    if (f == nullptr) {
      for (int k = 0; k < current->field_count(); ++k) {
        if (current->field(k)->json_name() == parts[i]) {
          f = current->field(k);
          break;
        }
      }
    }
    if (f == nullptr) return false;
    chain->push_back(f);
    if (i + 1 < parts.size()) {
      if (f->is_repeated() || f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) return false;
      current = f->message_type();
    }
  }
  return !chain->empty();
}

absl::StatusOr<PathTemplate> PathTemplate::Parse(std::string_view text_std) {
  absl::string_view text = ToAbsl(text_std);
  PathTemplate t;
  t.text_ = std::string(text);
  auto fail = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("path template \"", text, "\": ", why));
  };
  if (text.empty() || text[0] != '/') return fail("must start with '/'");
  absl::string_view rest = text.substr(1);
  // The verb: a ':' outside braces; nothing after it may be a path separator.
  int depth = 0;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '{') ++depth;
    if (rest[i] == '}') --depth;
    if (rest[i] == ':' && depth == 0) {
      absl::string_view verb = rest.substr(i + 1);
      if (!IsLiteral(verb)) return fail("invalid verb");
      t.verb_ = std::string(verb);
      rest = rest.substr(0, i);
      break;
    }
  }
  auto parts = SplitTopLevel(rest);
  if (!parts.ok()) return fail(parts.status().message());
  for (absl::string_view part : *parts) {
    if (!part.empty() && part.front() == '{') {
      if (part.back() != '}') return fail("a variable must be a whole segment");
      absl::string_view inner = part.substr(1, part.size() - 2);
      absl::string_view field = inner;
      absl::string_view pattern = "*";
      if (size_t eq = inner.find('='); eq != absl::string_view::npos) {
        field = inner.substr(0, eq);
        pattern = inner.substr(eq + 1);
      }
      for (absl::string_view p : absl::StrSplit(field, '.')) {
        if (!IsIdentifier(p)) return fail(absl::StrCat("invalid field path \"", field, "\""));
      }
      Variable var;
      var.field_path = std::string(field);
      var.begin = static_cast<int>(t.segments_.size());
      for (absl::string_view sub : absl::StrSplit(pattern, '/')) {
        absl::Status s = AddPlainSegment(sub, &t.segments_);
        if (!s.ok()) return fail(s.message());
      }
      var.end = static_cast<int>(t.segments_.size());
      t.variables_.push_back(std::move(var));
    } else {
      absl::Status s = AddPlainSegment(part, &t.segments_);
      if (!s.ok()) return fail(s.message());
    }
  }
  for (size_t i = 0; i < t.segments_.size(); ++i) {
    if (t.segments_[i].kind == Segment::Kind::kMultiWildcard && i + 1 != t.segments_.size()) {
      return fail("\"**\" must be the last segment");
    }
  }
  for (size_t i = 0; i < t.variables_.size(); ++i) {
    for (size_t j = i + 1; j < t.variables_.size(); ++j) {
      if (t.variables_[i].field_path == t.variables_[j].field_path) {
        return fail(absl::StrCat("variable \"", t.variables_[i].field_path, "\" bound twice"));
      }
    }
  }
  return t;
}

int PathTemplate::Match(std::string_view path_std,
                        std::vector<std::pair<std::string, std::string>>* bindings) const {
  bindings->clear();
  absl::string_view path = ToAbsl(path_std);
  if (path.empty() || path[0] != '/') return -1;
  absl::string_view rest = path.substr(1);
  if (!verb_.empty()) {
    size_t last_slash = rest.rfind('/');
    size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos ||
        (last_slash != absl::string_view::npos && colon < last_slash)) {
      return -1;
    }
    std::string decoded_verb;
    if (!PercentDecode(ToStd(rest.substr(colon + 1)), false, &decoded_verb) || decoded_verb != verb_) {
      return -1;
    }
    rest = rest.substr(0, colon);
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest, '/');
  // Which path parts each template segment covers.
  std::vector<std::pair<size_t, size_t>> spans(segments_.size());
  int literals = 0;
  size_t p = 0;
  std::string decoded;
  for (size_t s = 0; s < segments_.size(); ++s) {
    const Segment& seg = segments_[s];
    if (seg.kind == Segment::Kind::kMultiWildcard) {
      for (size_t k = p; k < parts.size(); ++k) {
        if (parts[k].empty()) return -1;
      }
      spans[s] = {p, parts.size()};
      p = parts.size();
      continue;
    }
    if (p >= parts.size() || parts[p].empty()) return -1;
    if (seg.kind == Segment::Kind::kLiteral) {
      if (!PercentDecode(ToStd(parts[p]), false, &decoded) || decoded != seg.literal) return -1;
      ++literals;
    }
    spans[s] = {p, p + 1};
    ++p;
  }
  if (p != parts.size()) return -1;
  for (const Variable& var : variables_) {
    size_t from = spans[var.begin].first;
    size_t to = var.end > var.begin ? spans[var.end - 1].second : from;
    bool multi = to - from != 1 || segments_[var.begin].kind == Segment::Kind::kMultiWildcard;
    std::string raw = absl::StrJoin(parts.begin() + static_cast<std::ptrdiff_t>(from),
                                    parts.begin() + static_cast<std::ptrdiff_t>(to), "/");
    std::string value;
    if (!PercentDecode(raw, multi, &value)) return -1;
    bindings->emplace_back(var.field_path, std::move(value));
  }
  return literals;
}

absl::StatusOr<std::unique_ptr<RouteTable>> RouteTable::Build(
    const std::vector<const google::protobuf::FileDescriptor*>& files) {
  auto table = std::make_unique<RouteTable>();
  auto add_rule = [&](const MethodDescriptor* method,
                      const google::api::HttpRule& rule) -> absl::Status {
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("google.api.http of ", method->full_name(), ": ", why));
    };
    Route route;
    std::string path;
    switch (rule.pattern_case()) {
      case google::api::HttpRule::kGet: route.http_method = "GET"; path = rule.get(); break;
      case google::api::HttpRule::kPut: route.http_method = "PUT"; path = rule.put(); break;
      case google::api::HttpRule::kPost: route.http_method = "POST"; path = rule.post(); break;
      case google::api::HttpRule::kDelete: route.http_method = "DELETE"; path = rule.delete_(); break;
      case google::api::HttpRule::kPatch: route.http_method = "PATCH"; path = rule.patch(); break;
      case google::api::HttpRule::kCustom:
        route.http_method = absl::AsciiStrToUpper(rule.custom().kind());
        path = rule.custom().path();
        break;
      default:
        return fail("no pattern");
    }
    if (method->client_streaming() &&
        (method->server_streaming() || method->input_type()->full_name() != kUploadChunkType ||
         rule.body() != "*")) {
      return fail(absl::StrCat("the only client-streaming method that can be transcoded is an upload of ",
                               kUploadChunkType, " messages with body \"*\" (the raw request body)"));
    }
    auto parsed = PathTemplate::Parse(path);
    if (!parsed.ok()) return fail(parsed.status().message());
    route.path = *std::move(parsed);
    const Descriptor* input = method->input_type();
    std::vector<const FieldDescriptor*> chain;
    for (const auto& var : route.path.variables()) {
      if (!ResolveFieldPath(input, var.field_path, &chain) || !IsScalarBindable(chain.back())) {
        return fail(absl::StrCat("path variable \"", var.field_path,
                                 "\" is not a singular scalar field of ", input->full_name()));
      }
    }
    route.body = rule.body();
    if (!route.body.empty() && route.body != "*" &&
        input->FindFieldByName(route.body) == nullptr) {
      return fail(absl::StrCat("body \"", route.body, "\" is not a field of ", input->full_name()));
    }
    route.response_body = rule.response_body();
    if (!route.response_body.empty()) {
      const FieldDescriptor* f = method->output_type()->FindFieldByName(route.response_body);
      if (f == nullptr || f->is_repeated() || f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
        return fail(absl::StrCat("response_body \"", route.response_body,
                                 "\" is not a singular message field of ",
                                 method->output_type()->full_name()));
      }
    }
    route.method = method;
    route.rpc_path = absl::StrCat("/", method->service()->full_name(), "/", method->name());
    for (const Route& other : table->routes_) {
      if (other.http_method == route.http_method && other.path.text() == route.path.text()) {
        return fail(absl::StrCat(route.http_method, " ", route.path.text(), " is also bound to ",
                                 other.method->full_name()));
      }
    }
    table->routes_.push_back(std::move(route));
    return absl::OkStatus();
  };

  for (const auto* file : files) {
    for (int s = 0; s < file->service_count(); ++s) {
      const auto* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        const MethodDescriptor* method = service->method(m);
        if (!method->options().HasExtension(google::api::http)) continue;
        const google::api::HttpRule& rule = method->options().GetExtension(google::api::http);
        if (absl::Status st = add_rule(method, rule); !st.ok()) return st;
        for (const auto& extra : rule.additional_bindings()) {
          if (extra.additional_bindings_size() > 0) {
            return absl::InvalidArgumentError(absl::StrCat(
                "google.api.http of ", method->full_name(), ": nested additional_bindings"));
          }
          if (absl::Status st = add_rule(method, extra); !st.ok()) return st;
        }
      }
    }
  }
  return table;
}

RouteMatch RouteTable::Match(std::string_view http_method_std, std::string_view path) const {
  absl::string_view http_method = ToAbsl(http_method_std);
  RouteMatch result;
  struct Candidate {
    const Route* route;
    int score;
    std::vector<std::pair<std::string, std::string>> bindings;
  };
  std::vector<Candidate> candidates;
  bool any_verb = false;
  std::vector<std::pair<std::string, std::string>> bindings;
  for (const Route& route : routes_) {
    int score = route.path.Match(path, &bindings);
    if (score < 0) continue;
    if (!route.path.verb().empty()) any_verb = true;
    candidates.push_back({&route, score, bindings});
  }
  if (any_verb) {
    std::erase_if(candidates, [](const Candidate& c) { return c.route->path.verb().empty(); });
  }
  if (candidates.empty()) return result;

  const Candidate* best_path = nullptr;
  const Candidate* best = nullptr;
  for (const Candidate& c : candidates) {
    if (best_path == nullptr || c.score > best_path->score) best_path = &c;
    if (c.route->http_method == http_method && (best == nullptr || c.score > best->score)) {
      best = &c;
    }
  }
  if (best != nullptr) {
    result.outcome = MatchOutcome::kMatched;
    result.route = best->route;
    result.bindings = best->bindings;
    result.pattern = best->route->path.text();
    return result;
  }
  result.outcome = MatchOutcome::kMethodNotAllowed;
  result.pattern = best_path->route->path.text();
  for (const Candidate& c : candidates) result.allowed_methods.push_back(c.route->http_method);
  std::sort(result.allowed_methods.begin(), result.allowed_methods.end());
  result.allowed_methods.erase(
      std::unique(result.allowed_methods.begin(), result.allowed_methods.end()),
      result.allowed_methods.end());
  return result;
}

}  // namespace grassroots::gateway
