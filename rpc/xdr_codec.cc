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
  buf_.resize(std::max<size_t>(reserve, 16));
  xdr_.x_op = XDR_ENCODE;
  xdr_.x_ops = &kOps;
  xdr_.x_private = this;
}

uint8_t* XdrEncoder::Grow(size_t n) {
  if (buf_.size() - size_ < n) {
    // Capacity doubles; only the bytes about to be written are added (and
    // zeroed), not the whole new capacity: after a 1 MiB opaque the next
    // 4-byte put must not clear another megabyte.
    if (buf_.capacity() - size_ < n) {
      buf_.reserve(std::max(buf_.capacity() * 2, size_ + n));
    }
    buf_.resize(size_ + n);
  }
  uint8_t* p = buf_.data() + size_;
  size_ += n;
  return p;
}

std::vector<uint8_t> XdrEncoder::Take() {
  buf_.resize(size_);
  std::vector<uint8_t> out = std::move(buf_);
  buf_ = std::vector<uint8_t>(256);
  size_ = 0;
  return out;
}

bool_t XdrEncoder::PutLong(XDR* xdrs, const long* lp) {
  auto* self = static_cast<XdrEncoder*>(xdrs->x_private);
  uint32_t v = htonl(static_cast<uint32_t>(*lp));
  std::memcpy(self->Grow(4), &v, 4);
  return TRUE;
}

bool_t XdrEncoder::PutBytes(XDR* xdrs, const char* addr, u_int len) {
  auto* self = static_cast<XdrEncoder*>(xdrs->x_private);
  if (len == 0) return TRUE;
  std::vector<uint8_t>& b = self->buf_;
  if (b.size() - self->size_ < len) {
    // A large opaque (READ or WRITE data): append it, which copies once,
    // instead of growing (zeroing) and then copying.
    b.resize(self->size_);
    if (b.capacity() - self->size_ < len) {
      b.reserve(std::max(b.capacity() * 2, self->size_ + len));
    }
    b.insert(b.end(), addr, addr + len);
    self->size_ += len;
    return TRUE;
  }
  std::memcpy(self->Grow(len), addr, len);
  return TRUE;
}

u_int XdrEncoder::GetPos(XDR* xdrs) {
  return static_cast<u_int>(static_cast<XdrEncoder*>(xdrs->x_private)->size_);
}

bool_t XdrEncoder::SetPos(XDR* xdrs, u_int pos) {
  // Repositioning is not needed by generated routines; only a no-op move is
  // accepted so that callers cannot leave holes.
  return pos == GetPos(xdrs);
}

int32_t* XdrEncoder::Inline(XDR* xdrs, u_int len) {
  auto* self = static_cast<XdrEncoder*>(xdrs->x_private);
  // Generated code writes `len` bytes through the pointer right away. The
  // vector's storage is suitably aligned and size_ stays a multiple of 4.
  if (len % 4 != 0 || self->size_ % 4 != 0) return nullptr;
  return reinterpret_cast<int32_t*>(self->Grow(len));
}

bool_t XdrEncoder::GetLong(XDR*, long*) { return FALSE; }
bool_t XdrEncoder::GetBytes(XDR*, char*, u_int) { return FALSE; }
void XdrEncoder::Destroy(XDR*) {}
bool_t XdrEncoder::Control(XDR*, int, void*) { return FALSE; }

void XdrEncoder::PutUint32(uint32_t v) {
  uint32_t be = htonl(v);
  std::memcpy(Grow(4), &be, 4);
}

void XdrEncoder::PutUint64(uint64_t v) {
  PutUint32(static_cast<uint32_t>(v >> 32));
  PutUint32(static_cast<uint32_t>(v));
}

void XdrEncoder::PutFixedOpaque(std::span<const uint8_t> bytes) {
  size_t padded = (bytes.size() + 3) & ~size_t{3};
  uint8_t* p = Grow(padded);
  if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
  std::memset(p + bytes.size(), 0, padded - bytes.size());
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

size_t XdrDecoder::position() const {
  return XDR_GETPOS(const_cast<XDR*>(&xdr_));
}

std::optional<uint32_t> XdrDecoder::GetUint32() {
  uint32_t v;
  if (!xdr_uint32_t(&xdr_, &v)) return std::nullopt;
  return v;
}

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
