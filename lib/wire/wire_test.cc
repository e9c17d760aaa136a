// Tests for lib/wire: golden byte vectors written by hand from the tables in
// docs/wire-format.md (so a layout mistake in the codec cannot hide behind a
// matching mistake in the test), round trips, truncation and malformed-field
// rejection, whole-datagram parsing and the CRC32C implementations.

#include "lib/wire/wire.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "lib/base/rng.h"
#include "lib/wire/crc32c_internal.h"

namespace shoal::wire {
namespace {

using Bytes = std::vector<uint8_t>;

std::span<const uint8_t> S(const Bytes& b) { return {b.data(), b.size()}; }

Bytes Cat(std::initializer_list<const Bytes*> parts) {
  Bytes out;
  for (const Bytes* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

// Appends the big-endian CRC32C trailer.
Bytes Sealed(Bytes b) {
  const size_t len = b.size();
  b.resize(len + kTrailerSize);
  EXPECT_EQ(seal(b, len), len + kTrailerSize);
  return b;
}

// ---- golden vectors (hand-assembled; comments give each field) ------------------

// RUD_REQ, next_hdr REQ_STD, flags AR: (2<<11)|(3<<7)|0x08 = 0x1188.
const Bytes kReqGolden = {
    0x11, 0x88,              // prologue
    0xFF, 0xFE,              // clear_psn_offset -2
    0x01, 0x02, 0x03, 0x04,  // psn
    0x12, 0x34,              // spdcid
    0x56, 0x78,              // dpdcid
};
// ROD_REQ, REQ_STD, flags SYN|RETX: (3<<11)|(3<<7)|0x14 = 0x1994.
const Bytes kReqSynGolden = {
    0x19, 0x94, 0x00, 0x10,  // prologue, clear_psn_offset 16
    0xDE, 0xAD, 0xBE, 0xEF,  // psn
    0x00, 0x01,              // spdcid
    0xA1, 0x23,              // pdc_info 0xA | psn_offset 0x123
};
// RUD_CC_REQ, REQ_STD, no flags: (0xD<<11)|(3<<7) = 0x6980.
const Bytes kCcReqGolden = {
    0x69, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  // prologue, cpo 0, psn 1
    0x00, 0x02, 0x00, 0x03,                          // spdcid 2, dpdcid 3
    0xCA, 0xFE, 0xF0, 0x0D,                          // req_cc_state
};
// ACK, next_hdr none, flags M: (7<<11)|0x20 = 0x3820.
const Bytes kAckGolden = {
    0x38, 0x20, 0x00, 0x05,  // prologue, ack_psn_offset 5
    0x00, 0x00, 0x01, 0x00,  // cack_psn 0x100
    0x0A, 0x0B, 0x0C, 0x0D,  // spdcid, dpdcid
};
// ACK with EPSN: (7<<11)|0x40 = 0x3840.
const Bytes kAckEpsnGolden = {
    0x38, 0x40, 0xFF, 0xFF,  // prologue, ack_psn_offset -1
    0x10, 0x20, 0x30, 0x40,  // cack_psn
    0x00, 0x01, 0x00, 0x02,  // spdcid, dpdcid
    0x10, 0x20, 0x30, 0x50,  // expected_psn
};
// ACK_CC, next_hdr RSP, flags P: (8<<11)|(4<<7)|0x08 = 0x4208.
const Bytes kAckCcGolden = {
    0x42, 0x08, 0x00, 0x00,                          // prologue, ack_psn_offset 0
    0x00, 0x00, 0x00, 0x10,                          // cack_psn
    0x00, 0x05, 0x00, 0x06,                          // spdcid, dpdcid
    0x25, 0x40, 0x00, 0x08,                          // cc_type 2|cc_flags 5, mpr, sack off 8
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // sack_bitmap
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,  // ack_cc_state
};
// ACK_CCX, none, no flags: 9<<11 = 0x4800.
const Bytes kAckCcxGolden = {
    0x48, 0x00, 0x00, 0x01,                          // prologue, ack_psn_offset 1
    0xFF, 0xFF, 0xFF, 0xFF,                          // cack_psn
    0xFF, 0xFF, 0x00, 0x00,                          // spdcid, dpdcid
    0xF0, 0xFF, 0xFF, 0xF8,                          // cc_type 15|flags 0, mpr, sack off -8
    0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  // sack_bitmap
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // ack_cc_state
    0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8,  // ack_ccx_state
};
// NACK, flags RETX|NT: (0xA<<11)|0x18 = 0x5018.
const Bytes kNackGolden = {
    0x50, 0x18, 0x0B, 0x77,  // prologue, code PSN_OOR_WINDOW, vendor_code
    0x00, 0xAB, 0xCD, 0xEF,  // nack_psn
    0x01, 0x02, 0x03, 0x04,  // spdcid, dpdcid
    0x05, 0x06, 0x07, 0x08,  // payload
};
// NACK_CCX, flags M: (0xC<<11)|0x20 = 0x6020.
const Bytes kNackCcxGolden = {
    0x60, 0x20, 0x17, 0x00,                          // prologue, NEW_START_PSN, vendor 0
    0x00, 0x00, 0x00, 0x01,                          // nack_psn
    0x00, 0x02, 0x00, 0x03,                          // spdcid, dpdcid
    0x00, 0x00, 0x00, 0x00,                          // payload
    0x30, 0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE,  // nccx_type 3 | state
    0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10,  // state2
};
// CTRL CREDIT, flags AR: (0xB<<11)|(7<<7)|0x08 = 0x5B88.
const Bytes kCtrlGolden = {
    0x5B, 0x88, 0xBE, 0xEF,  // prologue, probe_opaque
    0x00, 0x00, 0x00, 0x42,  // psn
    0x00, 0x11, 0x00, 0x22,  // spdcid, dpdcid
    0x00, 0x01, 0x00, 0x00,  // payload
};
// UUD_REQ, REQ_STD: (6<<11)|(3<<7) = 0x3180.
const Bytes kUudGolden = {0x31, 0x80, 0x00, 0x00};
// RUDI_REQ, REQ_STD: (4<<11)|(3<<7) = 0x2180.
const Bytes kRudiGolden = {0x21, 0x80, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04};
// SES WRITE, SOM|EOM|IE, immediate data.
const Bytes kSesSomGolden = {
    0x01, 0x13, 0x01, 0x02,                          // opcode, ver 0|flags, msg_id
    0x05, 0x0A, 0x0B, 0x0C,                          // ri_gen 5 | job_id 0x0A0B0C
    0x01, 0x23, 0x0F, 0xFF,                          // pid_on_fep, res_index
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,  // buf_off
    0x11, 0x22, 0x33, 0x44,                          // initiator
    0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x00, 0x11,  // mem_key
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // cmpl_data
    0x00, 0x00, 0x10, 0x00,                          // req_len 4096
};
// SES TAGGED_SEND, version 1, EOM only (not SOM).
const Bytes kSesMidGolden = {
    0x09, 0x42, 0xFF, 0xFF,                          // opcode, ver 1|EOM, msg_id
    0x00, 0x00, 0x00, 0x01,                          // ri_gen 0 | job_id 1
    0x00, 0x01, 0x00, 0x02,                          // pid_on_fep, res_index
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // buf_off
    0x00, 0x00, 0x00, 0x07,                          // initiator
    0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // match bits
    0x00, 0x00, 0x3F, 0xFF, 0x00, 0x01, 0x00, 0x00,  // payload_len 16383 | msg_off 0x10000
    0x00, 0x02, 0x00, 0x00,                          // req_len
};
// SES response: list 1|opcode 1, ver 0|ret_code 5.
const Bytes kSesRspGolden = {
    0x41, 0x05, 0x12, 0x34,  // list|opcode, ver|ret_code, msg_id
    0xFF, 0x12, 0x34, 0x56,  // ri_gen | job_id
    0x00, 0x00, 0x04, 0x00,  // mod_len
};
// SES RSP_DATA: opcode 2 (with data), ver 2|ret 0.
const Bytes kSesRspDataGolden = {
    0x02, 0x80, 0x00, 0x01,  // list|opcode, ver|ret_code, msg_id
    0x00, 0x00, 0x00, 0x02,  // ri_gen | job_id
    0x00, 0x03, 0x01, 0x00,  // rd_msg_id, payload_len 256
    0x00, 0x00, 0x20, 0x00,  // mod_len
    0x00, 0x00, 0x01, 0x00,  // msg_off
};

// Decodes `golden`, checks that every shorter prefix is kTruncated, and that
// re-encoding reproduces the exact bytes. Returns the decoded header.
template <typename H, typename Dec, typename Enc>
H GoldenRoundTrip(const Bytes& golden, Dec dec, Enc enc) {
  H h;
  EXPECT_EQ(dec(S(golden), h), WireError::kOk);
  for (size_t len = 0; len < golden.size(); ++len) {
    H t;
    EXPECT_EQ(dec(S(golden).first(len), t), WireError::kTruncated) << "len " << len;
  }
  Bytes out(golden.size() + 8, 0xEE);
  EXPECT_EQ(enc(h, std::span<uint8_t>(out)), golden.size());
  EXPECT_EQ(Bytes(out.begin(), out.begin() + golden.size()), golden);
  // Exactly size() bytes written: the guard bytes after it are untouched.
  for (size_t i = golden.size(); i < out.size(); ++i) EXPECT_EQ(out[i], 0xEE);
  // Too small an output: 0 and nothing written.
  Bytes small(golden.size() - 1, 0xEE);
  EXPECT_EQ(enc(h, std::span<uint8_t>(small)), 0u);
  for (uint8_t b : small) EXPECT_EQ(b, 0xEE);
  return h;
}

#define DEC(fn) [](std::span<const uint8_t> in, auto& h) { return fn(in, h); }
#define ENC(fn) [](const auto& h, std::span<uint8_t> out) { return fn(h, out); }

// ---- PDS golden vectors -------------------------------------------------------------

TEST(WireGolden, Request) {
  auto h = GoldenRoundTrip<RequestHeader>(kReqGolden, DEC(decode_request), ENC(encode_request));
  EXPECT_EQ(h.prologue.type, PdsType::kRudReq);
  EXPECT_EQ(h.prologue.next_hdr, static_cast<uint8_t>(NextHdr::kReqStd));
  EXPECT_EQ(h.prologue.flags, kReqFlagAckReq);
  EXPECT_EQ(h.clear_psn_offset, -2);
  EXPECT_EQ(h.psn, 0x01020304u);
  EXPECT_EQ(h.spdcid, 0x1234);
  EXPECT_EQ(h.dpdcid, 0x5678);
  EXPECT_EQ(h.req_cc_state, 0u);
  EXPECT_EQ(pds_header_size(h.prologue), kRequestSize);
}

TEST(WireGolden, RequestSyn) {
  auto h =
      GoldenRoundTrip<RequestHeader>(kReqSynGolden, DEC(decode_request), ENC(encode_request));
  EXPECT_EQ(h.prologue.type, PdsType::kRodReq);
  EXPECT_EQ(h.prologue.flags, kReqFlagSyn | kReqFlagRetx);
  EXPECT_EQ(h.clear_psn_offset, 16);
  EXPECT_EQ(h.psn, 0xDEADBEEFu);
  EXPECT_EQ(h.spdcid, 1);
  EXPECT_EQ(syn_pdc_info(h.dpdcid), 0xA);
  EXPECT_EQ(syn_psn_offset(h.dpdcid), 0x123);
  EXPECT_EQ(h.dpdcid, syn_dpdcid(0xA, 0x123));
}

TEST(WireGolden, CcRequest) {
  auto h =
      GoldenRoundTrip<RequestHeader>(kCcReqGolden, DEC(decode_request), ENC(encode_request));
  EXPECT_EQ(h.prologue.type, PdsType::kRudCcReq);
  EXPECT_EQ(h.psn, 1u);
  EXPECT_EQ(h.spdcid, 2);
  EXPECT_EQ(h.dpdcid, 3);
  EXPECT_EQ(h.req_cc_state, 0xCAFEF00Du);
  EXPECT_EQ(pds_header_size(h.prologue), kCcRequestSize);
}

TEST(WireGolden, Ack) {
  auto h = GoldenRoundTrip<AckHeader>(kAckGolden, DEC(decode_ack), ENC(encode_ack));
  EXPECT_EQ(h.prologue.type, PdsType::kAck);
  EXPECT_EQ(h.prologue.next_hdr, 0);
  EXPECT_EQ(h.prologue.flags, kAckFlagEcnEcho);
  EXPECT_EQ(h.ack_psn_offset, 5);
  EXPECT_EQ(h.cack_psn, 0x100u);
  EXPECT_EQ(h.spdcid, 0x0A0B);
  EXPECT_EQ(h.dpdcid, 0x0C0D);
  EXPECT_EQ(h.expected_psn, 0u);
  EXPECT_EQ(pds_header_size(h.prologue), kAckSize);
}

TEST(WireGolden, AckEpsn) {
  auto h = GoldenRoundTrip<AckHeader>(kAckEpsnGolden, DEC(decode_ack), ENC(encode_ack));
  EXPECT_EQ(h.prologue.flags, kAckFlagEpsn);
  EXPECT_EQ(h.ack_psn_offset, -1);
  EXPECT_EQ(h.cack_psn, 0x10203040u);
  EXPECT_EQ(h.expected_psn, 0x10203050u);
  EXPECT_EQ(pds_header_size(h.prologue), kAckEpsnSize);
}

TEST(WireGolden, AckCc) {
  auto h = GoldenRoundTrip<AckHeader>(kAckCcGolden, DEC(decode_ack), ENC(encode_ack));
  EXPECT_EQ(h.prologue.type, PdsType::kAckCc);
  EXPECT_EQ(h.prologue.next_hdr, static_cast<uint8_t>(NextHdr::kRsp));
  EXPECT_EQ(h.prologue.flags, kAckFlagProbe);
  EXPECT_EQ(h.cack_psn, 0x10u);
  EXPECT_EQ(h.spdcid, 5);
  EXPECT_EQ(h.dpdcid, 6);
  EXPECT_EQ(h.cc_type, 2);
  EXPECT_EQ(h.cc_flags, 5);
  EXPECT_EQ(h.mpr, 0x40);
  EXPECT_EQ(h.sack_psn_offset, 8);
  EXPECT_EQ(h.sack_bitmap, 0x0102030405060708u);
  EXPECT_EQ(h.ack_cc_state, 0x1112131415161718u);
  EXPECT_EQ(h.ack_ccx_state, 0u);
  EXPECT_EQ(pds_header_size(h.prologue), kAckCcSize);
}

TEST(WireGolden, AckCcx) {
  auto h = GoldenRoundTrip<AckHeader>(kAckCcxGolden, DEC(decode_ack), ENC(encode_ack));
  EXPECT_EQ(h.prologue.type, PdsType::kAckCcx);
  EXPECT_EQ(h.ack_psn_offset, 1);
  EXPECT_EQ(h.cack_psn, 0xFFFFFFFFu);
  EXPECT_EQ(h.spdcid, 0xFFFF);
  EXPECT_EQ(h.dpdcid, 0);
  EXPECT_EQ(h.cc_type, 0xF);
  EXPECT_EQ(h.cc_flags, 0);
  EXPECT_EQ(h.mpr, 0xFF);
  EXPECT_EQ(h.sack_psn_offset, -8);
  EXPECT_EQ(h.sack_bitmap, 0x8000000000000001u);
  EXPECT_EQ(h.ack_cc_state, 0u);
  EXPECT_EQ(h.ack_ccx_state, 0xA1A2A3A4A5A6A7A8u);
  EXPECT_EQ(pds_header_size(h.prologue), kAckCcxSize);
}

TEST(WireGolden, Nack) {
  auto h = GoldenRoundTrip<NackHeader>(kNackGolden, DEC(decode_nack), ENC(encode_nack));
  EXPECT_EQ(h.prologue.type, PdsType::kNack);
  EXPECT_EQ(h.prologue.flags, kNackFlagRetx | kNackFlagNt);
  EXPECT_EQ(h.code, NackCode::kPsnOorWindow);
  EXPECT_EQ(h.vendor_code, 0x77);
  EXPECT_EQ(h.nack_psn, 0x00ABCDEFu);
  EXPECT_EQ(h.spdcid, 0x0102);
  EXPECT_EQ(h.dpdcid, 0x0304);
  EXPECT_EQ(h.payload, 0x05060708u);
  EXPECT_EQ(pds_header_size(h.prologue), kNackSize);
}

TEST(WireGolden, NackCcx) {
  auto h = GoldenRoundTrip<NackHeader>(kNackCcxGolden, DEC(decode_nack), ENC(encode_nack));
  EXPECT_EQ(h.prologue.type, PdsType::kNackCcx);
  EXPECT_EQ(h.prologue.flags, kNackFlagEcn);
  EXPECT_EQ(h.code, NackCode::kNewStartPsn);
  EXPECT_EQ(h.nack_psn, 1u);
  EXPECT_EQ(h.nccx_type, 3);
  EXPECT_EQ(h.nccx_state, 0x0123456789ABCDEu);
  EXPECT_EQ(h.nccx_state2, 0xFEDCBA9876543210u);
  EXPECT_EQ(pds_header_size(h.prologue), kNackCcxSize);
}

TEST(WireGolden, Ctrl) {
  auto h = GoldenRoundTrip<CtrlHeader>(kCtrlGolden, DEC(decode_ctrl), ENC(encode_ctrl));
  EXPECT_EQ(h.prologue.type, PdsType::kCtrl);
  EXPECT_EQ(h.ctrl_type(), CtrlType::kCredit);
  EXPECT_EQ(h.prologue.flags, kCtrlFlagAckReq);
  EXPECT_EQ(h.probe_opaque, 0xBEEF);
  EXPECT_EQ(h.psn, 0x42u);
  EXPECT_EQ(h.spdcid, 0x11);
  EXPECT_EQ(h.dpdcid, 0x22);
  EXPECT_EQ(h.payload, 0x10000u);
  EXPECT_EQ(pds_header_size(h.prologue), kCtrlSize);
}

TEST(WireGolden, Uud) {
  auto h = GoldenRoundTrip<UudHeader>(kUudGolden, DEC(decode_uud), ENC(encode_uud));
  EXPECT_EQ(h.prologue.type, PdsType::kUudReq);
  EXPECT_EQ(h.prologue.next_hdr, static_cast<uint8_t>(NextHdr::kReqStd));
  EXPECT_EQ(pds_header_size(h.prologue), kUudSize);
}

TEST(WireGolden, Rudi) {
  auto h = GoldenRoundTrip<RudiHeader>(kRudiGolden, DEC(decode_rudi), ENC(encode_rudi));
  EXPECT_EQ(h.prologue.type, PdsType::kRudiReq);
  EXPECT_EQ(h.pkt_id, 0x01020304u);
  EXPECT_EQ(pds_header_size(h.prologue), kRudiSize);
}

// ---- SES golden vectors ----------------------------------------------------------------

TEST(WireGolden, SesRequestSom) {
  auto h = GoldenRoundTrip<SesRequest>(kSesSomGolden, DEC(decode_ses_request),
                                       ENC(encode_ses_request));
  EXPECT_EQ(h.opcode, SesOpcode::kWrite);
  EXPECT_EQ(h.version, 0);
  EXPECT_EQ(h.flags, kSesFlagSom | kSesFlagEom | kSesFlagIe);
  EXPECT_EQ(h.msg_id, 0x0102);
  EXPECT_EQ(h.ri_gen, 5);
  EXPECT_EQ(h.job_id, 0x0A0B0Cu);
  EXPECT_EQ(h.pid_on_fep, 0x123);
  EXPECT_EQ(h.res_index, 0xFFF);
  EXPECT_EQ(h.buf_off, 0x100000000u);
  EXPECT_EQ(h.initiator, 0x11223344u);
  EXPECT_EQ(h.mem_key, 0xAABBCCDDEEFF0011u);
  EXPECT_EQ(h.cmpl_data, 0x0102030405060708u);
  EXPECT_EQ(h.payload_len, 0);
  EXPECT_EQ(h.msg_off, 0u);
  EXPECT_EQ(h.req_len, 4096u);
}

TEST(WireGolden, SesRequestNotSom) {
  auto h = GoldenRoundTrip<SesRequest>(kSesMidGolden, DEC(decode_ses_request),
                                       ENC(encode_ses_request));
  EXPECT_EQ(h.opcode, SesOpcode::kTaggedSend);
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.flags, kSesFlagEom);
  EXPECT_EQ(h.msg_id, 0xFFFF);
  EXPECT_EQ(h.ri_gen, 0);
  EXPECT_EQ(h.job_id, 1u);
  EXPECT_EQ(h.pid_on_fep, 1);
  EXPECT_EQ(h.res_index, 2);
  EXPECT_EQ(h.initiator, 7u);
  EXPECT_EQ(h.mem_key, 0x8000000000000000u);
  EXPECT_EQ(h.cmpl_data, 0u);
  EXPECT_EQ(h.payload_len, 16383);
  EXPECT_EQ(h.msg_off, 0x10000u);
  EXPECT_EQ(h.req_len, 0x20000u);
}

TEST(WireGolden, SesResponse) {
  auto h = GoldenRoundTrip<SesResponse>(
      kSesRspGolden, [](std::span<const uint8_t> in, SesResponse& o) {
        return decode_ses_response(in, false, o);
      },
      [](const SesResponse& r, std::span<uint8_t> out) {
        return encode_ses_response(r, false, out);
      });
  EXPECT_EQ(h.list, 1);
  EXPECT_EQ(h.opcode, 1);
  EXPECT_EQ(h.version, 0);
  EXPECT_EQ(h.ret_code, 5);
  EXPECT_EQ(h.msg_id, 0x1234);
  EXPECT_EQ(h.ri_gen, 0xFF);
  EXPECT_EQ(h.job_id, 0x123456u);
  EXPECT_EQ(h.mod_len, 0x400u);
  EXPECT_EQ(h.payload_len, 0);
}

TEST(WireGolden, SesResponseData) {
  auto h = GoldenRoundTrip<SesResponse>(
      kSesRspDataGolden, [](std::span<const uint8_t> in, SesResponse& o) {
        return decode_ses_response(in, true, o);
      },
      [](const SesResponse& r, std::span<uint8_t> out) {
        return encode_ses_response(r, true, out);
      });
  EXPECT_EQ(h.list, 0);
  EXPECT_EQ(h.opcode, 2);
  EXPECT_EQ(h.version, 2);
  EXPECT_EQ(h.ret_code, 0);
  EXPECT_EQ(h.msg_id, 1);
  EXPECT_EQ(h.job_id, 2u);
  EXPECT_EQ(h.rd_msg_id, 3);
  EXPECT_EQ(h.payload_len, 256);
  EXPECT_EQ(h.mod_len, 0x2000u);
  EXPECT_EQ(h.msg_off, 0x100u);
}

TEST(WireGolden, PrologueAndHelpers) {
  Prologue p;
  EXPECT_EQ(decode_prologue(S(kCtrlGolden), p), WireError::kOk);
  EXPECT_EQ(p.type, PdsType::kCtrl);
  EXPECT_EQ(p.next_hdr, 7);
  EXPECT_EQ(p.flags, 0x08);
  EXPECT_EQ(pack_prologue(p), 0x5B88);
  EXPECT_EQ(decode_prologue(S(kCtrlGolden).first(1), p), WireError::kTruncated);
  EXPECT_EQ(decode_prologue({}, p), WireError::kTruncated);
  Prologue sec{PdsType::kSec, 0, 0};
  EXPECT_EQ(pds_header_size(sec), 0u);
  EXPECT_STREQ(to_string(WireError::kOk), "ok");
  EXPECT_STREQ(to_string(WireError::kBadChecksum), "bad checksum");
  for (int e = 0; e <= static_cast<int>(WireError::kCount); ++e) {
    EXPECT_NE(to_string(static_cast<WireError>(e)), nullptr);
  }
}

// ---- malformed fields -------------------------------------------------------------------

Bytes WithPrologue(Bytes b, uint16_t prologue) {
  b[0] = static_cast<uint8_t>(prologue >> 8);
  b[1] = static_cast<uint8_t>(prologue);
  return b;
}
uint16_t Pro(uint8_t type, uint8_t next_hdr, uint8_t flags) {
  return static_cast<uint16_t>(type << 11 | next_hdr << 7 | flags);
}

TEST(WireMalformed, BadType) {
  Prologue p;
  EXPECT_EQ(decode_prologue(S(WithPrologue(kReqGolden, Pro(0, 3, 0))), p), WireError::kBadType);
  EXPECT_EQ(decode_prologue(S(WithPrologue(kReqGolden, Pro(0xF, 3, 0))), p),
            WireError::kBadType);
  EXPECT_EQ(decode_prologue(S(WithPrologue(kReqGolden, Pro(0x1F, 3, 0))), p),
            WireError::kBadType);
  RequestHeader rq;
  EXPECT_EQ(decode_request(S(WithPrologue(kReqGolden, Pro(7, 3, 0))), rq), WireError::kBadType);
  EXPECT_EQ(decode_request(S(WithPrologue(kReqGolden, Pro(4, 3, 0))), rq), WireError::kBadType);
  AckHeader ack;
  EXPECT_EQ(decode_ack(S(WithPrologue(kAckCcxGolden, Pro(2, 0, 0))), ack), WireError::kBadType);
  EXPECT_EQ(decode_ack(S(WithPrologue(kAckCcxGolden, Pro(0xA, 0, 0))), ack),
            WireError::kBadType);
  NackHeader nack;
  EXPECT_EQ(decode_nack(S(WithPrologue(kNackCcxGolden, Pro(7, 0, 0))), nack),
            WireError::kBadType);
  CtrlHeader ctrl;
  EXPECT_EQ(decode_ctrl(S(WithPrologue(kCtrlGolden, Pro(0xA, 0, 0))), ctrl),
            WireError::kBadType);
  UudHeader uud;
  EXPECT_EQ(decode_uud(S(WithPrologue(kUudGolden, Pro(2, 3, 0))), uud), WireError::kBadType);
  RudiHeader rudi;
  EXPECT_EQ(decode_rudi(S(WithPrologue(kRudiGolden, Pro(6, 3, 0))), rudi), WireError::kBadType);
}

TEST(WireMalformed, BadNextHdr) {
  Prologue p;
  EXPECT_EQ(decode_prologue(S(WithPrologue(kReqGolden, Pro(2, 7, 0))), p), WireError::kBadField);
  EXPECT_EQ(decode_prologue(S(WithPrologue(kReqGolden, Pro(2, 0xF, 0))), p),
            WireError::kBadField);
  RequestHeader rq;
  for (uint8_t nh : {0, 1, 2, 6, 7, 15}) {
    EXPECT_EQ(decode_request(S(WithPrologue(kReqGolden, Pro(2, nh, 0))), rq),
              WireError::kBadField)
        << int{nh};
  }
  for (uint8_t nh : {3, 4, 5}) {
    EXPECT_EQ(decode_request(S(WithPrologue(kReqGolden, Pro(2, nh, 0))), rq), WireError::kOk);
  }
  AckHeader ack;
  EXPECT_EQ(decode_ack(S(WithPrologue(kAckGolden, Pro(7, 3, 0))), ack), WireError::kBadField);
  EXPECT_EQ(decode_ack(S(WithPrologue(kAckGolden, Pro(7, 9, 0))), ack), WireError::kBadField);
  NackHeader nack;
  EXPECT_EQ(decode_nack(S(WithPrologue(kNackGolden, Pro(0xA, 3, 0))), nack),
            WireError::kBadField);
  UudHeader uud;
  EXPECT_EQ(decode_uud(S(WithPrologue(kUudGolden, Pro(6, 0, 0))), uud), WireError::kBadField);
}

TEST(WireMalformed, BadCtrlType) {
  CtrlHeader c;
  for (uint8_t t = 0; t <= 9; ++t) {
    EXPECT_EQ(decode_ctrl(S(WithPrologue(kCtrlGolden, Pro(0xB, t, 0))), c), WireError::kOk);
    EXPECT_EQ(c.ctrl_type(), static_cast<CtrlType>(t));
  }
  for (uint8_t t = 10; t <= 15; ++t) {
    EXPECT_EQ(decode_ctrl(S(WithPrologue(kCtrlGolden, Pro(0xB, t, 0))), c), WireError::kBadField);
    Prologue p;
    EXPECT_EQ(decode_prologue(S(WithPrologue(kCtrlGolden, Pro(0xB, t, 0))), p),
              WireError::kBadField);
  }
}

TEST(WireMalformed, BadNackCode) {
  NackHeader n;
  // 0 and the reserved 0x1B..0xFC are refused; the experimental 0xFD..0xFF
  // are accepted (Shoal's terminal SES NACK is 0xFE).
  for (int code : {0x00, 0x1B, 0x80, 0xFC}) {
    Bytes b = kNackGolden;
    b[2] = static_cast<uint8_t>(code);
    EXPECT_EQ(decode_nack(S(b), n), WireError::kBadField) << code;
  }
  for (int code : {0xFD, 0xFE, 0xFF}) {
    Bytes b = kNackGolden;
    b[2] = static_cast<uint8_t>(code);
    EXPECT_EQ(decode_nack(S(b), n), WireError::kOk) << code;
  }
  for (int code = 0x01; code <= 0x1A; ++code) {
    Bytes b = kNackGolden;
    b[2] = static_cast<uint8_t>(code);
    EXPECT_EQ(decode_nack(S(b), n), WireError::kOk) << code;
    EXPECT_EQ(static_cast<int>(n.code), code);
  }
}

TEST(WireMalformed, BadSesOpcode) {
  SesRequest r;
  for (int op = 0; op < 64; ++op) {
    Bytes b = kSesSomGolden;
    b[0] = static_cast<uint8_t>(op);
    const bool good = op == 1 || op == 2 || op == 5 || op == 8 || op == 9;
    EXPECT_EQ(decode_ses_request(S(b), r), good ? WireError::kOk : WireError::kBadType) << op;
  }
  SesResponse rsp;
  Bytes b = kSesRspGolden;
  b[0] = 0x44;  // list 1, opcode 4
  EXPECT_EQ(decode_ses_response(S(b), false, rsp), WireError::kBadType);
}

TEST(WireMalformed, EpsnOnlyOnPlainAck) {
  AckHeader a;
  Bytes cc = kAckCcGolden;
  cc[1] |= kAckFlagEpsn;
  EXPECT_EQ(decode_ack(S(cc), a), WireError::kBadField);
  Bytes ccx = kAckCcxGolden;
  ccx[1] |= kAckFlagEpsn;
  EXPECT_EQ(decode_ack(S(ccx), a), WireError::kBadField);
  // The encoder never emits that combination.
  ASSERT_EQ(decode_ack(S(kAckCcGolden), a), WireError::kOk);
  a.prologue.flags |= kAckFlagEpsn;
  Bytes out(kAckCcSize);
  ASSERT_EQ(encode_ack(a, out), kAckCcSize);
  AckHeader back;
  EXPECT_EQ(decode_ack(S(out), back), WireError::kOk);
  EXPECT_EQ(back.prologue.flags & kAckFlagEpsn, 0);
}

TEST(WireMalformed, SesWordHighBits) {
  SesRequest r;
  for (int bit = 46; bit < 64; ++bit) {
    Bytes b = kSesMidGolden;
    b[32 + (63 - bit) / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_EQ(decode_ses_request(S(b), r), WireError::kBadField) << bit;
    // On a SOM packet the same word is cmpl_data and any value is fine.
    b[1] |= kSesFlagSom;
    EXPECT_EQ(decode_ses_request(S(b), r), WireError::kOk) << bit;
  }
}

TEST(WireMalformed, Ses12BitFields) {
  SesRequest r;
  Bytes b = kSesSomGolden;
  b[8] = 0x10;  // pid_on_fep 0x1023
  EXPECT_EQ(decode_ses_request(S(b), r), WireError::kBadField);
  b = kSesSomGolden;
  b[10] = 0x1F;  // res_index 0x1FFF
  EXPECT_EQ(decode_ses_request(S(b), r), WireError::kBadField);
}

TEST(WireMalformed, RspDataPayloadLen) {
  SesResponse r;
  Bytes b = kSesRspDataGolden;
  b[10] = 0x40;
  b[11] = 0x00;  // 16384
  EXPECT_EQ(decode_ses_response(S(b), true, r), WireError::kBadField);
  b[10] = 0x3F;
  b[11] = 0xFF;
  EXPECT_EQ(decode_ses_response(S(b), true, r), WireError::kOk);
  EXPECT_EQ(r.payload_len, 16383);
}

// ---- random round trips ------------------------------------------------------------------

TEST(WireRoundTrip, RandomHeaders) {
  Rng rng(42);
  auto u = [&rng]() { return rng.next_u64(); };
  constexpr PdsType kReqTypes[] = {PdsType::kRudReq, PdsType::kRodReq, PdsType::kRudCcReq,
                                   PdsType::kRodCcReq};
  constexpr PdsType kAckTypes[] = {PdsType::kAck, PdsType::kAckCc, PdsType::kAckCcx};
  constexpr uint8_t kAckNh[] = {0, 4, 5};
  constexpr SesOpcode kOps[] = {SesOpcode::kWrite, SesOpcode::kRead, SesOpcode::kSend,
                                SesOpcode::kDeferSend, SesOpcode::kTaggedSend};
  uint8_t buf[64];
  for (int i = 0; i < 2000; ++i) {
    RequestHeader rq;
    rq.prologue = {kReqTypes[u() % 4], static_cast<uint8_t>(3 + u() % 3),
                   static_cast<uint8_t>(u() & 0x7F)};
    rq.clear_psn_offset = static_cast<int16_t>(u());
    rq.psn = static_cast<uint32_t>(u());
    rq.spdcid = static_cast<uint16_t>(u());
    rq.dpdcid = static_cast<uint16_t>(u());
    const bool cc = rq.prologue.type == PdsType::kRudCcReq || rq.prologue.type == PdsType::kRodCcReq;
    rq.req_cc_state = cc ? static_cast<uint32_t>(u()) : 0;
    size_t n = encode_request(rq, buf);
    ASSERT_EQ(n, cc ? kCcRequestSize : kRequestSize);
    RequestHeader rq2;
    ASSERT_EQ(decode_request({buf, n}, rq2), WireError::kOk);
    EXPECT_TRUE((rq == rq2));

    AckHeader a;
    a.prologue = {kAckTypes[u() % 3], kAckNh[u() % 3], static_cast<uint8_t>(u() & 0x7F)};
    if (a.prologue.type != PdsType::kAck) a.prologue.flags &= ~kAckFlagEpsn;
    a.ack_psn_offset = static_cast<int16_t>(u());
    a.cack_psn = static_cast<uint32_t>(u());
    a.spdcid = static_cast<uint16_t>(u());
    a.dpdcid = static_cast<uint16_t>(u());
    if (a.prologue.type == PdsType::kAck) {
      if (a.prologue.flags & kAckFlagEpsn) a.expected_psn = static_cast<uint32_t>(u());
    } else {
      a.cc_type = u() & 0xF;
      a.cc_flags = u() & 0xF;
      a.mpr = static_cast<uint8_t>(u());
      a.sack_psn_offset = static_cast<int16_t>(u());
      a.sack_bitmap = u();
      a.ack_cc_state = u();
      if (a.prologue.type == PdsType::kAckCcx) a.ack_ccx_state = u();
    }
    n = encode_ack(a, buf);
    ASSERT_EQ(n, pds_header_size(a.prologue));
    AckHeader a2;
    ASSERT_EQ(decode_ack({buf, n}, a2), WireError::kOk);
    EXPECT_TRUE((a == a2));

    NackHeader nk;
    const bool ccx = u() & 1;
    nk.prologue = {ccx ? PdsType::kNackCcx : PdsType::kNack, 0, static_cast<uint8_t>(u() & 0x7F)};
    nk.code = static_cast<NackCode>(1 + u() % 0x1A);
    nk.vendor_code = static_cast<uint8_t>(u());
    nk.nack_psn = static_cast<uint32_t>(u());
    nk.spdcid = static_cast<uint16_t>(u());
    nk.dpdcid = static_cast<uint16_t>(u());
    nk.payload = static_cast<uint32_t>(u());
    if (ccx) {
      nk.nccx_type = u() & 0xF;
      nk.nccx_state = u() >> 4;
      nk.nccx_state2 = u();
    }
    n = encode_nack(nk, buf);
    NackHeader nk2;
    ASSERT_EQ(decode_nack({buf, n}, nk2), WireError::kOk);
    EXPECT_TRUE((nk == nk2));

    CtrlHeader c;
    c.prologue = {PdsType::kCtrl, static_cast<uint8_t>(u() % 10), static_cast<uint8_t>(u() & 0x7F)};
    c.probe_opaque = static_cast<uint16_t>(u());
    c.psn = static_cast<uint32_t>(u());
    c.spdcid = static_cast<uint16_t>(u());
    c.dpdcid = static_cast<uint16_t>(u());
    c.payload = static_cast<uint32_t>(u());
    n = encode_ctrl(c, buf);
    CtrlHeader c2;
    ASSERT_EQ(decode_ctrl({buf, n}, c2), WireError::kOk);
    EXPECT_TRUE((c == c2));

    SesRequest s;
    s.opcode = kOps[u() % 5];
    s.version = u() & 3;
    s.flags = u() & 0x3F;
    s.msg_id = static_cast<uint16_t>(u());
    s.ri_gen = static_cast<uint8_t>(u());
    s.job_id = u() & 0xFFFFFF;
    s.pid_on_fep = u() & 0xFFF;
    s.res_index = u() & 0xFFF;
    s.buf_off = u();
    s.initiator = static_cast<uint32_t>(u());
    s.mem_key = u();
    if (s.flags & kSesFlagSom) {
      s.cmpl_data = u();
    } else {
      s.payload_len = u() & 0x3FFF;
      s.msg_off = static_cast<uint32_t>(u());
    }
    s.req_len = static_cast<uint32_t>(u());
    n = encode_ses_request(s, buf);
    SesRequest s2;
    ASSERT_EQ(decode_ses_request({buf, n}, s2), WireError::kOk);
    EXPECT_TRUE((s == s2));

    SesResponse r;
    const bool data = u() & 1;
    r.list = u() & 3;
    r.opcode = u() & 3;
    r.version = u() & 3;
    r.ret_code = u() & 0x3F;
    r.msg_id = static_cast<uint16_t>(u());
    r.ri_gen = static_cast<uint8_t>(u());
    r.job_id = u() & 0xFFFFFF;
    r.mod_len = static_cast<uint32_t>(u());
    if (data) {
      r.rd_msg_id = static_cast<uint16_t>(u());
      r.payload_len = u() & 0x3FFF;
      r.msg_off = static_cast<uint32_t>(u());
    }
    n = encode_ses_response(r, data, buf);
    SesResponse r2;
    ASSERT_EQ(decode_ses_response({buf, n}, data, r2), WireError::kOk);
    EXPECT_TRUE((r == r2));
  }
}

TEST(WireRoundTrip, EncodersMaskOutOfRangeFields) {
  SesRequest s;
  s.flags = 0;  // not SOM
  s.job_id = 0xFF123456;
  s.pid_on_fep = 0xF123;
  s.res_index = 0xFFFF;
  s.payload_len = 0xFFFF;
  s.msg_off = 7;
  uint8_t buf[kSesRequestSize];
  ASSERT_EQ(encode_ses_request(s, buf), kSesRequestSize);
  SesRequest back;
  ASSERT_EQ(decode_ses_request(buf, back), WireError::kOk);
  EXPECT_EQ(back.job_id, 0x123456u);
  EXPECT_EQ(back.pid_on_fep, 0x123);
  EXPECT_EQ(back.res_index, 0xFFF);
  EXPECT_EQ(back.payload_len, 0x3FFF);
  EXPECT_EQ(back.msg_off, 7u);
}

// ---- whole datagrams -----------------------------------------------------------------------

Bytes Payload(size_t n) {
  Bytes p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(i * 7 + 1);
  return p;
}

TEST(WireDatagram, RequestSom) {
  const Bytes payload = Payload(100);
  const Bytes dg = Sealed(Cat({&kReqGolden, &kSesSomGolden, &payload}));
  Packet pkt;
  ASSERT_EQ(parse_datagram(S(dg), pkt), WireError::kOk);
  EXPECT_EQ(pkt.prologue.type, PdsType::kRudReq);
  EXPECT_EQ(pkt.request.psn, 0x01020304u);
  EXPECT_TRUE(pkt.has_ses_request);
  EXPECT_FALSE(pkt.has_ses_response);
  EXPECT_EQ(pkt.ses_request.cmpl_data, 0x0102030405060708u);
  ASSERT_EQ(pkt.payload.size(), payload.size());
  EXPECT_EQ(pkt.payload.data(), dg.data() + kRequestSize + kSesRequestSize);
  EXPECT_EQ(std::memcmp(pkt.payload.data(), payload.data(), payload.size()), 0);
  // The trailer is the big-endian CRC32C of everything before it.
  const uint32_t crc = crc32c(S(dg).first(dg.size() - 4));
  EXPECT_EQ(dg[dg.size() - 4], crc >> 24);
  EXPECT_EQ(dg[dg.size() - 1], crc & 0xFF);
}

TEST(WireDatagram, CcRequestNotSom) {
  // kSesMidGolden says payload_len 16383: build a matching packet.
  const Bytes payload = Payload(16383);
  const Bytes dg = Sealed(Cat({&kCcReqGolden, &kSesMidGolden, &payload}));
  Packet pkt;
  ASSERT_EQ(parse_datagram(S(dg), pkt), WireError::kOk);
  EXPECT_EQ(pkt.request.req_cc_state, 0xCAFEF00Du);
  EXPECT_EQ(pkt.ses_request.msg_off, 0x10000u);
  EXPECT_EQ(pkt.payload.size(), 16383u);
}

TEST(WireDatagram, PayloadLengthMismatch) {
  Packet pkt;
  // Not SOM: exactly payload_len bytes.
  for (size_t n : {0, 16382, 16384}) {
    const Bytes payload = Payload(n);
    const Bytes dg = Sealed(Cat({&kReqGolden, &kSesMidGolden, &payload}));
    EXPECT_EQ(parse_datagram(S(dg), pkt), WireError::kBadField) << n;
  }
  // SOM: at most req_len (4096) bytes.
  {
    const Bytes payload = Payload(4096);
    const Bytes dg = Sealed(Cat({&kReqGolden, &kSesSomGolden, &payload}));
    EXPECT_EQ(parse_datagram(S(dg), pkt), WireError::kOk);
  }
  {
    const Bytes payload = Payload(4097);
    const Bytes dg = Sealed(Cat({&kReqGolden, &kSesSomGolden, &payload}));
    EXPECT_EQ(parse_datagram(S(dg), pkt), WireError::kBadField);
  }
  // RSP_DATA: exactly its payload_len (256).
  for (size_t n : {255, 256, 257}) {
    const Bytes payload = Payload(n);
    // kReqGolden announces REQ_STD; switch its next_hdr to RSP_DATA.
    Bytes fixed = WithPrologue(Cat({&kReqGolden, &kSesRspDataGolden, &payload}), Pro(2, 5, 0));
    fixed = Sealed(fixed);
    EXPECT_EQ(parse_datagram(S(fixed), pkt), n == 256 ? WireError::kOk : WireError::kBadField);
    if (n == 256) {
      EXPECT_TRUE(pkt.has_ses_response);
      EXPECT_EQ(pkt.ses_response.rd_msg_id, 3);
    }
  }
}

TEST(WireDatagram, BitFlipIsBadChecksum) {
  const Bytes payload = Payload(64);
  const Bytes dg = Sealed(Cat({&kReqGolden, &kSesSomGolden, &payload}));
  Packet pkt;
  for (size_t bit = 0; bit < dg.size() * 8; ++bit) {
    Bytes bad = dg;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_EQ(parse_datagram(S(bad), pkt), WireError::kBadChecksum) << bit;
  }
}

TEST(WireDatagram, AckWithResponse) {
  const Bytes dg = Sealed(Cat({&kAckCcGolden, &kSesRspGolden}));
  Packet pkt;
  ASSERT_EQ(parse_datagram(S(dg), pkt), WireError::kOk);
  EXPECT_EQ(pkt.prologue.type, PdsType::kAckCc);
  EXPECT_EQ(pkt.ack.sack_bitmap, 0x0102030405060708u);
  EXPECT_TRUE(pkt.has_ses_response);
  EXPECT_FALSE(pkt.has_ses_request);
  EXPECT_EQ(pkt.ses_response.mod_len, 0x400u);
  EXPECT_TRUE(pkt.payload.empty());
}

TEST(WireDatagram, EveryAcceptedKind) {
  Packet pkt;
  const Bytes empty;
  struct Case {
    const Bytes* pds;
    const Bytes* ses;
    PdsType type;
  };
  const Case cases[] = {
      {&kAckGolden, &empty, PdsType::kAck},         {&kAckEpsnGolden, &empty, PdsType::kAck},
      {&kAckCcxGolden, &empty, PdsType::kAckCcx},   {&kNackGolden, &empty, PdsType::kNack},
      {&kNackCcxGolden, &empty, PdsType::kNackCcx}, {&kCtrlGolden, &empty, PdsType::kCtrl},
      {&kUudGolden, &kSesSomGolden, PdsType::kUudReq},
      {&kReqSynGolden, &kSesSomGolden, PdsType::kRodReq},
  };
  for (const Case& c : cases) {
    const Bytes dg = Sealed(Cat({c.pds, c.ses}));
    ASSERT_EQ(parse_datagram(S(dg), pkt), WireError::kOk) << static_cast<int>(c.type);
    EXPECT_EQ(pkt.prologue.type, c.type);
    EXPECT_EQ(pkt.has_ses_request, !c.ses->empty());
    EXPECT_FALSE(pkt.has_ses_response);
  }
  EXPECT_EQ(pkt.request.dpdcid, 0xA123);
  Packet p2;
  ASSERT_EQ(parse_datagram(S(Sealed(kNackCcxGolden)), p2), WireError::kOk);
  EXPECT_EQ(p2.nack.nccx_state2, 0xFEDCBA9876543210u);
  ASSERT_EQ(parse_datagram(S(Sealed(kCtrlGolden)), p2), WireError::kOk);
  EXPECT_EQ(p2.ctrl.ctrl_type(), CtrlType::kCredit);
}

TEST(WireDatagram, RejectsUnacceptedTypesAndTruncation) {
  Packet pkt;
  EXPECT_EQ(parse_datagram(S(Sealed(Cat({&kRudiGolden, &kSesSomGolden}))), pkt),
            WireError::kBadType);
  const Bytes sec = {0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};  // type 1
  EXPECT_EQ(parse_datagram(S(Sealed(sec)), pkt), WireError::kBadType);
  // Headers cut short (but correctly sealed) are truncated.
  const Bytes full = Cat({&kReqGolden, &kSesSomGolden});
  for (size_t len = 4; len < full.size(); ++len) {
    const Bytes dg = Sealed(Bytes(full.begin(), full.begin() + len));
    EXPECT_EQ(parse_datagram(S(dg), pkt), WireError::kTruncated) << len;
  }
  for (size_t len = 0; len < 8; ++len) {
    const Bytes tiny(len, 0);
    EXPECT_EQ(parse_datagram(S(tiny), pkt), WireError::kTruncated) << len;
  }
}

TEST(WireDatagram, TrimmedRequestsYieldTheirPdsHeaderOnly) {
  Packet pkt;
  // The SES header was cut halfway and there is no trailer: still readable.
  const Bytes full = Cat({&kReqGolden, &kSesSomGolden});
  const Bytes cut(full.begin(), full.begin() + kRequestSize + 10);
  ASSERT_EQ(parse_trimmed(S(cut), pkt), WireError::kOk);
  EXPECT_EQ(pkt.prologue.type, PdsType::kRudReq);
  EXPECT_EQ(pkt.request.psn, 0x01020304u);
  EXPECT_EQ(pkt.request.spdcid, 0x1234);
  EXPECT_FALSE(pkt.has_ses_request);
  EXPECT_TRUE(pkt.payload.empty());
  ASSERT_EQ(parse_trimmed(S(kCcReqGolden), pkt), WireError::kOk);
  EXPECT_EQ(pkt.request.req_cc_state, 0xCAFEF00Du);
  // Not even the request header: truncated. Not a request: refused.
  for (size_t len = 0; len < kRequestSize; ++len) {
    EXPECT_EQ(parse_trimmed(S(kReqGolden).first(len), pkt), WireError::kTruncated) << len;
  }
  EXPECT_EQ(parse_trimmed(S(kAckCcGolden), pkt), WireError::kBadType);
  EXPECT_EQ(parse_trimmed(S(kCtrlGolden), pkt), WireError::kBadType);
  // The same bytes are no valid datagram (no trailer to check).
  EXPECT_NE(parse_datagram(S(cut), pkt), WireError::kOk);
}

TEST(WireDatagram, SealNeedsRoom) {
  Bytes b(10);
  EXPECT_EQ(seal(b, 7), 0u);
  EXPECT_EQ(seal(b, 11), 0u);
  EXPECT_EQ(seal(b, 6), 10u);
}

// ---- CRC32C ------------------------------------------------------------------------------------

std::span<const uint8_t> Str(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c(Str("123456789")), 0xE3069283u);
  EXPECT_EQ(internal::crc32c_table(Str("123456789")), 0xE3069283u);
  EXPECT_EQ(internal::crc32c_hw(Str("123456789")), 0xE3069283u);
  const Bytes zeros(32, 0);
  EXPECT_EQ(crc32c(S(zeros)), 0x8A9136AAu);
  EXPECT_EQ(internal::crc32c_table(S(zeros)), 0x8A9136AAu);
  const Bytes ones(32, 0xFF);  // RFC 3720 B.4
  EXPECT_EQ(crc32c(S(ones)), 0x62A8AB43u);
  EXPECT_EQ(crc32c({}), 0u);
}

TEST(Crc32c, SeedChains) {
  const Bytes data = Payload(3000);
  for (size_t cut : {0, 1, 7, 8, 100, 767, 768, 1500, 2999, 3000}) {
    const uint32_t a = crc32c(S(data).first(cut));
    EXPECT_EQ(crc32c(S(data).subspan(cut), a), crc32c(S(data))) << cut;
    EXPECT_EQ(internal::crc32c_table(S(data).subspan(cut), a), crc32c(S(data))) << cut;
  }
}

TEST(Crc32c, HardwareMatchesTable) {
  if (!internal::crc32c_hw_available()) GTEST_SKIP() << "no CRC32C instruction";
  Rng rng(7);
  Bytes buf(10000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng.next_u64());
  // Every length up to 300 at several alignments, then lengths that take the
  // three-stream path (768 B blocks) with odd tails.
  for (size_t len = 0; len <= 300; ++len) {
    for (size_t off : {0, 1, 3, 7}) {
      const auto s = S(buf).subspan(off, len);
      const uint32_t seed = static_cast<uint32_t>(rng.next_u64());
      ASSERT_EQ(internal::crc32c_hw(s, seed), internal::crc32c_table(s, seed))
          << len << "@" << off;
    }
  }
  for (size_t len : {767, 768, 769, 1024, 1535, 1536, 2311, 4096, 4152, 9000, 9999}) {
    const auto s = S(buf).subspan(1, len);
    ASSERT_EQ(internal::crc32c_hw(s), internal::crc32c_table(s)) << len;
    ASSERT_EQ(crc32c(s), internal::crc32c_table(s)) << len;
  }
}

}  // namespace
}  // namespace shoal::wire
