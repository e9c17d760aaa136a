// The fabric scenarios of BENCHMARKS.md on FabricSim: permutation, incast,
// all-to-all, link-failure and ring-allreduce. Every host runs the real
// ses::Transport; the scenario only posts work, polls completions and reads
// the fabric's and the transports' counters.
//
// How traffic is made: a flow is one RDMA WRITE of --flow-size bytes (the
// transport segments it and its PDC window paces it) into a region every
// receiver registers over one shared sink buffer: data integrity is not what
// these scenarios measure, and one sink keeps k=16 (1024 hosts) in memory.
// ring-allreduce uses SEND_WITH_IMM so that the receiver learns of each chunk
// from its own completion, as a collective library would.
//
// What is measured, and where:
// - FCT: from the post (t = 0, or the step's start) to the send completion;
//   the ideal is FabricSim::ideal_fct of the flow on an idle fabric.
// - Aggregate goodput over time: payload bytes landed at receivers (the
//   transports' payload_bytes_received, which counts each byte once), summed
//   into --bin-us bins after every host event.
// - Queues: FabricSim samplers (every --sample-us) on the network uplinks,
//   and on the receiver's downlink port for incast.
// - Drops, trims, ECN marks: FabricStats; retransmits: summed PdsCounters.
//
// Invariants: no wall clock in anything that decides simulation behaviour
// (the wall clock only feeds wall_s, events_per_s and the progress line);
// a run is deterministic for a given command line.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "apps/shoal-sim/json.h"
#include "apps/shoal-sim/recovery.h"
#include "apps/shoal-sim/scenarios.h"
#include "drivers/sim/fabric.h"

namespace shoal::app {
namespace {

using sim::FabricSim;
using WallClock = std::chrono::steady_clock;

// ---- command line ------------------------------------------------------------------

// Reads typed flags and keeps the first error, so that a scenario reads all
// of its flags in one go and reports one message.
class FlagReader {
 public:
  explicit FlagReader(Args& a) : a_(a) {}
  int64_t i(const char* name, int64_t def) {
    auto v = a_.i64(name, def);
    if (!v.ok()) note(v.status());
    return v.ok() ? *v : def;
  }
  double f(const char* name, double def) {
    auto v = a_.f64(name, def);
    if (!v.ok()) note(v.status());
    return v.ok() ? *v : def;
  }
  std::string s(const char* name, const std::string& def) { return a_.str(name, def); }
  bool has(const char* name) const { return a_.has(name); }
  void fail(const std::string& msg) {
    if (err_.empty()) err_ = msg;
  }
  const std::string& error() const { return err_; }

 private:
  void note(const absl::Status& st) { fail(std::string(st.message())); }
  Args& a_;
  std::string err_;
};

struct FabricOpts {
  std::string scenario;
  sim::FabricConfig fabric;
  uint32_t hosts = 0;  // hosts taking part (the first `hosts` of the fabric)
  std::string cc = "fixed", lb = "ecmp";
  uint64_t flow_size = 2 << 20;
  uint32_t mtu = 4096;
  uint32_t window_pkts = 0;  // fixed cc: 0 = one BDP of the longest path
  uint32_t entropies = 256;  // spray/adaptive: entropy set size (LbParams::entropy_count)
  bool spray_random = false;  // spray/adaptive: random rather than round-robin
  Duration max_rto = Duration::millis(1);  // PdsConfig::max_rto for every host (see configure_cc_lb)
  Duration sample_every = Duration::micros(1);
  Duration bin = Duration::micros(5);
  Duration time_limit = Duration::millis(1000);
  std::string series;  // file for time series and per-flow FCTs ("" = none)
  std::string trace_pdcs;  // file for the periodic per-PDC trace ("" = none)
  Duration trace_every = Duration::micros(100);
  bool trim = false;
  std::string ecn = "step";
  std::vector<std::string> cc_param;  // --cc-param NAME=VALUE items, applied last
};

const char* const kCcNames[] = {"fixed", "swift", "dcqcn", "eqds"};
const char* const kLbNames[] = {"ecmp", "spray", "adaptive"};

// Parses the shared flags. Returns "" or the error.
std::string parse_common(FlagReader& r, const std::string& scenario, uint64_t default_flow_size,
                         FabricOpts* o) {
  o->scenario = scenario;
  sim::FabricConfig& f = o->fabric;
  const std::string topo = r.s("topology", "fat-tree");
  const int64_t hosts = r.i("hosts", 0);
  if (topo == "fat-tree") {
    f.topology = sim::Topology::kFatTree;
    int64_t k = r.i("k", 0);
    if (k == 0) {
      k = 8;
      if (hosts > 0) {
        k = 2;
        while (k * k * k / 4 < hosts) k += 2;
      }
    }
    if (k < 2 || k > 64 || k % 2) return "--k must be even, 2..64";
    f.k = static_cast<uint32_t>(k);
  } else if (topo == "leaf-spine") {
    f.topology = sim::Topology::kLeafSpine;
    const int64_t leaves = r.i("leaves", 4), spines = r.i("spines", 4), hpl = r.i("hosts-per-leaf", 8);
    f.oversubscription = r.f("oversub", 1.0);
    if (leaves < 1 || spines < 1 || hpl < 1 || leaves * hpl > 65536 || f.oversubscription <= 0)
      return "leaf-spine needs --leaves, --spines, --hosts-per-leaf >= 1 and --oversub > 0";
    f.leaves = static_cast<uint32_t>(leaves);
    f.spines = static_cast<uint32_t>(spines);
    f.hosts_per_leaf = static_cast<uint32_t>(hpl);
  } else {
    return "--topology must be fat-tree or leaf-spine";
  }
  const uint32_t fabric_hosts = f.topology == sim::Topology::kFatTree ? f.k * f.k * f.k / 4
                                                                      : f.leaves * f.hosts_per_leaf;
  if (hosts < 0 || hosts > fabric_hosts) return absl::StrFormat("--hosts must be 2..%u", fabric_hosts);
  o->hosts = hosts ? static_cast<uint32_t>(hosts) : fabric_hosts;
  if (o->hosts < 2) return "a scenario needs at least 2 hosts";

  o->cc = r.s("cc", "fixed");
  o->lb = r.s("lb", "ecmp");
  if (std::find_if(std::begin(kCcNames), std::end(kCcNames), [&](const char* n) { return o->cc == n; }) ==
      std::end(kCcNames))
    return "--cc must be one of fixed, swift, dcqcn, eqds";
  if (std::find_if(std::begin(kLbNames), std::end(kLbNames), [&](const char* n) { return o->lb == n; }) ==
      std::end(kLbNames))
    return "--lb must be one of ecmp, spray, adaptive";
  const int64_t window = r.i("window-pkts", 0);
  if (window < 0 || window > 32768) return "--window-pkts must be 0..32768";
  o->window_pkts = static_cast<uint32_t>(window);
  const int64_t entropies = r.i("entropies", 256);
  if (entropies < 1 || entropies > 32768 || (entropies & (entropies - 1)) != 0)
    return "--entropies must be a power of two in 1..32768";
  o->entropies = static_cast<uint32_t>(entropies);
  const std::string spray_mode = r.s("spray-mode", "rr");
  if (spray_mode != "rr" && spray_mode != "random") return "--spray-mode must be rr or random";
  o->spray_random = spray_mode == "random";
  // Checked here on a scratch copy so a typo fails before any host is built;
  // configure_cc_lb applies them over the fabric-derived values.
  const std::vector<std::string> items = absl::StrSplit(r.s("cc-param", ""), ',', absl::SkipEmpty());
  for (const std::string& item : items) {
    cc::CcParams scratch;
    absl::Status st = cc::set_param(scratch, item);
    if (absl::IsNotFound(st))
      return absl::StrCat("--cc-param: ", st.message(), "; the names: ",
                          absl::StrJoin(cc::param_names(), " ", [](std::string* out, std::string_view n) {
                            out->append(n);
                          }));
    if (!st.ok()) return absl::StrCat("--cc-param: ", st.message());
    o->cc_param.emplace_back(item);
  }
  const double max_rto_us = r.f("max-rto-us", 1000);
  if (max_rto_us < 500 || max_rto_us > 10e6) return "--max-rto-us must be 500 (the initial RTO)..10000000";
  o->max_rto = Duration::micros_f(max_rto_us);

  const int64_t size = r.i("flow-size", static_cast<int64_t>(default_flow_size));
  if (size < 1 || size > (int64_t{1} << 32) - 1) return "--flow-size must be 1..4294967295";
  o->flow_size = static_cast<uint64_t>(size);
  f.link.rate_gbps = r.f("link-gbps", 100);
  f.link.hop_delay = Duration::micros_f(r.f("hop-delay-us", 1));
  if (f.link.rate_gbps <= 0 || f.link.hop_delay < Duration::zero()) return "--link-gbps > 0, --hop-delay-us >= 0";
  const int64_t jitter_ns = r.i("jitter-ns", 0);
  if (jitter_ns < 0 || jitter_ns > 1000) return "--jitter-ns must be 0..1000";
  f.link.jitter = Duration::nanos(jitter_ns);
  const int64_t q = r.i("queue-pkts", 35);
  if (q < 1 || q > 100000) return "--queue-pkts must be 1..100000";
  f.queue.limit_packets = static_cast<uint32_t>(q);
  const int64_t mtu = r.i("mtu", 4096);
  if (mtu < 256 || mtu > 9000) return "--mtu must be 256..9000";
  o->mtu = static_cast<uint32_t>(mtu);
  o->trim = r.has("trim") ? r.s("trim", "true") != "false" && r.s("trim", "true") != "0" : o->cc == "eqds";
  f.queue.full = o->trim ? sim::FullPolicy::kTrim : sim::FullPolicy::kDropTail;
  o->ecn = r.s("ecn", "step");
  if (o->ecn == "off") {
    f.queue.ecn = sim::EcnMode::kOff;
  } else if (o->ecn == "step") {
    f.queue.ecn = sim::EcnMode::kStep;
  } else if (o->ecn == "red") {
    f.queue.ecn = sim::EcnMode::kRed;
  } else {
    return "--ecn must be off, step or red";
  }
  const int64_t ecn_k = r.i("ecn-k", std::max<int64_t>(1, q / 5));
  if (ecn_k < 1) return "--ecn-k must be >= 1";
  f.queue.ecn_k = static_cast<uint32_t>(ecn_k);
  const int64_t kmin = r.i("red-kmin", f.queue.red_kmin), kmax = r.i("red-kmax", f.queue.red_kmax);
  const double pmax = r.f("red-pmax", f.queue.red_pmax);
  if (kmin < 0 || kmax <= kmin || pmax < 0 || pmax > 1) return "--red-kmin >= 0, --red-kmax > --red-kmin, --red-pmax in 0..1";
  f.queue.red_kmin = static_cast<uint32_t>(kmin);
  f.queue.red_kmax = static_cast<uint32_t>(kmax);
  f.queue.red_pmax = pmax;
  const int64_t seed = r.i("seed", 13);
  f.seed = static_cast<uint64_t>(seed);
  const std::string hash = r.s("hash", "random");
  if (hash == "random") {
    f.hash = sim::FabricConfig::EcmpHash::kRandom;
  } else if (hash == "crc32c") {
    f.hash = sim::FabricConfig::EcmpHash::kCrc32c;
  } else {
    return "--hash must be random or crc32c";
  }
  const double sample_us = r.f("sample-us", 1), bin_us = r.f("bin-us", 5), limit_ms = r.f("time-limit-ms", 1000);
  if (sample_us <= 0 || bin_us <= 0 || limit_ms <= 0) return "--sample-us, --bin-us, --time-limit-ms must be > 0";
  o->sample_every = Duration::micros_f(sample_us);
  o->bin = Duration::micros_f(bin_us);
  o->time_limit = Duration::micros_f(limit_ms * 1000);
  o->series = r.s("series", "");
  o->trace_pdcs = r.s("trace-pdcs", "");
  const double trace_us = r.f("trace-us", 100);
  if (trace_us <= 0) return "--trace-us must be > 0";
  o->trace_every = Duration::micros_f(trace_us);
  return "";
}

// Puts the congestion control and path selection the flags name into a
// host's transport config: the lib/cc and lib/lb names, the link rate and
// the unloaded RTT of the longest path (what Swift's target, DCQCN's line
// rate and EQDS's initial window are sized from), and for `fixed` the
// window (one BDP unless --window-pkts says otherwise). Names are checked
// by Transport::validate, which the caller runs once before building hosts.
void configure_cc_lb(const FabricOpts& o, uint32_t window_pkts, Duration base_rtt, uint32_t hops,
                     ses::TransportConfig* c) {
  c->pds.cc = o.cc;
  c->pds.lb = o.lb;
  cc::CcParams& p = c->pds.cc_params;
  p.link_rate = o.fabric.link.rate_gbps * 1e9 / 8;
  p.mtu = o.mtu;
  p.base_rtt = base_rtt;
  p.hops = hops;
  p.fixed.window_bytes = uint64_t{window_pkts} * (o.mtu + 12 + 44 + 4);
  c->pds.lb_params.seed = o.fabric.seed;
  c->pds.lb_params.entropy_count = static_cast<uint16_t>(o.entropies);
  c->pds.lb_params.spray_mode = o.spray_random ? lb::SprayMode::kRandom : lb::SprayMode::kRoundRobin;
  // The RTO's backoff cap, a deployment setting like min_rto. The library's
  // 100 ms suits kernel UDP on shared hosts (a peer descheduled for tens of
  // ms must not look dead); on this fabric every RTT is under ~100 us, and a
  // 100 ms cap left an incast flow whose resends met a full queue five
  // times in a row silent for 16-64 ms backoffs (swift incast k=8 overall
  // 64 Gb/s at 100 ms, 88 at 4 ms, 94-96 at 2 ms over six seeds). At 2 ms
  // the last flow of seed 13 waited out a 2 ms RTO on an idle fabric (90.8
  // Gb/s); 1 ms gives 96.3-96.5 at seeds 13, 1 and 7. The cap does not
  // decide when a silent peer fails: PdsConfig::fail_after_silence does.
  c->pds.max_rto = o.max_rto;
  for (const std::string& item : o.cc_param) (void)cc::set_param(p, item);  // parse_common checked each
}

// ---- helpers ------------------------------------------------------------------------

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, i ? i - 1 : 0)];
}

