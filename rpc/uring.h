#pragma once

// The io_uring half of EventLoop's io_uring backend (event_loop.h): ring
// set-up, the capability probe behind the epoll fallback, the provided
// receive buffers, and the notice ring that reports finished sends.
//
// Why a second ring: a reply sent through the ring must post no completion
// into the main ring when it succeeds (IOSQE_CQE_SKIP_SUCCESS), or the
// io_uring_enter that submitted it would return at once instead of sleeping
// until the next request: two syscalls per request, no better than epoll.
// But its buffers and the socket's byte order need to know when it is done.
// So each send is linked (IOSQE_IO_LINK) to an IORING_OP_MSG_RING that
// posts the connection's tag into this notice ring, which wakes nobody: the
// loop reads it after every wake-up (plain memory reads). A send that did
// not finish inside its io_uring_enter (a full socket buffer) is noticed by
// the next read; while one is outstanding the notice ring signals the
// loop's eventfd (IORING_CQ_EVENTFD_DISABLED toggled off), so a late
// completion still wakes the loop.
//
// Everything here runs on the loop thread (the rings' only user).

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "rpc/status.h"

namespace rpc {

class Uring {
 public:
  // Receive buffers: kBuffers of kBufferBytes (4 MiB of address space per
  // loop, touched only as used), shared by every connection of the loop, so
  // memory stays bounded whatever the number of connections.
  static constexpr unsigned kBuffers = 32;
  static constexpr unsigned kBufferBytes = 128 * 1024;
  static constexpr uint16_t kBufferGroup = 0;

  // A ring able to serve the loop, or why not (no io_uring, a needed
  // opcode or feature missing, provided buffers refused): the caller then
  // falls back to epoll. `wakefd` is the loop's eventfd (notice-ring wakes).
  static Result<std::unique_ptr<Uring>> Create(int wakefd);
  ~Uring();
  Uring(const Uring&) = delete;
  Uring& operator=(const Uring&) = delete;

  // Binds the ring to the calling thread, its only submitter from then on.
  // REQUIRES: on the loop thread, before any submission.
  Status Enable();
  io_uring* ring() { return &ring_; }
  // A free submission entry; submits what is queued first when the queue
  // has fewer than `needed` free entries (linked pairs must be submitted
  // together).
  io_uring_sqe* Sqe(unsigned needed = 1);
  int notice_fd() const { return notice_.ring_fd; }

  uint8_t* Buffer(unsigned bid) {
    return buffers_ + size_t{bid} * kBufferBytes;
  }
  void ReturnBuffer(unsigned bid);

  // Calls fn(user_data) for each notice posted since the last call.
  template <typename Fn>
  void ReapNotices(Fn&& fn) {
    io_uring_cqe* cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&notice_, head, cqe) {
      fn(cqe->user_data);
      ++n;
    }
    if (n) io_uring_cq_advance(&notice_, n);
  }
  // Whether notices also signal the eventfd. Returns true if it changed.
  bool SetNoticeWake(bool on);

 private:
  Uring() = default;

  io_uring ring_{};
  io_uring notice_{};
  bool ring_ok_ = false, notice_ok_ = false;
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t buf_ring_bytes_ = 0;
  uint8_t* buffers_ = nullptr;
  bool notice_wake_ = false;
  bool disabled_ = false;  // created with IORING_SETUP_R_DISABLED
};

}  // namespace rpc
