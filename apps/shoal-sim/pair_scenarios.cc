// The two-host scenarios: pair-chaos, loss-sweep, pair-throughput.
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "apps/shoal-sim/json.h"
#include "apps/shoal-sim/scenarios.h"
#include "drivers/sim/direct.h"
#include "drivers/sim/pair.h"

namespace shoal::app {
namespace {

// Deterministic payload of message `index`: every 8-byte word is a hash of
// (index, word), so any misplaced, stale or corrupted byte shows.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
void fill_payload(uint8_t* buf, size_t len, uint64_t index) {
  for (size_t off = 0; off < len; off += 8) {
    const uint64_t w = mix(index * 0x100000001b3ULL + off);
    std::memcpy(buf + off, &w, std::min<size_t>(8, len - off));
  }
}
bool check_payload(const uint8_t* buf, size_t len, uint64_t index) {
  for (size_t off = 0; off < len; off += 8) {
    const uint64_t w = mix(index * 0x100000001b3ULL + off);
    if (std::memcmp(buf + off, &w, std::min<size_t>(8, len - off)) != 0) return false;
  }
  return true;
}

int fail_flags(Args& args) {
  const auto unused = args.unused();
  if (unused.empty()) return 0;
  std::fprintf(stderr, "shoal-sim: unknown flag(s) for this scenario: --%s (see --help)\n",
               absl::StrJoin(unused, ", --").c_str());
  return 2;
}

#define GET_OR_EXIT(var, expr)                                                 \
  auto var##_or = (expr);                                                      \
  if (!var##_or.ok()) {                                                        \
    std::fprintf(stderr, "shoal-sim: %s\n", std::string(var##_or.status().message()).c_str()); \
    return 2;                                                                  \
  }                                                                            \
  const auto var = *var##_or

// One stream from host 0 to host 1 over PairSim, checked end to end.
struct StreamSpec {
  uint64_t messages = 10000;
  uint32_t msg_size = 4096;
  uint32_t window = 256;
  pds::DeliveryMode mode = pds::DeliveryMode::kRud;
  bool verify = true;
  double time_limit_s = 60;
};

struct StreamResult {
  uint64_t posted = 0;
  uint64_t send_ok = 0;
  uint64_t send_errors = 0;
  uint64_t delivered = 0;       // distinct messages received intact
  uint64_t duplicates = 0;
  uint64_t corrupt = 0;         // received with wrong content or length
  uint64_t recv_errors = 0;
  uint64_t order_violations = 0;
  uint64_t payload_bytes = 0;
  bool finished = false;
  double sim_seconds = 0;
  std::string first_error;
};

StreamResult run_stream(sim::PairSim& sim, const StreamSpec& spec) {
  StreamResult r;
  ses::Transport& tx = sim.host(0);
  ses::Transport& rx = sim.host(1);
  const size_t sz = spec.msg_size;
  std::vector<uint8_t> send_pool(std::max<size_t>(1, sz) * spec.window);
  std::vector<uint32_t> free_slots;
  for (uint32_t i = spec.window; i > 0; --i) free_slots.push_back(i - 1);
  const uint32_t rx_slots = spec.window * 2;
  std::vector<uint8_t> recv_pool(std::max<size_t>(1, sz) * rx_slots);
  for (uint32_t i = 0; i < rx_slots; ++i) {
    (void)rx.post_recv(0, std::span<uint8_t>(recv_pool.data() + i * std::max<size_t>(1, sz), sz), i);
  }
  std::vector<bool> seen(spec.messages, false);
  int64_t last_index = -1;
  ses::Completion wc[64];

  auto step = [&]() -> bool {
    // Sender: reap completions, keep the window full.
    uint32_t n;
    while ((n = tx.poll_completions(wc, 64)) > 0) {
      for (uint32_t i = 0; i < n; ++i) {
        free_slots.push_back(static_cast<uint32_t>(wc[i].wr_id & 0xfffff));
        if (wc[i].status == ses::WcStatus::kSuccess) {
          ++r.send_ok;
        } else {
          ++r.send_errors;
          if (r.first_error.empty())
            r.first_error = absl::StrFormat("send of message %u completed with %s", wc[i].wr_id >> 20,
                                            ses::to_string(wc[i].status));
        }
      }
    }
    while (r.posted < spec.messages && !free_slots.empty()) {
      const uint32_t slot = free_slots.back();
      uint8_t* buf = send_pool.data() + slot * std::max<size_t>(1, sz);
      if (spec.verify) fill_payload(buf, sz, r.posted);
      ses::SendRequest req;
      req.peer = sim::PairSim::address(1);
      req.mode = spec.mode;
      req.data = std::span<const uint8_t>(buf, sz);
      req.wr_id = (r.posted << 20) | slot;
      req.has_imm = true;
      req.imm = r.posted;
      if (!tx.post_send(req).ok()) break;
      free_slots.pop_back();
      ++r.posted;
    }
    // Receiver: check every message, repost its buffer.
    while ((n = rx.poll_completions(wc, 64)) > 0) {
      for (uint32_t i = 0; i < n; ++i) {
        const ses::Completion& c = wc[i];
        const uint32_t slot = static_cast<uint32_t>(c.wr_id);
        uint8_t* buf = recv_pool.data() + slot * std::max<size_t>(1, sz);
        if (c.status != ses::WcStatus::kSuccess) {
          ++r.recv_errors;
          if (r.first_error.empty())
            r.first_error = absl::StrFormat("receive completed with %s", ses::to_string(c.status));
        } else if (!c.has_imm || c.imm >= spec.messages || c.byte_len != sz) {
          ++r.corrupt;
        } else if (seen[c.imm]) {
          ++r.duplicates;
        } else if (spec.verify && !check_payload(buf, sz, c.imm)) {
          ++r.corrupt;
        } else {
          seen[c.imm] = true;
          ++r.delivered;
          r.payload_bytes += sz;
          if (static_cast<int64_t>(c.imm) < last_index) ++r.order_violations;
          last_index = static_cast<int64_t>(c.imm);
        }
        (void)rx.post_recv(0, std::span<uint8_t>(buf, sz), slot);
      }
    }
    return r.send_ok + r.send_errors == spec.messages && r.delivered + r.recv_errors >= spec.messages;
  };
  r.finished = sim.run(step, TimePoint::zero() + Duration::micros_f(spec.time_limit_s * 1e6));
  r.sim_seconds = sim.now().sec();
  return r;
}

absl::StatusOr<pds::DeliveryMode> parse_mode(const std::string& s) {
  if (s == "rud") return pds::DeliveryMode::kRud;
  if (s == "rod") return pds::DeliveryMode::kRod;
  return absl::InvalidArgumentError("--mode wants rud or rod, got '" + s + "'");
}
absl::StatusOr<pds::RetxMode> parse_retx(const std::string& s) {
  if (s == "sack") return pds::RetxMode::kSelective;
  if (s == "gbn") return pds::RetxMode::kGoBackN;
  return absl::InvalidArgumentError("--retx wants sack or gbn, got '" + s + "'");
}

// --cc and --lb into the transport config; an unknown name or bad knob is
// a command-line error (exit 2), not an abort in the Transport constructor.
absl::Status apply_cc_lb(Args& args, ses::TransportConfig* cfg) {
  cfg->pds.cc = args.str("cc", cfg->pds.cc);
  cfg->pds.lb = args.str("lb", cfg->pds.lb);
  absl::Status st = ses::Transport::validate(*cfg);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("--cc/--lb: ", st.message()));
  return absl::OkStatus();
}

absl::Status check_probability(const char* name, double p) {
  if (p < 0 || p > 1) return absl::InvalidArgumentError(absl::StrFormat("--%s must be in [0, 1], got %g", name, p));
  return absl::OkStatus();
}

}  // namespace

int run_pair_chaos(Args& args, bool json) {
  GET_OR_EXIT(messages, args.i64("messages", 10000));
  GET_OR_EXIT(msg_size, args.i64("msg-size", 4096));
  GET_OR_EXIT(loss, args.f64("loss", 0.01));
  GET_OR_EXIT(reorder, args.f64("reorder", 0.05));
  GET_OR_EXIT(reorder_us, args.f64("reorder-us", 4));
  GET_OR_EXIT(dup, args.f64("dup", 0.01));
  GET_OR_EXIT(corrupt, args.f64("corrupt", 0.001));
  GET_OR_EXIT(trim, args.f64("trim", 0));
  GET_OR_EXIT(mode, parse_mode(args.str("mode", "rud")));
  GET_OR_EXIT(retx, parse_retx(args.str("retx", "sack")));
  GET_OR_EXIT(window, args.i64("window", 256));
  GET_OR_EXIT(gbps, args.f64("link-gbps", 100));
  GET_OR_EXIT(delay_us, args.f64("delay-us", 2));
  GET_OR_EXIT(seed, args.i64("seed", 1));
  GET_OR_EXIT(limit_s, args.f64("time-limit-s", 60));
  ses::TransportConfig cfg;
  if (auto st = apply_cc_lb(args, &cfg); !st.ok()) {
    std::fprintf(stderr, "shoal-sim: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  if (int rc = fail_flags(args)) return rc;
  for (auto [n, p] : {std::pair{"loss", loss}, {"reorder", reorder}, {"dup", dup}, {"corrupt", corrupt}, {"trim", trim}}) {
    if (auto st = check_probability(n, p); !st.ok()) {
      std::fprintf(stderr, "shoal-sim: %s\n", std::string(st.message()).c_str());
      return 2;
    }
  }
  if (messages < 1 || msg_size < 0 || msg_size > (1 << 30) || window < 1 || window > (1 << 16) ||
      gbps <= 0 || delay_us < 0) {
    std::fprintf(stderr, "shoal-sim: need --messages >= 1, 0 <= --msg-size <= 1 GiB, 1 <= --window <= 65536, --link-gbps > 0, --delay-us >= 0\n");
    return 2;
  }

  cfg.pds.retx = retx;
  sim::LinkConfig link;
  link.rate_gbps = gbps;
  link.delay = Duration::micros_f(delay_us);
  link.loss = loss;
  link.reorder = reorder;
  link.reorder_delay = Duration::micros_f(reorder_us);
  link.dup = dup;
  link.corrupt = corrupt;
  link.trim = trim;
  sim::PairSim sim(cfg, link, static_cast<uint64_t>(seed));
  StreamSpec spec;
  spec.messages = static_cast<uint64_t>(messages);
  spec.msg_size = static_cast<uint32_t>(msg_size);
  spec.window = static_cast<uint32_t>(window);
  spec.mode = mode;
  spec.time_limit_s = limit_s;
  const StreamResult r = run_stream(sim, spec);

  const pds::PdsCounters p0 = sim.host(0).pds_counters(), p1 = sim.host(1).pds_counters();
  const auto& c0 = sim.host(0).counters();
  const auto& c1 = sim.host(1).counters();
  const int bad_crc = static_cast<int>(wire::WireError::kBadChecksum);
  const uint64_t corrupt_dropped = c0.rx_wire_errors[bad_crc] + c1.rx_wire_errors[bad_crc];
  uint64_t other_wire_errors = 0;
  for (int i = 1; i < static_cast<int>(wire::WireError::kCount); ++i)
    if (i != bad_crc) other_wire_errors += c0.rx_wire_errors[i] + c1.rx_wire_errors[i];
  const double goodput =
      r.sim_seconds > 0 ? static_cast<double>(r.payload_bytes) * 8 / (gbps * 1e9 * r.sim_seconds) : 0;

  std::string broken;
  if (!r.finished) broken = absl::StrFormat("run did not finish within %.0f virtual seconds", limit_s);
  if (r.delivered != static_cast<uint64_t>(messages))
    broken = absl::StrFormat("lost messages: %u of %u delivered", r.delivered, messages);
  if (r.duplicates) broken = absl::StrFormat("%u duplicate deliveries", r.duplicates);
  if (r.corrupt) broken = absl::StrFormat("%u corrupt deliveries", r.corrupt);
  if (r.send_errors + r.recv_errors) broken = "error completions: " + r.first_error;
  if (mode == pds::DeliveryMode::kRod && r.order_violations)
    broken = absl::StrFormat("ROD delivered %u messages out of order", r.order_violations);

  std::printf("pair-chaos  mode=%s retx=%s cc=%s lb=%s seed=%d  link %.0f Gb/s, %.1f us one way\n",
              pds::to_string(mode), pds::to_string(retx), cfg.pds.cc.c_str(), cfg.pds.lb.c_str(),
              static_cast<int>(seed), gbps, delay_us);
  std::printf("  chaos: loss %g  reorder %g  dup %g  corrupt %g  trim %g\n", loss, reorder, dup, corrupt, trim);
  std::printf("  %-22s %12u\n", "messages sent", static_cast<unsigned>(r.posted));
  std::printf("  %-22s %12u\n", "delivered intact", static_cast<unsigned>(r.delivered));
  std::printf("  %-22s %12u\n", "duplicates delivered", static_cast<unsigned>(r.duplicates));
  std::printf("  %-22s %12u\n", "corrupt delivered", static_cast<unsigned>(r.corrupt));
  std::printf("  %-22s %12u\n", "corrupt dropped (CRC)", static_cast<unsigned>(corrupt_dropped));
  std::printf("  %-22s %12u\n", "error completions", static_cast<unsigned>(r.send_errors + r.recv_errors));
  std::printf("  %-22s %12u\n", "retransmits", static_cast<unsigned>(p0.retransmits + p1.retransmits));
  if (trim > 0) std::printf("  %-22s %12u\n", "trimmed, NACKed", static_cast<unsigned>(p0.rx_trimmed + p1.rx_trimmed));
  std::printf("  %-22s %12u\n", "duplicates suppressed", static_cast<unsigned>(p0.rx_duplicates + p1.rx_duplicates));
  std::printf("  %-22s %12.3f\n", "goodput fraction", goodput);
  std::printf("  %-22s %12.3f ms\n", "virtual time", r.sim_seconds * 1e3);
  std::printf("  result: %s\n", broken.empty() ? "OK: every message delivered once, intact" : ("FAILED: " + broken).c_str());
  if (json) {
    JsonObject o;
    o.add("scenario", "pair-chaos").add("mode", pds::to_string(mode)).add("retx", pds::to_string(retx))
        .add("cc", cfg.pds.cc).add("lb", cfg.pds.lb)
        .add("seed", static_cast<int64_t>(seed)).add("msg_size", static_cast<int64_t>(msg_size))
        .add("messages_sent", r.posted).add("delivered", r.delivered)
        .add("duplicates_delivered", r.duplicates).add("corrupt_delivered", r.corrupt)
        .add("corrupt_dropped", corrupt_dropped).add("other_wire_errors", other_wire_errors)
        .add("completions_error", r.send_errors + r.recv_errors)
        .add("order_violations", r.order_violations)
        .add("retransmits", p0.retransmits + p1.retransmits)
        .add("rto_fires", p0.rto_fires + p1.rto_fires).add("rack_losses", p0.rack_losses + p1.rack_losses)
        .add("spurious_retransmits", p0.spurious_retransmits + p1.spurious_retransmits).add("tlp_probes", p0.tlp_probes + p1.tlp_probes)
        .add("duplicates_suppressed", p0.rx_duplicates + p1.rx_duplicates)
        .add("trimmed", p0.rx_trimmed + p1.rx_trimmed).add("nacks_sent", p0.nacks_sent + p1.nacks_sent)
        .add("pacing_waits", p0.pacing_waits + p1.pacing_waits)
        .add("credit_blocked", p0.credit_blocked + p1.credit_blocked)
        .add("credit_reqs_sent", p0.credit_reqs_sent + p1.credit_reqs_sent)
        .add("credits_sent", c0.credits_sent + c1.credits_sent)
        .add("entropies_chosen", sim.host(0).lb_counters().choices + sim.host(1).lb_counters().choices)
        .add("goodput_fraction", goodput).add("sim_seconds", r.sim_seconds)
        .add("events", sim.events()).add("ok", broken.empty());
    if (!broken.empty()) o.add("error", broken);
    std::printf("%s\n", o.str().c_str());
  }
  if (!broken.empty()) {
    std::fprintf(stderr, "shoal-sim: pair-chaos seed %d: %s\n", static_cast<int>(seed), broken.c_str());
    return 1;
  }
  return 0;
}

int run_loss_sweep(Args& args, bool json) {
  GET_OR_EXIT(messages, args.i64("messages", 40000));
  GET_OR_EXIT(gbps, args.f64("link-gbps", 400));
  GET_OR_EXIT(rtt_us, args.f64("rtt-us", 10));
  GET_OR_EXIT(seed, args.i64("seed", 1));
  ses::TransportConfig base_cfg;
  if (auto st = apply_cc_lb(args, &base_cfg); !st.ok()) {
    std::fprintf(stderr, "shoal-sim: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  if (int rc = fail_flags(args)) return rc;
  if (messages < 1 || gbps <= 0 || rtt_us < 0) {
    std::fprintf(stderr, "shoal-sim: need --messages >= 1, --link-gbps > 0, --rtt-us >= 0\n");
    return 2;
  }
  const double losses[] = {0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2};
  std::string rows;
  std::printf("loss-sweep: %d x 4096 B, %.0f Gb/s, %.1f us RTT, seed %d\n", static_cast<int>(messages), gbps,
              rtt_us, static_cast<int>(seed));
  std::printf("  %-6s %-8s %16s %12s %10s\n", "retx", "loss", "goodput_fraction", "retransmits", "complete");
  bool all_ok = true;
  for (pds::RetxMode retx : {pds::RetxMode::kSelective, pds::RetxMode::kGoBackN}) {
    for (double loss : losses) {
      ses::TransportConfig cfg = base_cfg;
      cfg.pds.retx = retx;
      sim::LinkConfig link;
      link.rate_gbps = gbps;
      link.delay = Duration::micros_f(rtt_us / 2);
      link.loss = loss;
      sim::PairSim sim(cfg, link, static_cast<uint64_t>(seed));
      StreamSpec spec;
      spec.messages = static_cast<uint64_t>(messages);
      spec.msg_size = 4096;
      spec.window = 2048;
      spec.verify = false;
      const StreamResult r = run_stream(sim, spec);
      const double goodput =
          r.sim_seconds > 0 ? static_cast<double>(r.payload_bytes) * 8 / (gbps * 1e9 * r.sim_seconds) : 0;
      const pds::PdsCounters p = sim.host(0).pds_counters();
      const bool ok = r.finished && r.delivered == static_cast<uint64_t>(messages);
      all_ok &= ok;
      std::printf("  %-6s %-8g %16.4f %12u %10s\n", pds::to_string(retx), loss, goodput,
                  static_cast<unsigned>(p.retransmits), ok ? "yes" : "NO");
      JsonObject row;
      row.add("retx", pds::to_string(retx)).add("loss", loss).add("goodput_fraction", goodput)
          .add("retransmits", p.retransmits).add("delivered", r.delivered).add("sim_seconds", r.sim_seconds);
      if (!rows.empty()) rows += ", ";
      rows += row.str();
    }
  }
  if (json) {
    JsonObject o;
    o.add("scenario", "loss-sweep").add("link_gbps", gbps).add("rtt_us", rtt_us)
        .add("messages", static_cast<int64_t>(messages)).raw("results", "[" + rows + "]");
    std::printf("%s\n", o.str().c_str());
  }
  if (!all_ok) {
    std::fprintf(stderr, "shoal-sim: loss-sweep: a run did not deliver every message\n");
    return 1;
  }
  return 0;
}

namespace {

// The reference of BENCHMARKS.md for the engine's packet rate: the same
// messages through a bare in-memory link with no protocol at all. Each
// message is copied into a packet buffer behind a 4-byte tag, and copied out
// again into a receive buffer chosen by the tag: the least any transport
// must do. Returns CPU seconds; `checksum` keeps the copies observable.
double bare_link_cpu_s(uint64_t messages, size_t size, uint64_t* checksum) {
  constexpr uint32_t kBurst = 32, kSlots = 1024;
  std::vector<uint8_t> payload(std::max<size_t>(1, size), 0xab);
  std::vector<uint8_t> pkts(kBurst * (size + 4));
  std::vector<uint8_t> rbuf(kSlots * std::max<size_t>(1, size));
  uint64_t sum = 0;
  const std::clock_t t0 = std::clock();
  for (uint64_t done = 0; done < messages;) {
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kBurst, messages - done));
    for (uint32_t i = 0; i < n; ++i) {
      uint8_t* p = pkts.data() + i * (size + 4);
      const uint32_t tag = static_cast<uint32_t>((done + i) % kSlots);
      std::memcpy(p, &tag, 4);
      std::memcpy(p + 4, payload.data(), size);
    }
    for (uint32_t i = 0; i < n; ++i) {
      const uint8_t* p = pkts.data() + i * (size + 4);
      uint32_t tag;
      std::memcpy(&tag, p, 4);
      uint8_t* dst = rbuf.data() + tag * std::max<size_t>(1, size);
      std::memcpy(dst, p + 4, size);
      sum += dst[0] + tag;
    }
    done += n;
  }
  *checksum = sum;
  return static_cast<double>(std::clock() - t0) / CLOCKS_PER_SEC;
}

}  // namespace

int run_pair_throughput(Args& args, bool json) {
  GET_OR_EXIT(messages, args.i64("messages", 1000000));
  GET_OR_EXIT(msg_size, args.i64("msg-size", 64));
  GET_OR_EXIT(window, args.i64("window", 512));
  const std::string only = args.str("only", "both");
  ses::TransportConfig cfg;
  if (auto st = apply_cc_lb(args, &cfg); !st.ok()) {
    std::fprintf(stderr, "shoal-sim: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  if (int rc = fail_flags(args)) return rc;
  if (only != "both" && only != "shoal" && only != "bare") {
    std::fprintf(stderr, "shoal-sim: --only wants both, shoal or bare, got '%s'\n", only.c_str());
    return 2;
  }
  if (messages < 1 || msg_size < 0 || msg_size > 4096 || window < 1 || window > 8192) {
    std::fprintf(stderr, "shoal-sim: need --messages >= 1, 0 <= --msg-size <= 4096, 1 <= --window <= 8192\n");
    return 2;
  }
  uint64_t checksum = 0;
  double bare_s = 0;
  if (only != "shoal") bare_s = bare_link_cpu_s(static_cast<uint64_t>(messages), static_cast<size_t>(msg_size), &checksum);
  const double bare_rate = bare_s > 0 ? static_cast<double>(messages) / bare_s : 0;
  if (only == "bare") {
    std::printf("bare link (no protocol): %u messages of %u B, CPU %.3f s, %.0f msgs per CPU second (checksum %u)\n",
                static_cast<unsigned>(messages), static_cast<unsigned>(msg_size), bare_s, bare_rate,
                static_cast<unsigned>(checksum & 0xffff));
    if (json) {
      JsonObject o;
      o.add("scenario", "pair-throughput").add("only", "bare").add("messages", static_cast<int64_t>(messages))
          .add("msg_size", static_cast<int64_t>(msg_size)).add("bare_cpu_s", bare_s).add("bare_msgs_per_cpu_s", bare_rate);
      std::printf("%s\n", o.str().c_str());
    }
    return 0;
  }
  // Two transports joined directly: whatever one emits, the other receives
  // at once. No event queue, no link model: this measures the protocol core.
  ses::Transport a(cfg, 1, 1), b(cfg, 2, 2);
  const size_t sz = static_cast<size_t>(msg_size);
  std::vector<uint8_t> payload(std::max<size_t>(1, sz), 0xab);
  const uint32_t rx_slots = static_cast<uint32_t>(window) * 2;
  std::vector<uint8_t> recv_pool(std::max<size_t>(1, sz) * rx_slots);
  for (uint32_t i = 0; i < rx_slots; ++i)
    (void)b.post_recv(0, std::span<uint8_t>(recv_pool.data() + i * std::max<size_t>(1, sz), sz), i);
  sim::DirectLink link(32);
  auto pump = [&](ses::Transport& from, ses::Transport& to, PeerAddr src, TimePoint now) {
    return link.pump(from, to, src, now);
  };
  uint64_t posted = 0, sent_done = 0, received = 0, errors = 0;
  int64_t outstanding = 0;
  ses::Completion wc[64];
  TimePoint now = TimePoint::zero();
  const std::clock_t cpu0 = std::clock();
  uint64_t idle_rounds = 0;
  while (received < static_cast<uint64_t>(messages) || sent_done < static_cast<uint64_t>(messages)) {
    while (posted < static_cast<uint64_t>(messages) && outstanding < window) {
      ses::SendRequest req;
      req.peer = 2;
      req.data = std::span<const uint8_t>(payload.data(), sz);
      req.wr_id = posted;
      if (!a.post_send(req).ok()) break;
      ++posted;
      ++outstanding;
    }
    uint32_t moved = pump(a, b, 1, now);
    moved += pump(b, a, 2, now);
    uint32_t n;
    while ((n = a.poll_completions(wc, 64)) > 0) {
      for (uint32_t i = 0; i < n; ++i) errors += wc[i].status != ses::WcStatus::kSuccess;
      sent_done += n;
      outstanding -= n;
    }
    while ((n = b.poll_completions(wc, 64)) > 0) {
      for (uint32_t i = 0; i < n; ++i) {
        errors += wc[i].status != ses::WcStatus::kSuccess;
        const uint32_t slot = static_cast<uint32_t>(wc[i].wr_id);
        (void)b.post_recv(0, std::span<uint8_t>(recv_pool.data() + slot * std::max<size_t>(1, sz), sz), slot);
      }
      received += n;
    }
    // Time moves only when nothing moved: then the next timer (an ACK delay)
    // is what the pair is waiting for.
    if (moved == 0) {
      const TimePoint d = min_time(a.next_deadline(), b.next_deadline());
      if (d.is_max() || ++idle_rounds > 1000000) break;
      now = max_time(now, d);
      if (a.next_deadline() <= now) a.on_timeout(now);
      if (b.next_deadline() <= now) b.on_timeout(now);
    }
  }
  const double cpu_s = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
  const bool ok = received == static_cast<uint64_t>(messages) && sent_done == static_cast<uint64_t>(messages) && errors == 0;
  const pds::PdsCounters pa = a.pds_counters(), pb = b.pds_counters();
  const double rate = cpu_s > 0 ? static_cast<double>(received) / cpu_s : 0;
  std::printf("pair-throughput: %u messages of %u B, window %u\n", static_cast<unsigned>(messages),
              static_cast<unsigned>(msg_size), static_cast<unsigned>(window));
  std::printf("  delivered %u, data packets %u, ACKs %u, CPU %.3f s, %.0f msgs per CPU second\n",
              static_cast<unsigned>(received), static_cast<unsigned>(pa.tx_requests),
              static_cast<unsigned>(pb.acks_sent), cpu_s, rate);
  if (bare_s > 0) {
    std::printf("  same run, bare in-memory link with no protocol: %.0f msgs per CPU second; Shoal reaches %.3f of it\n",
                bare_rate, rate / bare_rate);
  }
  if (json) {
    JsonObject o;
    o.add("scenario", "pair-throughput").add("messages", received).add("msg_size", static_cast<int64_t>(msg_size))
        .add("data_packets", pa.tx_requests).add("acks", pb.acks_sent).add("cpu_s", cpu_s)
        .add("msgs_per_cpu_s", rate).add("ok", ok);
    if (bare_s > 0) o.add("bare_msgs_per_cpu_s", bare_rate).add("shoal_over_bare", rate / bare_rate);
    std::printf("%s\n", o.str().c_str());
  }
  if (!ok) {
    std::fprintf(stderr, "shoal-sim: pair-throughput: %u of %u delivered, %u errors\n",
                 static_cast<unsigned>(received), static_cast<unsigned>(messages), static_cast<unsigned>(errors));
    return 1;
  }
  return 0;
}

}  // namespace shoal::app