// Payload bytes per second a host link carries at best: a full packet's
// payload over the packet on the wire (headers and Ethernet overhead).
double payload_gbps(const FabricOpts& o) {
  const double wire = o.mtu + (12 + 44 + 4) + o.fabric.link.wire_overhead;
  return o.fabric.link.rate_gbps * o.mtu / wire;
}

struct HostNeeds {
  std::vector<uint32_t> out, in;  // peers per host, each way (PDCs)
  uint32_t sends = 0;             // outstanding sends per host beyond one per out peer
};

// The fabric and its hosts' transports, configured from the flags.
struct Bench {
  FabricOpts o;
  std::unique_ptr<FabricSim> sim;
  uint32_t window_pkts = 0;
  Duration base_rtt;
  std::vector<uint8_t> sink;    // every receiver's registered region
  std::vector<uint8_t> source;  // every sender's bytes
  std::vector<uint64_t> rkey;
  // Goodput over time and per-host receive progress.
  std::vector<uint64_t> bins;
  std::vector<uint64_t> rx_seen;
  std::vector<TimePoint> last_progress;
  std::vector<Duration> max_gap;
  uint64_t rx_total = 0;
  // Queue sampling, our own rather than FabricSim's samplers, which run for
  // as long as anything is simulated: a flow stuck behind a failed link would
  // keep them going until the time limit. Ours stops once the scenario is
  // done and keeps a depth histogram of the network uplinks (for max and
  // p99) plus the full series of one hot port (incast's receiver downlink).
  std::vector<uint32_t> net_ports;
  std::vector<uint64_t> net_depths;  // histogram: samples per depth
  bool hot = false;
  uint32_t hot_port = 0;
  std::vector<sim::QueueSample> hot_samples;
  std::function<bool()> done;
  std::shared_ptr<FILE> trace;  // --trace-pdcs, open while the scenario runs
  WallClock::time_point wall0;
  double wall_s = 0;
  std::function<std::string()> progress_note;
};

