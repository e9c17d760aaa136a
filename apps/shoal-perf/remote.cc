// shoal-perf across two processes (network namespaces, two hosts), as
// perftest's server/client: the server (--listen IP:PORT) is the receiving
// end, the client (--connect IP:PORT) the sending end that measures and
// prints. They meet over a TCP connection (out of band, like perftest's
// -R-less default) to swap what verbs needs: Shoal addresses, QP numbers,
// the sink region's rkey and address. The data itself goes over Shoal.
//
// Out-of-band protocol, one text line each way per step:
//   client -> server  HELLO op=OP size=N window=N qp_type=T addr=A qpn=N rkey=N raddr=N
//   server -> client  READY addr=A qpn=N rkey=N raddr=N
//   client -> server  LAT          (bandwidth done; latency ping-pong next)
//   client -> server  BYE          (done; the server tears down and exits)
// The server serves one client and exits 0, so a test can start it in the
// background and wait for it. Every wait is bounded (--timeout seconds).
#include "apps/shoal-perf/remote.h"
#include "lib/api/dump.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "apps/shoal-perf/common.h"
#include "apps/shoal-sim/json.h"
#include "lib/base/histogram.h"

namespace shoal::perf {
namespace {

using Clock = std::chrono::steady_clock;

// A TCP line channel. Lines are short; reads are buffered.
class Oob {
 public:
  explicit Oob(int fd) : fd_(fd) {
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~Oob() { close(fd_); }
  void send_line(const std::string& line) {
    const std::string l = line + "\n";
    size_t off = 0;
    while (off < l.size()) {
      const ssize_t n = ::send(fd_, l.data() + off, l.size() - off, MSG_NOSIGNAL);
      if (n <= 0) fail("out-of-band send failed");
      off += static_cast<size_t>(n);
    }
  }
  // A whole line if one is there within `wait_ms` (0: do not wait).
  bool try_line(std::string* out, int wait_ms) {
    for (;;) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        *out = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, wait_ms) <= 0) return false;
      char tmp[512];
      const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n <= 0) fail("the other end closed the out-of-band connection");
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }
  std::string line(int timeout_s) {
    std::string l;
    if (!try_line(&l, timeout_s * 1000)) fail("timed out waiting on the out-of-band connection");
    return l;
  }
  [[noreturn]] static void fail(const char* what) {
    std::fprintf(stderr, "shoal-perf: %s\n", what);
    std::exit(1);
  }

 private:
  int fd_;
  std::string buf_;
};

// "KEY k=v k=v" -> {k: v}; the first word goes under "".
std::map<std::string, std::string> fields(const std::string& line) {
  std::map<std::string, std::string> f;
  std::istringstream in(line);
  std::string w;
  in >> w;
  f[""] = w;
  while (in >> w) {
    const size_t eq = w.find('=');
    if (eq != std::string::npos) f[w.substr(0, eq)] = w.substr(eq + 1);
  }
  return f;
}

bool parse_endpoint(const std::string& s, sockaddr_in* sa) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  std::memset(sa, 0, sizeof(*sa));
  sa->sin_family = AF_INET;
  const long port = std::strtol(s.c_str() + colon + 1, nullptr, 10);
  if (port <= 0 || port > 65535) return false;
  sa->sin_port = htons(static_cast<uint16_t>(port));
  return inet_pton(AF_INET, s.substr(0, colon).c_str(), &sa->sin_addr) == 1;
}

struct End {
  Host host;
  shoal_qp* qp = nullptr;
  std::vector<uint8_t> buf;
  shoal_mr* mr = nullptr;
};

End open_end(const RemoteOptions& o) {
  End e;
  e.host = open_host(o.driver, o.threaded);
  const uint32_t depth = o.window * 2 + 8;
  e.qp = make_qp(e.host, o.qp_type, depth);
  e.buf.assign(std::max<uint32_t>(o.size, 1), 0x5a);
  OK(shoal_reg_mr(e.host.pd, e.buf.data(), e.buf.size(),
                  SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_WRITE | SHOAL_ACCESS_REMOTE_READ, &e.mr));
  return e;
}

