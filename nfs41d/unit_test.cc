// Unit tests without sockets: filehandles, the status mapping, config.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <arpa/inet.h>

#include "nfs41d/config.h"
#include "nfs41d/exports.h"
#include "nfs41d/fh.h"
#include "nfs41d/status_map.h"

namespace nfs41d {
namespace {

std::array<uint8_t, kFhSecretBytes> Key(uint8_t v) {
  std::array<uint8_t, kFhSecretBytes> k;
  k.fill(v);
  return k;
}

TEST(FhTest, RoundTrip) {
  FhCodec c(Key(7));
  FileHandle fh{123456789012345ull, 3, 9};
  std::vector<uint8_t> b = c.Encode(fh);
  EXPECT_EQ(b.size(), kFhBytes);
  auto back = c.Decode(b);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, fh);
}

TEST(FhTest, MacIsHmacSha256OfTheBody) {
  // The precomputed-pad HMAC must equal OpenSSL's one-shot HMAC().
  const auto key = Key(5);
  FhCodec c(key);
  std::vector<uint8_t> b = c.Encode(FileHandle{987654321, 2, 4});
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), b.data(), 17,
       md, &len);
  ASSERT_EQ(len, 32u);
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + 17, b.end()),
            std::vector<uint8_t>(md, md + 16));
  // A copy of the codec, used from another thread, agrees.
  FhCodec copy = c;
  std::vector<uint8_t> other;
  std::thread([&] { other = copy.Encode(FileHandle{987654321, 2, 4}); })
      .join();
  EXPECT_EQ(other, b);
}

TEST(FhTest, AlteredOrForeignHandlesAreRefused) {
  FhCodec c(Key(7));
  std::vector<uint8_t> b = c.Encode(FileHandle{42, 0, 0});
  for (size_t i = 0; i < b.size(); ++i) {
    std::vector<uint8_t> x = b;
    x[i] ^= 1;
    EXPECT_FALSE(c.Decode(x).has_value()) << "byte " << i;
  }
  EXPECT_FALSE(FhCodec(Key(8)).Decode(b).has_value());  // other secret
  EXPECT_FALSE(c.Decode(std::vector<uint8_t>(b.begin(), b.end() - 1)));
  EXPECT_FALSE(c.Decode({}).has_value());
}

TEST(FhTest, VerifiedHandlesRememberedPerThreadStillRefuseForgeries) {
  // Decode remembers the exact bytes it verified (fh.h): after a handle
  // verified, every altered copy and every other key must still fail.
  FhCodec c(Key(7));
  std::vector<uint8_t> b = c.Encode(FileHandle{42, 1, 3});
  ASSERT_TRUE(c.Decode(b).has_value());
  ASSERT_TRUE(c.Decode(b).has_value());  // from the memo
  for (size_t i = 0; i < b.size(); ++i) {
    std::vector<uint8_t> x = b;
    x[i] ^= 0x80;
    EXPECT_FALSE(c.Decode(x).has_value()) << "byte " << i;
  }
  EXPECT_FALSE(FhCodec(Key(8)).Decode(b).has_value());
  EXPECT_EQ(FhCodec(Key(7)).Decode(b), (FileHandle{42, 1, 3}));
  // Many handles through one table (more than it holds, so slots are
  // shared and replaced): each decodes to itself, twice.
  std::vector<std::vector<uint8_t>> hs;
  for (uint64_t ino = 1; ino <= 300; ++ino) {
    hs.push_back(c.Encode(FileHandle{ino * 64, 7, 1}));
  }
  for (int round = 0; round < 2; ++round) {
    for (uint64_t ino = 1; ino <= 300; ++ino) {
      auto fh = c.Decode(hs[ino - 1]);
      ASSERT_TRUE(fh.has_value()) << ino;
      EXPECT_EQ(fh->ino, ino * 64);
      std::vector<uint8_t> forged = hs[ino - 1];
      forged[13] ^= 1;  // the generation, MAC unchanged
      EXPECT_FALSE(c.Decode(forged).has_value()) << ino;
    }
  }
}