// Builds the fabric. Returns "" or an error (a bad flag combination).
std::string build(Bench& b, const HostNeeds& needs, uint32_t max_recv_msgs) {
  const FabricOpts& o = b.o;
  // The base RTT of the longest path, for the window and the CC parameters:
  // a throwaway fabric of the same shape with
  // minimal hosts answers it exactly, as the real one would.
  auto tiny = [](uint32_t) {
    ses::TransportConfig c;
    c.max_send_msgs = 4;
    c.max_recv_msgs = 4;
    c.max_qps = 2;
    c.pool.max_pdcs = 2;
    return c;
  };
  uint32_t max_hops = 0;
  {
    FabricSim dry(o.fabric, tiny);
    uint32_t far = 0;
    for (uint32_t h = 1; h < dry.hosts(); ++h)
      if (dry.hops(0, h) > dry.hops(0, far)) far = h;
    b.base_rtt = dry.unloaded_rtt(o.mtu + 12 + 44 + 4, 36, 0, far);
    max_hops = dry.hops(0, far);
  }
  const double bdp_bytes = o.fabric.link.rate_gbps * 1e9 / 8 * b.base_rtt.sec();
  b.window_pkts = o.window_pkts ? o.window_pkts
                                : std::max<uint32_t>(1, static_cast<uint32_t>(std::ceil(bdp_bytes / o.mtu)));
  std::string err;
  auto config_of = [&](uint32_t h) {
    ses::TransportConfig c;
    c.mtu_payload = o.mtu;
    const uint32_t out = h < needs.out.size() ? needs.out[h] : 0, in = h < needs.in.size() ? needs.in[h] : 0;
    c.max_send_msgs = out + needs.sends + 16;
    c.max_recv_msgs = max_recv_msgs;
    c.max_qps = 2;
    c.pool.max_pdcs = out + in + 8;
    // The PSN window must hold the flight; keep the default unless the fixed
    // window asks for more.
    while (c.pds.window_packets < b.window_pkts * 2 && c.pds.window_packets < 32768) c.pds.window_packets *= 2;
    configure_cc_lb(o, b.window_pkts, b.base_rtt, max_hops, &c);
    return c;
  };
  // Refuse bad names or knobs before building a thousand hosts.
  if (absl::Status st = ses::Transport::validate(config_of(0)); !st.ok()) {
    return absl::StrFormat("--cc %s / --lb %s: %s", o.cc, o.lb, st.message());
  }
  b.sim = std::make_unique<FabricSim>(o.fabric, config_of);
  if (!err.empty()) return err;
  FabricSim& sim = *b.sim;
  b.rx_seen.assign(sim.hosts(), 0);
  b.last_progress.assign(sim.hosts(), TimePoint::zero());
  b.max_gap.assign(sim.hosts(), Duration::zero());
  b.net_ports = sim.edge_uplinks();
  for (uint32_t p : sim.agg_uplinks()) b.net_ports.push_back(p);
  b.wall0 = WallClock::now();
  // A progress line every 2 s of wall time; checked every 50k events.
  auto last = std::make_shared<WallClock::time_point>(b.wall0);
  sim.set_progress(
      [&b, last] {
        const auto now = WallClock::now();
        if (now - *last < std::chrono::seconds(2)) return;
        *last = now;
        const double wall = std::chrono::duration<double>(now - b.wall0).count();
        const double ev = static_cast<double>(b.sim->stats().events);
        std::fprintf(stderr, "%s: t=%.1f us  %s  events %.3gM  %.3gM events/s  wall %.0f s\n",
                     b.o.scenario.c_str(), b.sim->now().us(), b.progress_note ? b.progress_note().c_str() : "",
                     ev / 1e6, ev / wall / 1e6, wall);
      },
      50000);
  return "";
}

// After every event on host h: the bytes that landed there go into the
// goodput bins and its progress record.
void account_rx(Bench& b, uint32_t h) {
  const uint64_t got = b.sim->host(h).counters().payload_bytes_received;
  const uint64_t delta = got - b.rx_seen[h];
  if (!delta) return;
  b.rx_seen[h] = got;
  b.rx_total += delta;
  const TimePoint now = b.sim->now();
  const size_t i = static_cast<size_t>(now.ns() / b.o.bin.ns());
  if (i >= b.bins.size()) b.bins.resize(i + 1, 0);
  b.bins[i] += delta;
  b.max_gap[h] = std::max(b.max_gap[h], now - b.last_progress[h]);
  b.last_progress[h] = now;
}

// Samples the watched queues now and every sample_every until b.done().
void sample_queues(Bench& b) {
  FabricSim& sim = *b.sim;
  for (uint32_t p : b.net_ports) {
    const uint32_t d = sim.queue_packets(p);
    if (d >= b.net_depths.size()) b.net_depths.resize(d + 1, 0);
    ++b.net_depths[d];
  }
  if (b.hot) b.hot_samples.push_back(sim::QueueSample{sim.now(), sim.queue_packets(b.hot_port), 0});
  if (!b.done || !b.done()) sim.call_at(sim.now() + b.o.sample_every, [&b] { sample_queues(b); });
}

// --trace-pdcs: one line per sending (initiator) PDC of every host now and
// every trace_every until b.done(), to see where a laggard flow loses its
// time (window, RTO, pacing, retransmissions). Columns are named in the line
// so that a reader needs no schema.
void trace_pdcs(Bench& b) {
  FabricSim& sim = *b.sim;
  for (uint32_t h = 0; h < b.o.hosts; ++h) {
    const pool::PdcPool& pool = sim.host(h).pool();
    const cc::CcParams& params = sim.host(h).config().pds.cc_params;
    pool.for_each([&](uint16_t id, const pds::Pdc& pdc) {
      if (!pool.initiator(id) || pdc.outstanding() == 0) return;
      const pds::PdsCounters& c = pdc.counters();
      const cc::CcState& cs = pdc.cc_state();
      std::fprintf(b.trace.get(),
                   "t=%.1f host=%u peer=%llu %s cwnd_bytes=%llu pacing_bps=%llu rto_us=%.1f flight=%u "
                   "outstanding=%u una=%u deadline_us=%.1f sent=%llu retx=%llu rto_fires=%llu rack=%llu tlp=%llu pacing_waits=%llu "
                   "acks=%llu nacks=%llu rtt_samples=%llu spurious=%llu\n",
                   sim.now().us(), h, static_cast<unsigned long long>(pdc.peer()),
                   pdc.cc_ops().dump ? pdc.cc_ops().dump(cs, params).c_str() : "",
                   static_cast<unsigned long long>(cs.cwnd_bytes), static_cast<unsigned long long>(cs.pacing_rate * 8),
                   pdc.rto().us(), pdc.in_flight(), pdc.outstanding(), (pdc.next_psn() - static_cast<int64_t>(pdc.outstanding())).value(),
                   pdc.next_deadline().is_max() ? -1.0 : pdc.next_deadline().us(),
                   static_cast<unsigned long long>(c.tx_requests), static_cast<unsigned long long>(c.retransmits),
                   static_cast<unsigned long long>(c.rto_fires), static_cast<unsigned long long>(c.rack_losses),
                   static_cast<unsigned long long>(c.tlp_probes), static_cast<unsigned long long>(c.pacing_waits),
                   static_cast<unsigned long long>(c.acks_received), static_cast<unsigned long long>(c.nacks_received),
                   static_cast<unsigned long long>(c.rtt_samples), static_cast<unsigned long long>(c.spurious_retransmits));
    });
  }
  if (!b.done || !b.done()) sim.call_at(sim.now() + b.o.trace_every, [&b] { trace_pdcs(b); });
}

// The periodic samplers of a run (queues; the PDC trace if asked), from now
// until b.done().
void start_samplers(Bench& b) {
  sample_queues(b);
  if (b.o.trace_pdcs.empty()) return;
  b.trace.reset(std::fopen(b.o.trace_pdcs.c_str(), "w"), [](FILE* f) {
    if (f) std::fclose(f);
  });
  if (!b.trace) {
    std::fprintf(stderr, "shoal-sim: cannot write %s\n", b.o.trace_pdcs.c_str());
    return;
  }
  trace_pdcs(b);
}

double bin_gbps(const Bench& b, size_t i) {
  return i < b.bins.size() ? static_cast<double>(b.bins[i]) * 8 / b.o.bin.sec() / 1e9 : 0.0;
}

struct QueueFigures {
  uint32_t max = 0, p99 = 0;
};
QueueFigures queue_figures(const std::vector<uint64_t>& hist) {
  QueueFigures q;
  uint64_t total = 0;
  for (size_t d = 0; d < hist.size(); ++d) {
    total += hist[d];
    if (hist[d]) q.max = static_cast<uint32_t>(d);
  }
  // Nearest rank, as percentile() does.
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(0.99 * static_cast<double>(total))));
  uint64_t seen = 0;
  for (size_t d = 0; d < hist.size(); ++d) {
    seen += hist[d];
    if (seen >= rank) {
      q.p99 = static_cast<uint32_t>(d);
      break;
    }
  }
  return q;
}

