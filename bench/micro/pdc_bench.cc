// Google Benchmark of the PDS/SES hot path as a whole: messages posted,
// segmented, encoded, decoded, placed, acknowledged with ACK_CC (SACK
// processing included) and completed between two transports. The codecs
// alone are in wire_bench; the stable cost figure is callgrind's count of
// instructions per message (docs/results/core.md).
#include <benchmark/benchmark.h>

#include <vector>

#include "drivers/sim/direct.h"
#include "lib/pds/pdc.h"
#include "lib/ses/transport.h"
#include "lib/wire/wire.h"

namespace shoal {
namespace {

// Messages of `size` bytes, `window` at a time, through two transports.
void BM_MessageRound(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  ses::TransportConfig cfg;
  ses::Transport a(cfg, 1, 1), b(cfg, 2, 2);
  std::vector<uint8_t> payload(size, 0x5a), rbuf(size * 1024);
  for (int i = 0; i < 1024; ++i) (void)b.post_recv(0, {rbuf.data() + i * size, size}, i);
  sim::DirectLink pump(32);
  ses::Completion wc[64];
  TimePoint now = TimePoint::zero();
  uint64_t done = 0;
  for (auto _ : state) {
    for (int k = 0; k < 32; ++k) {
      ses::SendRequest r;
      r.peer = 2;
      r.data = payload;
      (void)a.post_send(r);
    }
    pump.pump(a, b, 1, now);
    pump.pump(b, a, 2, now);
    now += Duration::micros(5);
    if (a.next_deadline() <= now) a.on_timeout(now);
    if (b.next_deadline() <= now) b.on_timeout(now);
    pump.pump(b, a, 2, now);
    uint32_t n;
    while ((n = a.poll_completions(wc, 64)) > 0) done += n;
    while ((n = b.poll_completions(wc, 64)) > 0)
      for (uint32_t i = 0; i < n; ++i) (void)b.post_recv(0, {rbuf.data() + wc[i].wr_id * size, size}, wc[i].wr_id);
  }
  state.SetItemsProcessed(static_cast<int64_t>(done));
}
BENCHMARK(BM_MessageRound)->Arg(64)->Arg(4096);


// A do-nothing upper layer: units are cookies, requests are accepted.
class NullUpper : public pds::PdsUpper {
 public:
  bool next_unit(pds::Pdc&, uint64_t* cookie, bool* last) override {
    *cookie = next_++;
    *last = false;
    return true;
  }
  size_t write_unit(pds::Pdc&, uint64_t, std::span<uint8_t> out, wire::NextHdr*) override {
    wire::SesRequest h;
    h.flags = wire::kSesFlagSom | wire::kSesFlagEom;
    h.req_len = 64;
    return wire::encode_ses_request(h, out) + 64;
  }
  uint32_t peek_unit_bytes(pds::Pdc&) override { return static_cast<uint32_t>(wire::kSesRequestSize + 64); }
  uint64_t backlog_bytes(pds::Pdc&, uint32_t* units) override {
    *units = 0;
    return 0;
  }
  void on_unit_acked(pds::Pdc&, uint64_t) override { ++acked; }
  void on_unit_failed(pds::Pdc&, uint64_t, pds::UnitFailure, uint8_t) override {}
  pds::RequestVerdict on_request(pds::Pdc&, const wire::Packet&, TimePoint, uint8_t*) override {
    return pds::RequestVerdict::kAccepted;
  }
  uint64_t acked = 0;

 private:
  uint64_t next_ = 0;
};

// The receiver half alone: Pdc::on_packet for in-order requests (duplicate
// filter, window slide, ACK scheduling), with an ACK_CC every 16.
void BM_PdcOnPacketRequest(benchmark::State& state) {
  NullUpper up;
  pds::PdcParams params;
  params.peer = 1;
  params.local_id = 2;
  params.accepted = true;
  params.remote_id = 1;
  params.remote_start_psn = Psn(1000);
  pds::PdcShared shared;
  params.shared = &shared;
  const pds::PdsConfig cfg;
  pds::Pdc target(cfg, &up, params);
  wire::Packet pkt;
  pkt.prologue.type = wire::PdsType::kRudReq;
  pkt.request.prologue = pkt.prologue;
  pkt.request.dpdcid = 2;
  pkt.has_ses_request = true;
  RxMeta meta;
  meta.peer = 1;
  std::vector<uint8_t> buf(256);
  TxPacket slot;
  uint32_t psn = 1000;
  TimePoint now;
  for (auto _ : state) {
    pkt.request.psn = psn++;
    target.on_packet(pkt, meta, now);
    if ((psn & 15) == 0) {
      slot = TxPacket();
      slot.data = buf.data();
      slot.capacity = 256;
      TxBatch batch(&slot, 1);
      target.poll_transmit(now, batch);
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PdcOnPacketRequest);

// The sender half: an ACK_CC that acknowledges 16 PSNs cumulatively and
// 48 more selectively (SACK bitmap), after 64 packets went out.
void BM_PdcOnPacketSackAck(benchmark::State& state) {
  NullUpper up;
  pds::PdsConfig cfg;
  pds::PdcParams params;
  params.peer = 2;
  params.local_id = 1;
  params.start_psn = Psn(1);
  pds::PdcShared shared;
  params.shared = &shared;
  pds::Pdc sender(cfg, &up, params);
  std::vector<std::vector<uint8_t>> bufs(64, std::vector<uint8_t>(256));
  std::vector<TxPacket> slots(64);
  wire::Packet ack;
  ack.prologue.type = wire::PdsType::kAckCc;
  ack.ack.prologue = ack.prologue;
  ack.ack.spdcid = 9;
  ack.ack.dpdcid = 1;
  RxMeta meta;
  meta.peer = 2;
  TimePoint now;
  uint32_t base = 1;
  for (auto _ : state) {
    state.PauseTiming();
    for (size_t i = 0; i < slots.size(); ++i) {
      slots[i] = TxPacket();
      slots[i].data = bufs[i].data();
      slots[i].capacity = 256;
    }
    TxBatch batch(slots.data(), 64);
    sender.poll_transmit(now, batch);
    now += Duration::micros(5);
    ack.ack.cack_psn = base + 15;              // 16 cumulative
    ack.ack.ack_psn_offset = 48;
    ack.ack.sack_psn_offset = 1;               // bitmap from cack + 1
    ack.ack.sack_bitmap = (uint64_t{1} << 48) - 1;  // 48 selective
    state.ResumeTiming();
    sender.on_packet(ack, meta, now);
    state.PauseTiming();
    // The 16 PSNs between the SACKed block and the next batch are acked
    // cumulatively too, so that the window stays open.
    ack.ack.cack_psn = base + 63;
    ack.ack.ack_psn_offset = 0;
    ack.ack.sack_bitmap = 0;
    sender.on_packet(ack, meta, now);
    base += 64;
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * 64);
  state.counters["acked"] = static_cast<double>(up.acked);
}
BENCHMARK(BM_PdcOnPacketSackAck);

}  // namespace
}  // namespace shoal

BENCHMARK_MAIN();
