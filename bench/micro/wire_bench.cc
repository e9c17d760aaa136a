// Micro benchmarks of the per-packet wire work: building a request datagram
// (PDS + SES headers + CRC trailer), parsing it back, the ACK_CC codec, and
// raw CRC32C throughput.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "lib/wire/wire.h"

namespace shoal::wire {
namespace {

RequestHeader MakeRequest() {
  RequestHeader h;
  h.prologue = {PdsType::kRudReq, static_cast<uint8_t>(NextHdr::kReqStd), kReqFlagAckReq};
  h.psn = 1000;
  h.spdcid = 7;
  h.dpdcid = 9;
  return h;
}

SesRequest MakeSes(uint32_t len) {
  SesRequest s;
  s.opcode = SesOpcode::kSend;
  s.flags = kSesFlagSom | kSesFlagEom;
  s.msg_id = 42;
  s.job_id = 5;
  s.pid_on_fep = 1;
  s.res_index = 2;
  s.req_len = len;
  return s;
}

// Headers + payload + trailer into `buf`; the payload is assumed to be in
// place already (as it would be after a zero-copy gather), so this measures
// header encoding and the CRC.
size_t BuildDatagram(const RequestHeader& h, const SesRequest& s, size_t payload,
                     std::span<uint8_t> buf) {
  size_t n = encode_request(h, buf);
  n += encode_ses_request(s, buf.subspan(n));
  return seal(buf, n + payload);
}

void BM_EncodeRequestDatagram(benchmark::State& state) {
  const size_t payload = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> buf(kRequestSize + kSesRequestSize + payload + kTrailerSize, 0x5A);
  RequestHeader h = MakeRequest();
  const SesRequest s = MakeSes(static_cast<uint32_t>(payload));
  for (auto _ : state) {
    ++h.psn;
    benchmark::DoNotOptimize(BuildDatagram(h, s, payload, buf));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
}
BENCHMARK(BM_EncodeRequestDatagram)->Arg(64)->Arg(4096);

void BM_ParseDatagram(benchmark::State& state) {
  const size_t payload = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> buf(kRequestSize + kSesRequestSize + payload + kTrailerSize, 0x5A);
  BuildDatagram(MakeRequest(), MakeSes(static_cast<uint32_t>(payload)), payload, buf);
  Packet pkt;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse_datagram(buf, pkt));
    benchmark::DoNotOptimize(pkt.payload.data());
  }
  if (parse_datagram(buf, pkt) != WireError::kOk) state.SkipWithError("datagram did not parse");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
}
BENCHMARK(BM_ParseDatagram)->Arg(64)->Arg(4096);

AckHeader MakeAckCc() {
  AckHeader a;
  a.prologue = {PdsType::kAckCc, 0, kAckFlagEcnEcho};
  a.ack_psn_offset = 3;
  a.cack_psn = 123456;
  a.spdcid = 9;
  a.dpdcid = 7;
  a.cc_type = 1;
  a.mpr = 8;
  a.sack_psn_offset = 1;
  a.sack_bitmap = 0xF0F0F0F0F0F0F0F0u;
  a.ack_cc_state = 0x123456789u;
  return a;
}

void BM_EncodeAckCc(benchmark::State& state) {
  AckHeader a = MakeAckCc();
  uint8_t buf[kAckCcSize];
  for (auto _ : state) {
    ++a.cack_psn;
    benchmark::DoNotOptimize(encode_ack(a, buf));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_EncodeAckCc);

void BM_DecodeAckCc(benchmark::State& state) {
  uint8_t buf[kAckCcSize];
  encode_ack(MakeAckCc(), buf);
  AckHeader a;
  for (auto _ : state) {
    benchmark::DoNotOptimize(buf);
    benchmark::DoNotOptimize(decode_ack(buf, a));
    benchmark::DoNotOptimize(a);
  }
}
BENCHMARK(BM_DecodeAckCc);

void BM_Crc32c(benchmark::State& state) {
  std::vector<uint8_t> buf(static_cast<size_t>(state.range(0)));
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 31);
  for (auto _ : state) {
    benchmark::DoNotOptimize(buf.data());
    benchmark::DoNotOptimize(crc32c(buf));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
}
BENCHMARK(BM_Crc32c)->Arg(64)->Arg(4096);

}  // namespace
}  // namespace shoal::wire

// The meson benchmark dependency is plain libbenchmark (no benchmark_main).
BENCHMARK_MAIN();
