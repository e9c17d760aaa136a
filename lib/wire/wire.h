// lib/wire: the UET 1.0 PDS and SES header layouts Shoal speaks, as pure
// encode/decode functions (see docs/wire-format.md for every field).
//
// A datagram (the UDP payload) is laid out as
//     PDS header | [SES header] | payload | CRC32C trailer (4 B, big-endian)
// where the CRC covers everything before it.
//
// Invariants:
// - Decoders never read outside the span they are given, validate every
//   length and every field they can, and report a WireError instead of
//   trusting the input. A decoder that returns kOk has filled its output.
// - Encoders write exactly *_size() bytes and return that count, or return 0
//   and write nothing when the output span is too small.
// - All multi-byte fields are big-endian; reserved bits are written as zero
//   and ignored on decode (forward compatibility), except where noted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace shoal::wire {

// ---- errors ---------------------------------------------------------------

enum class WireError : uint8_t {
  kOk = 0,
  kTruncated,    // fewer bytes than the header (or declared length) needs
  kBadType,      // PDS type or SES opcode Shoal does not know or accept here
  kBadField,     // a field out of its range (flags, next_hdr, ctrl_type, lengths)
  kBadChecksum,  // CRC32C trailer mismatch
  kCount,
};
const char* to_string(WireError e);

// ---- PDS prologue ---------------------------------------------------------

enum class PdsType : uint8_t {
  kSec = 1, kRudReq = 2, kRodReq = 3, kRudiReq = 4, kRudiResp = 5, kUudReq = 6,
  kAck = 7, kAckCc = 8, kAckCcx = 9, kNack = 0xA, kCtrl = 0xB, kNackCcx = 0xC,
  kRudCcReq = 0xD, kRodCcReq = 0xE,
};

enum class NextHdr : uint8_t {
  kNone = 0, kReqSmall = 1, kReqMedium = 2, kReqStd = 3, kRsp = 4, kRspData = 5,
  kRspDataSmall = 6,
};

enum class CtrlType : uint8_t {
  kNop = 0, kAckReq = 1, kClear = 2, kClearReq = 3, kClose = 4, kCloseReq = 5,
  kProbe = 6, kCredit = 7, kCreditReq = 8, kNegotiation = 9,
};

enum class NackCode : uint8_t {
  kTrimmed = 0x01,
  kTrimmedLastHop = 0x02,
  kTrimmedAck = 0x03,
  kNoPdcAvail = 0x04,
  kNoCccAvail = 0x05,
  kNoBitmap = 0x06,
  kNoPktBuffer = 0x07,
  kNoGtdDelAvail = 0x08,
  kNoSesMsgAvail = 0x09,
  kNoResource = 0x0A,
  kPsnOorWindow = 0x0B,
  kNewStartPsn = 0x17,
  kRcvdSesProcg = 0x18,
  kMax = 0x1A,  // highest standard code; 0x1B..0xFC are reserved and refused
  // Experimental codes (accepted). Shoal sends kExpNackErr for a request its
  // semantic layer refuses for good (bad rkey, no such QP): vendor_code
  // carries the SES return code (SesReturnCode) and the PSN stays unreceived.
  kExpNackNormal = 0xFD,
  kExpNackErr = 0xFE,
  kExpNackFatal = 0xFF,
};

// SES return codes (UET 1.0), as far as Shoal uses them.
enum class SesReturnCode : uint8_t {
  kOk = 0x01,
  kNoMatch = 0x05,
  kUnsupportedOp = 0x06,
  kPermViolation = 0x17,
  kBadIndex = 0x19,    // no such endpoint (QP) at the target
  kBadJobId = 0x1B,
  kBadMkey = 0x1C,     // unknown rkey
  kBadAddr = 0x1D,     // outside the region
  kTooLong = 0x22,
};

