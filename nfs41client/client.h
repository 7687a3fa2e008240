#pragma once

// nfs41client: a small NFSv4.1 client library on rpc::Client and the
// rpcgen types (nfs4xdr), for protocol tests and tools.
//
//   auto c = nfs41client::Client::Connect("127.0.0.1", port);
//   (*c)->EstablishSession();                 // EXCHANGE_ID + CREATE_SESSION
//   nfs41client::Compound cp;
//   cp.PutRootFh().GetAttr({FATTR4_TYPE, FATTR4_MODE});
//   auto reply = (*c)->Call(cp);              // SEQUENCE is added in front
//
// Compound encodes each operation as it is added, so its arguments need not
// outlive the call. Reply owns the decoded COMPOUND4res.
//
// Thread safety: Client methods may be called from several threads (each
// call takes a free slot); a Compound or Reply belongs to one thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <array>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "nfs41d/proto/nfs4_prot.h"
#include "rpc/client.h"
#include "rpc/xdr_codec.h"

namespace nfs41client {

using Fh = std::vector<uint8_t>;

// An nfsace4 (RFC 8881 §6.2.1) with its who as a string ("OWNER@",
// "1000", "user@domain").
struct Ace {
  uint32_t type = ACE4_ACCESS_ALLOWED_ACE_TYPE;
  uint32_t flags = 0;
  uint32_t mask = 0;
  std::string who;
  bool operator==(const Ace&) const = default;
};

// A bitmap4 from attribute numbers.
std::vector<uint32_t> Bits(std::initializer_list<uint32_t> attrs);

// COMPOUND arguments under construction.
class Compound {
 public:
  explicit Compound(std::string tag = "") : tag_(std::move(tag)) {}

  // Any operation, encoded now with xdr_nfs_argop4.
  Compound& Op(const nfs_argop4& op);
  // An operation as raw bytes: its number, then `args` as they are (for
  // undefined operations and malformed arguments).
  Compound& RawOp(uint32_t opnum, std::span<const uint8_t> args = {});

  Compound& PutRootFh();
  Compound& PutPubFh();
  Compound& PutFh(const Fh& fh);
  Compound& GetFh();
  Compound& SaveFh();
  Compound& RestoreFh();
  Compound& Lookup(const std::string& name);
  Compound& Lookupp();
  Compound& GetAttr(const std::vector<uint32_t>& bitmap);
  Compound& Access(uint32_t bits);
  Compound& ReadLink();
  Compound& ReadDir(uint64_t cookie, const verifier4 verf, uint32_t dircount,
                    uint32_t maxcount, const std::vector<uint32_t>& bitmap);
  // CREATE of a directory, symlink (`target`), fifo, socket or device.
  Compound& Create(nfs_ftype4 type, const std::string& name, uint32_t mode,
                   const std::string& target = "", uint32_t major = 0,
                   uint32_t minor = 0);
  Compound& Remove(const std::string& name);
  Compound& Rename(const std::string& from, const std::string& to);
  Compound& Link(const std::string& name);
  Compound& SetMode(uint32_t mode);
  // SETATTR of time_modify_set to a client time (seconds).
  Compound& SetMtime(int64_t seconds);
  // SETATTR of owner and/or owner_group strings (empty: not set).
  Compound& SetOwner(const std::string& owner, const std::string& group = "");
  // SETATTR of the acl attribute, with mode too when `mode` is set.
  Compound& SetAcl(const std::vector<Ace>& acl,
                   std::optional<uint32_t> mode = {});
  Compound& SecInfoNoName();
  Compound& ReclaimComplete(bool one_fs = false);