void close_end(End& e, shoal_ah* ah, bool stats) {
  if (ah) shoal_destroy_ah(ah);
  shoal_destroy_qp(e.qp);
  for (int i = 0; i < 1000; ++i) shoal_progress(e.host.ctx, SHOAL_ENGINE_ALL, 0);
  if (stats) std::fputs(shoal::api::dump(e.host.ctx).c_str(), stderr);
  shoal_dereg_mr(e.mr);
  shoal_destroy_cq(e.host.cq);
  shoal_dealloc_pd(e.host.pd);
  shoal_close(e.host.ctx);
}

int post_recv(End& e, uint32_t size) {
  shoal_sge sge{reinterpret_cast<uint64_t>(e.buf.data()), size, e.mr->lkey};
  shoal_recv_wr wr{};
  wr.sg_list = &sge;
  wr.num_sge = size ? 1 : 0;
  shoal_recv_wr* bad;
  return shoal_post_recv(e.qp, &wr, &bad);
}

int post_send(End& e, shoal_ah* ah, uint32_t opcode, uint32_t size, uint64_t rkey, uint64_t raddr) {
  shoal_sge sge{reinterpret_cast<uint64_t>(e.buf.data()), size, e.mr->lkey};
  shoal_send_wr wr{};
  wr.sg_list = &sge;
  wr.num_sge = size ? 1 : 0;
  wr.opcode = opcode;
  wr.send_flags = SHOAL_SEND_SIGNALED;
  wr.ah = ah;
  wr.wr.rdma.rkey = rkey;
  wr.wr.rdma.remote_addr = raddr;
  shoal_send_wr* bad;
  return shoal_post_send(e.qp, &wr, &bad);
}

uint32_t op_code(const std::string& op, bool imm) {
  if (op == "write") return imm ? SHOAL_WR_RDMA_WRITE_WITH_IMM : SHOAL_WR_RDMA_WRITE;
  if (op == "read") return SHOAL_WR_RDMA_READ;
  return SHOAL_WR_SEND;
}

}  // namespace

