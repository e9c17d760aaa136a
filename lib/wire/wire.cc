// UET 1.0 PDS/SES header codecs (layouts in docs/wire-format.md).
//
// Every decoder checks the span length before it loads anything and checks
// each field it can, because a datagram is attacker- or corruption-
// controlled input. The request/ACK paths and parse_datagram run once per
// packet, so they are written as straight-line loads and stores with table
// (bit-mask) membership tests rather than nested branches, and never allocate.

#include "lib/wire/wire.h"

#include <cstddef>
#include <cstdint>
#include <span>

#include "lib/base/bytes.h"

namespace shoal::wire {
namespace {

// Bit n set: next_hdr value n is legal after this kind of PDS header.
// Requests (and UUD/RUDI requests) always carry a SES header; Shoal sends
// the standard request, a response, or a response with data.
constexpr uint16_t kReqNextHdrs = 1u << static_cast<int>(NextHdr::kReqStd) |
                                  1u << static_cast<int>(NextHdr::kRsp) |
                                  1u << static_cast<int>(NextHdr::kRspData);
// ACKs (and RUDI responses) may piggyback a SES response, or carry nothing.
constexpr uint16_t kAckNextHdrs = 1u << static_cast<int>(NextHdr::kNone) |
                                  1u << static_cast<int>(NextHdr::kRsp) |
                                  1u << static_cast<int>(NextHdr::kRspData);
// NACKs never carry a SES header.
constexpr uint16_t kNackNextHdrs = 1u << static_cast<int>(NextHdr::kNone);

constexpr uint8_t kMaxNextHdr = static_cast<uint8_t>(NextHdr::kRspDataSmall);
constexpr uint8_t kMaxCtrlType = static_cast<uint8_t>(CtrlType::kNegotiation);
constexpr uint8_t kMaxPdsType = static_cast<uint8_t>(PdsType::kRodCcReq);

// Bit n set: SES opcode n is one Shoal accepts.
constexpr uint64_t kSesOpcodes = 1ull << static_cast<int>(SesOpcode::kWrite) |
                                 1ull << static_cast<int>(SesOpcode::kRead) |
                                 1ull << static_cast<int>(SesOpcode::kSend) |
                                 1ull << static_cast<int>(SesOpcode::kDeferSend) |
                                 1ull << static_cast<int>(SesOpcode::kTaggedSend);
constexpr uint8_t kMaxSesRspOpcode = 3;  // 0 default .. 3 none
constexpr uint16_t kMaxPayloadLen = 0x3FFF;  // 14-bit field
constexpr uint16_t kMax12Bit = 0xFFF;
constexpr uint64_t kNccxStateMask = (uint64_t{1} << 60) - 1;

inline bool in_set(uint16_t set, uint8_t v) { return (set >> v) & 1u; }

inline Prologue unpack_prologue(uint16_t v) {
  Prologue p;
  p.type = static_cast<PdsType>(v >> 11);
  p.next_hdr = static_cast<uint8_t>((v >> 7) & 0xF);
  p.flags = static_cast<uint8_t>(v & 0x7F);
  return p;
}

inline bool is_cc_request(PdsType t) {
  return t == PdsType::kRudCcReq || t == PdsType::kRodCcReq;
}

inline bool is_request(PdsType t) {
  return t == PdsType::kRudReq || t == PdsType::kRodReq || is_cc_request(t);
}

// Header size of an ACK-family prologue, 0 if the type is not one.
inline size_t ack_size(const Prologue& p) {
  switch (p.type) {
    case PdsType::kAck:
      return (p.flags & kAckFlagEpsn) ? kAckEpsnSize : kAckSize;
    case PdsType::kAckCc:
      return kAckCcSize;
    case PdsType::kAckCcx:
      return kAckCcxSize;
    default:
      return 0;
  }
}

// The flags an encoder writes for an ACK: EPSN is only meaningful on a plain
// ACK, so it is dropped elsewhere rather than producing a header our own
// decoder rejects.
inline uint8_t ack_wire_flags(const AckHeader& h) {
  uint8_t f = h.prologue.flags & 0x7F;
  if (h.prologue.type != PdsType::kAck) f &= static_cast<uint8_t>(~kAckFlagEpsn);
  return f;
}

}  // namespace

const char* to_string(WireError e) {
  switch (e) {
    case WireError::kOk:
      return "ok";
    case WireError::kTruncated:
      return "truncated";
    case WireError::kBadType:
      return "bad type";
    case WireError::kBadField:
      return "bad field";
    case WireError::kBadChecksum:
      return "bad checksum";
    case WireError::kCount:
      break;
  }
  return "unknown";
}

// ---- prologue ----------------------------------------------------------------

uint16_t pack_prologue(const Prologue& p) {
  return static_cast<uint16_t>((static_cast<uint16_t>(p.type) & 0x1F) << 11 |
                               (p.next_hdr & 0xF) << 7 | (p.flags & 0x7F));
}

WireError decode_prologue(std::span<const uint8_t> in, Prologue& out) {
  if (in.size() < kPrologueSize) return WireError::kTruncated;
  const Prologue p = unpack_prologue(load_be16(in.data()));
  const uint8_t t = static_cast<uint8_t>(p.type);
  if (t == 0 || t > kMaxPdsType) return WireError::kBadType;
  const uint8_t max_nh = p.type == PdsType::kCtrl ? kMaxCtrlType : kMaxNextHdr;
  if (p.next_hdr > max_nh) return WireError::kBadField;
  out = p;
  return WireError::kOk;
}

size_t pds_header_size(const Prologue& p) {
  switch (p.type) {
    case PdsType::kRudReq:
    case PdsType::kRodReq:
      return kRequestSize;
    case PdsType::kRudCcReq:
    case PdsType::kRodCcReq:
      return kCcRequestSize;
    case PdsType::kRudiReq:
    case PdsType::kRudiResp:
      return kRudiSize;
    case PdsType::kUudReq:
      return kUudSize;
    case PdsType::kAck:
    case PdsType::kAckCc:
    case PdsType::kAckCcx:
      return ack_size(p);
    case PdsType::kNack:
      return kNackSize;
    case PdsType::kNackCcx:
      return kNackCcxSize;
    case PdsType::kCtrl:
      return kCtrlSize;
    case PdsType::kSec:
      break;  // TSS is not a PDS header Shoal parses here
  }
  return 0;
}

// ---- RUD/ROD requests -------------------------------------------------------------

size_t encode_request(const RequestHeader& h, std::span<uint8_t> out) {
  const bool cc = is_cc_request(h.prologue.type);
  const size_t n = cc ? kCcRequestSize : kRequestSize;
  if (out.size() < n) return 0;
  uint8_t* p = out.data();
  store_be16(p, pack_prologue(h.prologue));
  store_be16(p + 2, static_cast<uint16_t>(h.clear_psn_offset));
  store_be32(p + 4, h.psn);
  store_be16(p + 8, h.spdcid);
  store_be16(p + 10, h.dpdcid);
  if (cc) store_be32(p + 12, h.req_cc_state);
  return n;
}

WireError decode_request(std::span<const uint8_t> in, RequestHeader& out) {
  if (in.size() < kRequestSize) return WireError::kTruncated;
  const uint8_t* p = in.data();
  const Prologue pr = unpack_prologue(load_be16(p));
  if (!is_request(pr.type)) return WireError::kBadType;
  if (!in_set(kReqNextHdrs, pr.next_hdr)) return WireError::kBadField;
  const bool cc = is_cc_request(pr.type);
  if (cc && in.size() < kCcRequestSize) return WireError::kTruncated;
  out.prologue = pr;
  out.clear_psn_offset = static_cast<int16_t>(load_be16(p + 2));
  out.psn = load_be32(p + 4);
  out.spdcid = load_be16(p + 8);
  out.dpdcid = load_be16(p + 10);
  out.req_cc_state = cc ? load_be32(p + 12) : 0;
  return WireError::kOk;
}

// ---- ACK / ACK_CC / ACK_CCX -----------------------------------------------------------

size_t encode_ack(const AckHeader& h, std::span<uint8_t> out) {
  const size_t n = ack_size(h.prologue);
  if (n == 0 || out.size() < n) return 0;
  uint8_t* p = out.data();
  Prologue pr = h.prologue;
  pr.flags = ack_wire_flags(h);
  store_be16(p, pack_prologue(pr));
  store_be16(p + 2, static_cast<uint16_t>(h.ack_psn_offset));
  store_be32(p + 4, h.cack_psn);
  store_be16(p + 8, h.spdcid);
  store_be16(p + 10, h.dpdcid);
  if (h.prologue.type == PdsType::kAck) {
    if (n == kAckEpsnSize) store_be32(p + 12, h.expected_psn);
    return n;
  }
  p[12] = static_cast<uint8_t>((h.cc_type & 0xF) << 4 | (h.cc_flags & 0xF));
  p[13] = h.mpr;
  store_be16(p + 14, static_cast<uint16_t>(h.sack_psn_offset));
  store_be64(p + 16, h.sack_bitmap);
  store_be64(p + 24, h.ack_cc_state);
  if (n == kAckCcxSize) store_be64(p + 32, h.ack_ccx_state);
  return n;
}

WireError decode_ack(std::span<const uint8_t> in, AckHeader& out) {
  if (in.size() < kAckSize) return WireError::kTruncated;
  const uint8_t* p = in.data();
  const Prologue pr = unpack_prologue(load_be16(p));
  const size_t n = ack_size(pr);
  if (n == 0) return WireError::kBadType;
  if (!in_set(kAckNextHdrs, pr.next_hdr)) return WireError::kBadField;
  // EPSN extends only the plain ACK; on the CC forms it is malformed.
  if (pr.type != PdsType::kAck && (pr.flags & kAckFlagEpsn)) return WireError::kBadField;
  if (in.size() < n) return WireError::kTruncated;
  out.prologue = pr;
  out.ack_psn_offset = static_cast<int16_t>(load_be16(p + 2));
  out.cack_psn = load_be32(p + 4);
  out.spdcid = load_be16(p + 8);
  out.dpdcid = load_be16(p + 10);
  out.expected_psn = n == kAckEpsnSize ? load_be32(p + 12) : 0;
  if (pr.type == PdsType::kAck) {
    out.cc_type = 0;
    out.cc_flags = 0;
    out.mpr = 0;
    out.sack_psn_offset = 0;
    out.sack_bitmap = 0;
    out.ack_cc_state = 0;
    out.ack_ccx_state = 0;
    return WireError::kOk;
  }
  out.cc_type = p[12] >> 4;
  out.cc_flags = p[12] & 0xF;
  out.mpr = p[13];
  out.sack_psn_offset = static_cast<int16_t>(load_be16(p + 14));
  out.sack_bitmap = load_be64(p + 16);
  out.ack_cc_state = load_be64(p + 24);
  out.ack_ccx_state = n == kAckCcxSize ? load_be64(p + 32) : 0;
  return WireError::kOk;
}

// ---- NACK / NACK_CCX --------------------------------------------------------------------

size_t encode_nack(const NackHeader& h, std::span<uint8_t> out) {
  const bool ccx = h.prologue.type == PdsType::kNackCcx;
  const size_t n = ccx ? kNackCcxSize : kNackSize;
  if (out.size() < n) return 0;
  uint8_t* p = out.data();
  store_be16(p, pack_prologue(h.prologue));
  p[2] = static_cast<uint8_t>(h.code);
  p[3] = h.vendor_code;
  store_be32(p + 4, h.nack_psn);
  store_be16(p + 8, h.spdcid);
  store_be16(p + 10, h.dpdcid);
  store_be32(p + 12, h.payload);
  if (ccx) {
    store_be64(p + 16, uint64_t{h.nccx_type} << 60 | (h.nccx_state & kNccxStateMask));
    store_be64(p + 24, h.nccx_state2);
  }
  return n;
}

WireError decode_nack(std::span<const uint8_t> in, NackHeader& out) {
  if (in.size() < kNackSize) return WireError::kTruncated;
  const uint8_t* p = in.data();
  const Prologue pr = unpack_prologue(load_be16(p));
  if (pr.type != PdsType::kNack && pr.type != PdsType::kNackCcx) return WireError::kBadType;
  if (!in_set(kNackNextHdrs, pr.next_hdr)) return WireError::kBadField;
  const uint8_t code = p[2];
  if (code == 0 || (code > static_cast<uint8_t>(NackCode::kMax) && code < static_cast<uint8_t>(NackCode::kExpNackNormal)))
    return WireError::kBadField;
  const bool ccx = pr.type == PdsType::kNackCcx;
  if (ccx && in.size() < kNackCcxSize) return WireError::kTruncated;
  out.prologue = pr;
  out.code = static_cast<NackCode>(code);
  out.vendor_code = p[3];
  out.nack_psn = load_be32(p + 4);
  out.spdcid = load_be16(p + 8);
  out.dpdcid = load_be16(p + 10);
  out.payload = load_be32(p + 12);
  if (ccx) {
    const uint64_t w = load_be64(p + 16);
    out.nccx_type = static_cast<uint8_t>(w >> 60);
    out.nccx_state = w & kNccxStateMask;
    out.nccx_state2 = load_be64(p + 24);
  } else {
    out.nccx_type = 0;
    out.nccx_state = 0;
    out.nccx_state2 = 0;
  }
  return WireError::kOk;
}

// ---- CTRL -----------------------------------------------------------------------------------

size_t encode_ctrl(const CtrlHeader& h, std::span<uint8_t> out) {
  if (out.size() < kCtrlSize) return 0;
  uint8_t* p = out.data();
  store_be16(p, pack_prologue(h.prologue));
  store_be16(p + 2, h.probe_opaque);
  store_be32(p + 4, h.psn);
  store_be16(p + 8, h.spdcid);
  store_be16(p + 10, h.dpdcid);
  store_be32(p + 12, h.payload);
  return kCtrlSize;
}

WireError decode_ctrl(std::span<const uint8_t> in, CtrlHeader& out) {
  if (in.size() < kCtrlSize) return WireError::kTruncated;
  const uint8_t* p = in.data();
  const Prologue pr = unpack_prologue(load_be16(p));
  if (pr.type != PdsType::kCtrl) return WireError::kBadType;
  if (pr.next_hdr > kMaxCtrlType) return WireError::kBadField;
  out.prologue = pr;
  out.probe_opaque = load_be16(p + 2);
  out.psn = load_be32(p + 4);
  out.spdcid = load_be16(p + 8);
  out.dpdcid = load_be16(p + 10);
  out.payload = load_be32(p + 12);
  return WireError::kOk;
}

// ---- RUDI / UUD -------------------------------------------------------------------------------

size_t encode_rudi(const RudiHeader& h, std::span<uint8_t> out) {
  if (out.size() < kRudiSize) return 0;
  uint8_t* p = out.data();
  store_be16(p, pack_prologue(h.prologue));
  store_be16(p + 2, 0);  // rsvd
  store_be32(p + 4, h.pkt_id);
  return kRudiSize;
}

WireError decode_rudi(std::span<const uint8_t> in, RudiHeader& out) {
  if (in.size() < kRudiSize) return WireError::kTruncated;
  const uint8_t* p = in.data();
  const Prologue pr = unpack_prologue(load_be16(p));
  uint16_t allowed;
  if (pr.type == PdsType::kRudiReq) {
    allowed = kReqNextHdrs;
  } else if (pr.type == PdsType::kRudiResp) {
    allowed = kAckNextHdrs;
  } else {
    return WireError::kBadType;
  }
  if (!in_set(allowed, pr.next_hdr)) return WireError::kBadField;
  out.prologue = pr;
  out.pkt_id = load_be32(p + 4);  // bytes 2..3 reserved, ignored
  return WireError::kOk;
}

size_t encode_uud(const UudHeader& h, std::span<uint8_t> out) {
  if (out.size() < kUudSize) return 0;
  uint8_t* p = out.data();
  store_be16(p, pack_prologue(h.prologue));
  store_be16(p + 2, 0);  // rsvd
  return kUudSize;
}

WireError decode_uud(std::span<const uint8_t> in, UudHeader& out) {
  if (in.size() < kUudSize) return WireError::kTruncated;
  const Prologue pr = unpack_prologue(load_be16(in.data()));
  if (pr.type != PdsType::kUudReq) return WireError::kBadType;
  if (!in_set(kReqNextHdrs, pr.next_hdr)) return WireError::kBadField;
  out.prologue = pr;
  return WireError::kOk;
}

// ---- SES ----------------------------------------------------------------------------------------

size_t encode_ses_request(const SesRequest& h, std::span<uint8_t> out) {
  if (out.size() < kSesRequestSize) return 0;
  uint8_t* p = out.data();
  p[0] = static_cast<uint8_t>(h.opcode) & 0x3F;
  p[1] = static_cast<uint8_t>((h.version & 0x3) << 6 | (h.flags & 0x3F));
  store_be16(p + 2, h.msg_id);
  store_be32(p + 4, uint32_t{h.ri_gen} << 24 | (h.job_id & 0xFFFFFF));
  store_be16(p + 8, h.pid_on_fep & kMax12Bit);
  store_be16(p + 10, h.res_index & kMax12Bit);
  store_be64(p + 12, h.buf_off);
  store_be32(p + 20, h.initiator);
  store_be64(p + 24, h.mem_key);
  const uint64_t word =
      (h.flags & kSesFlagSom)
          ? h.cmpl_data
          : (uint64_t{static_cast<uint16_t>(h.payload_len & kMaxPayloadLen)} << 32 | h.msg_off);
  store_be64(p + 32, word);
  store_be32(p + 40, h.req_len);
  return kSesRequestSize;
}

WireError decode_ses_request(std::span<const uint8_t> in, SesRequest& out) {
  if (in.size() < kSesRequestSize) return WireError::kTruncated;
  const uint8_t* p = in.data();
  const uint8_t opcode = p[0] & 0x3F;  // bits 7:6 reserved
  if (!((kSesOpcodes >> opcode) & 1u)) return WireError::kBadType;
  const uint16_t pid = load_be16(p + 8);
  const uint16_t res = load_be16(p + 10);
  if ((pid | res) > kMax12Bit) return WireError::kBadField;
  const uint8_t flags = p[1] & 0x3F;
  const uint64_t word = load_be64(p + 32);
  const bool som = flags & kSesFlagSom;
  // Off the SOM packet the word is payload_len[45:32] | msg_off[31:0]; any
  // higher bit means a corrupt or foreign header.
  if (!som && (word >> 46) != 0) return WireError::kBadField;
  out.opcode = static_cast<SesOpcode>(opcode);
  out.version = p[1] >> 6;
  out.flags = flags;
  out.msg_id = load_be16(p + 2);
  const uint32_t rj = load_be32(p + 4);
  out.ri_gen = static_cast<uint8_t>(rj >> 24);
  out.job_id = rj & 0xFFFFFF;
  out.pid_on_fep = pid;
  out.res_index = res;
  out.buf_off = load_be64(p + 12);
  out.initiator = load_be32(p + 20);
  out.mem_key = load_be64(p + 24);
  out.cmpl_data = som ? word : 0;
  out.payload_len = som ? 0 : static_cast<uint16_t>((word >> 32) & kMaxPayloadLen);
  out.msg_off = som ? 0 : static_cast<uint32_t>(word);
  out.req_len = load_be32(p + 40);
  return WireError::kOk;
}

size_t encode_ses_response(const SesResponse& h, bool with_data, std::span<uint8_t> out) {
  const size_t n = with_data ? kSesResponseDataSize : kSesResponseSize;
  if (out.size() < n) return 0;
  uint8_t* p = out.data();
  p[0] = static_cast<uint8_t>((h.list & 0x3) << 6 | (h.opcode & 0x3F));
  p[1] = static_cast<uint8_t>((h.version & 0x3) << 6 | (h.ret_code & 0x3F));
  store_be16(p + 2, h.msg_id);
  store_be32(p + 4, uint32_t{h.ri_gen} << 24 | (h.job_id & 0xFFFFFF));
  if (!with_data) {
    store_be32(p + 8, h.mod_len);
    return n;
  }
  store_be16(p + 8, h.rd_msg_id);
  store_be16(p + 10, h.payload_len & kMaxPayloadLen);
  store_be32(p + 12, h.mod_len);
  store_be32(p + 16, h.msg_off);
  return n;
}

WireError decode_ses_response(std::span<const uint8_t> in, bool with_data, SesResponse& out) {
  const size_t n = with_data ? kSesResponseDataSize : kSesResponseSize;
  if (in.size() < n) return WireError::kTruncated;
  const uint8_t* p = in.data();
  const uint8_t opcode = p[0] & 0x3F;
  if (opcode > kMaxSesRspOpcode) return WireError::kBadType;
  const uint16_t payload_len = with_data ? load_be16(p + 10) : 0;
  if (payload_len > kMaxPayloadLen) return WireError::kBadField;
  out.list = p[0] >> 6;
  out.opcode = opcode;
  out.version = p[1] >> 6;
  out.ret_code = p[1] & 0x3F;
  out.msg_id = load_be16(p + 2);
  const uint32_t rj = load_be32(p + 4);
  out.ri_gen = static_cast<uint8_t>(rj >> 24);
  out.job_id = rj & 0xFFFFFF;
  if (with_data) {
    out.rd_msg_id = load_be16(p + 8);
    out.payload_len = payload_len;
    out.mod_len = load_be32(p + 12);
    out.msg_off = load_be32(p + 16);
  } else {
    out.mod_len = load_be32(p + 8);
    out.rd_msg_id = 0;
    out.payload_len = 0;
    out.msg_off = 0;
  }
  return WireError::kOk;
}

// ---- trailer and whole datagrams -----------------------------------------------------------------

size_t seal(std::span<uint8_t> buf, size_t len) {
  if (len > buf.size() || buf.size() - len < kTrailerSize) return 0;
  store_be32(buf.data() + len, crc32c(buf.first(len)));
  return len + kTrailerSize;
}

WireError parse_datagram(std::span<const uint8_t> datagram, Packet& out) {
  // Smallest datagram: UUD (4 B) + trailer; anything shorter cannot even
  // carry a CRC we would trust.
  if (datagram.size() < kUudSize + kTrailerSize) return WireError::kTruncated;
  const size_t body_len = datagram.size() - kTrailerSize;
  const std::span<const uint8_t> body = datagram.first(body_len);
  if (crc32c(body) != load_be32(datagram.data() + body_len)) return WireError::kBadChecksum;

  out.has_ses_request = false;
  out.has_ses_response = false;
  const Prologue pr = unpack_prologue(load_be16(body.data()));
  out.prologue = pr;

  WireError err;
  size_t off;
  switch (pr.type) {
    case PdsType::kRudReq:
    case PdsType::kRodReq:
    case PdsType::kRudCcReq:
    case PdsType::kRodCcReq:
      err = decode_request(body, out.request);
      off = is_cc_request(pr.type) ? kCcRequestSize : kRequestSize;
      break;
    case PdsType::kUudReq:
      err = decode_uud(body, out.uud);
      off = kUudSize;
      break;
    case PdsType::kAck:
    case PdsType::kAckCc:
    case PdsType::kAckCcx:
      err = decode_ack(body, out.ack);
      off = ack_size(pr);
      break;
    case PdsType::kNack:
    case PdsType::kNackCcx:
      err = decode_nack(body, out.nack);
      off = pr.type == PdsType::kNack ? kNackSize : kNackCcxSize;
      break;
    case PdsType::kCtrl:
      err = decode_ctrl(body, out.ctrl);
      off = kCtrlSize;
      break;
    default:  // SEC, RUDI and unknown types
      return WireError::kBadType;
  }
  if (err != WireError::kOk) return err;

  // The per-type decoders have already restricted next_hdr to the values
  // legal after that header (NACK: none). CTRL's bits are its ctrl_type, not
  // a next header, so it never has a SES header.
  const std::span<const uint8_t> rest = body.subspan(off);
  const uint8_t nh = pr.type == PdsType::kCtrl ? 0 : pr.next_hdr;
  switch (static_cast<NextHdr>(nh)) {
    case NextHdr::kReqStd: {
      err = decode_ses_request(rest, out.ses_request);
      if (err != WireError::kOk) return err;
      out.has_ses_request = true;
      out.payload = rest.subspan(kSesRequestSize);
      const SesRequest& s = out.ses_request;
      const bool ok = (s.flags & kSesFlagSom) ? out.payload.size() <= s.req_len
                                              : out.payload.size() == s.payload_len;
      if (!ok) return WireError::kBadField;
      return WireError::kOk;
    }
    case NextHdr::kRsp:
      err = decode_ses_response(rest, false, out.ses_response);
      if (err != WireError::kOk) return err;
      out.has_ses_response = true;
      out.payload = rest.subspan(kSesResponseSize);
      return WireError::kOk;
    case NextHdr::kRspData:
      err = decode_ses_response(rest, true, out.ses_response);
      if (err != WireError::kOk) return err;
      out.has_ses_response = true;
      out.payload = rest.subspan(kSesResponseDataSize);
      // READ response data: the header states exactly how much follows.
      if (out.payload.size() != out.ses_response.payload_len) return WireError::kBadField;
      return WireError::kOk;
    default:
      out.payload = rest;
      return WireError::kOk;
  }
}

WireError parse_trimmed(std::span<const uint8_t> datagram, Packet& out) {
  // A switch cut the payload (and with it the trailer): only the PDS request
  // header is left to read, and nothing can be checked against a CRC. So
  // this accepts request types only and reports nothing beyond their header.
  if (datagram.size() < kPrologueSize) return WireError::kTruncated;
  out.has_ses_request = false;
  out.has_ses_response = false;
  out.payload = {};
  const Prologue pr = unpack_prologue(load_be16(datagram.data()));
  out.prologue = pr;
  switch (pr.type) {
    case PdsType::kRudReq:
    case PdsType::kRodReq:
    case PdsType::kRudCcReq:
    case PdsType::kRodCcReq:
      return decode_request(datagram, out.request);
    default:
      return WireError::kBadType;
  }
}

}  // namespace shoal::wire
