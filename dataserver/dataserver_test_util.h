#pragma once

// What the dataserver tests (dataserver_*test.cc, one binary) share: keys,
// scratch directories, free ports, clients, and the daemon binary run as a
// child process with the DaemonTest fixture.

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "dataserver/control.h"
#include "dataserver/daemon.h"
#include "dataserver/ds_server.h"
#include "dataserver/identity.h"
#include "nfs41client/client.h"
#include "nfs41d/fh.h"
#include "pnfs/auth.h"
#include "pnfs/nsctl.h"
#include "rpc/server.h"
#include "rpc/net.h"
#include "rpc/xdr_codec.h"

namespace dataserver {

using namespace std::chrono_literals;
using nfs41client::Fh;

inline pnfs::Key TestKey() {
  pnfs::Key k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 7 + 1);
  return k;
}

inline std::string MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dstest.XXXXXX").string();
  char* p = ::mkdtemp(tmpl.data());
  EXPECT_NE(p, nullptr);
  return tmpl;
}

inline void WriteKeyFile(const std::string& path, const pnfs::Key& key) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(key.data()), key.size());
}

inline Fh Handle(const pnfs::Key& key, uint64_t ino) {
  nfs41d::FhCodec codec(key);
  return codec.Encode({.ino = ino, .generation = 0, .export_id = 0});
}

inline std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + seed) & 0xff);
  return s;
}

inline bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds t) {
  const auto end = std::chrono::steady_clock::now() + t;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

inline std::unique_ptr<nfs41client::Client> Connect(uint16_t port,
                                                    bool back_channel = false) {
  nfs41client::ClientOptions co;
  co.back_channel = back_channel;
  auto c = nfs41client::Client::Connect("127.0.0.1", port, co);
  if (!c.ok()) {
    ADD_FAILURE() << "connect: " << c.status().ToString();
    return nullptr;
  }
  EXPECT_EQ((*c)->EstablishSession(), NFS4_OK);
  return std::move(c).value();
}

// ---------------------------------------------------------- the binary

struct Proc {
  pid_t pid = -1;
  std::string log;  // stderr file
};

inline Proc Spawn(const std::vector<std::string>& args, const std::string& log) {
  Proc p;
  p.log = log;
  p.pid = ::fork();
  if (p.pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::dup2(fd, 1);
    std::vector<char*> argv;
    std::string bin = DATASERVER_BINARY;
    argv.push_back(bin.data());
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return p;
}

// Exit status (or 128+signal); -1 on timeout (the process is then killed).
inline int Wait(const Proc& p, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  int st = 0;
  while (std::chrono::steady_clock::now() < end) {
    pid_t r = ::waitpid(p.pid, &st, WNOHANG);
    if (r == p.pid) {
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    std::this_thread::sleep_for(20ms);
  }
  ::kill(p.pid, SIGKILL);
  ::waitpid(p.pid, &st, 0);
  return -1;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::unique_ptr<nfs41client::Client> ConnectWhenUp(uint16_t port) {
  std::unique_ptr<nfs41client::Client> c;
  WaitFor(
      [&] {
        nfs41client::ClientOptions co;
        co.back_channel = false;
        auto r = nfs41client::Client::Connect("127.0.0.1", port, co);
        if (!r.ok()) return false;
        c = std::move(r).value();
        return true;
      },
      10s);
  if (c) {
    EXPECT_EQ(c->EstablishSession(), NFS4_OK);
  }
  return c;
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    WriteKeyFile(dir_ + "/pnfs.key", TestKey());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::vector<std::string> Args(uint16_t port, uint16_t mds_port) {
    return {"--listen", "127.0.0.1:" + std::to_string(port), "--mds",
            "127.0.0.1:" + std::to_string(mds_port), "--data-dir", dir_,
            "--workers", "2"};
  }
  std::string dir_;
};

}  // namespace dataserver