  // --- open state and data (RFC 8881 §18.16 ...)
  // OPEN of `name` in the current directory (CLAIM_NULL), creating it
  // with `how` (UNCHECKED4, GUARDED4, EXCLUSIVE4_1) when `create`.
  // `attrs` are mode (and size when `size` is set) for UNCHECKED4/GUARDED4
  // and EXCLUSIVE4_1; `verf` the exclusive verifier.
  Compound& Open(const std::string& name, uint32_t access, uint32_t deny,
                 const std::string& owner, bool create = false,
                 createmode4 how = UNCHECKED4, uint32_t mode = 0644,
                 uint64_t verf = 0, std::optional<uint64_t> size = {});
  // OPEN of the current filehandle (CLAIM_FH) or a reclaim (CLAIM_PREVIOUS).
  Compound& OpenFh(uint32_t access, uint32_t deny, const std::string& owner,
                   open_claim_type4 claim = CLAIM_FH);
  Compound& OpenDowngrade(const stateid4& sid, uint32_t access,
                          uint32_t deny);
  Compound& Close(const stateid4& sid);
  Compound& Read(const stateid4& sid, uint64_t offset, uint32_t count);
  Compound& Write(const stateid4& sid, uint64_t offset,
                  const std::string& data, stable_how4 stable = UNSTABLE4);
  // WRITE whose data is not copied now but straight into the request by
  // Encode (one copy of a 1 MiB WRITE instead of two). REQUIRES: `data`
  // stays valid until the last Encode of this Compound.
  Compound& WriteView(const stateid4& sid, uint64_t offset,
                      std::span<const uint8_t> data,
                      stable_how4 stable = UNSTABLE4);
  Compound& Commit(uint64_t offset = 0, uint32_t count = 0);
  // SETATTR of size with `sid`.
  Compound& SetSize(const stateid4& sid, uint64_t size);
  // LOCK with a new lock owner (from an open stateid) or an existing lock
  // stateid.
  // `reclaim`: a lock held before the server restarted (§18.10.3), in
  // its grace period.
  Compound& LockNew(nfs_lock_type4 type, uint64_t offset, uint64_t length,
                    const stateid4& open_sid, const std::string& lock_owner,
                    bool reclaim = false);
  Compound& LockExisting(nfs_lock_type4 type, uint64_t offset,
                         uint64_t length, const stateid4& lock_sid);
  Compound& LockT(nfs_lock_type4 type, uint64_t offset, uint64_t length,
                  const std::string& lock_owner);
  Compound& LockU(nfs_lock_type4 type, uint64_t offset, uint64_t length,
                  const stateid4& lock_sid);
  Compound& TestStateids(const std::vector<stateid4>& sids);
  Compound& FreeStateid(const stateid4& sid);

  size_t size() const { return ops_.size(); }
  // COMPOUND4args bytes with `prefix` (an encoded op, e.g. SEQUENCE) first.
  std::vector<uint8_t> Encode(uint32_t minorversion,
                              const std::vector<uint8_t>* prefix) const;

 private:
  std::string tag_;
  std::vector<std::vector<uint8_t>> ops_;
  // Per op, bytes that follow its encoding (WriteView's data; empty for
  // the others), padded to 4 by Encode.
  std::vector<std::span<const uint8_t>> tails_;
};

// A decoded COMPOUND4res. It keeps the reply record: each READ result's
// data is a view into it, not a copy (libtirpc would calloc, zero and copy
// up to 1 MiB per READ).
class Reply {
 public:
  Reply() : res_(xdr_COMPOUND4res) {}
  Reply(Reply&& other) noexcept
      : res_(std::move(other.res_)), body_(std::move(other.body_)) {}
  Reply& operator=(Reply&& other) noexcept;
  ~Reply();
  // Decodes `body`'s results (the whole of them); false if they are not
  // one COMPOUND4res. Whatever this held before is released.
  bool Decode(rpc::ReplyBody body);
  nfsstat4 status() const { return res_->status; }
  size_t size() const { return res_->resarray.resarray_len; }
  const nfs_resop4& op(size_t i) const { return res_->resarray.resarray_val[i]; }
  // The status of result `i` (every arm starts with it).
  nfsstat4 op_status(size_t i) const;
  // The last GETFH result's filehandle, if any.
  std::optional<Fh> LastFh() const;
  const COMPOUND4res& get() const { return res_.get(); }

 private:
  // Points the READ results' data away from the record before they are
  // freed (xdr_free would free() them).
  void DetachViews();

