#pragma once

// XDR (RFC 4506) helpers over libtirpc.
//
// libtirpc's xdr_* routines (and the ones rpcgen generates, e.g. nfs41d's
// nfs4xdr library) work on an XDR stream. These helpers give C++ code:
//  - XdrEncoder: a stream that encodes into a growing std::vector, so a reply
//    is encoded once without first computing its size; opaque data is
//    copied into place once, never zero-filled first;
//  - XdrDecoder: a stream over received bytes (libtirpc's xdrmem);
//  - XdrOwned<T>: a decoded rpcgen value that is released with xdr_free-style
//    semantics when it goes out of scope.
//
// Routines are passed with their real type, bool_t (*)(XDR*, T*), rather than
// libtirpc's variadic xdrproc_t, so the compiler checks that the routine and
// the object match.
//
// Thread safety: each encoder/decoder is used by one thread at a time.

#include <rpc/rpc.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rpc/status.h"

namespace rpc {

// An XDR routine for type T, as rpcgen generates them.
template <typename T>
using XdrFn = bool_t (*)(XDR*, T*);

// An XDR stream encoding into an owned, growing byte vector.
class XdrEncoder {
 public:
  // `reserve`: initial capacity in bytes.
  explicit XdrEncoder(size_t reserve = 256);
  XdrEncoder(const XdrEncoder&) = delete;
  XdrEncoder& operator=(const XdrEncoder&) = delete;

  // The libtirpc stream (x_op == XDR_ENCODE), for generated routines.
  XDR* xdr() { return &xdr_; }

  // Encodes `value` with `fn`; false if the routine failed (e.g. a
  // discriminant with no arm, a string over its bound).
  template <typename T>
  bool Encode(XdrFn<T> fn, const T& value) {
    // Encoding does not modify the value; rpcgen's prototypes are not const.
    return fn(&xdr_, const_cast<T*>(&value)) != 0;
  }

  // Always inline: the most frequent put (every status, length, enum and
  // count); as an out-of-line call it cost ~50 instructions per put.
  [[gnu::always_inline]] void PutUint32(uint32_t v) {
    if (buf_.capacity() - buf_.size() < 4) Reserve(4);
    buf_.push_back(static_cast<uint8_t>(v >> 24));
    buf_.push_back(static_cast<uint8_t>(v >> 16));
    buf_.push_back(static_cast<uint8_t>(v >> 8));
    buf_.push_back(static_cast<uint8_t>(v));
  }
  void PutUint64(uint64_t v);
  // Variable-length opaque<> / string<>: length, bytes, zero padding.
  void PutOpaque(std::span<const uint8_t> bytes);
  void PutString(std::string_view s);
  // Fixed-length opaque[n]: bytes and zero padding, no length.
  void PutFixedOpaque(std::span<const uint8_t> bytes);

  size_t size() const { return buf_.size(); }
  const uint8_t* data() const { return buf_.data(); }
  // The encoded bytes; the encoder is empty afterwards (and holds no
  // memory until its next put).
  std::vector<uint8_t> Take();

 private:
  static bool_t PutLong(XDR* xdrs, const long* lp);
  static bool_t PutBytes(XDR* xdrs, const char* addr, u_int len);
  static u_int GetPos(XDR* xdrs);
  static bool_t SetPos(XDR* xdrs, u_int pos);
  static int32_t* Inline(XDR* xdrs, u_int len);
  static bool_t GetLong(XDR* xdrs, long* lp);
  static bool_t GetBytes(XDR* xdrs, char* addr, u_int len);
  static void Destroy(XDR* xdrs);
  static bool_t Control(XDR* xdrs, int request, void* info);
  static const XDR::xdr_ops kOps;
  // Capacity of an encoder's first allocation after Take().
  static constexpr size_t kMinCapacity = 256;

  // Room for n more bytes without a reallocation.
  void Reserve(size_t n);
  // n more bytes, zeroed, to write through the pointer returned.
  uint8_t* Grow(size_t n);
  // n more bytes copied from p (never zeroed first).
  void Append(const void* p, size_t n);

  XDR xdr_{};
  // The encoded bytes; reserved capacity is never zero-filled.
  std::vector<uint8_t> buf_;
};

// An XDR stream decoding from bytes the caller keeps alive.
class XdrDecoder {
 public:
  explicit XdrDecoder(std::span<const uint8_t> bytes);
  XdrDecoder(const XdrDecoder&) = delete;
  XdrDecoder& operator=(const XdrDecoder&) = delete;
  ~XdrDecoder();