// Request flags (RUD/ROD/*_CC_REQ).
inline constexpr uint8_t kReqFlagRetx = 0x10;
inline constexpr uint8_t kReqFlagAckReq = 0x08;  // AR
inline constexpr uint8_t kReqFlagSyn = 0x04;
// ACK flags.
inline constexpr uint8_t kAckFlagEpsn = 0x40;
inline constexpr uint8_t kAckFlagEcnEcho = 0x20;  // M
inline constexpr uint8_t kAckFlagRetx = 0x10;
inline constexpr uint8_t kAckFlagProbe = 0x08;  // P
inline constexpr uint8_t kAckFlagReqCls = 0x04;
inline constexpr uint8_t kAckFlagReqClr = 0x02;
// NACK flags.
inline constexpr uint8_t kNackFlagEcn = 0x20;  // M
inline constexpr uint8_t kNackFlagRetx = 0x10;
inline constexpr uint8_t kNackFlagNt = 0x08;
// CTRL flags.
inline constexpr uint8_t kCtrlFlagIsRod = 0x20;
inline constexpr uint8_t kCtrlFlagRetx = 0x10;
inline constexpr uint8_t kCtrlFlagAckReq = 0x08;
inline constexpr uint8_t kCtrlFlagSyn = 0x04;

// u16: type[15:11] | next_hdr (or ctrl_type)[10:7] | flags[6:0].
struct Prologue {
  PdsType type = PdsType::kRudReq;
  uint8_t next_hdr = 0;  // NextHdr, or CtrlType for CTRL
  uint8_t flags = 0;     // 7 bits
  // Field-wise equality (tests, fuzz round trips).
  bool operator==(const Prologue&) const = default;
};
inline constexpr size_t kPrologueSize = 2;

// ---- PDS headers ------------------------------------------------------------

// RUD_REQ / ROD_REQ (12 B); RUD_CC_REQ / ROD_CC_REQ add req_cc_state (16 B).
struct RequestHeader {
  Prologue prologue;         // type in {kRudReq, kRodReq, kRudCcReq, kRodCcReq}
  int16_t clear_psn_offset = 0;
  uint32_t psn = 0;
  uint16_t spdcid = 0;
  // Without SYN: the target's PDC id. With SYN: pdc_info[15:12] | psn_offset[11:0].
  uint16_t dpdcid = 0;
  uint32_t req_cc_state = 0;  // only on the *_CC_REQ types
  // Field-wise equality (tests, fuzz round trips).
  bool operator==(const RequestHeader&) const = default;
};
inline constexpr size_t kRequestSize = 12;
inline constexpr size_t kCcRequestSize = 16;
inline uint16_t syn_dpdcid(uint8_t pdc_info, uint16_t psn_offset) {
  return static_cast<uint16_t>((pdc_info & 0xF) << 12 | (psn_offset & 0xFFF));
}
inline uint8_t syn_pdc_info(uint16_t dpdcid) { return dpdcid >> 12; }
inline uint16_t syn_psn_offset(uint16_t dpdcid) { return dpdcid & 0xFFF; }

// ACK (12 B, 16 B with EPSN), ACK_CC (32 B), ACK_CCX (40 B).
// Acked PSN = cack_psn + ack_psn_offset. SACK base = cack_psn + sack_psn_offset;
// bit i of sack_bitmap says PSN (base + i) was received.
struct AckHeader {
  Prologue prologue;  // type in {kAck, kAckCc, kAckCcx}
  int16_t ack_psn_offset = 0;
  uint32_t cack_psn = 0;
  uint16_t spdcid = 0;
  uint16_t dpdcid = 0;
  uint32_t expected_psn = 0;  // only with kAckFlagEpsn on a plain ACK
  // ACK_CC / ACK_CCX:
  uint8_t cc_type = 0;   // 4 bits
  uint8_t cc_flags = 0;  // 4 bits
  uint8_t mpr = 0;
  int16_t sack_psn_offset = 0;
  uint64_t sack_bitmap = 0;
  uint64_t ack_cc_state = 0;
  uint64_t ack_ccx_state = 0;  // ACK_CCX only
  // Field-wise equality (tests, fuzz round trips).
  bool operator==(const AckHeader&) const = default;
};
inline constexpr size_t kAckSize = 12;
inline constexpr size_t kAckEpsnSize = 16;
inline constexpr size_t kAckCcSize = 32;
inline constexpr size_t kAckCcxSize = 40;

