#pragma once

// Reads the XDR values packed in an fattr4's attr_vals (RFC 8881 §3.3.13):
// big-endian words and length-prefixed, 4-byte padded opaques. rpcgen
// decodes attr_vals as one opaque, so the server (SETATTR, VERIFY) and the
// client library (GETATTR replies) both walk it with this. Every read checks
// what is left: a short or lying value makes it return false, never read past
// the end.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

namespace nfs4 {

class AttrReader {
 public:
  AttrReader(const char* p, size_t n)
      : p_(reinterpret_cast<const uint8_t*>(p)), n_(n) {}

  bool U32(uint32_t* v) {
    if (n_ - off_ < 4) return false;
    *v = (uint32_t{p_[off_]} << 24) | (uint32_t{p_[off_ + 1]} << 16) |
         (uint32_t{p_[off_ + 2]} << 8) | p_[off_ + 3];
    off_ += 4;
    return true;
  }
  bool U64(uint64_t* v) {
    uint32_t hi, lo;
    if (!U32(&hi) || !U32(&lo)) return false;
    *v = (uint64_t{hi} << 32) | lo;
    return true;
  }
  // An opaque or utf8 string of at most `max` bytes.
  bool Opaque(std::string* s,
              uint32_t max = std::numeric_limits<uint32_t>::max()) {
    uint32_t len;
    if (!U32(&len) || len > max) return false;
    const size_t padded = (size_t{len} + 3) & ~size_t{3};
    if (n_ - off_ < padded) return false;
    s->assign(reinterpret_cast<const char*>(p_ + off_), len);
    off_ += padded;
    return true;
  }
  bool Skip(size_t k) {
    if (n_ - off_ < k) return false;
    off_ += k;
    return true;
  }
  bool Done() const { return off_ == n_; }
  // The bytes not read yet, for decoders that live elsewhere.
  const char* rest() const { return reinterpret_cast<const char*>(p_ + off_); }
  size_t left() const { return n_ - off_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t off_ = 0;
};

}  // namespace nfs4