// Fields every fabric scenario reports: parameters and fabric-wide counters.
void add_common(const Bench& b, JsonObject& j, Duration elapsed) {
  const FabricOpts& o = b.o;
  FabricSim& sim = *b.sim;
  j.add("scenario", o.scenario)
      .add("topology", o.fabric.topology == sim::Topology::kFatTree ? "fat-tree" : "leaf-spine");
  if (o.fabric.topology == sim::Topology::kFatTree) {
    j.add("k", o.fabric.k);
  } else {
    j.add("leaves", o.fabric.leaves).add("spines", o.fabric.spines).add("hosts_per_leaf", o.fabric.hosts_per_leaf)
        .add("oversub", o.fabric.oversubscription);
  }
  j.add("hosts", o.hosts).add("fabric_hosts", sim.hosts()).add("cc", o.cc).add("lb", o.lb)
      .add("flow_size", o.flow_size).add("link_gbps", o.fabric.link.rate_gbps)
      .add("hop_delay_us", o.fabric.link.hop_delay.us()).add("queue_pkts", o.fabric.queue.limit_packets)
      .add("mtu", o.mtu).add("seed", o.fabric.seed)
      .add("hash", o.fabric.hash == sim::FabricConfig::EcmpHash::kCrc32c ? "crc32c" : "random").add("trim", o.trim).add("ecn", o.ecn)
      .add("jitter_ns", o.fabric.link.jitter.ns())
      .add("cc_param", absl::StrJoin(o.cc_param, ","))
      .add("ecn_k", o.fabric.queue.ecn_k).add("window_pkts", b.window_pkts).add("base_rtt_us", b.base_rtt.us());
  const sim::FabricStats& s = sim.stats();
  pds::PdsCounters pc;
  uint64_t retx = 0, rto = 0, nacks = 0, tlp = 0, rack = 0, spurious = 0;
  for (uint32_t h = 0; h < sim.hosts(); ++h) {
    pc = sim.host(h).pds_counters();
    retx += pc.retransmits;
    rto += pc.rto_fires;
    nacks += pc.nacks_received;
    tlp += pc.tlp_probes;
    rack += pc.rack_losses;
    spurious += pc.spurious_retransmits;
  }
  // Imbalance over links that are up (a failed link carries nothing by design).
  auto live = [&](std::vector<uint32_t> ports) {
    ports.erase(std::remove_if(ports.begin(), ports.end(), [&](uint32_t p) { return !sim.link_up(p); }),
                ports.end());
    return ports;
  };
  const sim::LinkImbalance up = sim.imbalance(live(sim.edge_uplinks()), elapsed);
  const QueueFigures q = queue_figures(b.net_depths);
  j.add("uplink_util_max_over_min", up.max_over_min).add("uplink_util_cv", up.cv)
      .add("uplink_util_mean", up.mean_util).add("uplink_util_max", up.max_util).add("uplink_util_min", up.min_util);
  if (!sim.agg_uplinks().empty()) {
    const sim::LinkImbalance ag = sim.imbalance(live(sim.agg_uplinks()), elapsed);
    j.add("agg_util_max_over_min", ag.max_over_min).add("agg_util_cv", ag.cv).add("agg_util_mean", ag.mean_util);
  }
  j.add("queue_max_pkts", s.max_depth_packets).add("net_queue_max_pkts", q.max).add("net_queue_p99_pkts", q.p99)
      .add("drops", s.drops).add("header_drops", s.header_drops).add("down_drops", s.down_drops)
      .add("trims", s.trims).add("ecn_marks", s.ecn_marks).add("retransmits", retx).add("rto_fires", rto)
      .add("nacks_received", nacks).add("tlp_probes", tlp).add("rack_losses", rack)
      .add("spurious_retransmits", spurious).add("events", s.events);
  const double ev_s = b.wall_s > 0 ? static_cast<double>(s.events) / b.wall_s : 0;
  j.add("events_per_s", ev_s).add("wall_s", b.wall_s).add("sim_us", sim.now().us());
}

void print_common(const Bench& b, Duration elapsed) {
  FabricSim& sim = *b.sim;
  const sim::FabricStats& s = sim.stats();
  uint64_t retx = 0;
  for (uint32_t h = 0; h < sim.hosts(); ++h) retx += sim.host(h).pds_counters().retransmits;
  const sim::LinkImbalance up = sim.imbalance(sim.edge_uplinks(), elapsed);
  const QueueFigures q = queue_figures(b.net_depths);
  std::printf("  %-30s %.2f max/min, cv %.3f, mean %.1f%%\n", "edge uplink utilization", up.max_over_min, up.cv,
              up.mean_util * 100);
  std::printf("  %-30s max %u, p99 %u pkts (deepest port anywhere %u)\n", "network uplink queues", q.max, q.p99,
              s.max_depth_packets);
  std::printf("  %-30s %llu drops, %llu header drops, %llu on failed links, %llu trims, %llu ECN marks\n", "fabric",
              static_cast<unsigned long long>(s.drops), static_cast<unsigned long long>(s.header_drops),
              static_cast<unsigned long long>(s.down_drops), static_cast<unsigned long long>(s.trims),
              static_cast<unsigned long long>(s.ecn_marks));
  std::printf("  %-30s %llu\n", "retransmits", static_cast<unsigned long long>(retx));
  std::printf("  %-30s %.1f us virtual, %.2f s wall, %llu events (%.2fM events/s)\n", "run", sim.now().us(),
              b.wall_s, static_cast<unsigned long long>(s.events),
              b.wall_s > 0 ? static_cast<double>(s.events) / b.wall_s / 1e6 : 0.0);
}

// ---- flows ----------------------------------------------------------------------------

struct Flow {
  uint32_t src, dst;
  uint64_t bytes;
  Duration ideal;
  TimePoint end = TimePoint::max();
  bool failed = false;
};

struct FlowResult {
  bool finished = false;
  uint32_t completed = 0, failed = 0;
  uint64_t bytes_lost = 0;
  TimePoint last_end;
  std::vector<double> fct_us, goodput_gbps, slowdown;
};

// Posts every flow at t = 0 as one WRITE and runs until all have completed
// (or the time limit). `on_event` runs after every host event (scenario hooks).
FlowResult run_flows(Bench& b, std::vector<Flow>& flows) {
  FabricSim& sim = *b.sim;
  const uint64_t sink_len = b.o.flow_size;
  b.sink.assign(sink_len, 0);
  b.source.assign(sink_len, 0x5a);
  b.rkey.assign(sim.hosts(), 0);
  for (uint32_t h = 0; h < b.o.hosts; ++h) {
    auto k = sim.host(h).register_memory(b.sink.data(), sink_len, ses::kRemoteWrite | ses::kZeroBased);
    if (k.ok()) b.rkey[h] = *k;
  }
  FlowResult r;
  for (size_t i = 0; i < flows.size(); ++i) {
    Flow& f = flows[i];
    f.ideal = sim.ideal_fct(f.bytes, f.src, f.dst, b.o.mtu);
    ses::SendRequest req;
    req.peer = FabricSim::address(f.dst);
    req.op = ses::SendOp::kWrite;
    req.rkey = b.rkey[f.dst];
    req.remote_addr = 0;
    req.data = {b.source.data(), static_cast<size_t>(f.bytes)};
    req.wr_id = i;
    const absl::Status st = sim.host(f.src).post_send(req);
    if (!st.ok()) {
      std::fprintf(stderr, "shoal-sim: %s: posting flow %zu: %s\n", b.o.scenario.c_str(), i,
                   std::string(st.message()).c_str());
      f.failed = true;
      ++r.failed;
      r.bytes_lost += f.bytes;
      continue;
    }
    sim.touch(f.src);
  }
  b.progress_note = [&r, &flows] { return absl::StrFormat("flows %u/%zu", r.completed, flows.size()); };
  ses::Completion wc[64];
  const size_t total = flows.size();
  b.done = [&r, total] { return r.completed + r.failed == total; };
  start_samplers(b);
  r.finished = sim.run(
      [&](uint32_t h) {
        account_rx(b, h);
        uint32_t m;
        while ((m = sim.host(h).poll_completions(wc, 64)) > 0) {
          for (uint32_t i = 0; i < m; ++i) {
            if (wc[i].opcode != ses::WcOpcode::kWrite || wc[i].wr_id >= flows.size()) continue;
            Flow& f = flows[wc[i].wr_id];
            f.end = sim.now();
            if (wc[i].status == ses::WcStatus::kSuccess) {
              ++r.completed;
            } else {
              f.failed = true;
              ++r.failed;
              r.bytes_lost += f.bytes;
              // Which flow and why: the summary only counts them.
              std::fprintf(stderr, "shoal-sim: %s: flow %llu (host %u -> %u) failed at %.1f us: %s\n",
                           b.o.scenario.c_str(), static_cast<unsigned long long>(wc[i].wr_id), f.src, f.dst,
                           (sim.now() - TimePoint::zero()).us(), ses::to_string(wc[i].status));
            }
          }
        }
      },
      [&] { return r.completed + r.failed == total; }, TimePoint::zero() + b.o.time_limit);
  b.wall_s = std::chrono::duration<double>(WallClock::now() - b.wall0).count();
  // Flows still open at the limit count as lost too: their bytes never all landed.
  for (Flow& f : flows) {
    if (f.end.is_max() && !f.failed) r.bytes_lost += f.bytes;
    if (f.failed || f.end.is_max()) continue;
    const double fct = (f.end - TimePoint::zero()).us();
    r.fct_us.push_back(fct);
    r.goodput_gbps.push_back(static_cast<double>(f.bytes) * 8 / (fct * 1e3));
    r.slowdown.push_back(fct / f.ideal.us());
    r.last_end = std::max(r.last_end, f.end);
  }
  r.finished = r.finished && r.failed == 0;
  return r;
}