TEST(FhTest, SecretIsCreatedPrivateAndReused) {
  std::string dir = std::filesystem::temp_directory_path() /
                    ("nfs41d-key-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string path = dir + "/fh.key";
  std::string err;
  auto k1 = LoadOrCreateSecret(path, &err);
  ASSERT_TRUE(k1.has_value()) << err;
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto k2 = LoadOrCreateSecret(path, &err);
  ASSERT_TRUE(k2.has_value());
  EXPECT_EQ(*k1, *k2);
  std::ofstream(path, std::ios::trunc) << "short";
  EXPECT_FALSE(LoadOrCreateSecret(path, &err).has_value());
  EXPECT_NE(err.find("32 bytes"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(StatusMapTest, OnePlace) {
  EXPECT_EQ(ToNfsStat(ns::Status::Ok()), NFS4_OK);
  EXPECT_EQ(ToNfsStat(ns::Status::NotFound("x")), NFS4ERR_NOENT);
  EXPECT_EQ(ToNfsStat(ns::Status::Exists("x")), NFS4ERR_EXIST);
  EXPECT_EQ(ToNfsStat(ns::Status::Stale("x")), NFS4ERR_STALE);
  EXPECT_EQ(ToNfsStat(ns::Status::NotEmpty("x")), NFS4ERR_NOTEMPTY);
  EXPECT_EQ(ToNfsStat(ns::Status::AccessDenied("x")), NFS4ERR_ACCESS);
  EXPECT_EQ(ToNfsStat(ns::Status::NotPermitted("x")), NFS4ERR_PERM);
  EXPECT_EQ(ToNfsStat(ns::Status::Unavailable("x")), NFS4ERR_DELAY);
  EXPECT_EQ(ToNfsStat(ns::Status::IOError("x")), NFS4ERR_IO);
  EXPECT_STREQ(NfsStatName(NFS4ERR_BADHANDLE), "NFS4ERR_BADHANDLE");
}

TEST(ConfigTest, HostPort) {
  std::string h;
  uint16_t p = 0;
  EXPECT_TRUE(ParseHostPort("127.0.0.1:2049", &h, &p));
  EXPECT_EQ(h, "127.0.0.1");
  EXPECT_EQ(p, 2049);
  EXPECT_TRUE(ParseHostPort("[::1]:20490", &h, &p));
  EXPECT_EQ(h, "::1");
  EXPECT_FALSE(ParseHostPort("localhost", &h, &p));
  EXPECT_FALSE(ParseHostPort("h:70000", &h, &p));
  EXPECT_FALSE(ParseHostPort("h:12x", &h, &p));
}

TEST(ConfigTest, FileValuesAndErrors) {
  std::string path = std::filesystem::temp_directory_path() /
                     ("nfs41d-cfg-" + std::to_string(getpid()) + ".toml");
  std::ofstream(path) << "listen = \"0.0.0.0:3049\"\n"
                         "db = \"sqlite:///tmp/x.db\"\n"
                         "workers = 4\nlease_time = 30\nlog_level = \"debug\"\n";
  Config cfg;
  EXPECT_EQ(LoadConfigFile(path, &cfg), "");
  EXPECT_EQ(cfg.server.host, "0.0.0.0");
  EXPECT_EQ(cfg.server.port, 3049);
  EXPECT_EQ(cfg.server.db_uri, "sqlite:///tmp/x.db");
  EXPECT_EQ(cfg.server.worker_threads, 4u);
  EXPECT_EQ(cfg.server.state.lease_seconds, 30u);
  EXPECT_EQ(cfg.log_level, rpc::log::Level::kDebug);

  std::ofstream(path, std::ios::trunc) << "listen = 5\n";
  EXPECT_NE(LoadConfigFile(path, &cfg).find("HOST:PORT"), std::string::npos);
  std::ofstream(path, std::ios::trunc) << "colour = \"red\"\n";
  EXPECT_NE(LoadConfigFile(path, &cfg).find("unknown key"), std::string::npos);
  std::ofstream(path, std::ios::trunc) << "listen = \n";
  EXPECT_NE(LoadConfigFile(path, &cfg).find(path + ":1:"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(ConfigTest, EventLoopBackend) {
  Config cfg;
  EXPECT_EQ(cfg.server.event_loop, rpc::Backend::kAuto);
  ASSERT_EQ(ParseConfig("event_loop = \"epoll\"\n", "t.toml", &cfg), "");
  EXPECT_EQ(cfg.server.event_loop, rpc::Backend::kEpoll);
  ASSERT_EQ(ParseConfig("event_loop = \"io_uring\"\n", "t.toml", &cfg), "");
  EXPECT_EQ(cfg.server.event_loop, rpc::Backend::kIoUring);
  EXPECT_NE(ParseConfig("event_loop = \"select\"\n", "t.toml", &cfg)
                .find("\"auto\", \"epoll\" or \"io_uring\""),
            std::string::npos);
  EXPECT_NE(ParseConfig("event_loop = 1\n", "t.toml", &cfg).find("event_loop"),
            std::string::npos);
}

TEST(ConfigTest, Exports) {
  Config cfg;
  std::string ok = R"(
metrics = "127.0.0.1:9149"
idmap = "nfsidmap"
idmap_domain = "example.org"
attr_cache_entries = 100
attr_cache_ttl_ms = 500
readdir_cache_mb = 3
inline_compounds = false
[[export]]
path = "/data"
clients = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
access = "ro"
squash = "all"
anonuid = 1000
anongid = 1001
sec = ["sys", "none"]
id = 7
[[export]]
path = "/home"
)";
  ASSERT_EQ(ParseConfig(ok, "t.toml", &cfg), "");
  ASSERT_EQ(cfg.server.exports.size(), 2u);
  const ExportConfig& d = cfg.server.exports[0];
  EXPECT_EQ(d.path, "/data");
  EXPECT_EQ(d.clients.size(), 3u);
  EXPECT_TRUE(d.read_only);
  EXPECT_EQ(d.squash, Squash::kAll);
  EXPECT_EQ(d.anonuid, 1000u);
  EXPECT_EQ(d.anongid, 1001u);
  EXPECT_EQ(d.sec, (std::vector<std::string>{"sys", "none"}));
  EXPECT_EQ(d.id, 7u);
  // Defaults: loopback, rw, root_squash, sys, id from the path.
  const ExportConfig& h = cfg.server.exports[1];
  EXPECT_EQ(h.clients, (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  EXPECT_FALSE(h.read_only);
  EXPECT_EQ(h.squash, Squash::kRoot);
  EXPECT_EQ(h.sec, (std::vector<std::string>{"sys"}));
  EXPECT_FALSE(h.id.has_value());
  EXPECT_EQ(cfg.server.metrics_port, 9149);
  EXPECT_EQ(cfg.server.idmap.mode, "nfsidmap");
  EXPECT_EQ(cfg.server.idmap.domain, "example.org");
  EXPECT_EQ(cfg.server.attr_cache.max_entries, 100u);
  EXPECT_EQ(cfg.server.attr_cache.ttl.count(), 500);
  EXPECT_EQ(cfg.server.readdir_cache_bytes, size_t{3} << 20);
  EXPECT_FALSE(cfg.server.inline_compounds);
  EXPECT_TRUE(Config{}.server.inline_compounds);
  EXPECT_NE(ParseConfig("inline_compounds = 1\n", "t.toml", &cfg)
                .find("true or false"),
            std::string::npos);

  struct Bad {
    const char* text;
    const char* message;
  };
  for (const Bad& b : std::initializer_list<Bad>{
           {"[[export]]\npath = \"/a\"\nclients = [\"10.0.0.0/33\"]\n", "prefix"},
           {"[[export]]\npath = \"/a\"\nclients = [\"10.0.0.1/8\"]\n", "host bits"},
           {"[[export]]\npath = \"/a\"\nclients = [\"not-an-ip\"]\n", "not an IPv4"},
           {"[[export]]\npath = \"/a\"\nclients = [\"fe80::/200\"]\n", "prefix"},
           {"[[export]]\npath = \"/a\"\nflavour = 1\n", "unknown key 'flavour'"},
           {"[[export]]\npath = \"/a\"\n[[export]]\npath = \"/a\"\n", "twice"},
           {"[[export]]\npath = \"a\"\n", "absolute"},
           {"[[export]]\nclients = []\n", "non-empty"},
           {"[[export]]\naccess = \"rw\"\n", "'path' is missing"},
           {"[[export]]\npath = \"/a\"\naccess = \"wo\"\n", "\"rw\" or \"ro\""},
           {"[[export]]\npath = \"/a\"\nsquash = \"some\"\n", "\"none\""},
           {"[[export]]\npath = \"/a\"\nsec = [\"krb5\"]\n", "krb5"},
           {"[[export]]\npath = \"/a\"\nid = 4294967295\n", "1..4294967294"},
           {"[[export]]\npath = \"/a\"\nanonuid = -1\n", "0..4294967294"},
           {"export = \"/a\"\n", "array of tables"},
           {"metrics = \"nowhere\"\n", "HOST:PORT"},
           {"idmap = \"ldap\"\n", "numeric"},
       }) {
    Config c;
    std::string err = ParseConfig(b.text, "bad.toml", &c);
    EXPECT_NE(err.find(b.message), std::string::npos)
        << b.text << " -> " << err;
    EXPECT_NE(err.find("bad.toml"), std::string::npos) << err;
  }
}

TEST(ConfigTest, ExampleFileParses) {
  Config cfg;
  EXPECT_EQ(LoadConfigFile(NFS41D_EXAMPLE_CONFIG, &cfg), "");
  EXPECT_EQ(cfg.server.exports.size(), 2u);
  EXPECT_EQ(cfg.server.metrics_port, 9149);
}

TEST(ExportTest, CidrMatching) {
  std::string err;
  auto v4 = Cidr::Parse("10.1.0.0/16", &err);
  ASSERT_TRUE(v4) << err;
  auto v6 = Cidr::Parse("2001:db8::/32", &err);
  ASSERT_TRUE(v6) << err;
  auto addr = [](const char* s) {
    sockaddr_storage ss{};
    if (inet_pton(AF_INET, s, &reinterpret_cast<sockaddr_in&>(ss).sin_addr) == 1) {
      ss.ss_family = AF_INET;
    } else {
      inet_pton(AF_INET6, s, &reinterpret_cast<sockaddr_in6&>(ss).sin6_addr);
      ss.ss_family = AF_INET6;
    }
    return ss;
  };
  EXPECT_TRUE(v4->Contains(addr("10.1.200.3")));
  EXPECT_FALSE(v4->Contains(addr("10.2.0.1")));
  EXPECT_TRUE(v4->Contains(addr("::ffff:10.1.0.9")));  // v4-mapped
  EXPECT_FALSE(v4->Contains(addr("2001:db8::1")));
  EXPECT_TRUE(v6->Contains(addr("2001:db8:ffff::1")));
  EXPECT_FALSE(v6->Contains(addr("2001:db9::1")));
  auto all = Cidr::Parse("0.0.0.0/0", &err);
  EXPECT_TRUE(all && all->Contains(addr("203.0.113.9")));
  auto host = Cidr::Parse("192.0.2.7", &err);
  EXPECT_TRUE(host && host->Contains(addr("192.0.2.7")));
  EXPECT_FALSE(host->Contains(addr("192.0.2.8")));
}

TEST(ExportTest, Squashing) {
  Export e;
  e.anonuid = 9;
  e.anongid = 8;
  ns::Credentials root{0, 0, {0, 5}};
  ns::Credentials user{1000, 100, {5}};
  e.squash = Squash::kNone;
  EXPECT_EQ(e.Squashed(root).uid, 0u);
  e.squash = Squash::kRoot;
  EXPECT_EQ(e.Squashed(root).uid, 9u);
  EXPECT_EQ(e.Squashed(root).gid, 8u);
  EXPECT_EQ(e.Squashed(root).groups, (std::vector<uint32_t>{8, 5}));
  EXPECT_EQ(e.Squashed(user).uid, 1000u);
  e.squash = Squash::kAll;
  EXPECT_EQ(e.Squashed(user).uid, 9u);
  EXPECT_EQ(e.Squashed(user).gid, 8u);
  EXPECT_TRUE(e.Squashed(user).groups.empty());
}

}  // namespace
}  // namespace nfs41d

// ---- The COMPOUND loop without sockets: mutated requests never crash it,
// and whatever it answers decodes as a COMPOUND4res.
//
// Mutations include huge length fields: the generated decoders check every
// length against the bytes left before allocating (proto/xdr_bounded.h).

#include <random>

#include "nfs41client/client.h"
#include "nfs41d/compound.h"
#include "rpc/xdr_codec.h"

namespace nfs41d {
namespace {

TEST(CompoundFuzzTest, MutatedRequestsGetWellFormedReplies) {
  std::string dir = std::filesystem::temp_directory_path() /
                    ("nfs41d-fuzz-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ns::NamespaceOptions no;
  no.create_if_missing = true;
  no.durable = false;
  auto nsr = ns::Namespace::Open("sqlite://" + dir + "/ns.db", no);
  ASSERT_TRUE(nsr.ok()) << nsr.status().ToString();
  FhCodec codec(Key(3));
  state::StateManager sm(state::StateOptions{});
  ServerContext ctx;
  ctx.ns = nsr->get();
  ctx.fh = &codec;
  ctx.state = &sm;

  // A session made directly on the state manager.
  EXCHANGE_ID4args ea{};
  char owner[] = "fuzz";
  ea.eia_clientowner.co_ownerid.co_ownerid_len = 4;
  ea.eia_clientowner.co_ownerid.co_ownerid_val = owner;
  state::ExchangeIdResult er;
  ASSERT_EQ(sm.ExchangeId(ea, "none", &er), NFS4_OK);
  CREATE_SESSION4args ca{};
  ca.csa_clientid = er.clientid;
  ca.csa_sequence = er.sequenceid;
  ca.csa_fore_chan_attrs.ca_maxrequestsize = 1 << 20;
  ca.csa_fore_chan_attrs.ca_maxresponsesize = 1 << 20;
  ca.csa_fore_chan_attrs.ca_maxresponsesize_cached = 1 << 16;
  ca.csa_fore_chan_attrs.ca_maxoperations = 16;
  ca.csa_fore_chan_attrs.ca_maxrequests = 64;
  CREATE_SESSION4resok cr{};
  ASSERT_EQ(sm.CreateSession(ca, "none", 0, &cr), NFS4_OK);

  std::mt19937 rng(12345);
  uint32_t seq = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    nfs_argop4 s{};
    s.argop = OP_SEQUENCE;
    std::memcpy(s.nfs_argop4_u.opsequence.sa_sessionid, cr.csr_sessionid,
                NFS4_SESSIONID_SIZE);
    s.nfs_argop4_u.opsequence.sa_sequenceid = ++seq;
    nfs41client::Compound c;
    c.Op(s).PutRootFh().Lookup("a").GetAttr(
        nfs41client::Bits({FATTR4_TYPE, FATTR4_SIZE, FATTR4_OWNER}));
    if (iter % 3 == 0) c.Create(NF4DIR, "d" + std::to_string(iter), 0755);
    if (iter % 5 == 0) c.SaveFh().PutRootFh().Rename("x", "y");
    std::vector<uint8_t> bytes = c.Encode(1, nullptr);
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 3) {
        case 0:  // the low byte of a word
          if (bytes.size() >= 4) {
            bytes[(rng() % (bytes.size() / 4)) * 4 + 3] =
                static_cast<uint8_t>(rng());
          }
          break;
        case 1:
          bytes.resize(rng() % bytes.size());
          if (bytes.empty()) bytes.push_back(0);
          break;
        case 2: {
          uint32_t v = rng() % 3 == 0   ? 0xFFFFFFFFu - rng() % 64
                       : rng() % 2 ? rng() % 4096
                                   : rng() % 70;
          size_t at = (rng() % (bytes.size() / 4 + 1)) * 4;
          if (at + 4 <= bytes.size()) {
            bytes[at] = v >> 24;
            bytes[at + 1] = v >> 16;
            bytes[at + 2] = v >> 8;
            bytes[at + 3] = v;
          }
          break;
        }
      }
    }
    CompoundState st(ctx);
    st.cred = ns::Credentials::Root();
    st.principal = "none";
    st.request_size = bytes.size() + 40;
    std::optional<std::vector<uint8_t>> reply = RunCompound(st, bytes);
    if (reply) {
      rpc::XdrOwned<COMPOUND4res> res(xdr_COMPOUND4res);
      ASSERT_TRUE(res.DecodeAll(*reply)) << "iteration " << iter;
    }
    if (iter % 50 == 0) seq = 0;  // also exercise misordered ids
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nfs41d
