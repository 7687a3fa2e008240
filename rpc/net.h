#pragma once

// Small socket helpers shared by the event loop, the client and tests.
// Addresses are numeric or names resolved with getaddrinfo; IPv4 and IPv6.

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "rpc/status.h"

namespace rpc {

// A non-blocking listening socket bound to host:port (port 0: any free
// port), SO_REUSEADDR set. Empty host means every local address.
Result<int> ListenTcp(const std::string& host, uint16_t port);

// A connected non-blocking socket to host:port, or IoError / Timeout.
// `local_host`, if not empty, is the local address to bind first (tests use
// 127.0.0.2 to look like another client).
Result<int> ConnectTcp(const std::string& host, uint16_t port,
                       std::chrono::milliseconds timeout,
                       const std::string& local_host = "");

// The local port a socket is bound to.
Result<uint16_t> LocalPort(int fd);

// A TCP port free on 127.0.0.1 at the time of the call, for tests and
// benchmarks that start a server process on it. Racy by nature (another
// process may take it first); a server that must not race listens on port 0
// and reports LocalPort instead.
Result<uint16_t> FreeLoopbackPort();

// TCP_NODELAY (RPC records are small and latency-bound) and SO_KEEPALIVE.
void SetTcpOptions(int fd);

// "192.0.2.1:2049" or "[2001:db8::1]:2049".
std::string FormatSockaddr(const sockaddr* sa);

}  // namespace rpc
