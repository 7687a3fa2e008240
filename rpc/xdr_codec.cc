#include "rpc/xdr_codec.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace rpc {

// libtirpc lets a stream supply its own operations vector; this one appends
// to a vector. Decode operations fail: the encoder is write-only.
const XDR::xdr_ops XdrEncoder::kOps = {
    &XdrEncoder::GetLong,  &XdrEncoder::PutLong, &XdrEncoder::GetBytes,
    &XdrEncoder::PutBytes, &XdrEncoder::GetPos,  &XdrEncoder::SetPos,
    &XdrEncoder::Inline,   &XdrEncoder::Destroy, &XdrEncoder::Control,
};

XdrEncoder::XdrEncoder(size_t reserve) {
  // Capacity only: resizing would zero-fill it, a 1 MiB memset before every
  // WRITE request the client sizes up front (and every READ reply).
  buf_.reserve(std::max<size_t>(reserve, 16));
  xdr_.x_op = XDR_ENCODE;
  xdr_.x_ops = &kOps;
  xdr_.x_private = this;
}

void XdrEncoder::Reserve(size_t n) {
  // Capacity doubles, so that many small puts cost amortized O(1); an
  // encoder emptied by Take() starts again at kMinCapacity.
  if (buf_.capacity() - buf_.size() < n) {
    buf_.reserve(
        std::max({buf_.capacity() * 2, buf_.size() + n, kMinCapacity}));
  }
}

uint8_t* XdrEncoder::Grow(size_t n) {
  // Only the n bytes about to be written are added (and zeroed): small
  // puts, fixed-size fields, Inline. A few bytes (XDR padding) are pushed
  // one by one, inline: vector::resize is an out-of-line call of ~70
  // instructions, and a SEQUENCE reply makes a dozen of these
  // (docs/performance.md, issue 4 item 12).
  Reserve(n);
  const size_t at = buf_.size();
  if (n <= 8) {
    for (size_t i = 0; i < n; ++i) buf_.push_back(0);
  } else {
    buf_.resize(at + n);
  }
  return buf_.data() + at;
}

void XdrEncoder::Append(const void* p, size_t n) {
  // Copied once into place, never zeroed first: READ and WRITE data.
  if (n == 0) return;
  Reserve(n);
  const auto* b = static_cast<const uint8_t*>(p);
  buf_.insert(buf_.end(), b, b + n);
}

std::vector<uint8_t> XdrEncoder::Take() {
  // Empty and without capacity: most encoders are dropped right after
  // Take(), and one that is not reserves again at its next put.
  std::vector<uint8_t> out = std::move(buf_);
  buf_ = std::vector<uint8_t>();
  return out;
}

bool_t XdrEncoder::PutLong(XDR* xdrs, const long* lp) {
  auto* self = static_cast<XdrEncoder*>(xdrs->x_private);
  uint32_t v = htonl(static_cast<uint32_t>(*lp));
  std::memcpy(self->Grow(4), &v, 4);
  return TRUE;
}

bool_t XdrEncoder::PutBytes(XDR* xdrs, const char* addr, u_int len) {
  static_cast<XdrEncoder*>(xdrs->x_private)->Append(addr, len);
  return TRUE;
}

u_int XdrEncoder::GetPos(XDR* xdrs) {
  return static_cast<u_int>(static_cast<XdrEncoder*>(xdrs->x_private)->size());
}

bool_t XdrEncoder::SetPos(XDR* xdrs, u_int pos) {
  // Repositioning is not needed by generated routines; only a no-op move is
  // accepted so that callers cannot leave holes.
  return pos == GetPos(xdrs);
}

int32_t* XdrEncoder::Inline(XDR* xdrs, u_int len) {
  auto* self = static_cast<XdrEncoder*>(xdrs->x_private);
  // Generated code writes `len` bytes through the pointer right away. The
  // vector's storage is suitably aligned and its size stays a multiple of 4.
  if (len % 4 != 0 || self->size() % 4 != 0) return nullptr;
  return reinterpret_cast<int32_t*>(self->Grow(len));
}

bool_t XdrEncoder::GetLong(XDR*, long*) { return FALSE; }
bool_t XdrEncoder::GetBytes(XDR*, char*, u_int) { return FALSE; }
void XdrEncoder::Destroy(XDR*) {}
bool_t XdrEncoder::Control(XDR*, int, void*) { return FALSE; }


void XdrEncoder::PutUint64(uint64_t v) {
  PutUint32(static_cast<uint32_t>(v >> 32));
  PutUint32(static_cast<uint32_t>(v));
}

void XdrEncoder::PutFixedOpaque(std::span<const uint8_t> bytes) {
  const size_t padded = (bytes.size() + 3) & ~size_t{3};
  Reserve(padded);
  Append(bytes.data(), bytes.size());
  if (padded != bytes.size()) {
    Grow(padded - bytes.size());  // zero padding (RFC 4506 §4.9)
  }
}

void XdrEncoder::PutOpaque(std::span<const uint8_t> bytes) {
  PutUint32(static_cast<uint32_t>(bytes.size()));
  PutFixedOpaque(bytes);
}

void XdrEncoder::PutString(std::string_view s) {
  PutOpaque({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

XdrDecoder::XdrDecoder(std::span<const uint8_t> bytes) : bytes_(bytes) {
  static char empty[4];
  // xdrmem only reads through the pointer while decoding.
  char* base =
      bytes.empty()
          ? empty
          : const_cast<char*>(reinterpret_cast<const char*>(bytes.data()));
  xdrmem_create(&xdr_, base, static_cast<u_int>(bytes.size()), XDR_DECODE);
}

XdrDecoder::~XdrDecoder() { XDR_DESTROY(&xdr_); }

std::optional<uint64_t> XdrDecoder::GetUint64() {
  uint64_t v;
  if (!xdr_uint64_t(&xdr_, &v)) return std::nullopt;
  return v;
}

std::optional<std::span<const uint8_t>> XdrDecoder::GetOpaque(uint32_t max) {
  std::optional<uint32_t> len = GetUint32();
  if (!len || *len > max) return std::nullopt;
  size_t padded = (size_t{*len} + 3) & ~size_t{3};
  if (padded > remaining()) return std::nullopt;
  size_t start = position();
  if (!xdr_setpos(&xdr_, static_cast<u_int>(start + padded))) {
    return std::nullopt;
  }
  return bytes_.subspan(start, *len);
}

}  // namespace rpc