  rpc::XdrOwned<COMPOUND4res> res_;
  std::optional<rpc::ReplyBody> body_;  // what the READ views point into
};

// Attributes decoded from a fattr4 (those nfs41d offers).
struct Attrs {
  std::vector<uint32_t> supported;
  uint32_t type = 0;
  uint64_t change = 0;
  uint64_t size = 0;
  uint64_t space_used = 0;
  uint64_t fsid_major = 0, fsid_minor = 0;
  uint32_t lease_time = 0;
  Fh filehandle;
  uint64_t fileid = 0;
  uint32_t mode = 0;
  uint32_t numlinks = 0;
  std::string owner, owner_group;
  uint32_t rdev_major = 0, rdev_minor = 0;
  uint64_t mounted_on_fileid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  std::vector<Ace> acl;
  uint32_t aclsupport = 0;
  std::vector<uint32_t> present;  // attribute numbers decoded
};
// False if the values are malformed or carry an attribute it cannot parse.
bool DecodeAttrs(const fattr4& in, Attrs* out);

struct ClientOptions {
  rpc::Credential cred = rpc::Credential::Sys(
      {.stamp = 0, .machine_name = "nfs41client", .uid = 0, .gid = 0, .gids = {}});
  // co_ownerid; empty picks one unique to this client object.
  std::string owner;
  // co_verifier: changing it means "the client rebooted".
  uint64_t verifier = 1;
  uint32_t slots = 16;
  // Fore channel sizes asked for in CREATE_SESSION.
  uint32_t max_request_size = 1u << 20;
  uint32_t max_response_size = 1u << 20;
  uint32_t max_response_size_cached = 64u << 10;
  uint32_t max_operations = 16;
  std::chrono::milliseconds timeout{30000};
  // Local address to connect from ("127.0.0.2": another loopback client,
  // for export client-network tests); empty: the kernel's choice.
  std::string local_host;
  // Ask for a back channel on the session's connection
  // (CREATE_SESSION4_FLAG_CONN_BACK_CHAN) and answer callbacks on it.
  bool back_channel = true;
  // The callback program number sent in CREATE_SESSION (csa_cb_program).
  uint32_t cb_program = 0x40000000;
  // Back-channel slots asked for.
  uint32_t back_slots = 2;
  // Serve the callback program at all (false: a client whose callback
  // service is missing, so the server's probe fails with PROG_UNAVAIL).
  bool answer_callbacks = true;
};

// What the client's callback service has seen (RFC 8881 §20): counts and
// the last CB_RECALL_ANY's arguments.
struct CallbackStats {
  uint64_t cb_null = 0;         // CB_NULL calls (probes)
  uint64_t cb_compound = 0;     // CB_COMPOUND calls
  uint64_t cb_sequence_ok = 0;  // CB_SEQUENCEs accepted
  uint64_t cb_sequence_bad = 0; // CB_SEQUENCEs refused (wrong session/slot/seq)
  uint64_t cb_recall_any = 0;   // CB_RECALL_ANYs accepted
  uint32_t last_objects_to_keep = 0;
  uint32_t last_type_mask = 0;
  uint32_t last_cb_program = 0;  // program number the last callback used
  nfsstat4 last_sequence_status = NFS4_OK;
  uint64_t cb_layoutrecall = 0;  // CB_LAYOUTRECALLs accepted (§20.3)
  uint32_t last_layoutrecall_type = 0;
  Fh last_layoutrecall_fh;
  stateid4 last_layoutrecall_stateid{};
  // CB_NOTIFY_DEVICEID (§20.12): calls accepted, and every change they
  // carried (type NOTIFY_DEVICEID4_CHANGE or _DELETE, the device, and
  // ndc_immediate for a change), oldest first.
  uint64_t cb_notify_deviceid = 0;
  struct DeviceChange {
    uint32_t type = 0;
    std::array<uint8_t, NFS4_DEVICEID4_SIZE> device{};
    bool immediate = false;
  };
  std::vector<DeviceChange> device_changes;
};

// An nfsstat4 or a value; transport failures are NFS4ERR_IO with `error`.
template <typename T>
struct NfsResult {
  nfsstat4 status = NFS4_OK;
  std::string error;
  T value{};
  bool ok() const { return status == NFS4_OK; }
};

class Client {
 public:
  static rpc::Result<std::unique_ptr<Client>> Connect(const std::string& host,
                                                      uint16_t port,
                                                      ClientOptions options = {});
  ~Client();

  // COMPOUND (procedure 1) with raw COMPOUND4args bytes.
  rpc::Result<Reply> CallRaw(std::vector<uint8_t> args);
  // A COMPOUND without SEQUENCE.
  rpc::Result<Reply> CallNoSession(const Compound& c, uint32_t minor = 1);
  // SEQUENCE on a free slot, then `c`. The reply's op 0 is SEQUENCE.
  rpc::Result<Reply> Call(const Compound& c, bool cache_this = false);
  // SEQUENCE with exactly this slot and sequence id (tests of the slot
  // rules); does not touch the client's slot table.
  rpc::Result<Reply> CallOnSlot(const Compound& c, uint32_t slot,
                                uint32_t seqid, bool cache_this = false);
  // The sequence id last used on `slot`.
  uint32_t slot_seqid(uint32_t slot);

  nfsstat4 ExchangeId(uint32_t flags = 0);
  nfsstat4 CreateSession();
  // Both. NFS4_OK or the first failure.
  nfsstat4 EstablishSession();
  nfsstat4 DestroySession();
  nfsstat4 DestroyClientId();
  // BIND_CONN_TO_SESSION on this connection (§18.34). Returns the status
  // and, in *dir, the direction the server bound.
  nfsstat4 BindConnToSession(channel_dir_from_client4 want,
                             channel_dir_from_server4* dir = nullptr);
  // BACKCHANNEL_CTL (§18.33) with one AUTH_SYS (sys = true) or AUTH_NONE
  // security entry; the client answers on `program` from then on.
  nfsstat4 BackchannelCtl(uint32_t program, bool sys = true);
  // A new transport connection to host:port, keeping the client id, the
  // session and the slot table (a client that lost its connection, e.g. to
  // a server restart).
  rpc::Status Reconnect(const std::string& host, uint16_t port);