int run_server(const RemoteOptions& o) {
  sockaddr_in sa;
  if (!parse_endpoint(o.oob, &sa)) {
    std::fprintf(stderr, "shoal-perf: --listen wants IP:PORT, got '%s'\n", o.oob.c_str());
    return 2;
  }
  const int ls = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || listen(ls, 1) != 0) {
    std::fprintf(stderr, "shoal-perf: cannot listen on %s: %s\n", o.oob.c_str(), std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "shoal-perf: server waiting on %s\n", o.oob.c_str());
  pollfd p{ls, POLLIN, 0};
  if (poll(&p, 1, o.timeout_s * 1000) <= 0) {
    std::fprintf(stderr, "shoal-perf: no client within %d s\n", o.timeout_s);
    return 1;
  }
  Oob oob(accept(ls, nullptr, nullptr));
  close(ls);
  auto hello = fields(oob.line(o.timeout_s));
  if (hello[""] != "HELLO") Oob::fail("expected HELLO from the client");
  RemoteOptions mine = o;
  mine.op = hello["op"];
  mine.size = static_cast<uint32_t>(std::stoul(hello["size"]));
  mine.window = static_cast<uint32_t>(std::stoul(hello["window"]));
  mine.qp_type = hello["qp_type"] == "rod" ? SHOAL_QPT_ROD : SHOAL_QPT_RUD;
  End e = open_end(mine);
  shoal_ah* back = nullptr;
  OK(shoal_create_ah(e.host.pd, hello["addr"].c_str(), static_cast<uint32_t>(std::stoul(hello["qpn"])), &back));
  // A WRITE_WITH_IMM pong lands in the client's buffer.
  const uint64_t client_rkey = std::stoull(hello["rkey"]), client_raddr = std::stoull(hello["raddr"]);
  const bool recvs = mine.op == "send";
  const uint32_t depth = mine.window * 2 + 8;
  if (recvs)
    for (uint32_t i = 0; i < depth - 4; ++i) OK(post_recv(e, mine.size));
  oob.send_line("READY addr=" + e.host.addr + " qpn=" + std::to_string(shoal_qp_num(e.qp)) +
                " rkey=" + std::to_string(e.mr->rkey) +
                " raddr=" + std::to_string(reinterpret_cast<uint64_t>(e.buf.data())));
  // Serve: keep receives posted; in the latency phase answer every ping.
  bool latency = false;
  uint64_t received = 0;
  shoal_wc wc[64];
  const auto deadline = Clock::now() + std::chrono::seconds(o.timeout_s);
  auto next_oob_check = Clock::now();
  for (;;) {
    shoal_progress(e.host.ctx, SHOAL_ENGINE_ALL, 0);
    int n;
    while ((n = shoal_poll_cq(e.host.cq, 64, wc)) > 0) {
      for (int i = 0; i < n; ++i) {
        if (wc[i].opcode != SHOAL_WC_RECV && wc[i].opcode != SHOAL_WC_RECV_RDMA_WITH_IMM) continue;
        ++received;
        if (wc[i].opcode == SHOAL_WC_RECV || latency) OK(post_recv(e, mine.size));
        if (latency) OK(post_send(e, back, op_code(mine.op, true), mine.size, client_rkey, client_raddr));
      }
    }
    // The out-of-band socket is a poll() syscall: looking at it on every
    // pass put a syscall between a ping's arrival and its pong. Once per
    // millisecond is soon enough for LAT and BYE (the client waits 50 ms
    // after LAT before its first ping).
    const auto now = Clock::now();
    if (now < next_oob_check) continue;
    next_oob_check = now + std::chrono::milliseconds(1);
    std::string l;
    if (oob.try_line(&l, 0)) {
      const auto f = fields(l);
      if (f.at("") == "BYE") break;
      if (f.at("") == "LAT") {
        latency = true;
        if (!recvs) OK(post_recv(e, mine.size));  // WRITE_WITH_IMM pings take one
      }
    }
    if (Clock::now() > deadline) Oob::fail("server: the run did not end within --timeout");
  }
  std::fprintf(stderr, "shoal-perf: server done, %llu messages received\n",
               static_cast<unsigned long long>(received));
  close_end(e, back, o.stats);
  return 0;
}