// NACK (16 B), NACK_CCX (32 B).
struct NackHeader {
  Prologue prologue;  // type in {kNack, kNackCcx}
  NackCode code = NackCode::kTrimmed;
  uint8_t vendor_code = 0;
  uint32_t nack_psn = 0;
  uint16_t spdcid = 0;
  uint16_t dpdcid = 0;
  uint32_t payload = 0;
  // NACK_CCX:
  uint8_t nccx_type = 0;       // 4 bits
  uint64_t nccx_state = 0;     // 60 bits
  uint64_t nccx_state2 = 0;
  // Field-wise equality (tests, fuzz round trips).
  bool operator==(const NackHeader&) const = default;
};
inline constexpr size_t kNackSize = 16;
inline constexpr size_t kNackCcxSize = 32;

// CTRL (16 B). The ctrl_type travels in the prologue's next_hdr bits.
struct CtrlHeader {
  Prologue prologue;  // type kCtrl, next_hdr = CtrlType
  uint16_t probe_opaque = 0;
  uint32_t psn = 0;
  uint16_t spdcid = 0;
  uint16_t dpdcid = 0;  // or pdc_info with SYN
  uint32_t payload = 0;
  CtrlType ctrl_type() const { return static_cast<CtrlType>(prologue.next_hdr); }
  // Field-wise equality (tests, fuzz round trips).
  bool operator==(const CtrlHeader&) const = default;
};
inline constexpr size_t kCtrlSize = 16;

// RUDI (8 B) and UUD (4 B).
struct RudiHeader {
  Prologue prologue;  // kRudiReq or kRudiResp
  uint32_t pkt_id = 0;
  // Field-wise equality (tests, fuzz round trips).
  bool operator==(const RudiHeader&) const = default;
};
inline constexpr size_t kRudiSize = 8;
struct UudHeader {
  Prologue prologue;  // kUudReq
  // Field-wise equality (tests, fuzz round trips).
  bool operator==(const UudHeader&) const = default;
};
inline constexpr size_t kUudSize = 4;

// ---- SES headers --------------------------------------------------------------

enum class SesOpcode : uint8_t {
  kWrite = 1, kRead = 2, kSend = 5, kDeferSend = 8, kTaggedSend = 9,
};
inline constexpr uint8_t kSesFlagDc = 0x20;
inline constexpr uint8_t kSesFlagIe = 0x10;  // immediate (cmpl_data) present
inline constexpr uint8_t kSesFlagRel = 0x08;
inline constexpr uint8_t kSesFlagHd = 0x04;
inline constexpr uint8_t kSesFlagEom = 0x02;  // last packet of the message
inline constexpr uint8_t kSesFlagSom = 0x01;  // first packet of the message

// SES standard request (44 B). On the SOM packet the 64-bit word after
// mem_key is cmpl_data (immediate data) and the packet's message offset is 0;
// on the others it is payload_len[45:32] | msg_off[31:0].
struct SesRequest {
  SesOpcode opcode = SesOpcode::kSend;  // 6 bits
  uint8_t version = 0;                  // 2 bits
  uint8_t flags = 0;                    // 6 bits
  uint16_t msg_id = 0;
  uint8_t ri_gen = 0;
  uint32_t job_id = 0;      // 24 bits
  uint16_t pid_on_fep = 0;  // 12 bits
  uint16_t res_index = 0;   // 12 bits
  uint64_t buf_off = 0;
  uint32_t initiator = 0;
  uint64_t mem_key = 0;     // rkey for WRITE/READ, match bits for TAGGED_SEND
  uint64_t cmpl_data = 0;   // SOM only
  uint16_t payload_len = 0; // !SOM only, 14 bits
  uint32_t msg_off = 0;     // !SOM only (0 on SOM)
  uint32_t req_len = 0;     // total message length
  // Field-wise equality (tests, fuzz round trips).
  bool operator==(const SesRequest&) const = default;
};
inline constexpr size_t kSesRequestSize = 44;

// SES response (12 B) and response with data (20 B).
struct SesResponse {
  uint8_t list = 0;     // 2 bits
  uint8_t opcode = 0;   // 6 bits: 0 default, 1 response, 2 with data, 3 none
  uint8_t version = 0;  // 2 bits
  uint8_t ret_code = 0; // 6 bits
  uint16_t msg_id = 0;
  uint8_t ri_gen = 0;
  uint32_t job_id = 0;  // 24 bits
  uint32_t mod_len = 0;
  // RSP_DATA only:
  uint16_t rd_msg_id = 0;
  uint16_t payload_len = 0;
  uint32_t msg_off = 0;
  // Field-wise equality (tests, fuzz round trips).
  bool operator==(const SesResponse&) const = default;
};
inline constexpr size_t kSesResponseSize = 12;
inline constexpr size_t kSesResponseDataSize = 20;

