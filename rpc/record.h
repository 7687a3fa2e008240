#pragma once

// Record marking for ONC RPC over a byte stream (RFC 5531 §11).
//
// On TCP each RPC message is a "record" sent as one or more "fragments".
// Each fragment starts with a 4-byte big-endian header: the high bit says
// "last fragment of the record", the low 31 bits give the fragment length.
// A record's length is therefore only known once its last fragment has been
// seen, and a peer can announce up to 2^31-1 bytes per fragment: the reader
// enforces a maximum record size so that a client cannot make the server
// buffer unbounded data.

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "rpc/status.h"

namespace rpc {

inline constexpr uint32_t kLastFragmentBit = 0x80000000u;
inline constexpr uint32_t kMaxFragmentLength = 0x7fffffffu;

// The 4-byte fragment header for a fragment of `length` bytes.
// REQUIRES: length <= kMaxFragmentLength.
std::array<uint8_t, 4> FragmentHeader(uint32_t length, bool last);

// `payload` framed as one record, split into fragments of at most
// `max_fragment` bytes (>= 1). An empty payload becomes one empty last
// fragment.
std::vector<uint8_t> FrameRecord(std::span<const uint8_t> payload,
                                 uint32_t max_fragment = kMaxFragmentLength);

// Incremental decoder of a record-marked byte stream.
//
// Bytes are fed as they arrive from the socket; complete records are queued
// and popped in arrival order. Fragment bodies are copied once, straight into
// the record being assembled.
//
// Thread safety: none; one reader per connection, used by one thread.
class RecordReader {
 public:
  // `max_record_size`: the largest record (sum of its fragments) accepted.
  explicit RecordReader(size_t max_record_size);

  // Consumes all of `data`. Returns an error (Status::Malformed) as soon as a
  // fragment header announces a record larger than max_record_size; the
  // reader is then poisoned: every later Feed fails and the caller should
  // drop the connection (RFC 5531 leaves no way to resynchronize a stream).
  // Records completed before the error can still be popped.
  Status Feed(std::span<const uint8_t> data);

  // The oldest complete record, or nullopt.
  std::optional<std::vector<uint8_t>> Pop();
  // Gives back a popped record the caller is done with: its buffer holds
  // the next record when nothing of one is buffered yet and it is small
  // (<= 64 KiB), so a connection of small calls answered in place (inline
  // COMPOUNDs) costs no malloc/free per record. Otherwise it is freed.
  void Recycle(std::vector<uint8_t> record);

  // Number of complete records waiting to be popped.
  size_t ready() const { return ready_.size(); }
  // True when bytes of an unfinished record (or fragment header) are held:
  // if the stream ends now, that record was truncated.
  bool mid_record() const;
  // Bytes of the unfinished record held so far.
  size_t partial_bytes() const { return record_.size(); }
  size_t max_record_size() const { return max_record_size_; }

 private:
  size_t max_record_size_;
  bool poisoned_ = false;
  // Header bytes collected so far (0..3) while header_len_ < 4.
  std::array<uint8_t, 4> header_{};
  size_t header_len_ = 0;
  // Body bytes of the current fragment still to come; valid when
  // header_len_ == 4.
  uint32_t fragment_left_ = 0;
  bool fragment_last_ = false;
  std::vector<uint8_t> record_;
  std::deque<std::vector<uint8_t>> ready_;
};

}  // namespace rpc