int run_client(const RemoteOptions& o) {
  sockaddr_in sa;
  if (!parse_endpoint(o.oob, &sa)) {
    std::fprintf(stderr, "shoal-perf: --connect wants IP:PORT, got '%s'\n", o.oob.c_str());
    return 2;
  }
  // The server may still be starting: retry the connection for a while.
  int fd = -1;
  for (int attempt = 0; attempt < 10 * o.timeout_s; ++attempt) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) break;
    close(fd);
    fd = -1;
    usleep(100 * 1000);
  }
  if (fd < 0) {
    std::fprintf(stderr, "shoal-perf: cannot reach the server at %s\n", o.oob.c_str());
    return 1;
  }
  Oob oob(fd);
  End e = open_end(o);
  oob.send_line("HELLO op=" + o.op + " size=" + std::to_string(o.size) + " window=" + std::to_string(o.window) +
                " qp_type=" + (o.qp_type == SHOAL_QPT_ROD ? "rod" : "rud") + " addr=" + e.host.addr +
                " qpn=" + std::to_string(shoal_qp_num(e.qp)) + " rkey=" + std::to_string(e.mr->rkey) +
                " raddr=" + std::to_string(reinterpret_cast<uint64_t>(e.buf.data())));
  auto ready = fields(oob.line(o.timeout_s));
  if (ready[""] != "READY") Oob::fail("expected READY from the server");
  shoal_ah* ah = nullptr;
  OK(shoal_create_ah(e.host.pd, ready["addr"].c_str(), static_cast<uint32_t>(std::stoul(ready["qpn"])), &ah));
  const uint64_t rkey = std::stoull(ready["rkey"]), raddr = std::stoull(ready["raddr"]);
  const uint32_t opcode = op_code(o.op, false);
  // ---- bandwidth ----
  int64_t posted = 0, done = 0, errors = 0, inflight = 0;
  shoal_wc wc[64];
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::seconds(o.timeout_s);
  while (done < o.iters) {
    while (inflight < o.window && posted < o.iters) {
      const int rc = post_send(e, ah, opcode, o.size, rkey, raddr);
      if (rc == EAGAIN) break;
      if (rc != 0) die("shoal_post_send", rc);
      ++inflight;
      ++posted;
    }
    shoal_progress(e.host.ctx, SHOAL_ENGINE_ALL, 0);
    int n;
    while ((n = shoal_poll_cq(e.host.cq, 64, wc)) > 0)
      for (int i = 0; i < n; ++i) {
        if (wc[i].status != SHOAL_WC_SUCCESS) ++errors;
        --inflight;
        ++done;
      }
    if (Clock::now() > deadline) Oob::fail("client: bandwidth phase timed out");
  }
  const double bw_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double msgs_per_s = static_cast<double>(o.iters) / bw_s;
  const double gbps = msgs_per_s * o.size * 8 / 1e9;
  // ---- latency: ping-pong (SEND, or WRITE_WITH_IMM for write) ----
  LogHistogram lat;
  if (o.lat_iters > 0 && o.op != "read") {
    oob.send_line("LAT");
    OK(post_recv(e, o.size));
    // Give the server a moment to see LAT before the first ping (it would
    // otherwise count the ping as a bandwidth message and not answer).
    for (auto w = Clock::now() + std::chrono::milliseconds(50); Clock::now() < w;)
      shoal_progress(e.host.ctx, SHOAL_ENGINE_ALL, 0);
    for (int64_t i = 0; i < o.lat_iters; ++i) {
      const auto start = Clock::now();
      OK(post_send(e, ah, op_code(o.op, true), o.size, rkey, raddr));
      bool pong = false;
      while (!pong) {
        shoal_progress(e.host.ctx, SHOAL_ENGINE_ALL, 0);
        int n;
        while ((n = shoal_poll_cq(e.host.cq, 64, wc)) > 0)
          for (int k = 0; k < n; ++k) {
            if (wc[k].status != SHOAL_WC_SUCCESS) ++errors;
            if (wc[k].opcode == SHOAL_WC_RECV || wc[k].opcode == SHOAL_WC_RECV_RDMA_WITH_IMM) {
              pong = true;
              OK(post_recv(e, o.size));
            }
          }
        if (Clock::now() > deadline) Oob::fail("client: latency phase timed out");
      }
      lat.add(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count() / 2));
    }
  }
  oob.send_line("BYE");
  std::printf("shoal-perf: %s %u B over %s to %s, window %u (two processes)\n", o.op.c_str(), o.size,
              o.driver.c_str(), ready["addr"].c_str(), o.window);
  std::printf("  %-28s %12.3f Gb/s   %12.0f msgs/s   (%lld messages in %.3f s)\n", "bandwidth", gbps, msgs_per_s,
              static_cast<long long>(o.iters), bw_s);
  if (lat.count())
    std::printf("  %-28s p50 %8.2f us   p99 %8.2f us   p99.9 %8.2f us   (%lld round trips)\n", "latency, one way",
                lat.percentile(0.5) / 1e3, lat.percentile(0.99) / 1e3, lat.percentile(0.999) / 1e3,
                static_cast<long long>(o.lat_iters));
  if (errors) std::printf("  %lld completions with an error status\n", static_cast<long long>(errors));
  if (o.json) {
    app::JsonObject j;
    j.add("tool", "shoal-perf").add("driver", o.driver).add("server", ready["addr"]).add("op", o.op)
        .add("size", o.size).add("iters", o.iters).add("window", o.window).add("bw_gbps", gbps)
        .add("msgs_per_s", msgs_per_s).add("bw_seconds", bw_s).add("lat_iters", lat.count() ? o.lat_iters : 0)
        .add("lat_p50_us", lat.percentile(0.5) / 1e3).add("lat_p99_us", lat.percentile(0.99) / 1e3)
        .add("errors", errors);
    std::printf("%s\n", j.str().c_str());
  }
  close_end(e, ah, o.stats);
  return errors ? 1 : 0;
}

}  // namespace shoal::perf