inline constexpr size_t kTrailerSize = 4;

// ---- codecs -------------------------------------------------------------------
// Each encode returns the bytes written (0 if `out` is too small); each decode
// returns kOk and fills `out`, or an error and leaves `out` unspecified.

uint16_t pack_prologue(const Prologue& p);
WireError decode_prologue(std::span<const uint8_t> in, Prologue& out);

// Size of the PDS header a prologue announces (0 for an unknown/unsupported type).
size_t pds_header_size(const Prologue& p);

size_t encode_request(const RequestHeader& h, std::span<uint8_t> out);
WireError decode_request(std::span<const uint8_t> in, RequestHeader& out);
size_t encode_ack(const AckHeader& h, std::span<uint8_t> out);
WireError decode_ack(std::span<const uint8_t> in, AckHeader& out);
size_t encode_nack(const NackHeader& h, std::span<uint8_t> out);
WireError decode_nack(std::span<const uint8_t> in, NackHeader& out);
size_t encode_ctrl(const CtrlHeader& h, std::span<uint8_t> out);
WireError decode_ctrl(std::span<const uint8_t> in, CtrlHeader& out);
size_t encode_rudi(const RudiHeader& h, std::span<uint8_t> out);
WireError decode_rudi(std::span<const uint8_t> in, RudiHeader& out);
size_t encode_uud(const UudHeader& h, std::span<uint8_t> out);
WireError decode_uud(std::span<const uint8_t> in, UudHeader& out);
size_t encode_ses_request(const SesRequest& h, std::span<uint8_t> out);
WireError decode_ses_request(std::span<const uint8_t> in, SesRequest& out);
// `with_data` selects RSP_DATA (20 B) over RSP (12 B).
size_t encode_ses_response(const SesResponse& h, bool with_data, std::span<uint8_t> out);
WireError decode_ses_response(std::span<const uint8_t> in, bool with_data, SesResponse& out);

// CRC32C (Castagnoli) over `data`, hardware-accelerated where the CPU has it.
uint32_t crc32c(std::span<const uint8_t> data, uint32_t seed = 0);
// Writes the 4-byte trailer after the first `len` bytes of `buf` (which must
// have room for len + 4) and returns len + 4.
size_t seal(std::span<uint8_t> buf, size_t len);

// ---- whole datagrams ------------------------------------------------------------

// A decoded datagram: the PDS header (one of the members, by prologue.type),
// the SES header when next_hdr announces one, and the payload between the
// headers and the trailer. Spans point into the caller's buffer.
struct Packet {
  Prologue prologue;
  RequestHeader request;  // RUD/ROD(_CC)_REQ
  AckHeader ack;          // ACK / ACK_CC / ACK_CCX
  NackHeader nack;        // NACK / NACK_CCX
  CtrlHeader ctrl;        // CTRL
  UudHeader uud;          // UUD_REQ
  bool has_ses_request = false;
  bool has_ses_response = false;
  SesRequest ses_request;
  SesResponse ses_response;
  std::span<const uint8_t> payload;
};

// Verifies the trailer, then decodes the PDS header and, if present, the SES
// header. Accepted PDS types: RUD/ROD(_CC)_REQ, UUD_REQ, ACK, ACK_CC, ACK_CCX,
// NACK, NACK_CCX, CTRL; anything else is kBadType. A request whose next_hdr
// is not REQ_STD, RSP or RSP_DATA is kBadField. Payload length on a SES
// request must match: SOM packets carry at most req_len bytes, others exactly
// payload_len bytes; a mismatch is kBadField.
WireError parse_datagram(std::span<const uint8_t> datagram, Packet& out);

// A datagram whose payload a switch trimmed (the driver says so, e.g. from
// the DSCP the switch set): decodes only the PDS request header, without a
// CRC check (the trailer went with the payload). Requests only; anything
// else is kBadType. `out.payload` is empty and no SES header is reported.
WireError parse_trimmed(std::span<const uint8_t> datagram, Packet& out);

}  // namespace shoal::wire
