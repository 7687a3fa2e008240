#include "nfs41d/fh.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nfs41d {
namespace {

constexpr uint8_t kFhVersion = 1;
constexpr size_t kBodyBytes = 1 + 4 + 8 + 4;

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 3; i >= 0; --i) { p[i] = v & 0xff; v >>= 8; }
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) { p[i] = v & 0xff; v >>= 8; }
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

// RFC 2104: HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)), with K
// zero-padded to SHA-256's 64-byte block (our 32-byte secret fits).
struct FhCodec::Keyed {
  EVP_MD_CTX* inner = nullptr;  // after absorbing K ^ ipad
  EVP_MD_CTX* outer = nullptr;  // after absorbing K ^ opad
  ~Keyed() {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
  }
};

FhCodec::FhCodec(std::array<uint8_t, kFhSecretBytes> secret) {
  static std::atomic<uint64_t> next_serial{1};
  serial_ = next_serial.fetch_add(1, std::memory_order_relaxed);
  static_assert(kFhSecretBytes <= 64, "the secret must fit one block");
  auto k = std::make_shared<Keyed>();
  uint8_t ipad[64], opad[64];
  for (size_t i = 0; i < 64; ++i) {
    const uint8_t b = i < secret.size() ? secret[i] : 0;
    ipad[i] = b ^ 0x36;
    opad[i] = b ^ 0x5c;
  }
  k->inner = EVP_MD_CTX_new();
  k->outer = EVP_MD_CTX_new();
  // Only allocation failure can make these fail; a codec that cannot MAC
  // would accept nothing and hand out garbage, so stop here instead.
  if (!k->inner || !k->outer ||
      EVP_DigestInit_ex(k->inner, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(k->inner, ipad, sizeof ipad) != 1 ||
      EVP_DigestInit_ex(k->outer, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(k->outer, opad, sizeof opad) != 1) {
    std::abort();
  }
  OPENSSL_cleanse(ipad, sizeof ipad);
  OPENSSL_cleanse(opad, sizeof opad);
  keyed_ = std::move(k);
}

std::array<uint8_t, 16> FhCodec::Mac(std::span<const uint8_t> body) const {
  // One scratch context per thread, reused (copy_ex reinitialises it).
  struct Scratch {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Scratch() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Scratch scratch;
  unsigned char ih[EVP_MAX_MD_SIZE], md[EVP_MAX_MD_SIZE];
  unsigned int ilen = 0, len = 0;
  std::array<uint8_t, 16> out{};
  if (!scratch.ctx ||
      EVP_MD_CTX_copy_ex(scratch.ctx, keyed_->inner) != 1 ||
      EVP_DigestUpdate(scratch.ctx, body.data(), body.size()) != 1 ||
      EVP_DigestFinal_ex(scratch.ctx, ih, &ilen) != 1 ||
      EVP_MD_CTX_copy_ex(scratch.ctx, keyed_->outer) != 1 ||
      EVP_DigestUpdate(scratch.ctx, ih, ilen) != 1 ||
      EVP_DigestFinal_ex(scratch.ctx, md, &len) != 1) {
    // Out of memory: a MAC of all zeros matches no handle we made with a
    // working digest, so decoding refuses (NFS4ERR_BADHANDLE) rather than
    // accepting a forged handle.
    out.fill(0);
    return out;
  }
  std::memcpy(out.data(), md, out.size());
  return out;
}

std::vector<uint8_t> FhCodec::Encode(const FileHandle& fh) const {
  std::vector<uint8_t> b(kFhBytes);
  b[0] = kFhVersion;
  Put32(&b[1], fh.export_id);
  Put64(&b[5], fh.ino);
  Put32(&b[13], fh.generation);
  auto mac = Mac(std::span<const uint8_t>(b.data(), kBodyBytes));
  std::memcpy(&b[kBodyBytes], mac.data(), mac.size());
  return b;
}

std::optional<FileHandle> FhCodec::Decode(
    std::span<const uint8_t> bytes) const {
  if (bytes.size() != kFhBytes || bytes[0] != kFhVersion) return std::nullopt;
  // Handles this thread verified lately, by exact bytes and key: the same
  // bytes under the same key verify again, so the HMAC (two SHA-256 blocks,
  // ~5,000 instructions: most of a cached GETATTR's PUTFH) is skipped. A
  // forged handle never enters the table, and one that differs in any byte
  // misses it. The compare is constant-time, like the MAC's: a timed probe
  // must not learn how many leading bytes of a remembered handle it got
  // right (that would let it forge the MAC byte by byte).
  struct Verified {
    uint64_t serial = 0;  // 0: empty
    std::array<uint8_t, kFhBytes> bytes{};
  };
  constexpr size_t kWays = 64;
  thread_local std::array<Verified, kWays> memo;
  uint64_t ino_bits = Get64(&bytes[5]);
  Verified& slot = memo[(ino_bits ^ (ino_bits >> 17)) % kWays];
  const bool known =
      slot.serial == serial_ &&
      CRYPTO_memcmp(slot.bytes.data(), bytes.data(), kFhBytes) == 0;
  if (!known) {
    auto mac = Mac(bytes.subspan(0, kBodyBytes));
    if (CRYPTO_memcmp(mac.data(), bytes.data() + kBodyBytes, mac.size()) !=
        0) {
      return std::nullopt;
    }
    slot.serial = serial_;
    std::memcpy(slot.bytes.data(), bytes.data(), kFhBytes);
  }
  FileHandle fh;
  fh.export_id = Get32(&bytes[1]);
  fh.ino = Get64(&bytes[5]);
  fh.generation = Get32(&bytes[13]);
  return fh;
}

std::optional<std::array<uint8_t, kFhSecretBytes>> LoadOrCreateSecret(
    const std::string& path, std::string* error) {
  std::array<uint8_t, kFhSecretBytes> key{};
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
      *error = "cannot generate random filehandle secret";
      return std::nullopt;
    }
    std::string tmp = path + ".tmp";
    int w = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w < 0) {
      *error = "cannot create " + tmp + ": " + std::strerror(errno);
      return std::nullopt;
    }
    bool ok = write(w, key.data(), key.size()) ==
                  static_cast<ssize_t>(key.size()) &&
              fsync(w) == 0;
    close(w);
    if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
      *error = "cannot write " + path + ": " + std::strerror(errno);
      return std::nullopt;
    }
    return key;
  }
  if (fd < 0) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  ssize_t n = read(fd, key.data(), key.size());
  close(fd);
  if (n != static_cast<ssize_t>(key.size())) {
    *error = path + ": filehandle secret must be " +
             std::to_string(kFhSecretBytes) + " bytes";
    return std::nullopt;
  }
  return key;
}

}  // namespace nfs41d
