// The nfs41d binary as an operator runs it: started with a config on a
// free loopback port, SIGHUP after the file changed, SIGTERM to stop, all by
// its pid; bad configs make it exit non-zero with a message.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "nfs41client/client.h"
#include "rpc/net.h"

namespace {

using namespace std::chrono_literals;

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nfs41d-daemon-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config_ = dir_ + "/nfs41d.toml";
    log_ = dir_ + "/stderr.log";
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  void WriteConfig(const std::string& exports) {
    std::ofstream(config_, std::ios::trunc)
        << "listen = \"127.0.0.1:" << port_ << "\"\n"
        << "data_dir = \"" << dir_ << "/data\"\n"
        << "log_level = \"info\"\n"
        << exports;
  }

  pid_t Spawn() {
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(fd, 2);
      execl(NFS41D_BINARY, NFS41D_BINARY, "--config", config_.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  }

  // Waits (bounded) for the child to exit; its exit status or -1.
  static int WaitExit(pid_t pid, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

  std::string Log() {
    std::stringstream s;
    s << std::ifstream(log_).rdbuf();
    return s.str();
  }

  // PUTROOTFH from `from`: NFS4_OK, NFS4ERR_ACCESS ...; NFS4ERR_IO if the
  // server does not answer.
  nfsstat4 RootFrom(const std::string& from) {
    nfs41client::ClientOptions o;
    o.local_host = from;
    o.timeout = 5s;
    auto c = nfs41client::Client::Connect("127.0.0.1", port_, o);
    if (!c.ok()) return NFS4ERR_IO;
    if ((*c)->EstablishSession() != NFS4_OK) return NFS4ERR_IO;
    return (*c)->RootFh().status;
  }

  // Retries `fn` until it returns `want` (bounded).
  template <typename Fn>
  bool Eventually(Fn fn, nfsstat4 want, std::chrono::milliseconds limit = 10s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (fn() == want) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  std::string dir_, config_, log_;
  uint16_t port_ = rpc::FreeLoopbackPort().value();
  pid_t pid_ = -1;
};

TEST_F(DaemonTest, SighupReloadsExportsAndSigtermStops) {
  WriteConfig("[[export]]\npath = \"/\"\nclients = [\"127.0.0.1/32\"]\n");
  pid_ = Spawn();
  ASSERT_TRUE(Eventually([&] { return RootFrom("127.0.0.1"); }, NFS4_OK))
      << Log();
  EXPECT_EQ(RootFrom("127.0.0.2"), NFS4ERR_ACCESS);

  // Only 127.0.0.2 now.
  WriteConfig("[[export]]\npath = \"/\"\nclients = [\"127.0.0.2/32\"]\n");
  ASSERT_EQ(kill(pid_, SIGHUP), 0);
  EXPECT_TRUE(Eventually([&] { return RootFrom("127.0.0.2"); }, NFS4_OK))
      << Log();
  EXPECT_EQ(RootFrom("127.0.0.1"), NFS4ERR_ACCESS);

  // A bad config: logged, the running exports stay.
  WriteConfig("[[export]]\npath = \"/\"\nclients = [\"300.0.0.1/8\"]\n");
  ASSERT_EQ(kill(pid_, SIGHUP), 0);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (Log().find("keeping the current exports") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_NE(Log().find("keeping the current exports"), std::string::npos)
      << Log();
  EXPECT_EQ(RootFrom("127.0.0.2"), NFS4_OK);
  EXPECT_EQ(RootFrom("127.0.0.1"), NFS4ERR_ACCESS);

  // SIGTERM: a clean stop, exit status 0.
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  EXPECT_EQ(WaitExit(pid_, 15s), 0) << Log();
  pid_ = -1;
  EXPECT_NE(Log().find("stopped"), std::string::npos);
}

TEST_F(DaemonTest, SigintStopsToo) {
  WriteConfig("");
  pid_ = Spawn();
  ASSERT_TRUE(Eventually([&] { return RootFrom("127.0.0.1"); }, NFS4_OK))
      << Log();
  ASSERT_EQ(kill(pid_, SIGINT), 0);
  EXPECT_EQ(WaitExit(pid_, 15s), 0) << Log();
  pid_ = -1;
}

TEST_F(DaemonTest, BadConfigsExitNonZeroWithAMessage) {
  struct Case {
    std::string exports;
    int exit_code;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"[[export]]\npath = \"/\"\nclients = [\"10.0.0.0/99\"]\n", 2,
            "prefix length"},
           {"[[export]]\npath = \"/\"\ncolour = 1\n", 2, "unknown key 'colour'"},
           {"[[export]]\npath = \"/x\"\n[[export]]\npath = \"/x\"\n", 2,
            "exported twice"},
           {"[[export]]\npath = \"/no/such/dir\"\n", 1, "/no/such/dir"},
       }) {
    WriteConfig(c.exports);
    std::filesystem::remove(log_);
    pid_t pid = Spawn();
    int code = WaitExit(pid, 15s);
    if (code == -1) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    EXPECT_EQ(code, c.exit_code) << c.exports << Log();
    EXPECT_NE(Log().find(c.message), std::string::npos) << Log();
  }
}

}  // namespace
