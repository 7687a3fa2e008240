#include "rpc/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <optional>

namespace rpc {
namespace {

std::string Errno(const char* what) {
  return fmt::format("{}: {}", what, std::strerror(errno));
}

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const { freeaddrinfo(ai); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

Result<AddrInfoPtr> Resolve(const std::string& host, uint16_t port,
                            bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(),
                       &hints, &res);
  if (rc != 0) {
    return Status::InvalidArgument(
        fmt::format("cannot resolve {}: {}", host, gai_strerror(rc)));
  }
  return AddrInfoPtr(res);
}

}  // namespace

Result<int> ListenTcp(const std::string& host, uint16_t port) {
  Result<AddrInfoPtr> ai = Resolve(host, port, true);
  if (!ai.ok()) return ai.status();
  std::string last_error = "no address";
  for (addrinfo* a = ai->get(); a != nullptr; a = a->ai_next) {
    int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 a->ai_protocol);
    if (fd < 0) {
      last_error = Errno("socket");
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0) {
      last_error = Errno("bind");
      ::close(fd);
      continue;
    }
    if (::listen(fd, 1024) != 0) {
      last_error = Errno("listen");
      ::close(fd);
      continue;
    }
    return fd;
  }
  return Status::IoError(
      fmt::format("cannot listen on {}:{}: {}", host, port, last_error));
}

Result<int> ConnectTcp(const std::string& host, uint16_t port,
                       std::chrono::milliseconds timeout,
                       const std::string& local_host) {
  Result<AddrInfoPtr> ai = Resolve(host, port, false);
  if (!ai.ok()) return ai.status();
  std::optional<AddrInfoPtr> local;
  if (!local_host.empty()) {
    Result<AddrInfoPtr> l = Resolve(local_host, 0, true);
    if (!l.ok()) return l.status();
    local = std::move(*l);
  }
  std::string last_error = "no address";
  bool timed_out = false;
  for (addrinfo* a = ai->get(); a != nullptr; a = a->ai_next) {
    int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 a->ai_protocol);
    if (fd < 0) {
      last_error = Errno("socket");
      continue;
    }
    if (local && ::bind(fd, (*local)->ai_addr, (*local)->ai_addrlen) != 0) {
      last_error = Errno("bind");
      ::close(fd);
      continue;
    }
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = Errno("connect");
      ::close(fd);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
      timed_out = true;
      last_error = "connect timed out";
      ::close(fd);
      continue;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (rc < 0 || err != 0) {
      last_error =
          fmt::format("connect: {}", std::strerror(rc < 0 ? errno : err));
      ::close(fd);
      continue;
    }
    SetTcpOptions(fd);
    return fd;
  }
  std::string msg =
      fmt::format("cannot connect to {}:{}: {}", host, port, last_error);
  return timed_out ? Status::Timeout(msg) : Status::IoError(msg);
}

Result<uint16_t> LocalPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Status::IoError(Errno("getsockname"));
  }
  if (ss.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  if (ss.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  return Status::IoError("not an IP socket");
}

Result<uint16_t> FreeLoopbackPort() {
  Result<int> fd = ListenTcp("127.0.0.1", 0);
  if (!fd.ok()) return fd.status();
  Result<uint16_t> port = LocalPort(*fd);
  ::close(*fd);
  return port;
}

void SetTcpOptions(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

std::string FormatSockaddr(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return fmt::format("{}:{}", buf, ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    return fmt::format("[{}]:{}", buf, ntohs(in6->sin6_port));
  }
  return "(unknown address family)";
}

}  // namespace rpc
