#include "grassroots/common/pii.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"

namespace grassroots::common {
namespace {

constexpr char kKey[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

TEST(PiiProtector, HashIsKeyedDeterministicAnd16Bytes) {
  auto a = PiiProtector::FromHexKey(kKey);
  ASSERT_TRUE(a.ok());
  auto dev = PiiProtector::Development();
  EXPECT_TRUE(dev.is_development_key());
  EXPECT_FALSE(a->is_development_key());
  const std::string id = "11010519491231002X";
  EXPECT_EQ(a->Hash(id).size(), 16u);
  EXPECT_EQ(a->Hash(id), a->Hash(id));
  EXPECT_NE(a->Hash(id), a->Hash("110105194912310021"));
  EXPECT_NE(a->Hash(id), dev.Hash(id));
}

// The hash is HMAC-SHA256 (RFC 2104) truncated: stored hashes must never change. Expected
// values from Python's hmac module with the development key's derived hash key.
TEST(PiiProtector, HashIsStandardHmacSha256) {
  auto dev = PiiProtector::Development();
  EXPECT_EQ(absl::BytesToHexString(dev.Hash("32072319800115123X")), "d304995a5557b0548f9c7aa0356b6cd7");
  EXPECT_EQ(absl::BytesToHexString(dev.Hash("")), "203c70fd52c141383288ba7e94ea58a9");
}

// Seal keeps a keyed cipher context per thread: protectors with other keys, used in turn and
// on several threads, each seal with their own key.
TEST(PiiProtector, SealsWithItsOwnKeyWhateverTheThreadSealedBefore) {
  auto a = PiiProtector::FromHexKey(kKey);
  ASSERT_TRUE(a.ok());
  const PiiProtector b = PiiProtector::Development();
  auto work = [&] {
    for (int i = 0; i < 50; ++i) {
      const std::string id = "1101051949123100" + std::to_string(10 + i);
      const std::string sa = a->Seal(id), sb = b.Seal(id);
      EXPECT_EQ(*a->Open(sa), id);
      EXPECT_EQ(*b.Open(sb), id);
      EXPECT_FALSE(b.Open(sa).ok());
      EXPECT_EQ(a->Hash(id), PiiProtector(*a).Hash(id));
    }
  };
  std::thread t1(work), t2(work);
  work();
  t1.join();
  t2.join();
}

TEST(PiiProtector, SealOpensAndUsesFreshNonces) {
  auto p = PiiProtector::FromHexKey(kKey);
  ASSERT_TRUE(p.ok());
  const std::string id = "11010519491231002X";
  const std::string s1 = p->Seal(id), s2 = p->Seal(id);
  EXPECT_NE(s1, s2);
  EXPECT_EQ(s1.size(), 1 + 12 + id.size() + 16);
  EXPECT_EQ(s1.find(id), std::string::npos);
  EXPECT_EQ(*p->Open(s1), id);
  EXPECT_EQ(*p->Open(s2), id);
  EXPECT_EQ(*p->Open(p->Seal("")), "");
}

// Nonces come from the CSPRNG in draws of a few hundred per thread: over several draws, and
// in a forked child (which must not take its parent's unused ones), no nonce repeats. The
// allocation-free forms give the same as Hash and Seal.
TEST(PiiProtector, NoncesNeverRepeatAcrossDrawsThreadsAndFork) {
  auto p = PiiProtector::FromHexKey(kKey);
  ASSERT_TRUE(p.ok());
  const std::string id = "11010519491231002X";
  auto nonce = [&] {
    char out[PiiProtector::SealedSize(18)];
    p->SealTo(id, out);
    EXPECT_EQ(*p->Open(std::string_view(out, sizeof out)), id);
    return std::string(out + 1, PiiProtector::kNonceBytes);
  };
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(seen.insert(nonce()).second);
  std::vector<std::string> other(1000);
  std::thread t([&] {
    for (auto& n : other) n = nonce();
  });
  t.join();
  for (const auto& n : other) EXPECT_TRUE(seen.insert(n).second);
  // The child's next nonces and the parent's next ones differ.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    std::string n;
    for (int i = 0; i < 8; ++i) n += nonce();
    const bool ok = write(fds[1], n.data(), n.size()) == static_cast<ssize_t>(n.size());
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  std::string from_child(8 * PiiProtector::kNonceBytes, '\0');
  size_t got = 0;
  while (got < from_child.size()) {
    const ssize_t n = read(fds[0], from_child.data() + got, from_child.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_EQ(got, from_child.size());
  for (int i = 0; i < 8; ++i) seen.insert(nonce());
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(seen.insert(from_child.substr(i * PiiProtector::kNonceBytes, PiiProtector::kNonceBytes)).second);
  }
  char hash[PiiProtector::kHashBytes];
  p->HashTo(id, hash);
  EXPECT_EQ(std::string(hash, sizeof hash), p->Hash(id));
}

TEST(PiiProtector, TamperingAndWrongKeyAreRefused) {
  auto p = PiiProtector::FromHexKey(kKey);
  ASSERT_TRUE(p.ok());
  std::string s = p->Seal("11010519491231002X");
  std::string bad = s;
  bad[20] ^= 1;
  EXPECT_EQ(p->Open(bad).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(PiiProtector::Development().Open(s).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(p->Open("x").status().code(), absl::StatusCode::kDataLoss);
  // A refused value leaves nothing behind: the next open on this thread works.
  auto opened = p->Open(s);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "11010519491231002X");
  EXPECT_EQ(p->Open(bad).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(*p->Open(s), "11010519491231002X");
}

TEST(PiiProtector, KeyMustBe64Hex) {
  EXPECT_FALSE(PiiProtector::FromHexKey("").ok());
  EXPECT_FALSE(PiiProtector::FromHexKey("00").ok());
  std::string k(kKey);
  k[5] = 'g';
  auto r = PiiProtector::FromHexKey(k);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(r.status().message()).find(k), std::string::npos);
}

}  // namespace
}  // namespace grassroots::common
