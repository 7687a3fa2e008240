#include "rpc/client.h"

#include <sys/socket.h>
#include <unistd.h>

#include "rpc/net.h"

namespace rpc {

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      pool_(options_.backchannel_threads, options_.endpoint.name),
      loop_(options_.endpoint, &registry_, &pool_) {}

Client::~Client() { Close(); }

Result<std::unique_ptr<Client>> Client::Connect(const std::string& host,
                                                uint16_t port,
                                                ClientOptions options) {
  Result<int> fd = ConnectTcp(host, port, options.connect_timeout, options.local_host);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<Client> client(new Client(std::move(options)));
  client->pool_.Start();
  if (Status st = client->loop_.Start(); !st.ok()) {
    ::close(*fd);
    return st;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  std::string peer =
      ::getpeername(*fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0
          ? FormatSockaddr(reinterpret_cast<sockaddr*>(&ss))
          : host + ":" + std::to_string(port);
  Result<std::shared_ptr<Connection>> conn = client->loop_.Adopt(*fd, peer);
  if (!conn.ok()) return conn.status();
  client->connection_ = std::move(*conn);
  return client;
}

Result<ReplyBody> Client::Call(uint32_t prog, uint32_t vers, uint32_t proc,
                               std::vector<uint8_t> args) {
  CallOptions o;
  o.prog = prog;
  o.vers = vers;
  o.proc = proc;
  o.cred = options_.cred;
  o.timeout = options_.call_timeout;
  return connection_->Call(o, std::move(args));
}

void Client::Close() {
  if (connection_) connection_->Close();
  loop_.Stop();
  pool_.Stop();
}

}  // namespace rpc
