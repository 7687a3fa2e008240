#include "rpc/record.h"

#include <fmt/format.h>

#include <algorithm>

namespace rpc {
namespace {

constexpr size_t kInitialReserve = 64 * 1024;

}  // namespace

std::array<uint8_t, 4> FragmentHeader(uint32_t length, bool last) {
  uint32_t v = (length & kMaxFragmentLength) | (last ? kLastFragmentBit : 0);
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

std::vector<uint8_t> FrameRecord(std::span<const uint8_t> payload,
                                 uint32_t max_fragment) {
  max_fragment = std::clamp<uint32_t>(max_fragment, 1, kMaxFragmentLength);
  std::vector<uint8_t> out;
  size_t fragments =
      payload.empty() ? 1 : (payload.size() + max_fragment - 1) / max_fragment;
  out.reserve(payload.size() + 4 * fragments);
  size_t pos = 0;
  do {
    size_t n = std::min<size_t>(max_fragment, payload.size() - pos);
    bool last = pos + n == payload.size();
    auto header = FragmentHeader(static_cast<uint32_t>(n), last);
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), payload.begin() + static_cast<ptrdiff_t>(pos),
               payload.begin() + static_cast<ptrdiff_t>(pos + n));
    pos += n;
  } while (pos < payload.size());
  return out;
}

RecordReader::RecordReader(size_t max_record_size)
    : max_record_size_(max_record_size) {}

bool RecordReader::mid_record() const {
  return header_len_ > 0 || !record_.empty();
}

Status RecordReader::Feed(std::span<const uint8_t> data) {
  if (poisoned_) return Status::Malformed("record stream already invalid");
  size_t pos = 0;
  while (pos < data.size()) {
    if (header_len_ < 4) {
      size_t n = std::min<size_t>(4 - header_len_, data.size() - pos);
      std::copy_n(data.begin() + static_cast<ptrdiff_t>(pos), n,
                  header_.begin() + static_cast<ptrdiff_t>(header_len_));
      header_len_ += n;
      pos += n;
      if (header_len_ < 4) break;
      uint32_t v = (uint32_t{header_[0]} << 24) | (uint32_t{header_[1]} << 16) |
                   (uint32_t{header_[2]} << 8) | uint32_t{header_[3]};
      fragment_last_ = (v & kLastFragmentBit) != 0;
      fragment_left_ = v & kMaxFragmentLength;
      // Refuse before buffering anything: the limit protects memory.
      if (fragment_left_ > max_record_size_ ||
          record_.size() + fragment_left_ > max_record_size_) {
        poisoned_ = true;
        return Status::Malformed(
            fmt::format("record of at least {} bytes exceeds the maximum of {}",
                        record_.size() + fragment_left_, max_record_size_));
      }
      // Reserve what a peer could cheaply make us hold for nothing only in
      // part; the vector grows geometrically as bytes actually arrive.
      record_.reserve(record_.size() +
                      std::min<size_t>(fragment_left_, kInitialReserve));
    }
    size_t n = std::min<size_t>(fragment_left_, data.size() - pos);
    // Once kInitialReserve bytes of a record have really arrived, make room
    // for the rest of the fragment at once: growing to 1 MiB (a pNFS WRITE)
    // by doubling copies the record four more times, into fresh pages.
    if (record_.size() + n > record_.capacity() &&
        record_.size() >= kInitialReserve) {
      record_.reserve(record_.size() + fragment_left_);
    }
    record_.insert(record_.end(), data.begin() + static_cast<ptrdiff_t>(pos),
                   data.begin() + static_cast<ptrdiff_t>(pos + n));
    pos += n;
    fragment_left_ -= static_cast<uint32_t>(n);
    if (fragment_left_ == 0) {
      header_len_ = 0;  // next fragment header
      if (fragment_last_) {
        ready_.push_back(std::move(record_));
        record_ = {};
      }
    }
  }
  return Status::Ok();
}

std::optional<std::vector<uint8_t>> RecordReader::Pop() {
  if (ready_.empty()) return std::nullopt;
  std::vector<uint8_t> r = std::move(ready_.front());
  ready_.pop_front();
  return r;
}

void RecordReader::Recycle(std::vector<uint8_t> record) {
  // record_ has no capacity exactly when no byte of the next record is
  // held (Feed moves a finished record out and leaves record_ empty).
  if (record_.capacity() != 0 || record.capacity() > kInitialReserve) return;
  record.clear();
  record_ = std::move(record);
}

}  // namespace rpc
