#include "nfs41d/state/lock_ranges.h"

#include <algorithm>
#include <limits>

namespace nfs41d::state {
namespace {
bool Overlaps(const LockRange& r, uint64_t start, uint64_t end) {
  return r.start <= end && start <= r.end;
}
}  // namespace

std::optional<LockRange> LockRanges::Conflict(uint64_t owner, bool write,
                                              uint64_t start,
                                              uint64_t end) const {
  for (const LockRange& r : ranges_) {
    if (r.owner == owner || !Overlaps(r, start, end)) continue;
    if (write || r.write) return r;
  }
  return std::nullopt;
}

void LockRanges::Unlock(uint64_t owner, uint64_t start, uint64_t end) {
  std::vector<LockRange> out;
  out.reserve(ranges_.size() + 1);
  for (const LockRange& r : ranges_) {
    if (r.owner != owner || !Overlaps(r, start, end)) {
      out.push_back(r);
      continue;
    }
    // Keep the parts outside [start, end]: up to two pieces.
    if (r.start < start) {
      LockRange left = r;
      left.end = start - 1;
      out.push_back(left);
    }
    if (r.end > end) {
      LockRange right = r;
      right.start = end + 1;
      out.push_back(right);
    }
  }
  ranges_ = std::move(out);
  Normalize();
}

void LockRanges::Lock(uint64_t owner, bool write, uint64_t start,
                      uint64_t end) {
  Unlock(owner, start, end);
  ranges_.push_back(LockRange{owner, write, start, end});
  Normalize();
}

void LockRanges::RemoveOwner(uint64_t owner) {
  std::erase_if(ranges_, [&](const LockRange& r) { return r.owner == owner; });
}

bool LockRanges::HasOwner(uint64_t owner) const {
  return std::any_of(ranges_.begin(), ranges_.end(),
                     [&](const LockRange& r) { return r.owner == owner; });
}

// Sorts by (owner, type, start) to merge, then by (start, owner).
void LockRanges::Normalize() {
  std::sort(ranges_.begin(), ranges_.end(),
            [](const LockRange& a, const LockRange& b) {
              if (a.owner != b.owner) return a.owner < b.owner;
              if (a.write != b.write) return a.write < b.write;
              return a.start < b.start;
            });
  std::vector<LockRange> out;
  out.reserve(ranges_.size());
  for (const LockRange& r : ranges_) {
    if (!out.empty()) {
      LockRange& last = out.back();
      const bool adjacent =
          last.end == std::numeric_limits<uint64_t>::max() ||
          r.start <= last.end + 1;
      if (last.owner == r.owner && last.write == r.write && adjacent) {
        last.end = std::max(last.end, r.end);
        continue;
      }
    }
    out.push_back(r);
  }
  std::sort(out.begin(), out.end(), [](const LockRange& a, const LockRange& b) {
    if (a.start != b.start) return a.start < b.start;
    return a.owner < b.owner;
  });
  ranges_ = std::move(out);
}

}  // namespace nfs41d::state
