#pragma once
// HTTP routes derived from the google.api.http annotations of the services linked into the
// binary: path templates are parsed once at start-up and requests are matched against them.
// There is no hand-written route table.
//
// Template grammar (google/api/http.proto):
//   Template = "/" Segments [ Verb ] ;   Segments = Segment { "/" Segment } ;
//   Segment  = "*" | "**" | LITERAL | Variable ;
//   Variable = "{" FieldPath [ "=" Segments ] "}" ;   Verb = ":" LITERAL ;

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <google/protobuf/descriptor.h>

#include "absl/status/statusor.h"

namespace grassroots::gateway {

// A parsed path template.
class PathTemplate final {
 public:
  // One path segment of the template.
  struct Segment {
    enum class Kind { kLiteral, kSingleWildcard, kMultiWildcard };
    Kind kind = Kind::kLiteral;
    std::string literal;  // for kLiteral
  };
  // A variable covers the segments [begin, end) of segments(); end == -1 means "to the end"
  // (a trailing "**").
  struct Variable {
    std::string field_path;  // e.g. "org_code", "organisation.org_code"
    int begin = 0;
    int end = 0;
  };

  static absl::StatusOr<PathTemplate> Parse(std::string_view text);

  // Matches a request path (already split from the query string, still percent-encoded).
  // On success fills `bindings` (field path, decoded value) and returns the number of literal
  // segments matched (used to rank overlapping templates); returns -1 when it does not match.
  int Match(std::string_view path, std::vector<std::pair<std::string, std::string>>* bindings) const;

  const std::string& text() const { return text_; }
  const std::string& verb() const { return verb_; }
  const std::vector<Segment>& segments() const { return segments_; }
  const std::vector<Variable>& variables() const { return variables_; }

 private:
  std::string text_;
  std::vector<Segment> segments_;
  std::vector<Variable> variables_;
  std::string verb_;
};

// One HTTP binding of one method.
// A client-streaming method whose input is this message type is an upload: the HTTP request
// body, taken as it is (a file), is sent as a stream of these chunks (field 1: bytes data).
inline constexpr char kUploadChunkType[] = "grassroots.exchange.v1.FileChunk";

struct Route {
  std::string http_method;  // "GET", "POST", ... (custom kinds as written, upper-cased)
  PathTemplate path;
  // "" (no body), "*" (the whole request) or a top-level request field name.
  std::string body;
  // "" (the whole response) or a top-level response field name.
  std::string response_body;
  const google::protobuf::MethodDescriptor* method = nullptr;
  // "/package.Service/Method", as gRPC names it on the wire.
  std::string rpc_path;
};

enum class MatchOutcome { kMatched, kNotFound, kMethodNotAllowed };

struct RouteMatch {
  MatchOutcome outcome = MatchOutcome::kNotFound;
  const Route* route = nullptr;  // when kMatched
  // Path variables (field path, decoded value), when kMatched.
  std::vector<std::pair<std::string, std::string>> bindings;
  // Methods the path accepts, when kMethodNotAllowed (sorted, unique).
  std::vector<std::string> allowed_methods;
  // The template of the best path match (for metrics), when kMatched or kMethodNotAllowed.
  std::string pattern;
};

class RouteTable final {
 public:
  // Builds the routes of every annotated method of every service in `files`. Client- and
  // bidi-streaming methods cannot be transcoded and are refused when annotated, as are
  // templates or body fields that do not fit the request message.
  static absl::StatusOr<std::unique_ptr<RouteTable>> Build(
      const std::vector<const google::protobuf::FileDescriptor*>& files);

  // Matches a method and a path (no query string). Templates with a verb are preferred over
  // those without; among the templates that match, the one with most literal segments wins.
  RouteMatch Match(std::string_view http_method, std::string_view path) const;

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// Decodes %XX escapes. When `keep_slash_escapes`, "%2F" stays encoded (multi-segment
// variables, per http.proto). Returns false for a malformed escape.
bool PercentDecode(std::string_view in, bool keep_slash_escapes, std::string* out);

// Finds the field for a dotted path in `message`, each part given by its proto name or its
// JSON (lowerCamelCase) name. Fills `chain` with the fields from the top. Returns false when a
// part does not exist or a non-final part is not a singular message field.
bool ResolveFieldPath(const google::protobuf::Descriptor* message, std::string_view path,
                      std::vector<const google::protobuf::FieldDescriptor*>* chain);

}  // namespace grassroots::gateway
