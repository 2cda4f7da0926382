#include "grassroots/common/pii.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <pthread.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "grassroots/common/log.h"

ABSL_FLAG(std::string, pii_key, "",
          "64 hex characters: the master key protecting ID numbers (env GRASSROOTS_PII_KEY); "
          "required unless --development_pii_key");
ABSL_FLAG(bool, development_pii_key, false,
          "without --pii_key, protect ID numbers with the public development key (env "
          "GRASSROOTS_DEVELOPMENT_PII_KEY; tests and benchmarks only: rows sealed with it are "
          "unreadable under a real key)");

namespace grassroots::common {
namespace {

constexpr unsigned char kVersion = 0x01;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void Hmac(const unsigned char* key, size_t key_len, std::string_view data, unsigned char out[32]) {
  unsigned int len = 32;
  HMAC(EVP_sha256(), key, static_cast<int>(key_len), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
}

// Cannot-happen failures of the crypto library end the process (no untested recovery).
[[noreturn]] void Fatal(const char* what) {
  LogError("pii crypto failure", {{"step", std::string_view(what)}});
  std::abort();
}

struct CipherCtx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
};

struct DigestCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~DigestCtx() { EVP_MD_CTX_free(ctx); }
};

// Fetched once: the implicit forms (EVP_sha256(), HMAC()) look the algorithm up on every call,
// which cost more than the hashing itself.
const EVP_MD* Sha256() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}
const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

std::atomic<uint64_t> next_key_serial{1};

// Nonces are drawn from the CSPRNG a few hundred at a time (one RAND_bytes call per nonce cost
// more than the whole seal); each is used once. A forked child must not reuse its parent's
// unused ones: a fork makes every thread's pool stale.
constexpr size_t kNoncesPerDraw = 256;
std::atomic<uint64_t> fork_generation{0};
void AfterFork() { fork_generation.fetch_add(1); }

// A cipher context that keeps the key schedule of the last key it was set up with (by the
// PiiProtector's key serial): a value then sets only its nonce (GCM's default IV length is the 12
// bytes used here). Setting up the key was most of the cost of a seal or an open.
struct KeyedCipher {
  CipherCtx c;
  uint64_t key_serial = 0;
  // The context, keyed for `key` (serial `serial`) to encrypt or decrypt.
  EVP_CIPHER_CTX* For(uint64_t serial, const unsigned char* key, bool encrypt, const char* what) {
    if (c.ctx == nullptr) Fatal(what);
    if (key_serial != serial) {
      key_serial = 0;
      if (Aes256Gcm() == nullptr ||
          (encrypt ? EVP_EncryptInit_ex2(c.ctx, Aes256Gcm(), key, nullptr, nullptr)
                   : EVP_DecryptInit_ex2(c.ctx, Aes256Gcm(), key, nullptr, nullptr)) != 1) {
        Fatal(what);
      }
      key_serial = serial;
    }
    return c.ctx;
  }
};

// Per thread: keyed cipher contexts for sealing and for opening, and a digest context.
struct ThreadCrypto {
  KeyedCipher seal, open;
  DigestCtx digest;
  std::array<unsigned char, PiiProtector::kNonceBytes * kNoncesPerDraw> nonces{};
  size_t nonces_used = kNoncesPerDraw;
  uint64_t nonces_generation = 0;
  ~ThreadCrypto() { OPENSSL_cleanse(nonces.data(), nonces.size()); }

  void NextNonce(unsigned char* out) {
    static const bool registered = [] { return pthread_atfork(nullptr, nullptr, AfterFork) == 0; }();
    if (!registered) Fatal("nonce fork handler");
    const uint64_t generation = fork_generation.load();
    if (nonces_used == kNoncesPerDraw || nonces_generation != generation) {
      if (RAND_bytes(nonces.data(), static_cast<int>(nonces.size())) != 1) Fatal("random nonce");
      nonces_used = 0;
      nonces_generation = generation;
    }
    unsigned char* n = nonces.data() + nonces_used * PiiProtector::kNonceBytes;
    std::memcpy(out, n, PiiProtector::kNonceBytes);
    OPENSSL_cleanse(n, PiiProtector::kNonceBytes);
    ++nonces_used;
  }
};
ThreadCrypto& Local() {
  thread_local ThreadCrypto t;
  return t;
}

}  // namespace

struct PiiProtector::HmacState {
  DigestCtx inner, outer;
};