void add_flow_figures(JsonObject& j, const std::vector<Flow>& flows, const FlowResult& r) {
  const auto [gmin, gmax] = std::minmax_element(r.goodput_gbps.begin(), r.goodput_gbps.end());
  const double mean = r.goodput_gbps.empty()
                          ? 0
                          : std::accumulate(r.goodput_gbps.begin(), r.goodput_gbps.end(), 0.0) / r.goodput_gbps.size();
  std::vector<double> ideal;
  for (const Flow& f : flows) ideal.push_back(f.ideal.us());
  j.add("flows", static_cast<uint64_t>(flows.size())).add("flows_completed", r.completed)
      .add("flows_failed", r.failed).add("bytes_lost", r.bytes_lost)
      .add("goodput_gbps_mean", mean).add("goodput_gbps_min", r.goodput_gbps.empty() ? 0.0 : *gmin)
      .add("goodput_gbps_max", r.goodput_gbps.empty() ? 0.0 : *gmax)
      .add("fct_us_p50", percentile(r.fct_us, 50)).add("fct_us_p99", percentile(r.fct_us, 99))
      .add("fct_us_max", percentile(r.fct_us, 100)).add("fct_us_min", percentile(r.fct_us, 0))
      .add("ideal_fct_us_p50", percentile(ideal, 50))
      .add("slowdown_p50", percentile(r.slowdown, 50)).add("slowdown_p99", percentile(r.slowdown, 99))
      .add("slowdown_max", percentile(r.slowdown, 100))
      .add("completion_us", (r.last_end - TimePoint::zero()).us());
}

void print_flow_figures(const std::vector<Flow>& flows, const FlowResult& r) {
  std::vector<double> ideal;
  for (const Flow& f : flows) ideal.push_back(f.ideal.us());
  const double mean = r.goodput_gbps.empty()
                          ? 0
                          : std::accumulate(r.goodput_gbps.begin(), r.goodput_gbps.end(), 0.0) / r.goodput_gbps.size();
  std::printf("  %-30s %u of %zu (%u failed, %llu bytes lost)\n", "flows completed", r.completed, flows.size(),
              r.failed, static_cast<unsigned long long>(r.bytes_lost));
  std::printf("  %-30s mean %.1f, min %.1f Gb/s\n", "per-flow goodput", mean,
              r.goodput_gbps.empty() ? 0.0 : *std::min_element(r.goodput_gbps.begin(), r.goodput_gbps.end()));
  std::printf("  %-30s p50 %.1f, p99 %.1f, max %.1f us (ideal p50 %.1f us)\n", "FCT", percentile(r.fct_us, 50),
              percentile(r.fct_us, 99), percentile(r.fct_us, 100), percentile(ideal, 50));
  std::printf("  %-30s p50 %.2f, p99 %.2f, max %.2f\n", "FCT slowdown vs ideal", percentile(r.slowdown, 50),
              percentile(r.slowdown, 99), percentile(r.slowdown, 100));
}

// The --series file: per-flow FCTs, aggregate goodput bins, the hot port's
// queue samples, and whatever the scenario adds (`extra`, JSON members).
void write_series(const Bench& b, const std::vector<Flow>& flows, const std::string& extra) {
  if (b.o.series.empty()) return;
  FILE* f = std::fopen(b.o.series.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "shoal-sim: cannot write %s\n", b.o.series.c_str());
    return;
  }
  std::fprintf(f, "{\"scenario\": \"%s\", \"cc\": \"%s\", \"lb\": \"%s\", \"hosts\": %u,\n", b.o.scenario.c_str(),
               b.o.cc.c_str(), b.o.lb.c_str(), b.o.hosts);
  std::vector<std::string> fct, ideal;
  for (const Flow& fl : flows) {
    fct.push_back(fl.end.is_max() || fl.failed ? "null" : absl::StrFormat("%.3f", (fl.end - TimePoint::zero()).us()));
    ideal.push_back(absl::StrFormat("%.3f", fl.ideal.us()));
  }
  std::fprintf(f, " \"fct_us\": [%s],\n \"ideal_fct_us\": [%s],\n", absl::StrJoin(fct, ",").c_str(),
               absl::StrJoin(ideal, ",").c_str());
  std::vector<std::string> g;
  for (size_t i = 0; i < b.bins.size(); ++i) g.push_back(absl::StrFormat("%.3f", bin_gbps(b, i)));
  std::fprintf(f, " \"bin_us\": %.3f, \"goodput_gbps\": [%s]", b.o.bin.us(), absl::StrJoin(g, ",").c_str());
  if (b.hot) {
    std::vector<std::string> t, p;
    for (const sim::QueueSample& s : b.hot_samples) {
      t.push_back(absl::StrFormat("%.3f", (s.t - TimePoint::zero()).us()));
      p.push_back(absl::StrFormat("%u", s.packets));
    }
    std::fprintf(f, ",\n \"queue_port\": \"%s\", \"queue_t_us\": [%s],\n \"queue_pkts\": [%s]",
                 b.sim->port_name(b.hot_port).c_str(), absl::StrJoin(t, ",").c_str(), absl::StrJoin(p, ",").c_str());
  }
  if (!extra.empty()) std::fprintf(f, ",\n %s", extra.c_str());
  std::fprintf(f, "}\n");
  std::fclose(f);
}

int finish_flags(FlagReader& r, Args& args, const std::string& parse_error) {
  std::string err = parse_error.empty() ? r.error() : parse_error;
  if (err.empty()) {
    const auto unused = args.unused();
    if (!unused.empty()) err = "unknown flag(s) for this scenario: --" + absl::StrJoin(unused, ", --") + " (see --help)";
  }
  if (err.empty()) return 0;
  std::fprintf(stderr, "shoal-sim: %s\n", err.c_str());
  return 2;
}

// A permutation of the hosts: `shift` sends host i to (i + n/2) mod n, which
// on a fat-tree crosses pods for every host and gives every edge uplink the
// same offered load; `random` is a seeded derangement.
std::string make_permutation(const std::string& pattern, uint32_t n, uint64_t seed, std::vector<uint32_t>* dst) {
  dst->resize(n);
  if (pattern == "shift") {
    for (uint32_t i = 0; i < n; ++i) (*dst)[i] = (i + n / 2) % n;
    return "";
  }
  if (pattern != "random") return "--pattern must be shift or random";
  Rng rng(seed ^ 0x7065726dULL);
  // Sattolo's algorithm: a uniformly random cyclic permutation, hence no fixed point.
  std::iota(dst->begin(), dst->end(), 0u);
  for (uint32_t i = n - 1; i > 0; --i) std::swap((*dst)[i], (*dst)[rng.below(i)]);
  return "";
}

int report_status(const std::string& scenario, const FlowResult& r, size_t flows) {
  if (r.finished && r.completed == flows) return 0;
  std::fprintf(stderr, "shoal-sim: %s: %u of %zu flows completed, %u failed, %llu bytes lost\n", scenario.c_str(),
               r.completed, flows, r.failed, static_cast<unsigned long long>(r.bytes_lost));
  return 1;
}

}  // namespace

// ---- permutation and link-failure ------------------------------------------------------

