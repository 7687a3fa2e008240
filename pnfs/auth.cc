#include "pnfs/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <vector>

namespace pnfs {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void PutU64(std::vector<uint8_t>& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back((v >> shift) & 0xff);
}

void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back((v >> shift) & 0xff);
}

void PutField(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  PutU32(out, static_cast<uint32_t>(bytes.size()));
  out.insert(out.end(), bytes.begin(), bytes.end());
}

Proof Hmac(const Key& key, const std::vector<uint8_t>& msg) {
  Proof out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), msg.data(),
       msg.size(), out.data(), &len);
  return out;
}

}  // namespace

Proof RegisterProof(const Key& key, std::span<const uint8_t> ds_uuid,
                    std::string_view advertise, std::string_view listen) {
  std::vector<uint8_t> msg;
  const std::string_view tag = "nsctl-register";
  msg.insert(msg.end(), tag.begin(), tag.end());
  PutField(msg, ds_uuid);
  PutField(msg, Bytes(advertise));
  PutField(msg, Bytes(listen));
  return Hmac(key, msg);
}

Proof HeartbeatProof(const Key& key, uint64_t device_id,
                     std::span<const uint8_t> ds_uuid) {
  std::vector<uint8_t> msg;
  const std::string_view tag = "nsctl-heartbeat";
  msg.insert(msg.end(), tag.begin(), tag.end());
  PutU64(msg, device_id);
  PutField(msg, ds_uuid);
  return Hmac(key, msg);
}

Proof InventoryProof(const Key& key, uint64_t device_id,
                     std::span<const uint8_t> ds_uuid, uint64_t work_id,
                     uint32_t page, uint64_t started_ns, bool eof,
                     std::span<const uint64_t> stripes) {
  std::vector<uint8_t> msg;
  const std::string_view tag = "nsctl-inventory";
  msg.insert(msg.end(), tag.begin(), tag.end());
  PutU64(msg, device_id);
  PutField(msg, ds_uuid);
  PutU64(msg, work_id);
  PutU32(msg, page);
  PutU64(msg, started_ns);
  msg.push_back(eof ? 1 : 0);
  PutU32(msg, static_cast<uint32_t>(stripes.size() / 3));
  for (uint64_t w : stripes) PutU64(msg, w);
  return Hmac(key, msg);
}

bool ProofMatches(const Proof& expected, std::span<const uint8_t> received) {
  return received.size() == expected.size() &&
         CRYPTO_memcmp(expected.data(), received.data(), expected.size()) == 0;
}

}  // namespace pnfs
