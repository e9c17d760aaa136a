// shoal-perf: a perftest-like point-to-point benchmark over the public C API
// (include/shoal/verbs.h). On sim:// both ends run in this process, driven by
// this thread (library mode); every figure is wall-clock on this machine, so
// read it beside a same-run reference (bench/peers, docs/results/api.md).
//
// Two phases, like ib_send_bw + ib_send_lat:
//   bandwidth: --iters messages of --size bytes, --window in flight, over
//              --qps QP pairs spread over --peers receiving contexts;
//   latency:   ping-pong of --size bytes between one QP pair (--lat-iters),
//              reported one way (half the round trip), as perftest does.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "apps/shoal-sim/args.h"
#include "apps/shoal-sim/json.h"
#include "lib/base/histogram.h"
#include "apps/shoal-perf/common.h"
#include "apps/shoal-perf/remote.h"
#include "lib/api/dump.h"
#include "shoal/verbs.h"

namespace {

using Clock = std::chrono::steady_clock;
using shoal::perf::Host;
using shoal::perf::die;
using shoal::perf::host_uri;
using shoal::perf::make_qp;
using shoal::perf::open_host;

const char* kHelp =
    "usage: shoal-perf [flags]\n\n"
    "Point-to-point bandwidth and latency over Shoal's C API.\n\n"
    "  --driver URI     driver to open (default sim://perf); every end runs in this process.\n"
    "                   udp://IP[:PORT][?...]: without a port each end takes a free port\n"
    "                   block (port 0); with one, end i listens on PORT + i\n"
    "  --peer-driver URI  the receiving contexts' driver (default: --driver), e.g. a\n"
    "                   second port: dpdk://?port=1&ip=10.9.0.2\n"
    "  --op OP          send | write | read (default send). Latency: send and write\n"
    "                   (WRITE_WITH_IMM) ping-pong, reported one way; read reports\n"
    "                   the whole READ (request out, data back), as ib_read_lat does\n"
    "  --size N         message bytes (default 65536)\n"
    "  --iters N        messages in the bandwidth phase (default 10000)\n"
    "  --lat-iters N    round trips in the latency phase (default min(iters, 10000); 0 skips it)\n"
    "  --window N       messages in flight per QP (default 64)\n"
    "  --qps N          QP pairs (default 1)\n"
    "  --peers N        receiving contexts, QPs spread over them (default 1)\n"
    "  --qp-type T      rud | rod (default rud)\n"
    "  --mode M         library (this thread runs every engine) | threaded (an engine\n"
    "                   thread per context; this thread only posts and polls) (default library)\n"
    "  --listen IP:PORT two processes: be the receiving end (server), meet the client\n"
    "                   over TCP at IP:PORT to swap addresses and keys, serve one run, exit\n"
    "  --connect IP:PORT  two processes: be the sending end (client) of a server at\n"
    "                   IP:PORT; --op/--size/--iters/--window/--lat-iters/--qp-type apply\n"
    "                   (read: bandwidth only); the client prints the figures\n"
    "  --timeout S      two processes: every wait is bounded by S seconds (default 60)\n"
    "  --json           one JSON object as the last line of stdout\n"
    "  --stats          at the end, each context's engine and transport counters on\n"
    "                   stderr (polls, packets, retransmits, RTOs, drops, ...)\n"
    "  --help           this page\n\n"
    "Exit status: 0 ok, 1 a run failed (a completion with an error status or a\n"
    "timeout), 2 bad command line or an operation not available.\n";

struct Pair {
  Host* tx;
  Host* rx;
  shoal_qp* sqp = nullptr;
  shoal_qp* rqp = nullptr;
  shoal_ah* ah = nullptr;   // tx -> rx
  shoal_ah* back = nullptr; // rx -> tx (latency)
};

}  // namespace

