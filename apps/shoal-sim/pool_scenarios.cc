// pool-scale: many QPs, few peers, one star fabric. Shows that transport
// state grows with peers, not with endpoints, and that a PDC opens in 0 RTT.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "apps/shoal-sim/json.h"
#include "apps/shoal-sim/scenarios.h"
#include "drivers/sim/star.h"

namespace shoal::app {

int run_pool_scale(Args& args, bool json) {
  auto qps_or = args.i64("qps", 100000);
  auto peers_or = args.i64("peers", 1000);
  auto size_or = args.i64("msg-size", 64);
  auto gbps_or = args.f64("link-gbps", 100);
  auto hop_or = args.f64("hop-delay-us", 1);
  auto seed_or = args.i64("seed", 13);
  for (const absl::Status& st : {qps_or.status(), peers_or.status(), size_or.status(), gbps_or.status(),
                                 hop_or.status(), seed_or.status()}) {
    if (!st.ok()) {
      std::fprintf(stderr, "shoal-sim: %s\n", std::string(st.message()).c_str());
      return 2;
    }
  }
  const auto unused = args.unused();
  if (!unused.empty()) {
    std::fprintf(stderr, "shoal-sim: unknown flag --%s for pool-scale (see --help)\n", unused[0].c_str());
    return 2;
  }
  const int64_t qps = *qps_or, peers = *peers_or, size = *size_or;
  if (peers < 1 || peers > 16000 || qps < peers || qps / peers > 4094 || size < 0 || size > 4096 ||
      *gbps_or <= 0 || *hop_or < 0) {
    std::fprintf(stderr,
                 "shoal-sim: need 1 <= --peers <= 16000, --peers <= --qps <= 4094 x peers, "
                 "0 <= --msg-size <= 4096, --link-gbps > 0, --hop-delay-us >= 0\n");
    return 2;
  }
  // Host 0 is the hub every QP sends to; hosts 1..P each own qps/peers QPs
  // (the remainder spread over the first ones), all sharing that host's one
  // PDC to the hub. The hub posts one receive per QP on its default QP.
  const uint32_t hosts = static_cast<uint32_t>(peers) + 1;
  std::vector<uint32_t> qps_of(hosts, 0);
  for (int64_t q = 0; q < qps; ++q) ++qps_of[1 + q % peers];
  const Duration idle_shrink = Duration::micros(50);
  auto config_of = [&](uint32_t h) {
    ses::TransportConfig c;
    c.pool.idle_shrink = idle_shrink;
    c.pool.idle_close = Duration::seconds(1);  // keep them open to be counted
    if (h == 0) {
      c.max_send_msgs = 64;
      c.max_recv_msgs = 4096;
      c.max_qps = 4;
      c.recv_queue_depth = static_cast<uint32_t>(qps);
      c.pool.max_pdcs = static_cast<uint32_t>(peers) + 16;
    } else {
      c.max_send_msgs = qps_of[h] + 16;
      c.max_recv_msgs = 64;
      c.max_qps = qps_of[h] + 2;
      c.pool.max_pdcs = 16;
    }
    return c;
  };
  sim::StarLinkConfig link;
  link.rate_gbps = *gbps_or;
  link.hop_delay = Duration::micros_f(*hop_or);
  sim::StarSim sim(hosts, config_of, link, static_cast<uint64_t>(*seed_or));

  std::vector<uint8_t> payload(std::max<int64_t>(size, 1), 0x42);
  std::vector<uint8_t> rbuf(static_cast<size_t>(qps) * std::max<int64_t>(size, 1));
  for (int64_t i = 0; i < qps; ++i) {
    if (!sim.host(0).post_recv(0, {rbuf.data() + i * std::max<int64_t>(size, 1), static_cast<size_t>(size)}, i).ok()) {
      std::fprintf(stderr, "shoal-sim: pool-scale: could not post %d receives at the hub\n", static_cast<int>(qps));
      return 1;
    }
  }
  // Every peer creates its QPs.
  std::vector<std::vector<uint16_t>> qp_ids(hosts);
  for (uint32_t h = 1; h < hosts; ++h) {
    for (uint32_t i = 0; i < qps_of[h]; ++i) {
      auto qp = sim.host(h).create_qp(pds::DeliveryMode::kRud);
      if (!qp.ok()) {
        std::fprintf(stderr, "shoal-sim: pool-scale: %s\n", std::string(qp.status().message()).c_str());
        return 1;
      }
      qp_ids[h].push_back(*qp);
    }
  }
  auto post = [&](uint32_t h, uint32_t i) {
    ses::SendRequest r;
    r.peer = sim::StarSim::address(0);
    r.src_qp = qp_ids[h][i];
    r.dst_qp = 0;
    r.data = {payload.data(), static_cast<size_t>(size)};
    r.wr_id = i;
    return sim.host(h).post_send(r);
  };

  // Phase 1: each peer's first message, staggered so that none waits behind
  // another at the hub: the time to the first completion is the cost of
  // opening the PDC on the way.
  const Duration stagger = Duration::micros(2);
  std::vector<TimePoint> first_posted(hosts), first_done(hosts, TimePoint::max());
  uint32_t first_left = static_cast<uint32_t>(peers);
  uint64_t sent_ok = 0, send_errors = 0, delivered = 0, recv_errors = 0;
  bool phase2 = false;
  for (uint32_t h = 1; h < hosts; ++h) {
    const TimePoint t = TimePoint::zero() + stagger * (h - 1);
    sim.call_at(t, [&, h, t] {
      first_posted[h] = t;
      if (!post(h, 0).ok()) ++send_errors;
      sim.touch(h);
    });
  }
  ses::Completion wc[64];
  auto on_host = [&](uint32_t h) {
    uint32_t k;
    while ((k = sim.host(h).poll_completions(wc, 64)) > 0) {
      for (uint32_t i = 0; i < k; ++i) {
        const bool ok = wc[i].status == ses::WcStatus::kSuccess;
        if (h == 0) {
          ok ? ++delivered : ++recv_errors;
          continue;
        }
        ok ? ++sent_ok : ++send_errors;
        if (wc[i].wr_id == 0 && first_done[h].is_max()) {
          first_done[h] = sim.now();
          if (--first_left == 0 && !phase2) {
            // Phase 2: every other QP sends its one message, all at once.
            phase2 = true;
            for (uint32_t p = 1; p < hosts; ++p) {
              for (uint32_t q = 1; q < qps_of[p]; ++q)
                if (!post(p, q).ok()) ++send_errors;
              sim.touch(p);
            }
          }
        }
      }
    }
  };
  const uint64_t total = static_cast<uint64_t>(qps);
  std::fprintf(stderr, "pool-scale: %u hosts, %d QPs, running...\n", hosts, static_cast<int>(qps));
  bool finished = sim.run(on_host, [&] { return delivered + recv_errors == total && sent_ok + send_errors == total; },
                          TimePoint::zero() + Duration::seconds(10));
  const TimePoint done_at = sim.now();
  // Let every pool see its PDCs idle long enough to give window memory back.
  sim.run(on_host, [] { return false; }, done_at + idle_shrink * 3);

  // Measures.
  uint64_t pdcs = 0, pdc_bytes = 0, qp_bytes = 0, qp_count = 0;
  for (uint32_t h = 0; h < hosts; ++h) {
    pdcs += sim.host(h).pdcs_open();
    pdc_bytes += sim.host(h).pool().state_bytes();
    for (uint16_t q : qp_ids[h]) {
      qp_bytes += sim.host(h).qp_state_bytes(q);
      ++qp_count;
    }
  }
  const Duration rtt = sim.unloaded_rtt(static_cast<uint32_t>(12 + 44 + size + 4), 32 + 4);
  double ratio_max = 0, ratio_sum = 0;
  for (uint32_t h = 1; h < hosts; ++h) {
    if (first_done[h].is_max()) continue;
    const double r = static_cast<double>((first_done[h] - first_posted[h]).ns()) / static_cast<double>(rtt.ns());
    ratio_max = std::max(ratio_max, r);
    ratio_sum += r;
  }
  const double pdc_state = pdcs ? static_cast<double>(pdc_bytes) / pdcs : 0;
  const double qp_state = qp_count ? static_cast<double>(qp_bytes) / qp_count : 0;
  const uint64_t hub_ring = sim.host(0).qp_state_bytes(0);

  std::string broken;
  if (!finished) broken = "not every message was delivered within 10 virtual seconds";
  if (delivered != total) broken = absl::StrFormat("%u of %u messages delivered", delivered, total);
  if (send_errors + recv_errors) broken = absl::StrFormat("%u error completions", send_errors + recv_errors);

  std::printf("pool-scale: %d QPs on %d peers, all sending to one hub (star, %.0f Gb/s, %.1f us per hop)\n",
              static_cast<int>(qps), static_cast<int>(peers), *gbps_or, *hop_or);
  std::printf("  %-34s %12u\n", "messages delivered", static_cast<unsigned>(delivered));
  std::printf("  %-34s %12u   (hub %u + peers %u)\n", "PDCs open (all hosts)", static_cast<unsigned>(pdcs),
              sim.host(0).pdcs_open(), static_cast<unsigned>(pdcs - sim.host(0).pdcs_open()));
  std::printf("  %-34s %12.0f B\n", "state per PDC (idle)", pdc_state);
  std::printf("  %-34s %12.0f B\n", "state per QP", qp_state);
  std::printf("  %-34s %12u B   (receive buffers posted: %d)\n", "hub receive ring", static_cast<unsigned>(hub_ring),
              static_cast<int>(qps));
  std::printf("  %-34s %12.3f   (max; mean %.3f; unloaded RTT %.3f us)\n", "first message time / unloaded RTT",
              ratio_max, peers ? ratio_sum / static_cast<double>(peers) : 0.0, rtt.us());
  std::printf("  %-34s %12.3f ms   (%u events)\n", "virtual time to deliver all", done_at.sec() * 1e3,
              static_cast<unsigned>(sim.stats().events));
  std::printf("  result: %s\n", broken.empty() ? "OK" : ("FAILED: " + broken).c_str());
  if (json) {
    JsonObject o;
    o.add("scenario", "pool-scale").add("qps", static_cast<int64_t>(qps)).add("peers", static_cast<int64_t>(peers))
        .add("msg_size", static_cast<int64_t>(size)).add("delivered", delivered).add("pdcs_open", pdcs)
        .add("pdcs_open_hub", sim.host(0).pdcs_open()).add("pdc_state_bytes", pdc_state)
        .add("qp_state_bytes", qp_state).add("hub_recv_ring_bytes", hub_ring)
        .add("first_message_rtt_ratio", ratio_max).add("first_message_rtt_ratio_mean", peers ? ratio_sum / peers : 0.0)
        .add("unloaded_rtt_us", rtt.us()).add("sim_ms", done_at.sec() * 1e3).add("events", sim.stats().events)
        .add("ok", broken.empty());
    if (!broken.empty()) o.add("error", broken);
    std::printf("%s\n", o.str().c_str());
  }
  if (!broken.empty()) {
    std::fprintf(stderr, "shoal-sim: pool-scale: %s\n", broken.c_str());
    return 1;
  }
  return 0;
}

}  // namespace shoal::app
