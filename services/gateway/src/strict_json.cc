#include "strict_json.h"

#include <cstdint>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "sv.h"

namespace grassroots::gateway {
namespace {

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

class Checker final {
 public:
  Checker(absl::string_view text, int max_depth) : text_(text), max_depth_(max_depth) {}

  absl::StatusOr<JsonShape> Run() {
    JsonShape shape;
    SkipWhitespace();
    if (AtEnd()) return Error("empty document");
    if (Peek() == '{') shape.is_object = true;
    if (!Value(0, shape.is_object ? &shape.top_level_keys : nullptr)) return status_;
    SkipWhitespace();
    if (!AtEnd()) return Error("unexpected data after the JSON value");
    return shape;
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }

  absl::Status Error(absl::string_view what) {
    status_ = absl::InvalidArgumentError(absl::StrCat("malformed JSON at byte ", pos_, ": ", what));
    return status_;
  }
  bool Fail(absl::string_view what) {
    (void)Error(what);
    return false;
  }

  void SkipWhitespace() {
    while (!AtEnd()) {
      char c = Peek();
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
      ++pos_;
    }
  }

  // keys_out: when not null, receives the keys of this (object) value.
  bool Value(int depth, std::vector<std::string>* keys_out) {
    if (AtEnd()) return Fail("unexpected end of input, a value was expected");
    char c = Peek();
    switch (c) {
      case '{': return Object(depth + 1, keys_out);
      case '[': return Array(depth + 1);
      case '"': {
        std::string ignored;
        return String(&ignored);
      }
      case 't': return Literal("true");
      case 'f': return Literal("false");
      case 'n': return Literal("null");
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return Number();
        if (c == '\'') return Fail("single-quoted strings are not JSON");
        return Fail(absl::StrCat("unexpected character '", absl::string_view(&text_[pos_], 1),
                                 "', a value was expected"));
    }
  }