void PiiProtector::Derive(const unsigned char* master) {
  Hmac(master, 32, "grassroots/pii/hash/v1", hash_key_.data());
  Hmac(master, 32, "grassroots/pii/seal/v1", enc_key_.data());
  // HMAC (RFC 2104): H((K ^ opad) || H((K ^ ipad) || m)); the key is one 64-byte block.
  auto state = std::make_shared<HmacState>();
  unsigned char ipad[64], opad[64];
  for (size_t i = 0; i < 64; ++i) {
    const unsigned char k = i < hash_key_.size() ? hash_key_[i] : 0;
    ipad[i] = k ^ 0x36;
    opad[i] = k ^ 0x5c;
  }
  if (Sha256() == nullptr || state->inner.ctx == nullptr || state->outer.ctx == nullptr ||
      EVP_DigestInit_ex(state->inner.ctx, Sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(state->inner.ctx, ipad, sizeof ipad) != 1 ||
      EVP_DigestInit_ex(state->outer.ctx, Sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(state->outer.ctx, opad, sizeof opad) != 1) {
    Fatal("hmac key");
  }
  OPENSSL_cleanse(ipad, sizeof ipad);
  OPENSSL_cleanse(opad, sizeof opad);
  hmac_ = std::move(state);
  key_serial_ = next_key_serial.fetch_add(1);
}

absl::StatusOr<PiiProtector> PiiProtector::FromHexKey(std::string_view hex) {
  if (hex.size() != 64) return absl::InvalidArgumentError("pii_key: must be 64 hex characters");
  unsigned char master[32];
  for (size_t i = 0; i < 32; ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return absl::InvalidArgumentError("pii_key: must be 64 hex characters");
    master[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  PiiProtector p;
  p.Derive(master);
  OPENSSL_cleanse(master, sizeof master);
  return p;
}

PiiProtector PiiProtector::Development() {
  static_assert(kDevelopmentKey.size() == 32);
  PiiProtector p;
  p.Derive(reinterpret_cast<const unsigned char*>(kDevelopmentKey.data()));
  p.development_ = true;
  return p;
}

absl::StatusOr<PiiProtector> PiiProtector::FromFlags() {
  const std::string key = absl::GetFlag(FLAGS_pii_key);
  if (key.empty()) {
    if (!absl::GetFlag(FLAGS_development_pii_key)) {
      // No silent fallback: rows sealed with the public key would be readable by anyone and
      // dropped as unreadable once the real key is set.
      return absl::FailedPreconditionError(
          "no --pii_key (GRASSROOTS_PII_KEY): a service holding ID numbers does not start without "
          "its key (--development_pii_key for tests and benchmarks only)");
    }
    LogWarning("no --pii_key (GRASSROOTS_PII_KEY) given: ID numbers are protected with the public "
               "DEVELOPMENT key (--development_pii_key); never use this outside development");
    return Development();
  }
  return FromHexKey(key);
}

std::string PiiProtector::Hash(std::string_view value) const {
  std::string out(kHashBytes, '\0');
  HashTo(value, out.data());
  return out;
}

void PiiProtector::HashTo(std::string_view value, char* out) const {
  EVP_MD_CTX* ctx = Local().digest.ctx;
  unsigned char inner[32], mac[32];
  unsigned int len = 0;
  if (ctx == nullptr || EVP_MD_CTX_copy_ex(ctx, hmac_->inner.ctx) != 1 ||
      EVP_DigestUpdate(ctx, value.data(), value.size()) != 1 || EVP_DigestFinal_ex(ctx, inner, &len) != 1 ||
      EVP_MD_CTX_copy_ex(ctx, hmac_->outer.ctx) != 1 || EVP_DigestUpdate(ctx, inner, sizeof inner) != 1 ||
      EVP_DigestFinal_ex(ctx, mac, &len) != 1) {
    Fatal("hash");
  }
  std::memcpy(out, mac, kHashBytes);
}

std::string PiiProtector::Seal(std::string_view value) const {
  std::string out(SealedSize(value.size()), '\0');
  SealTo(value, out.data());
  return out;
}

void PiiProtector::SealTo(std::string_view value, char* out) const {
  auto* bytes = reinterpret_cast<unsigned char*>(out);
  bytes[0] = kVersion;
  unsigned char* nonce = bytes + 1;
  ThreadCrypto& t = Local();
  t.NextNonce(nonce);
  EVP_CIPHER_CTX* c = t.seal.For(key_serial_, enc_key_.data(), /*encrypt=*/true, "seal key");
  int len = 0;
  if (EVP_EncryptInit_ex2(c, nullptr, nullptr, nonce, nullptr) != 1 ||
      EVP_EncryptUpdate(c, bytes + 1 + kNonceBytes, &len, reinterpret_cast<const unsigned char*>(value.data()),
                        static_cast<int>(value.size())) != 1 ||
      EVP_EncryptFinal_ex(c, bytes + 1 + kNonceBytes + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, kTagBytes, bytes + 1 + kNonceBytes + value.size()) != 1) {
    Fatal("seal");
  }
}

absl::StatusOr<std::string> PiiProtector::Open(std::string_view sealed) const {
  if (sealed.size() < 1 + kNonceBytes + kTagBytes || static_cast<unsigned char>(sealed[0]) != kVersion) {
    return absl::DataLossError("protected value is malformed");
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(sealed.data());
  const size_t n = sealed.size() - 1 - kNonceBytes - kTagBytes;
  std::string out(n, '\0');
  EVP_CIPHER_CTX* c = Local().open.For(key_serial_, enc_key_.data(), /*encrypt=*/false, "open key");
  int len = 0;
  if (EVP_DecryptInit_ex2(c, nullptr, nullptr, bytes + 1, nullptr) != 1) Fatal("open init");
  if (EVP_DecryptUpdate(c, reinterpret_cast<unsigned char*>(out.data()), &len, bytes + 1 + kNonceBytes,
                        static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, kTagBytes,
                          const_cast<unsigned char*>(bytes + 1 + kNonceBytes + n)) != 1 ||
      EVP_DecryptFinal_ex(c, reinterpret_cast<unsigned char*>(out.data()) + len, &len) != 1) {
    return absl::DataLossError("protected value failed authentication (altered, or another key)");
  }
  return out;
}

}  // namespace grassroots::common