namespace {

int run_permutation_like(Args& args, bool json, bool with_failure) {
  const std::string name = with_failure ? "link-failure" : "permutation";
  FlagReader r(args);
  Bench b;
  // link-failure defaults to 8 MB flows: 2 MB flows end ~170 us after the
  // start, too soon after a 50 us failure to see goodput recover.
  std::string err = parse_common(r, name, with_failure ? 8 << 20 : 2 << 20, &b.o);
  const std::string pattern = r.s("pattern", "shift");
  const double fail_at_us = with_failure ? r.f("fail-at-us", 50) : 0;
  const std::string fail_link = with_failure ? r.s("fail-link", "busiest") : "";
  const double reroute_us = with_failure ? r.f("reroute-us", -1) : -1;
  const double stall_us = with_failure ? r.f("stall-us", 50) : 0;
  const double recovery_window_us = with_failure ? r.f("recovery-window-us", 25) : 0;
  std::vector<uint32_t> dst;
  if (err.empty()) err = make_permutation(pattern, b.o.hosts, b.o.fabric.seed, &dst);
  if (with_failure && err.empty() && (fail_at_us < 0 || stall_us <= 0 || recovery_window_us < 0))
    err = "--fail-at-us >= 0, --stall-us > 0, --recovery-window-us >= 0";
  if (reroute_us >= 0) b.o.fabric.reroute_delay = Duration::micros_f(reroute_us);
  if (int rc = finish_flags(r, args, err)) return rc;

  HostNeeds needs;
  needs.out.assign(b.o.hosts, 1);
  needs.in.assign(b.o.hosts, 1);
  auto make_flows = [&] {
    std::vector<Flow> f;
    for (uint32_t h = 0; h < b.o.hosts; ++h) f.push_back(Flow{h, dst[h], b.o.flow_size, Duration::zero()});
    return f;
  };
  // link-failure: the same run without the failure first (same seed, so the
  // same events up to the failure): recovery is judged against what the
  // fabric delivered then, bin by bin, so that a CC's own swings (DCQCN's
  // first cut, say) are not taken for the failure's effect.
  Bench base;
  base.o = b.o;
  TimePoint base_first_end = TimePoint::max();
  if (with_failure) {
    if (std::string e = build(base, needs, 64); !e.empty()) {
      std::fprintf(stderr, "shoal-sim: %s\n", e.c_str());
      return 2;
    }
    std::vector<Flow> base_flows = make_flows();
    std::fprintf(stderr, "%s: the same run without the failure first (the reference for recovery)\n", name.c_str());
    run_flows(base, base_flows);
    for (const Flow& f : base_flows)
      if (!f.failed) base_first_end = std::min(base_first_end, f.end);
    base.sim.reset();
  }
  if (std::string e = build(b, needs, 64); !e.empty()) {
    std::fprintf(stderr, "shoal-sim: %s\n", e.c_str());
    return 2;
  }
  FabricSim& sim = *b.sim;
  std::vector<Flow> flows = make_flows();

  // The failure: at fail_at, the aggregation->core (leaf->spine) link that
  // has carried the most bytes so far (so that it surely carries traffic),
  // or the --fail-link N-th one.
  const TimePoint fail_at = TimePoint::zero() + Duration::micros_f(fail_at_us);
  uint32_t failed_port = ~0u;
  if (with_failure) {
    sim.call_at(fail_at, [&] {
      if (fail_link == "busiest") {
        std::vector<uint32_t> cand = sim.agg_uplinks();
        if (cand.empty()) cand = sim.edge_uplinks();
        failed_port = cand[0];
        for (uint32_t p : cand)
          if (sim.port_stats(p).bytes > sim.port_stats(failed_port).bytes) failed_port = p;
      } else {
        failed_port = sim.core_link(static_cast<uint32_t>(std::atoi(fail_link.c_str())));
      }
      sim.fail_link(failed_port, sim.now());
    });
  }
  std::fprintf(stderr, "%s: %u hosts, %s, %s/%s, %llu B flows, running...\n", name.c_str(), b.o.hosts,
               pattern.c_str(), b.o.cc.c_str(), b.o.lb.c_str(), static_cast<unsigned long long>(b.o.flow_size));
  FlowResult res = run_flows(b, flows);
  const Duration elapsed = res.last_end - TimePoint::zero();

  // Recovery (recovery.h): bins from the failure to the first flow
  // completion in either run, each against the same bin of the run without
  // the failure, averaged over --recovery-window-us. pre = the mean aggregate
  // goodput of the bins in the half of the run before the failure.
  double pre = 0, dip_min = 0;
  double recovery_us = 0, after_over_base = 0;
  bool recovered = true;
  uint32_t stalled = 0;
  if (with_failure) {
    const int64_t bin_ns = b.o.bin.ns();
    const size_t fail_bin = static_cast<size_t>((fail_at - TimePoint::zero()).ns() / bin_ns);
    const size_t pre_lo = fail_bin / 2;
    for (size_t i = pre_lo; i < fail_bin; ++i) pre += bin_gbps(b, i);
    pre = fail_bin > pre_lo ? pre / static_cast<double>(fail_bin - pre_lo) : 0;
    TimePoint first_end = base_first_end;
    for (const Flow& f : flows)
      if (!f.failed) first_end = std::min(first_end, f.end);
    const size_t end_bin = first_end.is_max() ? b.bins.size() : static_cast<size_t>(first_end.ns() / bin_ns);
    dip_min = pre;
    double after_sum = 0, base_sum = 0;
    std::vector<double> g_bins, base_bins;
    for (size_t i = 0; i < end_bin; ++i) {
      g_bins.push_back(bin_gbps(b, i));
      base_bins.push_back(bin_gbps(base, i));
    }
    for (size_t i = fail_bin; i < end_bin; ++i) {
      dip_min = std::min(dip_min, g_bins[i]);
      after_sum += g_bins[i];
      base_sum += base_bins[i];
    }
    const size_t half = static_cast<size_t>(std::llround(recovery_window_us / b.o.bin.us())) / 2;
    const RecoveryJudgement judged = judge_recovery(g_bins, base_bins, fail_bin, end_bin, half);
    if (judged.any_low) recovery_us = static_cast<double>(judged.last_low_end) * b.o.bin.us() - fail_at.us();
    recovered = judged.recovered;
    after_over_base = base_sum > 0 ? after_sum / base_sum : 0;
    for (const Flow& f : flows) {
      // A flow that never finished was stalled from its last byte to the end.
      Duration gap = b.max_gap[f.dst];
      if (f.end.is_max() || f.failed) gap = std::max(gap, sim.now() - b.last_progress[f.dst]);
      if (gap > Duration::micros_f(stall_us)) ++stalled;
    }
  }

  std::printf("%s: %u hosts (%s), %s, cc %s, lb %s, %llu B per flow, seed %llu\n", name.c_str(), b.o.hosts,
              b.o.fabric.topology == sim::Topology::kFatTree ? absl::StrFormat("fat-tree k=%u", b.o.fabric.k).c_str()
                                                             : "leaf-spine",
              pattern.c_str(), b.o.cc.c_str(), b.o.lb.c_str(), static_cast<unsigned long long>(b.o.flow_size),
              static_cast<unsigned long long>(b.o.fabric.seed));
  print_flow_figures(flows, res);
  if (with_failure) {
    std::printf("  %-30s %s at %.1f us\n", "failed link",
                failed_port == ~0u ? "(none)" : sim.port_name(failed_port).c_str(), fail_at.us());
    std::printf("  %-30s pre-failure %.1f Gb/s, lowest after %.1f Gb/s, after/without failure %.3f, recovery %s\n",
                "aggregate goodput", pre, dip_min, after_over_base,
                recovered ? absl::StrFormat("%.1f us", recovery_us).c_str()
                          : "not within the run (below 90% of the run without the failure)");
    std::printf("  %-30s %u (no progress for > %.0f us)\n", "flows stalled", stalled, stall_us);
  }
  print_common(b, elapsed);
  if (json) {
    JsonObject j;
    add_common(b, j, elapsed);
    j.add("pattern", pattern);
    add_flow_figures(j, flows, res);
    if (with_failure) {
      j.add("fail_at_us", fail_at.us())
          .add("failed_link", failed_port == ~0u ? std::string("") : sim.port_name(failed_port))
          .add("pre_failure_gbps", pre).add("min_goodput_after_gbps", dip_min)
          .add("goodput_after_over_no_failure", after_over_base).add("recovered", recovered);
      if (recovered) {
        j.add("recovery_us", recovery_us);
      } else {
        j.raw("recovery_us", "null");
      }
      j.add("flows_stalled", stalled).add("stall_us", stall_us)
          .add("reroute_us", reroute_us).add("recovery_window_us", recovery_window_us);
    }
    j.add("ok", res.finished && res.completed == flows.size());
    std::printf("%s\n", j.str().c_str());
  }
  if (with_failure) {
    // The reference run's bins beside the failure run's: what recovery_us
    // compares bin by bin, for plots and for judging that measure.
    std::string extra = absl::StrFormat("\"fail_at_us\": %.3f, \"goodput_gbps_without_failure\": [", fail_at.us());
    for (size_t i = 0; i < base.bins.size(); ++i) absl::StrAppendFormat(&extra, "%s%.3f", i ? ", " : "", bin_gbps(base, i));
    extra += "]";
    write_series(b, flows, extra);
  } else {
    write_series(b, flows, "");
  }
  return report_status(name, res, flows.size());
}

}  // namespace

int run_permutation(Args& args, bool json) { return run_permutation_like(args, json, false); }
int run_link_failure(Args& args, bool json) { return run_permutation_like(args, json, true); }

// ---- incast -----------------------------------------------------------------------------

