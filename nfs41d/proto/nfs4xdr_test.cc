// Round trips through the rpcgen-generated NFSv4.1 XDR routines, and a check
// of the wire layout against RFC 5662 / RFC 8881 §18.46 (SEQUENCE) so that a
// mistake in nfs4_prot.x shows up here rather than against a real client.

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "nfs41d/proto/nfs4_prot.h"
#include "rpc/xdr_codec.h"

namespace {

using rpc::XdrDecoder;
using rpc::XdrEncoder;
using rpc::XdrOwned;

const char kTag[] = "tag1";  // 4 bytes: no XDR padding
const uint8_t kSession[NFS4_SESSIONID_SIZE] = {1, 2,  3,  4,  5,  6,  7,  8,
                                               9, 10, 11, 12, 13, 14, 15, 16};

TEST(Nfs4XdrTest, Compound4argsWithSequenceRoundTrip) {
  uint32_t attrs[2] = {(1u << FATTR4_TYPE) | (1u << FATTR4_SIZE),
                       1u << (FATTR4_MODE - 32)};
  nfs_argop4 ops[3] = {};
  ops[0].argop = OP_SEQUENCE;
  SEQUENCE4args& seq = ops[0].nfs_argop4_u.opsequence;
  std::memcpy(seq.sa_sessionid, kSession, sizeof kSession);
  seq.sa_sequenceid = 7;
  seq.sa_slotid = 3;
  seq.sa_highest_slotid = 63;
  seq.sa_cachethis = TRUE;
  ops[1].argop = OP_PUTROOTFH;
  ops[2].argop = OP_GETATTR;
  ops[2].nfs_argop4_u.opgetattr.attr_request.bitmap4_len = 2;
  ops[2].nfs_argop4_u.opgetattr.attr_request.bitmap4_val = attrs;

  COMPOUND4args args{};
  args.tag.utf8string_len = 4;
  args.tag.utf8string_val = const_cast<char*>(kTag);
  args.minorversion = 1;
  args.argarray.argarray_len = 3;
  args.argarray.argarray_val = ops;

  XdrEncoder enc(8);  // tiny: forces the encoder to grow mid-structure
  ASSERT_TRUE(enc.Encode(xdr_COMPOUND4args, args));
  std::vector<uint8_t> wire = enc.Take();

  // Wire layout: tag<>, minorversion, argarray<> count, then each op as
  // opnum + arguments. SEQUENCE4args is sessionid4 (16 bytes, fixed),
  // sequenceid4, slotid4, slotid4, bool.
  XdrDecoder raw(wire);
  auto tag = raw.GetOpaque(100);
  ASSERT_TRUE(tag.has_value());
  EXPECT_EQ(std::string(tag->begin(), tag->end()), "tag1");
  EXPECT_EQ(raw.GetUint32(), 1u);                     // minorversion
  EXPECT_EQ(raw.GetUint32(), 3u);                     // ops
  EXPECT_EQ(raw.GetUint32(), uint32_t{OP_SEQUENCE});  // 53
  EXPECT_EQ(std::memcmp(raw.rest().data(), kSession, 16), 0);
  ASSERT_EQ(wire.size(), 4 + 4 + 4 + 4 + (4 + 16 + 4 * 4) + 4 + (4 + 4 + 8));

  XdrOwned<COMPOUND4args> back(xdr_COMPOUND4args);
  ASSERT_TRUE(back.DecodeAll(wire));
  EXPECT_EQ(std::string(back->tag.utf8string_val, back->tag.utf8string_len),
            "tag1");
  EXPECT_EQ(back->minorversion, 1u);
  ASSERT_EQ(back->argarray.argarray_len, 3u);
  const nfs_argop4* got = back->argarray.argarray_val;
  ASSERT_EQ(got[0].argop, OP_SEQUENCE);
  const SEQUENCE4args& s = got[0].nfs_argop4_u.opsequence;
  EXPECT_EQ(std::memcmp(s.sa_sessionid, kSession, 16), 0);
  EXPECT_EQ(s.sa_sequenceid, 7u);
  EXPECT_EQ(s.sa_slotid, 3u);
  EXPECT_EQ(s.sa_highest_slotid, 63u);
  EXPECT_TRUE(s.sa_cachethis);
  EXPECT_EQ(got[1].argop, OP_PUTROOTFH);
  ASSERT_EQ(got[2].argop, OP_GETATTR);
  const bitmap4& bm = got[2].nfs_argop4_u.opgetattr.attr_request;
  ASSERT_EQ(bm.bitmap4_len, 2u);
  EXPECT_EQ(bm.bitmap4_val[0], attrs[0]);
  EXPECT_EQ(bm.bitmap4_val[1], attrs[1]);
}

TEST(Nfs4XdrTest, Compound4resWithSequenceRoundTrip) {
  nfs_resop4 res[2] = {};
  res[0].resop = OP_SEQUENCE;
  SEQUENCE4res& sr = res[0].nfs_resop4_u.opsequence;
  sr.sr_status = NFS4_OK;
  SEQUENCE4resok& ok = sr.SEQUENCE4res_u.sr_resok4;
  std::memcpy(ok.sr_sessionid, kSession, sizeof kSession);
  ok.sr_sequenceid = 7;
  ok.sr_slotid = 3;
  ok.sr_highest_slotid = 63;
  ok.sr_target_highest_slotid = 63;
  ok.sr_status_flags = SEQ4_STATUS_CB_PATH_DOWN;
  res[1].resop = OP_PUTROOTFH;
  res[1].nfs_resop4_u.opputrootfh.status = NFS4ERR_WRONGSEC;

  COMPOUND4res cr{};
  cr.status = NFS4ERR_WRONGSEC;
  cr.tag.utf8string_len = 4;
  cr.tag.utf8string_val = const_cast<char*>(kTag);
  cr.resarray.resarray_len = 2;
  cr.resarray.resarray_val = res;

  auto wire = rpc::XdrEncode(xdr_COMPOUND4res, cr);
  ASSERT_TRUE(wire.ok());
  XdrOwned<COMPOUND4res> back(xdr_COMPOUND4res);
  ASSERT_TRUE(back.DecodeAll(*wire));
  EXPECT_EQ(back->status, NFS4ERR_WRONGSEC);
  ASSERT_EQ(back->resarray.resarray_len, 2u);
  const SEQUENCE4res& bsr =
      back->resarray.resarray_val[0].nfs_resop4_u.opsequence;
  ASSERT_EQ(bsr.sr_status, NFS4_OK);
  EXPECT_EQ(bsr.SEQUENCE4res_u.sr_resok4.sr_status_flags,
            uint32_t{SEQ4_STATUS_CB_PATH_DOWN});
  EXPECT_EQ(back->resarray.resarray_val[1].nfs_resop4_u.opputrootfh.status,
            NFS4ERR_WRONGSEC);
}

TEST(Nfs4XdrTest, CreateSessionCarriesAuthSysCallbackCredential) {
  // callback_sec_parms4's AUTH_SYS arm is RFC 5531's authsys_parms, which
  // libtirpc calls authunix_parms (see the pass-through lines in the .x).
  char machine[] = "client1";
  gid_t gids[2] = {10, 20};
  callback_sec_parms4 sec{};
  sec.cb_secflavor = AUTH_SYS;
  authsys_parms& sys = sec.callback_sec_parms4_u.cbsp_sys_cred;
  sys.aup_time = 5;
  sys.aup_machname = machine;
  sys.aup_uid = 1000;
  sys.aup_gid = 100;
  sys.aup_len = 2;
  sys.aup_gids = gids;

  CREATE_SESSION4args cs{};
  cs.csa_clientid = 0x1122334455667788ull;
  cs.csa_sequence = 1;
  cs.csa_flags = CREATE_SESSION4_FLAG_CONN_BACK_CHAN;
  cs.csa_fore_chan_attrs.ca_maxrequests = 64;
  cs.csa_back_chan_attrs.ca_maxrequests = 1;
  cs.csa_cb_program = 0x40000000;
  cs.csa_sec_parms.csa_sec_parms_len = 1;
  cs.csa_sec_parms.csa_sec_parms_val = &sec;

  auto wire = rpc::XdrEncode(xdr_CREATE_SESSION4args, cs);
  ASSERT_TRUE(wire.ok());
  XdrOwned<CREATE_SESSION4args> back(xdr_CREATE_SESSION4args);
  ASSERT_TRUE(back.DecodeAll(*wire));
  EXPECT_EQ(back->csa_clientid, cs.csa_clientid);
  EXPECT_EQ(back->csa_fore_chan_attrs.ca_maxrequests, 64u);
  EXPECT_EQ(back->csa_cb_program, 0x40000000u);
  ASSERT_EQ(back->csa_sec_parms.csa_sec_parms_len, 1u);
  const callback_sec_parms4& bs = back->csa_sec_parms.csa_sec_parms_val[0];
  ASSERT_EQ(bs.cb_secflavor, uint32_t{AUTH_SYS});
  const authsys_parms& bsys = bs.callback_sec_parms4_u.cbsp_sys_cred;
  EXPECT_STREQ(bsys.aup_machname, "client1");
  EXPECT_EQ(bsys.aup_uid, 1000u);
  ASSERT_EQ(bsys.aup_len, 2u);
  EXPECT_EQ(bsys.aup_gids[1], 20u);
}

TEST(Nfs4XdrTest, UndefinedOperationDoesNotDecode) {
  // The COMPOUND decoder in nfs41d must turn this into OP_ILLEGAL
  // (RFC 8881 §15.2); the generated routine just refuses it.
  XdrEncoder enc;
  enc.PutString("");
  enc.PutUint32(1);
  enc.PutUint32(1);
  enc.PutUint32(2);  // opnum 2 is not an operation
  std::vector<uint8_t> wire = enc.Take();
  XdrOwned<COMPOUND4args> back(xdr_COMPOUND4args);
  EXPECT_FALSE(back.DecodeAll(wire));
}

TEST(Nfs4XdrTest, CallbackCompoundAndFileLayoutTypes) {
  nfs_cb_argop4 op{};
  op.argop = OP_CB_SEQUENCE;
  CB_SEQUENCE4args& cs = op.nfs_cb_argop4_u.opcbsequence;
  std::memcpy(cs.csa_sessionid, kSession, sizeof kSession);
  cs.csa_sequenceid = 1;
  CB_COMPOUND4args cb{};
  cb.minorversion = 1;
  cb.argarray.argarray_len = 1;
  cb.argarray.argarray_val = &op;
  auto wire = rpc::XdrEncode(xdr_CB_COMPOUND4args, cb);
  ASSERT_TRUE(wire.ok());
  XdrOwned<CB_COMPOUND4args> back(xdr_CB_COMPOUND4args);
  ASSERT_TRUE(back.DecodeAll(*wire));
  EXPECT_EQ(back->argarray.argarray_val[0].argop, uint32_t{OP_CB_SEQUENCE});

  // nfsv4_1_file_layout4 (RFC 8881 §13.3): deviceid4 is 16 fixed bytes.
  char fh[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  nfs_fh4 fhs[1];
  fhs[0].nfs_fh4_len = sizeof fh;
  fhs[0].nfs_fh4_val = fh;
  nfsv4_1_file_layout4 fl{};
  fl.nfl_util = 1u << 16;  // stripe unit 64 KiB
  fl.nfl_first_stripe_index = 2;
  fl.nfl_pattern_offset = 0;
  fl.nfl_fh_list.nfl_fh_list_len = 1;
  fl.nfl_fh_list.nfl_fh_list_val = fhs;
  auto flw = rpc::XdrEncode(xdr_nfsv4_1_file_layout4, fl);
  ASSERT_TRUE(flw.ok());
  EXPECT_EQ(flw->size(), 16u + 4 + 4 + 8 + 4 + (4 + 8));
  XdrOwned<nfsv4_1_file_layout4> flb(xdr_nfsv4_1_file_layout4);
  ASSERT_TRUE(flb.DecodeAll(*flw));
  EXPECT_EQ(flb->nfl_first_stripe_index, 2u);
  EXPECT_EQ(flb->nfl_fh_list.nfl_fh_list_val[0].nfs_fh4_len, 8u);
}

}  // namespace