  // sr_status_flags of the last successful SEQUENCE (§18.46.3).
  uint32_t last_status_flags() const { return last_status_flags_.load(); }
  CallbackStats callback_stats();
  // Waits until `pred(stats)` holds or `timeout` passes; returns whether
  // it held.
  bool WaitForCallbacks(const std::function<bool(const CallbackStats&)>& pred,
                        std::chrono::milliseconds timeout);

  clientid4 client_id() const { return clientid_; }
  const sessionid4& session_id() const { return sessionid_; }
  uint32_t slot_count() const { return slots_; }
  uint32_t exchange_flags() const { return exchange_flags_; }
  // The CREATE_SESSION sequence id the next CreateSession() sends; tests
  // set it to replay or misorder one.
  sequenceid4 create_session_seq() const { return cs_seq_; }
  void set_create_session_seq(sequenceid4 s) { cs_seq_ = s; }

  // --- helpers (each one COMPOUND with SEQUENCE)
  NfsResult<Fh> RootFh();
  // Filehandle of an absolute path, by LOOKUPs from the root.
  NfsResult<Fh> LookupPath(const std::string& path);
  NfsResult<Attrs> GetAttr(const Fh& fh, const std::vector<uint32_t>& bitmap);
  // CREATE in `dir`; returns the new object's filehandle.
  NfsResult<Fh> Create(const Fh& dir, nfs_ftype4 type, const std::string& name,
                       uint32_t mode = 0755, const std::string& target = "");
  NfsResult<Fh> Mkdir(const Fh& dir, const std::string& name,
                      uint32_t mode = 0755) {
    return Create(dir, NF4DIR, name, mode);
  }
  // Every name in `dir`, over as many READDIRs as it takes.
  NfsResult<std::vector<std::string>> ReadDirNames(const Fh& dir,
                                                   uint32_t maxcount = 8192);
  NfsResult<bool> Remove(const Fh& dir, const std::string& name);
  NfsResult<bool> Rename(const Fh& from_dir, const std::string& from,
                         const Fh& to_dir, const std::string& to);

  // --- open state and data (each one COMPOUND with SEQUENCE)
  struct Opened {
    Fh fh;
    stateid4 stateid{};
    uint32_t rflags = 0;
  };
  // OPEN (CLAIM_NULL) of `name` in `dir`, creating it (UNCHECKED4) when
  // `create`.
  NfsResult<Opened> OpenFile(const Fh& dir, const std::string& name,
                             uint32_t access, uint32_t deny = 0,
                             bool create = true,
                             const std::string& owner = "owner");
  NfsResult<stateid4> CloseFile(const Fh& fh, const stateid4& sid);
  struct Written {
    uint32_t count = 0;
    stable_how4 committed = UNSTABLE4;
    std::array<uint8_t, NFS4_VERIFIER_SIZE> verf{};
  };
  NfsResult<Written> WriteFile(const Fh& fh, const stateid4& sid,
                               uint64_t offset, const std::string& data,
                               stable_how4 stable = UNSTABLE4);
  struct ReadData {
    std::string data;
    bool eof = false;
  };
  NfsResult<ReadData> ReadFile(const Fh& fh, const stateid4& sid,
                               uint64_t offset, uint32_t count);
  NfsResult<std::array<uint8_t, NFS4_VERIFIER_SIZE>> CommitFile(const Fh& fh);

 private:
  explicit Client(ClientOptions options) : options_(std::move(options)) {}
  std::vector<uint8_t> SequenceOp(uint32_t slot, uint32_t seqid,
                                  bool cache_this) const;
  uint32_t AcquireSlot();
  void ReleaseSlot(uint32_t slot);
  // Registers the callback program on the connection's backchannel.
  void ServeCallbacks(uint32_t program);
  rpc::Reply HandleCbCompound(std::span<const uint8_t> args);
  // Records a CB_NOTIFY_DEVICEID's changes. REQUIRES: cb_mu_ held.
  nfsstat4 RecordDeviceNotify(const CB_NOTIFY_DEVICEID4args& a);

  ClientOptions options_;
  std::unique_ptr<rpc::Client> rpc_;
  clientid4 clientid_ = 0;
  sequenceid4 cs_seq_ = 0;
  uint32_t exchange_flags_ = 0;
  sessionid4 sessionid_{};
  uint32_t slots_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint32_t> seqids_;  // guarded by mu_
  std::vector<bool> busy_;        // guarded by mu_
  std::atomic<uint32_t> last_status_flags_{0};

  // Callback service state.
  std::mutex cb_mu_;
  std::condition_variable cb_cv_;
  CallbackStats cb_stats_;                   // guarded by cb_mu_
  std::vector<uint32_t> back_seqids_;        // guarded by cb_mu_
  sessionid4 cb_sessionid_{};                // guarded by cb_mu_
};

}  // namespace nfs41client