int run_incast(Args& args, bool json) {
  FlagReader r(args);
  Bench b;
  std::string err = parse_common(r, "incast", 2 << 20, &b.o);
  const int64_t senders = r.i("senders", 0);
  const int64_t receiver = r.i("receiver", 0);
  if (err.empty() && (senders < 0 || senders >= b.o.hosts || receiver < 0 || receiver >= b.o.hosts))
    err = absl::StrFormat("--senders must be 1..%u (0 = all other hosts), --receiver 0..%u", b.o.hosts - 1,
                          b.o.hosts - 1);
  if (int rc = finish_flags(r, args, err)) return rc;
  const uint32_t rx = static_cast<uint32_t>(receiver);
  const uint32_t n_send = senders ? static_cast<uint32_t>(senders) : b.o.hosts - 1;
  HostNeeds needs;
  needs.out.assign(b.o.hosts, 0);
  needs.in.assign(b.o.hosts, 0);
  std::vector<Flow> flows;
  // Senders are the hosts after the receiver, wrapping: the nearest ones
  // first, so a small --senders mixes paths of every length only when asked.
  for (uint32_t i = 1; i <= n_send; ++i) {
    const uint32_t s = (rx + i) % b.o.hosts;
    flows.push_back(Flow{s, rx, b.o.flow_size, Duration::zero()});
    needs.out[s] = 1;
  }
  needs.in[rx] = n_send;
  if (std::string e = build(b, needs, 64); !e.empty()) {
    std::fprintf(stderr, "shoal-sim: %s\n", e.c_str());
    return 2;
  }
  FabricSim& sim = *b.sim;
  b.hot_port = sim.reverse(sim.host_uplink(rx));
  b.hot = true;
  std::fprintf(stderr, "incast: %u senders -> host %u, %s/%s, %llu B each, running...\n", n_send, rx,
               b.o.cc.c_str(), b.o.lb.c_str(), static_cast<unsigned long long>(b.o.flow_size));
  FlowResult res = run_flows(b, flows);
  const Duration elapsed = res.last_end - TimePoint::zero();

  // Receiver goodput: all bytes over the time of the last completion, and
  // steady state: the middle 80% of the bytes over the time they took.
  const uint64_t total = static_cast<uint64_t>(n_send) * b.o.flow_size;
  const double rx_gbps = elapsed.ns() > 0 ? static_cast<double>(total - res.bytes_lost) * 8 / elapsed.ns() : 0;
  double t10 = -1, t90 = -1, cum = 0;
  for (size_t i = 0; i < b.bins.size(); ++i) {
    const double prev = cum;
    cum += static_cast<double>(b.bins[i]);
    // Interpolate within the bin for the crossing instants.
    auto cross = [&](double level) {
      return (static_cast<double>(i) + (level - prev) / (cum - prev)) * b.o.bin.us();
    };
    if (t10 < 0 && cum >= 0.1 * total) t10 = cross(0.1 * total);
    if (t90 < 0 && cum >= 0.9 * total) t90 = cross(0.9 * total);
  }
  const double steady_gbps = t90 > t10 && t10 >= 0 ? 0.8 * total * 8 / ((t90 - t10) * 1e3) : 0;
  const double fct_min = percentile(res.fct_us, 0), fct_max = percentile(res.fct_us, 100);
  std::vector<uint64_t> hot_hist;
  double hot_sum = 0;
  for (const sim::QueueSample& x : b.hot_samples) {
    if (x.packets >= hot_hist.size()) hot_hist.resize(x.packets + 1, 0);
    ++hot_hist[x.packets];
    hot_sum += x.packets;
  }
  const QueueFigures hq = queue_figures(hot_hist);
  sim::QueueSummary qs;
  qs.max_packets = hq.max;
  qs.p99_packets = hq.p99;
  qs.mean_packets = b.hot_samples.empty() ? 0 : hot_sum / static_cast<double>(b.hot_samples.size());
  const sim::PortStats& hp = sim.port_stats(b.hot_port);

  std::printf("incast: %u senders -> host %u (%s), cc %s, lb %s, %llu B each, seed %llu\n", n_send, rx,
              sim.port_name(b.hot_port).c_str(), b.o.cc.c_str(), b.o.lb.c_str(),
              static_cast<unsigned long long>(b.o.flow_size), static_cast<unsigned long long>(b.o.fabric.seed));
  print_flow_figures(flows, res);
  std::printf("  %-30s %.1f Gb/s overall, %.1f Gb/s steady (middle 80%% of bytes); payload line rate %.1f\n",
              "receiver goodput", rx_gbps, steady_gbps, payload_gbps(b.o));
  std::printf("  %-30s %.2f\n", "FCT max/min (fairness)", fct_min > 0 ? fct_max / fct_min : 0.0);
  std::printf("  %-30s max %u, p99 %u, mean %.1f pkts; %llu drops, %llu trims, %llu ECN marks there\n",
              "receiver downlink queue", qs.max_packets, qs.p99_packets, qs.mean_packets,
              static_cast<unsigned long long>(hp.drops + hp.header_drops), static_cast<unsigned long long>(hp.trims),
              static_cast<unsigned long long>(hp.ecn_marks));
  print_common(b, elapsed);
  if (json) {
    JsonObject j;
    add_common(b, j, elapsed);
    add_flow_figures(j, flows, res);
    j.add("senders", n_send).add("receiver", rx).add("receiver_goodput_gbps", rx_gbps)
        .add("receiver_goodput_steady_gbps", steady_gbps).add("payload_line_gbps", payload_gbps(b.o))
        .add("fct_max_over_min", fct_min > 0 ? fct_max / fct_min : 0.0)
        .add("rx_queue_max_pkts", qs.max_packets).add("rx_queue_p99_pkts", qs.p99_packets)
        .add("rx_queue_mean_pkts", qs.mean_packets).add("rx_port_drops", hp.drops + hp.header_drops)
        .add("rx_port_trims", hp.trims).add("rx_port_ecn_marks", hp.ecn_marks)
        .add("ok", res.finished && res.completed == flows.size());
    std::printf("%s\n", j.str().c_str());
  }
  write_series(b, flows, "");
  return report_status("incast", res, flows.size());
}

// ---- all-to-all -----------------------------------------------------------------------

int run_all_to_all(Args& args, bool json) {
  FlagReader r(args);
  Bench b;
  std::string err = parse_common(r, "all-to-all", 256 << 10, &b.o);
  if (int rc = finish_flags(r, args, err)) return rc;
  const uint32_t n = b.o.hosts;
  HostNeeds needs;
  needs.out.assign(n, n - 1);
  needs.in.assign(n, n - 1);
  if (std::string e = build(b, needs, 64); !e.empty()) {
    std::fprintf(stderr, "shoal-sim: %s\n", e.c_str());
    return 2;
  }
  FabricSim& sim = *b.sim;
  // Host i posts to i+1, i+2, ...: at any moment the hosts' first messages
  // go to different receivers (a shifted schedule, as all-to-all libraries do).
  std::vector<Flow> flows;
  for (uint32_t d = 1; d < n; ++d)
    for (uint32_t h = 0; h < n; ++h) flows.push_back(Flow{h, (h + d) % n, b.o.flow_size, Duration::zero()});
  std::fprintf(stderr, "all-to-all: %u hosts, %u flows of %llu B, %s/%s, running...\n", n,
               static_cast<unsigned>(flows.size()), static_cast<unsigned long long>(b.o.flow_size), b.o.cc.c_str(),
               b.o.lb.c_str());
  FlowResult res = run_flows(b, flows);
  const Duration elapsed = res.last_end - TimePoint::zero();
  // Ideal: each host's (n-1) flows back to back at its link's payload rate,
  // plus the farthest path's one-way trip and ACK (ideal_fct of all its bytes).
  uint32_t far = 1;
  for (uint32_t h = 1; h < n; ++h)
    if (sim.hops(0, h) > sim.hops(0, far)) far = h;
  const Duration ideal = sim.ideal_fct(b.o.flow_size * (n - 1), 0, far, b.o.mtu);
  std::printf("all-to-all: %u hosts, %llu B to every other host, cc %s, lb %s, seed %llu\n", n,
              static_cast<unsigned long long>(b.o.flow_size), b.o.cc.c_str(), b.o.lb.c_str(),
              static_cast<unsigned long long>(b.o.fabric.seed));
  print_flow_figures(flows, res);
  std::printf("  %-30s %.1f us, ideal %.1f us (x%.2f)\n", "completion time", elapsed.us(), ideal.us(),
              elapsed.us() / ideal.us());
  print_common(b, elapsed);
  if (json) {
    JsonObject j;
    add_common(b, j, elapsed);
    add_flow_figures(j, flows, res);
    j.add("ideal_completion_us", ideal.us()).add("completion_over_ideal", elapsed.us() / ideal.us())
        .add("ok", res.finished && res.completed == flows.size());
    std::printf("%s\n", j.str().c_str());
  }
  write_series(b, flows, "");
  return report_status("all-to-all", res, flows.size());
}

// ---- ring-allreduce ------------------------------------------------------------------

