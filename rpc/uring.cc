#include "rpc/uring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "rpc/log.h"

namespace rpc {
namespace {

constexpr unsigned kEntries = 1024;
// Each connection has at most a receive, a send and a POLLOUT in the ring,
// and EndpointOptions::max_connections defaults to 4096: a completion queue
// this large does not overflow even if all of them finish in one wait
// (NODROP would keep an overflow, but submissions could then be refused).
constexpr unsigned kCompletions = 16384;
// Every connection has at most one send outstanding, so this bounds the
// notices not yet read; the kernel keeps any excess (IORING_FEAT_NODROP).
constexpr unsigned kNoticeEntries = 8192;

std::string Errno(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

}  // namespace

Result<std::unique_ptr<Uring>> Uring::Create(int wakefd) {
  std::unique_ptr<Uring> u(new Uring());
  io_uring_params p{};
  // DEFER_TASKRUN (6.1+): the kernel's completion work (the receive's copy,
  // a send's retry) runs inside the loop's own io_uring_enter, not as
  // interrupting task work. It needs SINGLE_ISSUER, whose one submitter is
  // the loop thread: the ring starts disabled and Enable() (on that
  // thread) binds it. Older kernels: COOP_TASKRUN, then no flags.
  const unsigned kTries[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
          IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, 0};
  int rc = -EINVAL;
  for (unsigned flags : kTries) {
    p = {};
    p.flags = flags | IORING_SETUP_CQSIZE;
    p.cq_entries = kCompletions;
    rc = io_uring_queue_init_params(kEntries, &u->ring_, &p);
    if (rc != -EINVAL) break;
  }
  u->disabled_ = rc == 0 && (p.flags & IORING_SETUP_R_DISABLED);
  if (rc < 0) return Status::IoError(Errno("io_uring_setup", -rc));
  u->ring_ok_ = true;
  // EXT_ARG: the wait's timeout travels in the same io_uring_enter;
  // CQE_SKIP: successful sends post nothing; NODROP: no completion is lost.
  constexpr unsigned kFeatures =
      IORING_FEAT_EXT_ARG | IORING_FEAT_CQE_SKIP | IORING_FEAT_NODROP;
  if ((p.features & kFeatures) != kFeatures) {
    return Status::IoError("io_uring lacks EXT_ARG, CQE_SKIP or NODROP");
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&u->ring_);
  if (probe == nullptr) return Status::IoError("io_uring probe refused");
  bool ops_ok = true;
  for (int op : {IORING_OP_RECV, IORING_OP_SENDMSG, IORING_OP_POLL_ADD,
                 IORING_OP_READ, IORING_OP_MSG_RING}) {
    ops_ok = ops_ok && io_uring_opcode_supported(probe, op);
  }
  io_uring_free_probe(probe);
  if (!ops_ok) return Status::IoError("io_uring lacks a needed opcode");

  io_uring_params np{};
  np.flags = IORING_SETUP_CQSIZE;
  np.cq_entries = kNoticeEntries;
  rc = io_uring_queue_init_params(1, &u->notice_, &np);
  if (rc < 0) return Status::IoError(Errno("io_uring_setup (notices)", -rc));
  u->notice_ok_ = true;
  rc = io_uring_register_eventfd(&u->notice_, wakefd);
  if (rc < 0) return Status::IoError(Errno("io_uring eventfd", -rc));
  io_uring_cq_eventfd_toggle(&u->notice_, false);

  // Provided buffers (a buffer ring, kernel 5.19+): a receive takes one
  // only when data is there, so idle connections hold no buffer.
  u->buf_ring_bytes_ = sizeof(io_uring_buf) * kBuffers;
  const size_t bytes = u->buf_ring_bytes_ + size_t{kBuffers} * kBufferBytes;
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return Status::IoError(Errno("mmap", errno));
  u->buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  u->buffers_ = static_cast<uint8_t*>(mem) + u->buf_ring_bytes_;
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(u->buf_ring_);
  reg.ring_entries = kBuffers;
  reg.bgid = kBufferGroup;
  rc = io_uring_register_buf_ring(&u->ring_, &reg, 0);
  if (rc < 0) return Status::IoError(Errno("io_uring provided buffers", -rc));
  io_uring_buf_ring_init(u->buf_ring_);
  const int mask = io_uring_buf_ring_mask(kBuffers);
  for (unsigned i = 0; i < kBuffers; ++i) {
    io_uring_buf_ring_add(u->buf_ring_, u->Buffer(i), kBufferBytes,
                          static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(u->buf_ring_, kBuffers);
  return u;
}

Uring::~Uring() {
  // The rings go first: after that the kernel no longer writes to buffers.
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (notice_ok_) io_uring_queue_exit(&notice_);
  if (buf_ring_ != nullptr) {
    ::munmap(buf_ring_, buf_ring_bytes_ + size_t{kBuffers} * kBufferBytes);
  }
}

Status Uring::Enable() {
  if (!disabled_) return Status::Ok();
  // liburing 2.3 declares io_uring_enable_rings but does not export it.
  if (::syscall(__NR_io_uring_register, ring_.ring_fd,
                IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0) {
    return Status::IoError(Errno("io_uring enable", errno));
  }
  disabled_ = false;
  return Status::Ok();
}

io_uring_sqe* Uring::Sqe(unsigned needed) {
  // With SUBMIT_ALL the kernel takes every queued entry, so one submit
  // frees the queue; a refusal (-EAGAIN, -EBUSY: memory, CQ overflow) is
  // retried a bounded number of times.
  for (int i = 0; i < 1000 && io_uring_sq_space_left(&ring_) < needed; ++i) {
    io_uring_submit(&ring_);
  }
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    // The loop cannot go on without its ring; a silent hang would be worse.
    log::Error("rpc: io_uring submission queue stays full; aborting");
    std::abort();
  }
  return sqe;
}

void Uring::ReturnBuffer(unsigned bid) {
  io_uring_buf_ring_add(buf_ring_, Buffer(bid), kBufferBytes,
                        static_cast<unsigned short>(bid),
                        io_uring_buf_ring_mask(kBuffers), 0);
  io_uring_buf_ring_advance(buf_ring_, 1);
}

bool Uring::SetNoticeWake(bool on) {
  if (on == notice_wake_) return false;
  notice_wake_ = on;
  io_uring_cq_eventfd_toggle(&notice_, on);
  return true;
}

}  // namespace rpc
