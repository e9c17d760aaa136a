// libFuzzer target for lib/wire: every decoder on arbitrary bytes.
//
// Properties checked (abort on violation, which libFuzzer reports as a crash):
// - no decoder reads outside its span (ASan catches that);
// - whatever a decoder accepts, its encoder writes back and the decoder reads
//   the same fields again (decode(encode(x)) == x);
// - parse_datagram on an accepted datagram agrees with the per-header
//   decoders, and a datagram rebuilt from its parts parses to the same thing;
// - the accelerated and table CRC32C paths agree.
//
// Random bytes almost never carry a valid CRC, so the input is also parsed a
// second time with its last four bytes replaced by the correct trailer; that
// lets the fuzzer reach the header checks behind the checksum.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#include "lib/wire/crc32c_internal.h"
#include "lib/wire/wire.h"

namespace shoal::wire {
namespace {

// Largest datagram the fuzzer reseals (a jumbo frame's UDP payload); longer
// inputs are still decoded, just not resealed.
constexpr size_t kMaxDatagram = 9216;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "wire_fuzz: property violated: %s\n", what);
  std::abort();
}

void Check(bool ok, const char* what) {
  if (!ok) Fail(what);
}

// Decodes `in`; on success re-encodes into a scratch buffer exactly as large
// as the encoder says it needs, checks the size against a one-byte-short
// buffer, and decodes again.
template <typename H, typename Dec, typename Enc>
void RoundTrip(std::span<const uint8_t> in, Dec dec, Enc enc, const char* name) {
  H h;
  if (dec(in, h) != WireError::kOk) return;
  uint8_t buf[64];
  const size_t n = enc(h, std::span<uint8_t>(buf));
  Check(n > 0 && n <= in.size(), name);
  Check(enc(h, std::span<uint8_t>(buf, n - 1)) == 0, name);
  H back;
  Check(dec(std::span<const uint8_t>(buf, n), back) == WireError::kOk, name);
  Check((h == back), name);
}

// Checks a Packet parse_datagram accepted, then rebuilds the datagram from
// its decoded parts and checks it parses to the same packet.
void CheckPacket(std::span<const uint8_t> dg, const Packet& pkt) {
  const uint8_t* lo = dg.data();
  const uint8_t* hi = dg.data() + dg.size() - kTrailerSize;
  Check(pkt.payload.data() >= lo && pkt.payload.data() + pkt.payload.size() <= hi,
        "payload inside datagram");
  Check(!(pkt.has_ses_request && pkt.has_ses_response), "one SES header");
  if (dg.size() > kMaxDatagram) return;  // too big to rebuild in the scratch buffer

  static uint8_t buf[kMaxDatagram + 64];
  size_t off = 0;
  const std::span<uint8_t> out(buf);
  switch (pkt.prologue.type) {
    case PdsType::kRudReq:
    case PdsType::kRodReq:
    case PdsType::kRudCcReq:
    case PdsType::kRodCcReq:
      off = encode_request(pkt.request, out);
      break;
    case PdsType::kUudReq:
      off = encode_uud(pkt.uud, out);
      break;
    case PdsType::kAck:
    case PdsType::kAckCc:
    case PdsType::kAckCcx:
      off = encode_ack(pkt.ack, out);
      break;
    case PdsType::kNack:
    case PdsType::kNackCcx:
      off = encode_nack(pkt.nack, out);
      break;
    case PdsType::kCtrl:
      off = encode_ctrl(pkt.ctrl, out);
      break;
    default:
      Fail("parse_datagram accepted a type it must reject");
  }
  Check(off == pds_header_size(pkt.prologue), "PDS header size");
  const bool rsp_data = pkt.prologue.next_hdr == static_cast<uint8_t>(NextHdr::kRspData);
  if (pkt.has_ses_request) off += encode_ses_request(pkt.ses_request, out.subspan(off));
  if (pkt.has_ses_response) off += encode_ses_response(pkt.ses_response, rsp_data, out.subspan(off));
  Check(off + pkt.payload.size() + kTrailerSize <= out.size(), "rebuilt size");
  // The headers occupy exactly the bytes before the payload.
  Check(pkt.payload.data() == lo + off, "header length");
  std::memcpy(buf + off, pkt.payload.data(), pkt.payload.size());
  const size_t len = seal(out, off + pkt.payload.size());
  Check(len == dg.size(), "rebuilt datagram length");

  Packet again;
  Check(parse_datagram(std::span<const uint8_t>(buf, len), again) == WireError::kOk,
        "rebuilt datagram parses");
  Check((again.prologue == pkt.prologue), "rebuilt prologue");
  Check(again.has_ses_request == pkt.has_ses_request, "rebuilt has_ses_request");
  Check(again.has_ses_response == pkt.has_ses_response, "rebuilt has_ses_response");
  Check(again.payload.size() == pkt.payload.size(), "rebuilt payload size");
  switch (pkt.prologue.type) {
    case PdsType::kAck:
    case PdsType::kAckCc:
    case PdsType::kAckCcx:
      Check((again.ack == pkt.ack), "rebuilt ack");
      break;
    case PdsType::kNack:
    case PdsType::kNackCcx:
      Check((again.nack == pkt.nack), "rebuilt nack");
      break;
    case PdsType::kCtrl:
      Check((again.ctrl == pkt.ctrl), "rebuilt ctrl");
      break;
    case PdsType::kUudReq:
      Check((again.uud == pkt.uud), "rebuilt uud");
      break;
    default:
      Check((again.request == pkt.request), "rebuilt request");
  }
  if (pkt.has_ses_request) Check((again.ses_request == pkt.ses_request), "rebuilt ses request");
  if (pkt.has_ses_response) {
    Check((again.ses_response == pkt.ses_response), "rebuilt ses response");
  }
}

