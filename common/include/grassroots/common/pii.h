#pragma once
// Protection of personal identifiers (resident ID numbers): a keyed hash for exact lookup and
// joins, and authenticated encryption of the clear value for the few who may see it.
//
//   hash:    HMAC-SHA256(hash_key, value) truncated to 16 bytes (store as BINARY(16));
//   sealed:  1 version byte (0x01) || 12-byte random nonce || AES-256-GCM ciphertext || 16-byte tag.
//
// Both sub-keys are derived from one 32-byte master key (flag --pii_key, 64 hex characters;
// environment GRASSROOTS_PII_KEY). Without it a service refuses to start, unless
// --development_pii_key asks for the fixed, publicly known development key (tests, benchmarks).

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"

ABSL_DECLARE_FLAG(std::string, pii_key);
ABSL_DECLARE_FLAG(bool, development_pii_key);

namespace grassroots::common {

class PiiProtector final {
 public:
  static constexpr size_t kHashBytes = 16;
  static constexpr size_t kNonceBytes = 12;
  static constexpr size_t kTagBytes = 16;
  // The development key: the 32 ASCII bytes below. Public: it protects nothing.
  static constexpr std::string_view kDevelopmentKey = "grassroots-dev-key-NOT-FOR-PROD!";

  // From 64 hex characters (32 bytes). INVALID_ARGUMENT otherwise (the key is never echoed).
  static absl::StatusOr<PiiProtector> FromHexKey(std::string_view hex);
  // The development key.
  static PiiProtector Development();
  // From --pii_key (or GRASSROOTS_PII_KEY). Empty: FAILED_PRECONDITION, or the development key
  // with a logged warning under --development_pii_key. An invalid key is an error.
  static absl::StatusOr<PiiProtector> FromFlags();

  // 16-byte keyed hash of the value (deterministic for a key).
  std::string Hash(std::string_view value) const;
  // The same into out[kHashBytes] (no allocation).
  void HashTo(std::string_view value, char* out) const;
  // Encrypts with a fresh random nonce.
  std::string Seal(std::string_view value) const;
  // The same into out[SealedSize(value.size())] (no allocation).
  static constexpr size_t SealedSize(size_t n) { return 1 + kNonceBytes + n + kTagBytes; }
  void SealTo(std::string_view value, char* out) const;
  // Decrypts and authenticates; DATA_LOSS when the text was altered or sealed under another key.
  absl::StatusOr<std::string> Open(std::string_view sealed) const;

  bool is_development_key() const { return development_; }

 private:
  PiiProtector() = default;
  void Derive(const unsigned char* master);
  std::array<unsigned char, 32> hash_key_{};
  std::array<unsigned char, 32> enc_key_{};
  // The HMAC's inner and outer SHA-256 states after the key block (computed once: a hash is
  // then two copies and two short digests), and a number naming this key for the per-thread
  // cipher context of Seal.
  struct HmacState;
  std::shared_ptr<const HmacState> hmac_;
  uint64_t key_serial_ = 0;
  bool development_ = false;
};

}  // namespace grassroots::common