  bool Literal(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return Fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool Digits() {
    size_t start = pos_;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') ++pos_;
    return pos_ > start;
  }

  bool Number() {
    if (Peek() == '-') ++pos_;
    if (AtEnd()) return Fail("incomplete number");
    if (Peek() == '0') {
      ++pos_;
      if (!AtEnd() && Peek() >= '0' && Peek() <= '9') return Fail("leading zeros are not allowed");
    } else if (!Digits()) {
      return Fail("invalid number");
    }
    if (!AtEnd() && Peek() == '.') {
      ++pos_;
      if (!Digits()) return Fail("a digit must follow the decimal point");
    }
    if (!AtEnd() && (Peek() == 'e' || Peek() == 'E')) {
      ++pos_;
      if (!AtEnd() && (Peek() == '+' || Peek() == '-')) ++pos_;
      if (!Digits()) return Fail("invalid exponent");
    }
    return true;
  }

  bool Hex4(uint32_t* out) {
    if (pos_ + 4 > text_.size()) return Fail("incomplete \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char h = text_[pos_ + i];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<uint32_t>(h - 'A' + 10);
      else return Fail("invalid \\u escape");
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  // One UTF-8 sequence starting at pos_ (first byte >= 0x80), appended to out.
  bool Utf8Sequence(std::string* out) {
    const auto* s = reinterpret_cast<const unsigned char*>(text_.data());
    unsigned char b0 = s[pos_];
    int len;
    uint32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) { len = 2; cp = b0 & 0x1F; }
    else if (b0 >= 0xE0 && b0 <= 0xEF) { len = 3; cp = b0 & 0x0F; }
    else if (b0 >= 0xF0 && b0 <= 0xF4) { len = 4; cp = b0 & 0x07; }
    else return Fail("invalid UTF-8");
    if (pos_ + len > text_.size()) return Fail("truncated UTF-8 sequence");
    for (int i = 1; i < len; ++i) {
      unsigned char b = s[pos_ + i];
      if ((b & 0xC0) != 0x80) return Fail("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return Fail("overlong UTF-8");
    if (cp >= 0xD800 && cp <= 0xDFFF) return Fail("UTF-8 encoded surrogate");
    if (cp > 0x10FFFF) return Fail("invalid UTF-8");
    out->append(text_.data() + pos_, static_cast<size_t>(len));
    pos_ += len;
    return true;
  }

  bool String(std::string* decoded) {
    ++pos_;  // opening quote
    while (true) {
      if (AtEnd()) return Fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(Peek());
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return Fail("control characters must be escaped in strings");
      if (c >= 0x80) {
        if (!Utf8Sequence(decoded)) return false;
        continue;
      }
      if (c != '\\') {
        decoded->push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      ++pos_;
      if (AtEnd()) return Fail("unterminated escape");
      char e = Peek();
      ++pos_;
      switch (e) {
        case '"': decoded->push_back('"'); break;
        case '\\': decoded->push_back('\\'); break;
        case '/': decoded->push_back('/'); break;
        case 'b': decoded->push_back('\b'); break;
        case 'f': decoded->push_back('\f'); break;
        case 'n': decoded->push_back('\n'); break;
        case 'r': decoded->push_back('\r'); break;
        case 't': decoded->push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return Fail("unpaired low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u") return Fail("unpaired high surrogate in \\u escape");
            pos_ += 2;
            uint32_t low;
            if (!Hex4(&low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return Fail("unpaired high surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(*decoded, cp);
          break;
        }
        default:
          --pos_;
          return Fail("invalid escape in string");
      }
    }
  }

  bool Object(int depth, std::vector<std::string>* keys_out) {
    if (depth > max_depth_) return Fail("nested too deeply");
    ++pos_;  // '{'
    absl::flat_hash_set<std::string> seen;
    SkipWhitespace();
    if (!AtEnd() && Peek() == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      SkipWhitespace();
      if (AtEnd()) return Fail("unterminated object");
      if (Peek() == '}') return Fail("trailing comma in object");
      if (Peek() == '\'') return Fail("single-quoted strings are not JSON");
      if (Peek() != '"') return Fail("object keys must be double-quoted strings");
      size_t key_pos = pos_;
      std::string key;
      if (!String(&key)) return false;
      if (!seen.insert(key).second) {
        pos_ = key_pos;
        return Fail(absl::StrCat("duplicate key \"", key, "\""));
      }
      if (keys_out != nullptr) keys_out->push_back(key);
      SkipWhitespace();
      if (AtEnd() || Peek() != ':') return Fail("':' expected after an object key");
      ++pos_;
      SkipWhitespace();
      if (!Value(depth, nullptr)) return false;
      SkipWhitespace();
      if (AtEnd()) return Fail("unterminated object");
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') {
        ++pos_;
        return true;
      }
      return Fail("',' or '}' expected in object");
    }
  }

  bool Array(int depth) {
    if (depth > max_depth_) return Fail("nested too deeply");
    ++pos_;  // '['
    SkipWhitespace();
    if (!AtEnd() && Peek() == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      SkipWhitespace();
      if (AtEnd()) return Fail("unterminated array");
      if (Peek() == ']') return Fail("trailing comma in array");
      if (!Value(depth, nullptr)) return false;
      SkipWhitespace();
      if (AtEnd()) return Fail("unterminated array");
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == ']') {
        ++pos_;
        return true;
      }
      return Fail("',' or ']' expected in array");
    }
  }

  absl::string_view text_;
  int max_depth_;
  size_t pos_ = 0;
  absl::Status status_;
};

}  // namespace

bool IsValidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    unsigned char b0 = s[i];
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) { len = 2; cp = b0 & 0x1F; }
    else if (b0 >= 0xE0 && b0 <= 0xEF) { len = 3; cp = b0 & 0x0F; }
    else if (b0 >= 0xF0 && b0 <= 0xF4) { len = 4; cp = b0 & 0x07; }
    else return false;
    if (i + len > text.size()) return false;
    for (int k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

absl::StatusOr<JsonShape> CheckStrictJson(std::string_view text, int max_depth) {
  return Checker(ToAbsl(text), max_depth).Run();
}

}  // namespace grassroots::gateway