void ParseAndCheck(std::span<const uint8_t> dg) {
  Packet pkt;
  if (parse_datagram(dg, pkt) == WireError::kOk) CheckPacket(dg, pkt);
}

}  // namespace
}  // namespace shoal::wire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal::wire;  // NOLINT: a C entry point, keep it readable
  const std::span<const uint8_t> in(data, size);

  // A trimmed datagram is read without a CRC: whatever it accepts must be a
  // request whose header re-encodes to the same fields.
  {
    Packet trimmed;
    if (parse_trimmed(in, trimmed) == WireError::kOk) {
      uint8_t b[kCcRequestSize];
      const size_t n = encode_request(trimmed.request, std::span<uint8_t>(b));
      RequestHeader back;
      Check(n > 0 && decode_request(std::span<const uint8_t>(b, n), back) == WireError::kOk &&
                back == trimmed.request && trimmed.payload.empty(),
            "trimmed request");
    }
  }

  // Every decoder on the raw bytes, as if they were that header.
  Prologue pro;
  if (decode_prologue(in, pro) == WireError::kOk) {
    uint8_t b[2];
    const uint16_t v = pack_prologue(pro);
    b[0] = static_cast<uint8_t>(v >> 8);
    b[1] = static_cast<uint8_t>(v);
    Prologue back;
    Check(decode_prologue(b, back) == WireError::kOk && (pro == back), "prologue");
    Check(b[0] == in[0] && b[1] == in[1], "prologue bytes");
  }
  RoundTrip<RequestHeader>(in, decode_request, encode_request, "request");
  RoundTrip<AckHeader>(in, decode_ack, encode_ack, "ack");
  RoundTrip<NackHeader>(in, decode_nack, encode_nack, "nack");
  RoundTrip<CtrlHeader>(in, decode_ctrl, encode_ctrl, "ctrl");
  RoundTrip<RudiHeader>(in, decode_rudi, encode_rudi, "rudi");
  RoundTrip<UudHeader>(in, decode_uud, encode_uud, "uud");
  RoundTrip<SesRequest>(in, decode_ses_request, encode_ses_request, "ses request");
  for (bool with_data : {false, true}) {
    RoundTrip<SesResponse>(
        in,
        [with_data](std::span<const uint8_t> s, SesResponse& h) {
          return decode_ses_response(s, with_data, h);
        },
        [with_data](const SesResponse& h, std::span<uint8_t> out) {
          return encode_ses_response(h, with_data, out);
        },
        "ses response");
  }

  // The datagram as received, then with a correct trailer.
  ParseAndCheck(in);
  if (size >= kTrailerSize && size <= kMaxDatagram) {
    static uint8_t sealed[kMaxDatagram];
    std::memcpy(sealed, data, size);
    Check(seal(std::span<uint8_t>(sealed, size), size - kTrailerSize) == size, "seal");
    ParseAndCheck(std::span<const uint8_t>(sealed, size));
  }

  // Both CRC paths, with a seed taken from the input so seeding is covered.
  const uint32_t seed = size >= 4 ? static_cast<uint32_t>(data[0]) << 24 | data[size - 1] : 0;
  Check(internal::crc32c_hw(in, seed) == internal::crc32c_table(in, seed), "crc32c hw == table");
  return 0;
}
