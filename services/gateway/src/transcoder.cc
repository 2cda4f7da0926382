#include "transcoder.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grassroots/common/log.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"
#include "strict_json.h"
#include "sv.h"

namespace grassroots::gateway {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

google::protobuf::util::JsonPrintOptions PrintOptions() {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = false;
  return options;
}

std::string ProtobufMessage(const google::protobuf::util::Status& s) {
  auto m = s.message();
  return std::string(m.data(), m.size());
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

std::string CanonicalPath(const std::vector<const FieldDescriptor*>& chain) {
  std::string out;
  for (const auto* f : chain) {
    if (!out.empty()) out.push_back('.');
    out += f->name();
  }
  return out;
}

bool IsPrefixPath(std::string_view a, std::string_view b) {
  // a == b, or a is a parent of b, or b is a parent of a.
  if (a == b) return true;
  if (a.size() < b.size()) std::swap(a, b);
  return a.substr(0, b.size()) == b && a[b.size()] == '.';
}

// The field that a protobuf JSON parse error is about, when its message says
// ("(path) key: Cannot find field." / "key: Cannot find field." / "(path): ...").
std::string FieldOfParseError(std::string_view message) {
  constexpr std::string_view kNotFound = ": Cannot find field.";
  if (!message.empty() && message[0] == '(') {
    size_t close = message.find(')');
    if (close == std::string_view::npos) return "";
    std::string path(message.substr(1, close - 1));
    std::string_view rest = message.substr(close + 1);
    if (rest.size() > 1 && rest[0] == ' ' && rest.ends_with(kNotFound)) {
      std::string_view key = rest.substr(1, rest.size() - 1 - kNotFound.size());
      return path.empty() ? std::string(key) : absl::StrCat(path, ".", ToAbsl(key));
    }
    return path;
  }
  if (message.ends_with(kNotFound)) {
    std::string_view key = message.substr(0, message.size() - kNotFound.size());
    if (key.find(' ') == std::string_view::npos) return std::string(key);
  }
  return "";
}

absl::Status BodyError(std::string_view what, std::string_view parser_message) {
  std::string field = FieldOfParseError(parser_message);
  std::string description = absl::StrCat(ToAbsl(what), ": ", ToAbsl(parser_message));
  if (field.empty()) return absl::InvalidArgumentError(description);
  return common::InvalidField(field, description);
}

bool IsWrapperType(const Descriptor* d) {
  static constexpr std::string_view kWrappers[] = {
      "google.protobuf.DoubleValue", "google.protobuf.FloatValue",  "google.protobuf.Int64Value",
      "google.protobuf.UInt64Value", "google.protobuf.Int32Value",  "google.protobuf.UInt32Value",
      "google.protobuf.BoolValue",   "google.protobuf.StringValue", "google.protobuf.BytesValue"};
  for (std::string_view w : kWrappers) {
    if (d->full_name() == w) return true;
  }
  return false;
}

template <typename T>
bool ParseInteger(const std::string& text, T* out) {
  if (text.empty() || absl::ascii_isspace(static_cast<unsigned char>(text.front())) ||
      absl::ascii_isspace(static_cast<unsigned char>(text.back()))) {
    return false;
  }
  return absl::SimpleAtoi(text, out);
}

// Sets (or, for repeated fields, adds) one value given as text. `name` is what the caller
// called the field (parameter name or path variable), for error messages.
absl::Status SetFromText(Message* msg, const FieldDescriptor* f, const std::string& text,
                         const std::string& name) {
  const Reflection* r = msg->GetReflection();
  const bool rep = f->is_repeated();
  auto bad = [&](std::string_view expected) {
    return common::InvalidField(name, absl::StrCat("invalid value \"", text, "\": expected ",
                                                   ToAbsl(expected)));
  };
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        std::string decoded;
        if (!absl::Base64Unescape(text, &decoded) && !absl::WebSafeBase64Unescape(text, &decoded)) {
          return bad("base64");
        }
        rep ? r->AddString(msg, f, decoded) : r->SetString(msg, f, decoded);
      } else {
        if (!IsValidUtf8(text)) return bad("UTF-8 text");
        rep ? r->AddString(msg, f, text) : r->SetString(msg, f, text);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v;
      if (!ParseInteger(text, &v)) return bad("a 32-bit integer");
      rep ? r->AddInt32(msg, f, v) : r->SetInt32(msg, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!ParseInteger(text, &v)) return bad("a 64-bit integer");
      rep ? r->AddInt64(msg, f, v) : r->SetInt64(msg, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v;
      if (!ParseInteger(text, &v)) return bad("an unsigned 32-bit integer");
      rep ? r->AddUInt32(msg, f, v) : r->SetUInt32(msg, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!ParseInteger(text, &v)) return bad("an unsigned 64-bit integer");
      rep ? r->AddUInt64(msg, f, v) : r->SetUInt64(msg, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double v;
      if (text.empty() || !absl::SimpleAtod(text, &v)) return bad("a number");
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
        rep ? r->AddDouble(msg, f, v) : r->SetDouble(msg, f, v);
      } else {
        rep ? r->AddFloat(msg, f, static_cast<float>(v)) : r->SetFloat(msg, f, static_cast<float>(v));
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (text == "true") v = true;
      else if (text == "false") v = false;
      else return bad("true or false");
      rep ? r->AddBool(msg, f, v) : r->SetBool(msg, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      int number;
      if (const auto* ev = f->enum_type()->FindValueByName(text); ev != nullptr) {
        number = ev->number();
      } else if (!ParseInteger(text, &number)) {
        return bad(absl::StrCat("a value of ", f->enum_type()->full_name()));
      }
      rep ? r->AddEnumValue(msg, f, number) : r->SetEnumValue(msg, f, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      if (f->is_map()) return common::InvalidField(name, "map fields cannot be set from the URL");
      Message* sub = rep ? r->AddMessage(msg, f) : r->MutableMessage(msg, f);
      if (IsWrapperType(f->message_type())) {
        return SetFromText(sub, f->message_type()->FindFieldByName("value"), text, name);
      }
      // Well-known types with a JSON string form (Timestamp, Duration, FieldMask).
      std::string json;
      common::AppendJsonString(json, text);
      auto s = google::protobuf::util::JsonStringToMessage(json, sub);
      if (!s.ok()) {
        return common::InvalidField(
            name, absl::StrCat("cannot set ", f->message_type()->full_name(), " from \"", text,
                               "\": ", ProtobufMessage(s)));
      }
      return absl::OkStatus();
    }
  }
  return common::InvalidField(name, "unsupported field type");
}

// Walks to the message that holds the last field of `chain`, creating sub-messages.
Message* ParentOf(Message* root, const std::vector<const FieldDescriptor*>& chain) {
  Message* m = root;
  for (size_t i = 0; i + 1 < chain.size(); ++i) m = m->GetReflection()->MutableMessage(m, chain[i]);
  return m;
}

// Form decoding of one query component: '+' is a space, then %XX escapes.
bool FormDecode(std::string_view in, std::string* out) {
  std::string plus(in);
  for (char& c : plus) {
    if (c == '+') c = ' ';
  }
  return PercentDecode(plus, false, out);
}

const FieldDescriptor* UpdateMaskField(const Descriptor* input) {
  const FieldDescriptor* f = input->FindFieldByName("update_mask");
  if (f == nullptr || f->is_repeated() || f->message_type() == nullptr ||
      f->message_type()->full_name() != "google.protobuf.FieldMask") {
    return nullptr;
  }
  return f;
}

}  // namespace

absl::Status BuildRequestMessage(const Route& route, const Bindings& bindings,
                                 std::string_view query, std::string_view body,
                                 Message* request) {
  const Descriptor* input = request->GetDescriptor();
  std::vector<const FieldDescriptor*> chain;

  // Body.
  JsonShape shape;
  if (route.body.empty()) {
    if (!IsBlank(body)) {
      return absl::InvalidArgumentError(absl::StrCat(route.http_method, " ", route.path.text(),
                                                     " takes no request body"));
    }
  } else if (!IsBlank(body)) {
    auto checked = CheckStrictJson(body);
    if (!checked.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("request body: ", checked.status().message()));
    }
    shape = *std::move(checked);
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    google::protobuf::util::Status s;
    if (route.body == "*") {
      if (!shape.is_object) return absl::InvalidArgumentError("request body: a JSON object is expected");
      s = google::protobuf::util::JsonStringToMessage(std::string(body), request, options);
    } else {
      // The body is the value of one field: parse it as {"field": <body>}.
      std::string wrapped = "{";
      wrapped.reserve(body.size() + route.body.size() + 8);
      common::AppendJsonString(wrapped, route.body);
      wrapped += ":";
      wrapped.append(body.data(), body.size());
      wrapped += "}";
      s = google::protobuf::util::JsonStringToMessage(wrapped, request, options);
    }
    if (!s.ok()) return BodyError("request body", ProtobufMessage(s));
  }

  // Path variables (they win over the body).
  std::vector<std::string> bound;
  for (const auto& [path, value] : bindings) {
    if (!ResolveFieldPath(input, path, &chain)) {
      return absl::InternalError(absl::StrCat("path variable ", path, " does not resolve"));
    }
    Message* parent = ParentOf(request, chain);
    if (absl::Status s = SetFromText(parent, chain.back(), value, path); !s.ok()) return s;
    bound.push_back(CanonicalPath(chain));
  }

  // Query parameters.
  absl::flat_hash_set<std::string> given;
  bool mask_from_query = false;
  const FieldDescriptor* mask_field = UpdateMaskField(input);
  for (absl::string_view piece : absl::StrSplit(ToAbsl(query), '&')) {
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    absl::string_view raw_key = piece.substr(0, eq);
    absl::string_view raw_value = eq == absl::string_view::npos ? "" : piece.substr(eq + 1);
    std::string key, value;
    if (!FormDecode(ToStd(raw_key), &key) || !FormDecode(ToStd(raw_value), &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed percent-encoding in query parameter \"", raw_key, "\""));
    }
    if (!ResolveFieldPath(input, key, &chain)) {
      return common::InvalidField(key, absl::StrCat("unknown query parameter \"", key, "\""));
    }
    std::string canonical = CanonicalPath(chain);
    if (route.body == "*") {
      return common::InvalidField(
          key, absl::StrCat("query parameter \"", key, "\" not allowed: the body carries the whole request"));
    }
    if (!route.body.empty() && chain.front()->name() == route.body) {
      return common::InvalidField(
          key, absl::StrCat("query parameter \"", key, "\" not allowed: the field comes from the body"));
    }
    for (const std::string& b : bound) {
      if (IsPrefixPath(canonical, b)) {
        return common::InvalidField(
            key, absl::StrCat("query parameter \"", key, "\" not allowed: the field comes from the path"));
      }
    }
    const FieldDescriptor* leaf = chain.back();
    if (!leaf->is_repeated() && !given.insert(canonical).second) {
      return common::InvalidField(key, absl::StrCat("query parameter \"", key, "\" given more than once"));
    }
    if (leaf->is_repeated() && leaf->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        !IsWrapperType(leaf->message_type())) {
      return common::InvalidField(key, "repeated message fields cannot be set from the URL");
    }
    if (!leaf->is_repeated() && leaf->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        !IsWrapperType(leaf->message_type()) &&
        leaf->message_type()->full_name().rfind("google.protobuf.", 0) != 0) {
      return common::InvalidField(
          key, absl::StrCat("query parameter \"", key, "\" names a message; name one of its fields"));
    }
    if (chain.size() == 1 && leaf == mask_field) mask_from_query = true;
    Message* parent = ParentOf(request, chain);
    if (absl::Status s = SetFromText(parent, leaf, value, canonical); !s.ok()) return s;
  }

  // PATCH without a mask: the mask is the set of top-level keys of the body.
  if (route.http_method == "PATCH" && !route.body.empty() && mask_field != nullptr &&
      !mask_from_query && shape.is_object) {
    const Reflection* r = request->GetReflection();
    Message* mask = r->MutableMessage(request, mask_field);
    const FieldDescriptor* paths = mask->GetDescriptor()->FindFieldByName("paths");
    if (mask->GetReflection()->FieldSize(*mask, paths) == 0) {
      const Descriptor* target = input;
      if (route.body != "*") {
        const FieldDescriptor* body_field = input->FindFieldByName(route.body);
        target = body_field->message_type();
      }
      if (target != nullptr) {
        for (const std::string& key : shape.top_level_keys) {
          if (!ResolveFieldPath(target, key, &chain) || chain.size() != 1) continue;
          if (route.body == "*") {
            if (chain[0] == mask_field) continue;
            bool is_bound = false;
            for (const std::string& b : bound) is_bound = is_bound || b == chain[0]->name();
            if (is_bound) continue;
          }
          mask->GetReflection()->AddString(mask, paths, chain[0]->name());
        }
      }
      if (mask->GetReflection()->FieldSize(*mask, paths) == 0) r->ClearField(request, mask_field);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResponseToJson(const Route& route, const Message& response) {
  const Message* target = &response;
  if (!route.response_body.empty()) {
    const FieldDescriptor* f = response.GetDescriptor()->FindFieldByName(route.response_body);
    if (f == nullptr || f->is_repeated() || f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return absl::InternalError(absl::StrCat("response_body ", route.response_body,
                                              " is not a singular message field"));
    }
    target = &response.GetReflection()->GetMessage(response, f);
  }
  std::string out;
  auto s = google::protobuf::util::MessageToJsonString(*target, &out, PrintOptions());
  if (!s.ok()) {
    return absl::InternalError(absl::StrCat("cannot write the response as JSON: ", ProtobufMessage(s)));
  }
  return out;
}

google::rpc::Status RpcStatusFromGrpc(const grpc::Status& status) {
  google::rpc::Status out;
  if (status.error_details().empty() || !out.ParseFromString(status.error_details())) out.Clear();
  out.set_code(static_cast<int>(status.error_code()));
  if (!status.error_message().empty() || out.message().empty()) {
    out.set_message(status.error_message());
  }
  return out;
}

google::rpc::Status RpcStatusFromAbsl(const absl::Status& status) {
  return RpcStatusFromGrpc(common::ToGrpcStatus(status));
}

std::string StatusToJson(const google::rpc::Status& status) {
  std::string out = absl::StrCat("{\"code\":", status.code(), ",\"message\":");
  common::AppendJsonString(out, status.message());
  out += ",\"details\":[";
  bool first = true;
  for (const auto& any : status.details()) {
    if (!first) out += ",";
    first = false;
    std::string detail;
    if (google::protobuf::util::MessageToJsonString(any, &detail, PrintOptions()).ok()) {
      out += detail;
    } else {
      out += "{\"@type\":";
      common::AppendJsonString(out, any.type_url());
      out += ",\"value\":";
      common::AppendJsonString(out, absl::Base64Escape(any.value()));
      out += "}";
    }
  }
  out += "]}";
  // A caller's values come back in parse errors ("invalid value ..."): never an ID number.
  return common::MaskIdNumbersIn(out);
}

std::string StreamResultLine(std::string_view message_json) {
  std::string out = "{\"result\":";
  out.append(message_json.data(), message_json.size());
  out += "}\n";
  return out;
}

std::string StreamErrorLine(const google::rpc::Status& status) {
  return absl::StrCat("{\"error\":", StatusToJson(status), "}\n");
}

int HttpStatusFromGrpcCode(int code) {
  switch (code) {
    case 0: return 200;   // OK
    case 1: return 499;   // CANCELLED
    case 2: return 500;   // UNKNOWN
    case 3: return 400;   // INVALID_ARGUMENT
    case 4: return 504;   // DEADLINE_EXCEEDED
    case 5: return 404;   // NOT_FOUND
    case 6: return 409;   // ALREADY_EXISTS
    case 7: return 403;   // PERMISSION_DENIED
    case 8: return 429;   // RESOURCE_EXHAUSTED
    case 9: return 400;   // FAILED_PRECONDITION
    case 10: return 409;  // ABORTED
    case 11: return 400;  // OUT_OF_RANGE
    case 12: return 501;  // UNIMPLEMENTED
    case 13: return 500;  // INTERNAL
    case 14: return 503;  // UNAVAILABLE
    case 15: return 500;  // DATA_LOSS
    case 16: return 401;  // UNAUTHENTICATED
    default: return 500;
  }
}

}  // namespace grassroots::gateway