// A ring allreduce of --flow-size bytes per host over the hosts in index
// order (h sends to h+1): 2(n-1) steps, each moving one 1/n segment to the
// right neighbour, cut into --chunk-bytes messages. A host sends chunk c of
// step s+1 once chunk c of step s has arrived from its left neighbour (the
// reduction itself takes no time here), so chunks pipeline across steps.
// Messages are SEND_WITH_IMM (imm = s * chunks + c): the receiver learns of
// each chunk from its own completion.
int run_ring_allreduce(Args& args, bool json) {
  FlagReader r(args);
  Bench b;
  std::string err = parse_common(r, "ring-allreduce", 16 << 20, &b.o);
  const int64_t chunk_arg = r.i("chunk-bytes", 64 << 10);
  if (err.empty() && (chunk_arg < 1 || chunk_arg > (int64_t{1} << 31)))
    err = "--chunk-bytes must be 1..2^31";
  if (int rc = finish_flags(r, args, err)) return rc;
  const uint32_t n = b.o.hosts;
  const uint64_t seg = (b.o.flow_size + n - 1) / n;
  const uint64_t chunk = std::min<uint64_t>(static_cast<uint64_t>(chunk_arg), seg);
  const uint32_t chunks = static_cast<uint32_t>((seg + chunk - 1) / chunk);
  const uint32_t steps = 2 * (n - 1);
  const uint64_t per_host = static_cast<uint64_t>(steps) * chunks;
  if (per_host > (uint64_t{1} << 31)) {
    std::fprintf(stderr, "shoal-sim: ring-allreduce: %llu messages per host is too many; raise --chunk-bytes\n",
                 static_cast<unsigned long long>(per_host));
    return 2;
  }
  HostNeeds needs;
  // A host may run ahead of its right neighbour by many chunks.
  needs.out.assign(n, 1);
  needs.in.assign(n, 1);
  needs.sends = static_cast<uint32_t>(std::min<uint64_t>(per_host, 4096));
  if (std::string e = build(b, needs, 4096); !e.empty()) {
    std::fprintf(stderr, "shoal-sim: %s\n", e.c_str());
    return 2;
  }
  FabricSim& sim = *b.sim;
  b.source.assign(chunk, 0x5a);
  b.sink.assign(chunk, 0);
  auto size_of = [&](uint32_t c) { return c + 1 < chunks ? chunk : seg - chunk * (chunks - 1); };

  struct HostState {
    uint64_t next = 0;         // next message to send: s * chunks + c
    uint64_t recv_posted = 0;  // receives posted so far
    uint64_t received = 0, sent = 0;
    std::vector<uint8_t> got;  // per (s, c): arrived from the left
  };
  std::vector<HostState> hs(n);
  std::vector<TimePoint> host_done(n, TimePoint::max());
  uint64_t errors = 0, done_hosts = 0;
  TimePoint last_done;
  // Receives are posted ahead by a bounded amount and topped up on every
  // arrival, so that a deep ring does not need all of them at once.
  const uint64_t ahead = std::min<uint64_t>(per_host, 2048);
  auto post_recvs = [&](uint32_t h) {
    HostState& st = hs[h];
    while (st.recv_posted < per_host && st.recv_posted < st.received + ahead) {
      if (!sim.host(h).post_recv(0, {b.sink.data(), static_cast<size_t>(chunk)}, st.recv_posted).ok()) break;
      ++st.recv_posted;
    }
  };
  auto pump = [&](uint32_t h) {
    HostState& st = hs[h];
    bool posted = false;
    while (st.next < per_host) {
      const uint64_t s = st.next / chunks, c = st.next % chunks;
      if (s > 0 && !st.got[(s - 1) * chunks + c]) break;
      ses::SendRequest req;
      req.peer = FabricSim::address((h + 1) % n);
      req.data = {b.source.data(), static_cast<size_t>(size_of(static_cast<uint32_t>(c)))};
      req.has_imm = true;
      req.imm = st.next;
      req.wr_id = st.next;
      if (!sim.host(h).post_send(req).ok()) break;  // full: retried after the next completion
      ++st.next;
      posted = true;
    }
    if (posted) sim.touch(h);
  };
  for (uint32_t h = 0; h < n; ++h) {
    hs[h].got.assign(per_host, 0);
    post_recvs(h);
  }
  for (uint32_t h = 0; h < n; ++h) pump(h);
  b.progress_note = [&] { return absl::StrFormat("hosts done %llu/%u", static_cast<unsigned long long>(done_hosts), n); };
  std::fprintf(stderr, "ring-allreduce: %u hosts, %llu B, %u steps x %u chunks of <= %llu B, %s/%s, running...\n", n,
               static_cast<unsigned long long>(b.o.flow_size), steps, chunks, static_cast<unsigned long long>(chunk),
               b.o.cc.c_str(), b.o.lb.c_str());
  ses::Completion wc[64];
  b.done = [&] { return done_hosts == n || errors > 0; };
  start_samplers(b);
  const bool finished = sim.run(
      [&](uint32_t h) {
        account_rx(b, h);
        HostState& st = hs[h];
        uint32_t m;
        bool progressed = false;
        while ((m = sim.host(h).poll_completions(wc, 64)) > 0) {
          for (uint32_t i = 0; i < m; ++i) {
            if (wc[i].status != ses::WcStatus::kSuccess) {
              ++errors;
              continue;
            }
            if (wc[i].opcode == ses::WcOpcode::kRecv && wc[i].has_imm && wc[i].imm < per_host) {
              st.got[wc[i].imm] = 1;
              ++st.received;
            } else if (wc[i].opcode == ses::WcOpcode::kSend) {
              ++st.sent;
            }
            progressed = true;
            if (st.received == per_host && st.sent == per_host) {
              ++done_hosts;
              last_done = sim.now();
              host_done[h] = sim.now();
            }
          }
        }
        if (progressed) {
          post_recvs(h);
          pump(h);
        }
      },
      [&] { return done_hosts == n || errors > 0; }, TimePoint::zero() + b.o.time_limit);
  b.wall_s = std::chrono::duration<double>(WallClock::now() - b.wall0).count();
  const bool ok = finished && errors == 0 && done_hosts == n;
  const Duration elapsed = last_done - TimePoint::zero();
  const double algbw = ok ? static_cast<double>(b.o.flow_size) * 8 / elapsed.ns() : 0;
  const double busbw = algbw * 2 * (n - 1) / n;
  const double ideal_busbw = payload_gbps(b.o);
  const double ideal_us = static_cast<double>(b.o.flow_size) * 8 * 2 * (n - 1) / n / (ideal_busbw * 1e3);

  std::printf("ring-allreduce: %u hosts, %llu B per host, %u chunks of <= %llu B per step, cc %s, lb %s, seed %llu\n",
              n, static_cast<unsigned long long>(b.o.flow_size), chunks, static_cast<unsigned long long>(chunk),
              b.o.cc.c_str(), b.o.lb.c_str(), static_cast<unsigned long long>(b.o.fabric.seed));
  std::printf("  %-30s %s (%llu of %u hosts done, %llu errors)\n", "result", ok ? "OK" : "FAILED",
              static_cast<unsigned long long>(done_hosts), n, static_cast<unsigned long long>(errors));
  std::printf("  %-30s %.1f us (bandwidth-bound ideal %.1f us)\n", "completion time", elapsed.us(), ideal_us);
  std::printf("  %-30s algbw %.2f Gb/s, busbw %.2f Gb/s, ideal busbw %.2f Gb/s (x%.3f)\n", "bandwidth", algbw,
              busbw, ideal_busbw, busbw / ideal_busbw);
  print_common(b, elapsed);
  if (json) {
    JsonObject j;
    add_common(b, j, elapsed);
    // Each host's part of the collective counts as one flow: its FCT is when
    // it has sent and received everything, its goodput the buffer over that.
    std::vector<double> fct, gp;
    for (TimePoint t : host_done) {
      if (t.is_max()) continue;
      fct.push_back((t - TimePoint::zero()).us());
      gp.push_back(static_cast<double>(b.o.flow_size) * 8 / (fct.back() * 1e3));
    }
    j.add("flows", n).add("flows_completed", static_cast<uint64_t>(done_hosts)).add("bytes_lost", uint64_t{0})
        .add("goodput_gbps_mean", gp.empty() ? 0.0 : std::accumulate(gp.begin(), gp.end(), 0.0) / gp.size())
        .add("goodput_gbps_min", percentile(gp, 0)).add("fct_us_p50", percentile(fct, 50))
        .add("fct_us_p99", percentile(fct, 99)).add("fct_us_max", percentile(fct, 100))
        .add("chunk_bytes", chunk).add("chunks_per_step", chunks).add("steps", steps)
        .add("completion_us", elapsed.us()).add("ideal_completion_us", ideal_us).add("algbw_gbps", algbw)
        .add("busbw_gbps", busbw).add("busbw_ideal_gbps", ideal_busbw).add("busbw_over_ideal", busbw / ideal_busbw)
        .add("errors", errors).add("ok", ok);
    std::printf("%s\n", j.str().c_str());
  }
  if (!ok) {
    std::fprintf(stderr, "shoal-sim: ring-allreduce: %llu of %u hosts done, %llu errors\n",
                 static_cast<unsigned long long>(done_hosts), n, static_cast<unsigned long long>(errors));
    return 1;
  }
  return 0;
}

}  // namespace shoal::app