  XDR* xdr() { return &xdr_; }

  // Decodes into `*value`, which must be zero-initialized (libtirpc then
  // allocates variable-length parts). On failure partially decoded parts
  // may be allocated: free them with XdrFree (XdrOwned does this).
  template <typename T>
  bool Decode(XdrFn<T> fn, T* value) {
    return fn(&xdr_, value) != 0;
  }

  // Inline: read in place instead of through xdr_uint32_t and the
  // stream's getint32 (two calls through pointers, ~35 instructions a
  // word; a SEQUENCE reads a dozen: docs/performance.md, issue 4 item 12).
  // The stream is always xdrmem (constructor), whose cursor is x_private
  // and bytes left x_handy, exactly what xdrmem_getint32 and
  // xdrmem_setpos read and update, so this and the generated routines
  // (Decode, xdr_setpos on xdr()) stay interchangeable
  // (XdrTest.InlineWordsAndTheStreamShareOneCursor).
  [[gnu::always_inline]] std::optional<uint32_t> GetUint32() {
    if (xdr_.x_handy < 4) return std::nullopt;
    const auto* p = static_cast<const uint8_t*>(xdr_.x_private);
    xdr_.x_private = const_cast<uint8_t*>(p + 4);
    xdr_.x_handy -= 4;
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
           (uint32_t{p[2]} << 8) | uint32_t{p[3]};
  }
  std::optional<uint64_t> GetUint64();
  // Variable-length opaque<max>; a view into the input.
  std::optional<std::span<const uint8_t>> GetOpaque(uint32_t max);

  // xdrmem's position (see GetUint32), without a call through the stream.
  size_t position() const {
    return static_cast<size_t>(static_cast<const char*>(xdr_.x_private) -
                               xdr_.x_base);
  }
  size_t remaining() const { return bytes_.size() - position(); }
  // The bytes not yet decoded.
  std::span<const uint8_t> rest() const { return bytes_.subspan(position()); }

 private:
  std::span<const uint8_t> bytes_;
  XDR xdr_{};
};

// Releases what a decode (or a hand-built value) allocated, like xdr_free().
template <typename T>
void XdrFree(XdrFn<T> fn, T* value) {
  XDR x{};
  x.x_op = XDR_FREE;
  fn(&x, value);
}

// Owns a value of an rpcgen-generated type and frees it on destruction.
// Movable, not copyable.
template <typename T>
class XdrOwned {
 public:
  explicit XdrOwned(XdrFn<T> fn) : fn_(fn), value_{} {}
  XdrOwned(XdrOwned&& other) noexcept : fn_(other.fn_), value_(other.value_) {
    other.value_ = T{};
  }
  XdrOwned& operator=(XdrOwned&& other) noexcept {
    if (this != &other) {
      Reset();
      fn_ = other.fn_;
      value_ = other.value_;
      other.value_ = T{};
    }
    return *this;
  }
  XdrOwned(const XdrOwned&) = delete;
  XdrOwned& operator=(const XdrOwned&) = delete;
  ~XdrOwned() { Reset(); }

  // Decodes `bytes` entirely; false if they do not decode, or if bytes are
  // left over (trailing garbage is as wrong as missing bytes).
  bool DecodeAll(std::span<const uint8_t> bytes) {
    Reset();
    XdrDecoder dec(bytes);
    return dec.Decode(fn_, &value_) && dec.remaining() == 0;
  }

  void Reset() {
    XdrFree(fn_, &value_);
    value_ = T{};
  }
  // Forgets the value without freeing it. REQUIRES: nothing in it was
  // allocated (a value filled in by hand with fixed-size parts only, whose
  // xdr_free walk would cost hundreds of instructions for nothing).
  void Forget() { value_ = T{}; }

  T& get() { return value_; }
  const T& get() const { return value_; }
  T* operator->() { return &value_; }
  const T* operator->() const { return &value_; }
  XdrFn<T> fn() const { return fn_; }

 private:
  XdrFn<T> fn_;
  T value_;
};

// Encodes `value` into a new vector; InvalidArgument if the routine fails.
template <typename T>
Result<std::vector<uint8_t>> XdrEncode(XdrFn<T> fn, const T& value,
                                       size_t reserve = 256) {
  XdrEncoder enc(reserve);
  if (!enc.Encode(fn, value)) {
    return Status::InvalidArgument("XDR encoding failed");
  }
  return enc.Take();
}

}  // namespace rpc