int main(int argc, char** argv) {
  auto parsed = shoal::app::Args::parse(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "shoal-perf: %s\n\n%s", std::string(parsed.status().message()).c_str(), kHelp);
    return 2;
  }
  shoal::app::Args args = *std::move(parsed);
  if (args.flag("help") || args.flag("h")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const std::string uri = args.str("driver", "sim://perf");
  // The receivers' URI when they need other options than the sender (a
  // second NIC port: dpdk://?port=1&ip=...); default: --driver.
  const std::string peer_uri = args.str("peer-driver", uri);
  const std::string op = args.str("op", "send");
  const std::string qp_type_s = args.str("qp-type", "rud");
  const std::string mode_s = args.str("mode", "library");
  auto size_or = args.i64("size", 65536);
  auto iters_or = args.i64("iters", 10000);
  auto lat_or = args.i64("lat-iters", -1);
  auto window_or = args.i64("window", 64);
  auto qps_or = args.i64("qps", 1);
  auto peers_or = args.i64("peers", 1);
  const bool json = args.flag("json");
  const bool stats = args.flag("stats");
  for (const absl::Status& st : {size_or.status(), iters_or.status(), lat_or.status(), window_or.status(),
                                 qps_or.status(), peers_or.status()}) {
    if (!st.ok()) {
      std::fprintf(stderr, "shoal-perf: %s\n", std::string(st.message()).c_str());
      return 2;
    }
  }
  const std::string listen = args.str("listen", ""), connect = args.str("connect", "");
  auto timeout_or = args.i64("timeout", 60);
  if (!timeout_or.ok() || *timeout_or < 1) {
    std::fprintf(stderr, "shoal-perf: --timeout wants seconds >= 1\n");
    return 2;
  }
  if (!args.unused().empty()) {
    std::fprintf(stderr, "shoal-perf: unknown flag --%s (see --help)\n", args.unused()[0].c_str());
    return 2;
  }
  if (op != "send" && op != "write" && op != "read") {
    std::fprintf(stderr, "shoal-perf: --op wants send, write or read, got '%s'\n", op.c_str());
    return 2;
  }
  if (mode_s != "library" && mode_s != "threaded") {
    std::fprintf(stderr, "shoal-perf: --mode wants library or threaded\n");
    return 2;
  }
  if (qp_type_s != "rud" && qp_type_s != "rod") {
    std::fprintf(stderr, "shoal-perf: --qp-type wants rud or rod\n");
    return 2;
  }
  const int64_t size = *size_or, iters = *iters_or, window = *window_or, nqps = *qps_or, npeers = *peers_or;
  const int64_t lat_iters = *lat_or < 0 ? std::min<int64_t>(iters, 10000) : *lat_or;
  if (size < 0 || size > (int64_t{1} << 30) || iters < 1 || window < 1 || window > 4096 || nqps < 1 ||
      nqps > 1024 || npeers < 1 || npeers > nqps || lat_iters < 0) {
    std::fprintf(stderr, "shoal-perf: need 0 <= --size <= 1 GiB, --iters >= 1, 1 <= --window <= 4096, "
                         "1 <= --peers <= --qps <= 1024\n");
    return 2;
  }
  const uint32_t qp_type = qp_type_s == "rod" ? SHOAL_QPT_ROD : SHOAL_QPT_RUD;
  if (!listen.empty() || !connect.empty()) {
    if (!listen.empty() && !connect.empty()) {
      std::fprintf(stderr, "shoal-perf: --listen and --connect are the two ends: give one\n");
      return 2;
    }
    if (nqps != 1 || npeers != 1 || uri.rfind("sim://", 0) == 0) {
      std::fprintf(stderr, "shoal-perf: two-process runs use one QP pair over udp:// or dpdk://\n");
      return 2;
    }
    shoal::perf::RemoteOptions ro;
    ro.oob = listen.empty() ? connect : listen;
    ro.driver = uri;
    ro.threaded = mode_s == "threaded";
    ro.op = op;
    ro.size = static_cast<uint32_t>(size);
    ro.iters = iters;
    ro.lat_iters = lat_iters;
    ro.window = static_cast<uint32_t>(window);
    ro.qp_type = qp_type;
    ro.json = json;
    ro.stats = stats;
    ro.timeout_s = static_cast<int>(*timeout_or);
    return listen.empty() ? shoal::perf::run_client(ro) : shoal::perf::run_server(ro);
  }
  const bool write = op == "write";
  const bool read = op == "read";
  const uint32_t sz = static_cast<uint32_t>(size);

  // Hosts: one sender, npeers receivers, all on the same driver.
  std::vector<Host> hosts;
  hosts.reserve(1 + npeers);
  const bool threaded = mode_s == "threaded";
  hosts.push_back(open_host(host_uri(uri, 0), threaded));
  for (int64_t p = 0; p < npeers; ++p) hosts.push_back(open_host(host_uri(peer_uri, 1 + p), threaded));
  const uint32_t depth = static_cast<uint32_t>(window) * 2 + 8;
  std::vector<Pair> pairs(nqps);
  for (int64_t q = 0; q < nqps; ++q) {
    Pair& pr = pairs[q];
    pr.tx = &hosts[0];
    pr.rx = &hosts[1 + q % npeers];
    pr.sqp = make_qp(*pr.tx, qp_type, depth);
    pr.rqp = make_qp(*pr.rx, qp_type, depth);
    OK(shoal_create_ah(pr.tx->pd, pr.rx->addr.c_str(), shoal_qp_num(pr.rqp), &pr.ah));
    OK(shoal_create_ah(pr.rx->pd, pr.tx->addr.c_str(), shoal_qp_num(pr.sqp), &pr.back));
  }
  // Buffers: one source per sender, one sink region per receiver (writes
  // and receives all land there: bandwidth, not content, is measured; the
  // conformance suite checks content).
  std::vector<uint8_t> src(std::max<uint32_t>(sz, 1), 0x5a);
  std::vector<std::vector<uint8_t>> sinks(hosts.size(), std::vector<uint8_t>(std::max<uint32_t>(sz, 1)));
  std::vector<shoal_mr*> mrs(hosts.size());
  const uint32_t access = SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_WRITE | SHOAL_ACCESS_REMOTE_READ;
  OK(shoal_reg_mr(hosts[0].pd, src.data(), src.size(), access, &mrs[0]));
  std::vector<shoal_mr*> sink_mrs(hosts.size());
  for (size_t h = 0; h < hosts.size(); ++h) OK(shoal_reg_mr(hosts[h].pd, sinks[h].data(), sinks[h].size(), access, &sink_mrs[h]));

  auto rx_index = [&](const Pair& pr) { return static_cast<size_t>(pr.rx - hosts.data()); };
  auto post_recv = [&](Host& h, shoal_qp* qp, size_t hi) {
    shoal_sge sge{reinterpret_cast<uint64_t>(sinks[hi].data()), sz, sink_mrs[hi]->lkey};
    shoal_recv_wr wr{};
    wr.sg_list = &sge;
    wr.num_sge = sz ? 1 : 0;
    shoal_recv_wr* bad;
    OK(shoal_post_recv(qp, &wr, &bad));
  };
  auto post_send = [&](Pair& pr, bool imm, uint64_t wr_id, Host& from, shoal_mr* mr, const uint8_t* data,
                       shoal_ah* ah, size_t to_host) {
    shoal_sge sge{reinterpret_cast<uint64_t>(data), sz, mr->lkey};
    shoal_send_wr wr{};
    wr.wr_id = wr_id;
    wr.sg_list = &sge;
    wr.num_sge = sz ? 1 : 0;
    wr.send_flags = SHOAL_SEND_SIGNALED;
    wr.ah = ah;
    if (read) {
      // Read the peer's sink region into our buffer (data/mr name the local side).
      wr.opcode = SHOAL_WR_RDMA_READ;
      wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(sinks[to_host].data());
      wr.wr.rdma.rkey = sink_mrs[to_host]->rkey;
    } else if (write) {
      wr.opcode = imm ? SHOAL_WR_RDMA_WRITE_WITH_IMM : SHOAL_WR_RDMA_WRITE;
      wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(sinks[to_host].data());
      wr.wr.rdma.rkey = sink_mrs[to_host]->rkey;
    } else {
      wr.opcode = SHOAL_WR_SEND;
    }
    shoal_send_wr* bad;
    return shoal_post_send(&from == pr.tx ? pr.sqp : pr.rqp, &wr, &bad);
  };
  auto progress_all = [&] {
    for (Host& h : hosts) shoal_progress(h.ctx, SHOAL_ENGINE_ALL, 0);
  };

  // ---- bandwidth ----
  if (!write && !read) {
    for (Pair& pr : pairs)
      for (uint32_t i = 0; i < depth - 4; ++i) post_recv(*pr.rx, pr.rqp, rx_index(pr));
  }
  std::vector<int64_t> inflight(nqps, 0);
  int64_t posted = 0, done = 0, errors = 0;
  shoal_wc wc[64];
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::seconds(300);
  size_t rr = 0;
  while (done < iters) {
    // Keep every QP's window full, round-robin.
    for (int64_t k = 0; k < nqps && posted < iters; ++k) {
      Pair& pr = pairs[rr++ % nqps];
      const int64_t q = &pr - pairs.data();
      while (inflight[q] < window && posted < iters) {
        const int rc = post_send(pr, false, static_cast<uint64_t>(q), *pr.tx, mrs[0], src.data(), pr.ah, rx_index(pr));
        if (rc == EAGAIN) break;
        if (rc != 0) die("shoal_post_send", rc);
        ++inflight[q];
        ++posted;
      }
    }
    progress_all();
    for (size_t h = 0; h < hosts.size(); ++h) {
      int n;
      while ((n = shoal_poll_cq(hosts[h].cq, 64, wc)) > 0) {
        for (int i = 0; i < n; ++i) {
          if (wc[i].status != SHOAL_WC_SUCCESS) ++errors;
          if (h == 0) {
            --inflight[wc[i].wr_id];
            ++done;
          } else {
            // A receive consumed: give the QP another buffer.
            for (Pair& pr : pairs)
              if (shoal_qp_num(pr.rqp) == wc[i].qp_num && pr.rx == &hosts[h]) {
                post_recv(*pr.rx, pr.rqp, h);
                break;
              }
          }
        }
      }
      if (n < 0 && n != -EOVERFLOW) die("shoal_poll_cq", -n);
    }
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "shoal-perf: bandwidth phase timed out at %lld of %lld messages\n",
                   static_cast<long long>(done), static_cast<long long>(iters));
      return 1;
    }
  }
  const double bw_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double msgs_per_s = static_cast<double>(iters) / bw_s;
  const double gbps = msgs_per_s * sz * 8 / 1e9;
  // Same-run reference: what this machine copies with memcpy, the same
  // messages from one buffer to another (an in-process transport moves each
  // byte at least once; sim:// moves it three times: into the packet, into
  // the inbox, into place).
  double memcpy_gbps = 0;
  if (sz > 0) {
    std::vector<uint8_t> a(sz, 1), b(sz);
    const auto m0 = Clock::now();
    for (int64_t i = 0; i < iters; ++i) {
      std::memcpy(b.data(), a.data(), sz);
      a[i % sz] = b[(i * 7) % sz];  // keep the copies observable
    }
    memcpy_gbps = static_cast<double>(iters) * sz * 8 / 1e9 / std::chrono::duration<double>(Clock::now() - m0).count();
  }

  // Drain receive completions of the bandwidth phase before latency.
  for (int spin = 0; spin < 100000; ++spin) {
    progress_all();
    bool any = false;
    for (size_t h = 1; h < hosts.size(); ++h)
      while (shoal_poll_cq(hosts[h].cq, 64, wc) > 0) any = true;
    if (!any && spin > 100) break;
  }

  // ---- latency: ping-pong on the first pair ----
  shoal::LogHistogram lat;
  if (lat_iters > 0 && read) {
    // One READ at a time on the first pair: its whole round trip.
    Pair& pr = pairs[0];
    for (int64_t i = 0; i < lat_iters; ++i) {
      const auto start = Clock::now();
      if (post_send(pr, false, 1, *pr.tx, mrs[0], src.data(), pr.ah, rx_index(pr)) != 0) die("read", 0);
      bool done_one = false;
      for (long guard = 0; !done_one; ++guard) {
        progress_all();
        const int n = shoal_poll_cq(pr.tx->cq, 64, wc);
        for (int k = 0; k < n; ++k) {
          if (wc[k].status != SHOAL_WC_SUCCESS) ++errors;
          done_one = true;
        }
        if (guard > 50000000) {
          std::fprintf(stderr, "shoal-perf: READ %lld never completed\n", static_cast<long long>(i));
          return 1;
        }
      }
      lat.add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count()));
    }
  } else if (lat_iters > 0) {
    Pair& pr = pairs[0];
    const size_t ri = rx_index(pr);
    // Each side keeps one receive posted for the other's message.
    post_recv(*pr.rx, pr.rqp, ri);
    post_recv(*pr.tx, pr.sqp, 0);
    for (int64_t i = 0; i < lat_iters; ++i) {
      const auto start = Clock::now();
      if (post_send(pr, true, 1, *pr.tx, mrs[0], src.data(), pr.ah, ri) != 0) die("ping", 0);
      // Wait for the pong: the receive of the sender's QP completes.
      bool got_ping = false, got_pong = false;
      int guard = 0;
      while (!got_pong) {
        progress_all();
        int n;
        while ((n = shoal_poll_cq(pr.rx->cq, 64, wc)) > 0)
          for (int k = 0; k < n; ++k) {
            if (wc[k].status != SHOAL_WC_SUCCESS) ++errors;
            if (wc[k].opcode == SHOAL_WC_RECV || wc[k].opcode == SHOAL_WC_RECV_RDMA_WITH_IMM) {
              got_ping = true;
              post_recv(*pr.rx, pr.rqp, ri);
              if (post_send(pr, true, 2, *pr.rx, sink_mrs[ri], sinks[ri].data(), pr.back, 0) != 0) die("pong", 0);
            }
          }
        while ((n = shoal_poll_cq(pr.tx->cq, 64, wc)) > 0)
          for (int k = 0; k < n; ++k) {
            if (wc[k].status != SHOAL_WC_SUCCESS) ++errors;
            if (wc[k].opcode == SHOAL_WC_RECV || wc[k].opcode == SHOAL_WC_RECV_RDMA_WITH_IMM) {
              got_pong = true;
              post_recv(*pr.tx, pr.sqp, 0);
            }
          }
        if (++guard > 50000000) {
          std::fprintf(stderr, "shoal-perf: latency round trip %lld never completed (ping %s)\n",
                       static_cast<long long>(i), got_ping ? "arrived" : "lost");
          return 1;
        }
      }
      lat.add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count() / 2));
    }
  }

  std::printf("shoal-perf: %s %u B over %s, %lld QP pair(s) to %lld peer(s), window %lld, %s\n", op.c_str(), sz,
              uri.c_str(), static_cast<long long>(nqps), static_cast<long long>(npeers),
              static_cast<long long>(window), qp_type_s.c_str());
  std::printf("  %-28s %12.3f Gb/s   %12.0f msgs/s   (%lld messages in %.3f s)\n", "bandwidth", gbps, msgs_per_s,
              static_cast<long long>(iters), bw_s);
  if (lat_iters > 0) {
    std::printf("  %-28s p50 %8.2f us   p99 %8.2f us   p99.9 %8.2f us   (%lld round trips)\n",
                read ? "latency, whole READ" : "latency, one way", lat.percentile(0.5) / 1e3, lat.percentile(0.99) / 1e3,
                lat.percentile(0.999) / 1e3, static_cast<long long>(lat_iters));
  }
  if (memcpy_gbps > 0) {
    std::printf("  %-28s %12.3f Gb/s   (same run; Shoal reaches %.3f of it)\n", "reference: memcpy", memcpy_gbps,
                gbps / memcpy_gbps);
  }
  if (errors) std::printf("  %lld completions with an error status\n", static_cast<long long>(errors));
  if (json) {
    shoal::app::JsonObject o;
    o.add("tool", "shoal-perf").add("driver", uri).add("op", op).add("size", static_cast<int64_t>(sz))
        .add("iters", static_cast<int64_t>(iters)).add("window", static_cast<int64_t>(window))
        .add("qps", static_cast<int64_t>(nqps)).add("peers", static_cast<int64_t>(npeers))
        .add("qp_type", qp_type_s).add("mode", mode_s).add("bw_gbps", gbps).add("msgs_per_s", msgs_per_s)
        .add("bw_seconds", bw_s).add("lat_iters", static_cast<int64_t>(lat_iters))
        .add("lat_p50_us", lat.percentile(0.5) / 1e3).add("lat_p99_us", lat.percentile(0.99) / 1e3)
        .add("lat_p999_us", lat.percentile(0.999) / 1e3).add("errors", static_cast<int64_t>(errors))
        .add("memcpy_gbps", memcpy_gbps).add("bw_over_memcpy", memcpy_gbps > 0 ? gbps / memcpy_gbps : 0.0);
    std::printf("%s\n", o.str().c_str());
  }
  // Teardown (destroy QPs first: their in-flight work flushes).
  for (Pair& pr : pairs) {
    shoal_destroy_ah(pr.ah);
    shoal_destroy_ah(pr.back);
    shoal_destroy_qp(pr.sqp);
    shoal_destroy_qp(pr.rqp);
  }
  for (int spin = 0; spin < 1000; ++spin) progress_all();
  if (stats)
    for (const auto& h : hosts) std::fputs(shoal::api::dump(h.ctx).c_str(), stderr);
  shoal_dereg_mr(mrs[0]);
  for (size_t h = 0; h < hosts.size(); ++h) {
    shoal_dereg_mr(sink_mrs[h]);
    shoal_destroy_cq(hosts[h].cq);
    shoal_dealloc_pd(hosts[h].pd);
    shoal_close(hosts[h].ctx);
  }
  return errors ? 1 : 0;
}
