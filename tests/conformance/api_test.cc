// Conformance of the C API (include/shoal/verbs.h), run against one driver
// URI: SHOAL_CONFORMANCE_URI (default "sim://"). Each meson test entry sets
// it for one driver (meson.build: sim://; udp://127.0.0.1:0, where port 0
// gives each context its own port block; dpdk:// on the in-process net_ring
// fabric).
//
// Two contexts on the same fabric talk; the test thread drives both
// (library mode). Every wait is bounded: a broken build fails, never hangs.
#include <gtest/gtest.h>

#include <sched.h>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lib/api/dump.h"
#include "shoal/verbs.h"

namespace {

// SHOAL_CONFORMANCE_MODE=threaded runs every test with engine threads.
bool threaded() {
  const char* m = std::getenv("SHOAL_CONFORMANCE_MODE");
  return m && std::string(m) == "threaded";
}

shoal_open_attr open_attr() {
  shoal_open_attr a{};
  if (threaded()) {
    a.comp_mask = SHOAL_OPEN_ATTR_MODE;
    a.mode = SHOAL_MODE_THREADED;
  }
  return a;
}

std::string base_uri() {
  const char* u = std::getenv("SHOAL_CONFORMANCE_URI");
  return u && *u ? u : "sim://";
}

// A fresh fabric per test on sim:// so that addresses start anew.
std::string uri_for_test() {
  std::string u = base_uri();
  if (u.rfind("sim://", 0) == 0 && (u.size() == 6 || u[6] == '?')) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    u.insert(6, std::string("conf-") + info->name());
  }
  return u;
}

struct Side {
  shoal_context* ctx = nullptr;
  shoal_pd* pd = nullptr;
  shoal_cq* cq = nullptr;
  shoal_qp* qp = nullptr;
  std::string addr;
};

class Api : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string uri = uri_for_test();
    for (Side* s : {&a, &b}) {
      const shoal_open_attr oa = open_attr();
      ASSERT_EQ(shoal_open(uri.c_str(), &oa, &s->ctx), 0) << shoal_last_error();
      ASSERT_EQ(shoal_alloc_pd(s->ctx, &s->pd), 0);
      ASSERT_EQ(shoal_create_cq(s->ctx, 4096, SHOAL_ENGINE_ANY, &s->cq), 0);
      s->qp = make_qp(*s, SHOAL_QPT_RUD);
      shoal_context_attr attr;
      ASSERT_EQ(shoal_query_context(s->ctx, &attr, sizeof(attr)), 0);
      s->addr = attr.local_addr;
      mtu = attr.mtu;
    }
  }
  void TearDown() override {
    for (shoal_ah* ah : ahs) EXPECT_EQ(shoal_destroy_ah(ah), 0);
    for (Side* s : {&a, &b}) {
      for (shoal_qp* qp : extra_qps[s == &a ? 0 : 1]) EXPECT_EQ(shoal_destroy_qp(qp), 0);
      if (s->qp) {
        EXPECT_EQ(shoal_destroy_qp(s->qp), 0);
      }
      s->qp = nullptr;
    }
    // A send the core still carries keeps its MR pinned (EBUSY) until the
    // core lets go of it; drive the engines until then.
    for (shoal_mr* mr : mrs) {
      int rc = EBUSY;
      const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while ((rc = shoal_dereg_mr(mr)) == EBUSY && std::chrono::steady_clock::now() < end)
        for (Side* s : {&a, &b})
          if (s->ctx) shoal_progress(s->ctx, SHOAL_ENGINE_ALL, 0);
      EXPECT_EQ(rc, 0) << shoal_last_error();
    }
    for (Side* s : {&a, &b}) {
      if (s->cq) {
        EXPECT_EQ(shoal_destroy_cq(s->cq), 0);
      }
      if (s->pd) {
        EXPECT_EQ(shoal_dealloc_pd(s->pd), 0) << shoal_last_error();
      }
      if (s->ctx) {
        EXPECT_EQ(shoal_close(s->ctx), 0) << shoal_last_error();
      }
    }
  }
  shoal_qp* make_qp(Side& s, uint32_t type, uint32_t send_sge = 2, uint32_t recv_sge = 1) {
    shoal_qp_init_attr qa{};
    qa.qp_type = type;
    qa.send_cq = s.cq;
    qa.recv_cq = s.cq;
    qa.cap.max_send_wr = 1024;
    qa.cap.max_recv_wr = 1024;
    qa.cap.max_send_sge = send_sge;
    qa.cap.max_recv_sge = recv_sge;
    shoal_qp* qp = nullptr;
    EXPECT_EQ(shoal_create_qp(s.pd, &qa, &qp), 0) << shoal_last_error();
    return qp;
  }
  shoal_mr* reg(Side& s, std::vector<uint8_t>& buf, uint32_t access = SHOAL_ACCESS_LOCAL_WRITE) {
    shoal_mr* mr = nullptr;
    EXPECT_EQ(shoal_reg_mr(s.pd, buf.data(), buf.size() ? buf.size() : 1, access, &mr), 0) << shoal_last_error();
    mrs.push_back(mr);
    return mr;
  }
  shoal_ah* ah_to(Side& from, Side& to, shoal_qp* qp) {
    shoal_ah* ah = nullptr;
    EXPECT_EQ(shoal_create_ah(from.pd, to.addr.c_str(), shoal_qp_num(qp), &ah), 0) << shoal_last_error();
    ahs.push_back(ah);
    return ah;
  }
  int post_recv(Side& s, shoal_qp* qp, shoal_mr* mr, uint8_t* addr, uint32_t len, uint64_t wr_id) {
    shoal_sge sge{reinterpret_cast<uint64_t>(addr), len, mr->lkey};
    shoal_recv_wr wr{};
    wr.wr_id = wr_id;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    shoal_recv_wr* bad = nullptr;
    return shoal_post_recv(qp, &wr, &bad);
  }
  int post_send(Side& s, shoal_qp* qp, shoal_ah* ah, shoal_mr* mr, const uint8_t* addr, uint32_t len,
                uint64_t wr_id, uint32_t opcode = SHOAL_WR_SEND, uint32_t flags = SHOAL_SEND_SIGNALED,
                uint64_t imm = 0) {
    shoal_sge sge{reinterpret_cast<uint64_t>(addr), len, mr ? mr->lkey : 0};
    shoal_send_wr wr{};
    wr.wr_id = wr_id;
    wr.sg_list = &sge;
    wr.num_sge = mr ? 1 : 0;
    wr.opcode = opcode;
    wr.send_flags = flags;
    wr.imm_data = imm;
    wr.ah = ah;
    shoal_send_wr* bad = nullptr;
    return shoal_post_send(qp, &wr, &bad);
  }
  // Polls both sides until `want` completions arrived on side s (bounded).
  std::vector<shoal_wc> wait(Side& s, size_t want, double seconds = 10) {
    std::vector<shoal_wc> got;
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    shoal_wc wc[16];
    while (got.size() < want && std::chrono::steady_clock::now() < end) {
      for (Side* o : {&a, &b})
        if (o != &s) shoal_progress(o->ctx, SHOAL_ENGINE_ALL, 0);
      const int n = shoal_poll_cq(s.cq, 16, wc);
      if (n > 0) got.insert(got.end(), wc, wc + n);
    }
    EXPECT_EQ(got.size(), want) << "timed out waiting for completions\n"
                                << (a.ctx ? shoal::api::dump(a.ctx) : "") << (b.ctx ? shoal::api::dump(b.ctx) : "");
    return got;
  }

  // Buffers live until TearDown has deregistered every MR: an engine may
  // still touch a registered region after the completion that used it (a
  // retransmitted READ response reads it), as with any RDMA device.
  std::vector<uint8_t>& buffer(size_t n, uint8_t fill = 0) {
    bufs_.push_back(std::make_unique<std::vector<uint8_t>>(n, fill));
    return *bufs_.back();
  }
  std::vector<std::unique_ptr<std::vector<uint8_t>>> bufs_;

  Side a, b;
  uint32_t mtu = 0;
  std::vector<shoal_mr*> mrs;
  std::vector<shoal_ah*> ahs;
  std::vector<shoal_qp*> extra_qps[2];
};

TEST(ApiOpen, BadUrisAndAttributesAreClearErrors) {
  shoal_context* ctx = nullptr;
  EXPECT_EQ(shoal_open("nosuch://x", nullptr, &ctx), ENODEV);
  EXPECT_NE(std::string(shoal_last_error()).find("nosuch"), std::string::npos) << shoal_last_error();
  EXPECT_EQ(shoal_open("no-scheme", nullptr, &ctx), EINVAL);
  EXPECT_EQ(shoal_open("sim://x?bogus=1", nullptr, &ctx), EINVAL);
  EXPECT_EQ(shoal_open(nullptr, nullptr, &ctx), EINVAL);
  shoal_open_attr attr{};
  attr.comp_mask = 1u << 30;
  EXPECT_EQ(shoal_open("sim://x", &attr, &ctx), ENOTSUP);
  EXPECT_EQ(ctx, nullptr);
}

// How many of the process's engine threads ("shoal-e*") the kernel lets run
// only on `cpu_list` (its Cpus_allowed_list, e.g. "1").
int engine_threads_allowed_only_on(const std::string& cpu_list) {
  int n = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("shoal-e", 0) != 0) continue;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("Cpus_allowed_list:", 0) == 0 && line.substr(line.find_last_of(" \t") + 1) == cpu_list) ++n;
  }
  return n;
}

// Threaded mode's engine_cpus pins each engine thread ("shoal-e<N>") to its
// CPU; a malformed list, too few CPUs, a CPU the process may not use, or the
// attribute in library mode are EINVAL.
TEST(ApiOpen, EngineCpusPinTheEngineThreads) {
  const std::string uri = uri_for_test();
  shoal_open_attr oa{};
  oa.comp_mask = SHOAL_OPEN_ATTR_ENGINE_CPUS;
  oa.engine_cpus = "0";
  shoal_context* ctx = nullptr;
  EXPECT_EQ(shoal_open(uri.c_str(), &oa, &ctx), EINVAL);  // library mode
  oa.comp_mask |= SHOAL_OPEN_ATTR_MODE | SHOAL_OPEN_ATTR_NUM_ENGINES;
  oa.mode = SHOAL_MODE_THREADED;
  oa.num_engines = 2;
  for (const char* bad : {"", "x", "1-", "3-1", "0"}) {  // "0": one CPU for two engines
    oa.engine_cpus = bad;
    EXPECT_EQ(shoal_open(uri.c_str(), &oa, &ctx), EINVAL) << bad;
  }
  oa.engine_cpus = "100000,100001";
  EXPECT_EQ(shoal_open(uri.c_str(), &oa, &ctx), EINVAL);
  EXPECT_EQ(ctx, nullptr);
  // The last CPU this process may run on, for both engines.
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  int last = -1;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) last = c;
  const std::string list = std::to_string(last) + "," + std::to_string(last);
  oa.engine_cpus = list.c_str();
  ASSERT_EQ(shoal_open(uri.c_str(), &oa, &ctx), 0) << shoal_last_error();
  // Both engine threads of this context run on `last` only.
  EXPECT_GE(engine_threads_allowed_only_on(std::to_string(last)), 2);
  EXPECT_EQ(shoal_close(ctx), 0);
}

// dpdk's lcores= places threaded mode's engines on those lcores' CPUs when
// the application names no engine_cpus; library mode ignores it.
TEST(ApiOpen, DpdkLcoresPlaceTheEngineThreads) {
  const std::string uri = uri_for_test();
  if (uri.rfind("dpdk://", 0) != 0) GTEST_SKIP() << "lcores= is a dpdk:// option";
  const std::string with_lcores = uri + "&lcores=0";  // the conformance EAL runs lcore 0 (-l 0)
  shoal_context* ctx = nullptr;
  ASSERT_EQ(shoal_open(with_lcores.c_str(), nullptr, &ctx), 0) << shoal_last_error();  // library mode
  EXPECT_EQ(shoal_close(ctx), 0);
  const int before = engine_threads_allowed_only_on("0");
  shoal_open_attr oa{};
  oa.comp_mask = SHOAL_OPEN_ATTR_MODE;
  oa.mode = SHOAL_MODE_THREADED;
  ASSERT_EQ(shoal_open(with_lcores.c_str(), &oa, &ctx), 0) << shoal_last_error();
  EXPECT_EQ(engine_threads_allowed_only_on("0"), before + 1);
  EXPECT_EQ(shoal_close(ctx), 0);
}

TEST_F(Api, QueryReportsLimitsAndAnAddressPeersCanUse) {
  shoal_context_attr attr;
  ASSERT_EQ(shoal_query_context(a.ctx, &attr, sizeof(attr)), 0);
  EXPECT_EQ(attr.mode, threaded() ? SHOAL_MODE_THREADED : SHOAL_MODE_LIBRARY);
  EXPECT_GT(attr.mtu, 0u);
  EXPECT_GE(attr.max_msg_size, 1ull << 30);
  EXPECT_GT(attr.max_qp, 0u);
  EXPECT_STRNE(attr.local_addr, "");
  EXPECT_NE(a.addr, b.addr);
  // A short struct is filled as far as it goes.
  char small[8];
  EXPECT_EQ(shoal_query_context(a.ctx, reinterpret_cast<shoal_context_attr*>(small), sizeof(small)), 0);
}

TEST_F(Api, SendReceivesEverySizeIntact) {
  const std::vector<uint32_t> sizes = {0, 1, mtu - 1, mtu, mtu + 1, 1u << 20, 64u << 20};
  shoal_ah* ah = ah_to(a, b, b.qp);
  for (uint32_t size : sizes) {
    std::vector<uint8_t> src(size), dst(size + 16, 0xEE);
    for (uint32_t i = 0; i < size; ++i) src[i] = static_cast<uint8_t>(i * 7 + size);
    shoal_mr* smr = size ? reg(a, src) : nullptr;
    shoal_mr* rmr = reg(b, dst);
    ASSERT_EQ(post_recv(b, b.qp, rmr, dst.data(), static_cast<uint32_t>(dst.size()), size), 0) << shoal_last_error();
    ASSERT_EQ(post_send(a, a.qp, ah, size ? smr : nullptr, src.data(), size, 1000 + size), 0) << shoal_last_error();
    auto rc = wait(b, 1, 60);
    auto sc = wait(a, 1, 60);
    ASSERT_EQ(rc.size(), 1u);
    ASSERT_EQ(sc.size(), 1u);
    EXPECT_EQ(rc[0].status, SHOAL_WC_SUCCESS) << size;
    EXPECT_EQ(rc[0].opcode, SHOAL_WC_RECV);
    EXPECT_EQ(rc[0].byte_len, size);
    EXPECT_EQ(rc[0].wr_id, size);
    EXPECT_EQ(rc[0].src_qp, shoal_qp_num(a.qp));
    EXPECT_EQ(sc[0].status, SHOAL_WC_SUCCESS);
    EXPECT_EQ(sc[0].opcode, SHOAL_WC_SEND);
    EXPECT_EQ(sc[0].wr_id, 1000u + size);
    EXPECT_TRUE(std::equal(src.begin(), src.end(), dst.begin())) << "payload of " << size << " B differs";
    for (size_t i = size; i < dst.size(); ++i) ASSERT_EQ(dst[i], 0xEE) << "wrote past the message";
    // The sender can answer the receiver through the completion.
    char peer[SHOAL_ADDR_STRLEN];
    ASSERT_EQ(shoal_peer_addr_str(b.ctx, rc[0].peer_id, peer, sizeof(peer)), 0);
    EXPECT_EQ(std::string(peer), a.addr);
    if (smr) {
      ASSERT_EQ(shoal_dereg_mr(smr), 0);
    }
    ASSERT_EQ(shoal_dereg_mr(rmr), 0);
    mrs.clear();
  }
}

TEST_F(Api, ImmediateDataAndReplyThroughAnAhFromTheCompletion) {
  auto& src = buffer(100, 1);
  auto& dst = buffer(100);
  auto& back = buffer(100);
  shoal_mr* smr = reg(a, src);
  shoal_mr* rmr = reg(b, dst);
  shoal_mr* bmr = reg(a, back);
  ASSERT_EQ(post_recv(b, b.qp, rmr, dst.data(), 100, 1), 0);
  ASSERT_EQ(post_send(a, a.qp, ah_to(a, b, b.qp), smr, src.data(), 100, 2, SHOAL_WR_SEND_WITH_IMM,
                      SHOAL_SEND_SIGNALED, 0x1122334455667788ull),
            0);
  auto rc = wait(b, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_TRUE(rc[0].wc_flags & SHOAL_WC_WITH_IMM);
  EXPECT_EQ(rc[0].imm_data, 0x1122334455667788ull);
  wait(a, 1);
  shoal_ah* reply = nullptr;
  ASSERT_EQ(shoal_create_ah_from_wc(b.pd, &rc[0], &reply), 0) << shoal_last_error();
  ahs.push_back(reply);
  ASSERT_EQ(post_recv(a, a.qp, bmr, back.data(), 100, 3), 0);
  ASSERT_EQ(post_send(b, b.qp, reply, rmr, dst.data(), 100, 4), 0);
  auto ac = wait(a, 1);  // the reply (b's send completion is on b's CQ)
  ASSERT_EQ(ac.size(), 1u);
  EXPECT_EQ(ac[0].opcode, SHOAL_WC_RECV);
  EXPECT_EQ(back, src);
}

// The engine passes a context has run so far ("polls N" in its dump).
uint64_t engine_polls(const shoal_context* ctx) {
  const std::string d = shoal::api::dump(ctx);
  const size_t at = d.find("polls ");
  return at == std::string::npos ? 0 : std::stoull(d.substr(at + 6));
}

// A drain loop's last call (the CQ found empty right after completions)
// returns without running the engine, so the application answers what it
// got before the engine's next pass (sends an ACK, reads the socket); the
// call after that runs it again, so poll_cq alone still makes progress.
TEST_F(Api, PollCqEndsADrainLoopWithoutAnEnginePass) {
  if (threaded()) GTEST_SKIP() << "library mode: poll_cq runs the engine only there";
  auto& src = buffer(64, 1);
  auto& dst = buffer(64);
  shoal_mr* smr = reg(a, src);
  shoal_mr* rmr = reg(b, dst);
  ASSERT_EQ(post_recv(b, b.qp, rmr, dst.data(), 64, 1), 0);
  ASSERT_EQ(post_send(a, a.qp, ah_to(a, b, b.qp), smr, src.data(), 64, 2), 0);
  // Drive until the receive completion is in hand, as a drain loop's body sees it.
  shoal_wc wc[4];
  int n = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (n == 0 && std::chrono::steady_clock::now() < end) {
    shoal_progress(a.ctx, SHOAL_ENGINE_ALL, 0);
    n = shoal_poll_cq(b.cq, 4, wc);
  }
  ASSERT_EQ(n, 1);
  EXPECT_EQ(wc[0].opcode, SHOAL_WC_RECV);
  const uint64_t before = engine_polls(b.ctx);
  EXPECT_EQ(shoal_poll_cq(b.cq, 4, wc), 0);  // the loop's end
  EXPECT_EQ(engine_polls(b.ctx), before) << "the drain loop's last poll_cq ran the engine";
  EXPECT_EQ(shoal_poll_cq(b.cq, 4, wc), 0);  // still empty: now the engine runs
  EXPECT_EQ(engine_polls(b.ctx), before + 1);
  wait(a, 1);
}

TEST_F(Api, UnsignaledSendsCompleteSilentlyErrorsAlways) {
  auto& src = buffer(64, 3);
  auto& dst = buffer(64 * 8);
  shoal_mr* smr = reg(a, src);
  shoal_mr* rmr = reg(b, dst);
  shoal_ah* ah = ah_to(a, b, b.qp);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(post_recv(b, b.qp, rmr, dst.data() + 64 * i, 64, i), 0);
  for (int i = 0; i < 7; ++i) ASSERT_EQ(post_send(a, a.qp, ah, smr, src.data(), 64, i, SHOAL_WR_SEND, 0), 0);
  ASSERT_EQ(post_send(a, a.qp, ah, smr, src.data(), 64, 7, SHOAL_WR_SEND, SHOAL_SEND_SIGNALED), 0);
  EXPECT_EQ(wait(b, 8).size(), 8u);
  auto sc = wait(a, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].wr_id, 7u);
  // A bad lkey: an unsignaled send still completes, with LOC_PROT_ERR.
  shoal_sge sge{reinterpret_cast<uint64_t>(src.data()), 64, 999999};
  shoal_send_wr wr{};
  wr.wr_id = 55;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = SHOAL_WR_SEND;
  wr.ah = ah;
  shoal_send_wr* bad = nullptr;
  ASSERT_EQ(shoal_post_send(a.qp, &wr, &bad), 0);
  sc = wait(a, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].wr_id, 55u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_LOC_PROT_ERR);
}

TEST_F(Api, LocalProtectionIsCheckedOnEverySge) {
  auto& buf = buffer(256);
  auto& ro = buffer(256);
  shoal_mr* mr = reg(b, buf);
  shoal_mr* ro_mr = reg(b, ro, SHOAL_ACCESS_REMOTE_READ);  // no LOCAL_WRITE: cannot receive into it
  ASSERT_EQ(post_recv(b, b.qp, mr, buf.data() + 200, 100, 1), 0);  // runs past the MR's end
  ASSERT_EQ(post_recv(b, b.qp, ro_mr, ro.data(), 100, 2), 0);
  auto rc = wait(b, 2);
  ASSERT_EQ(rc.size(), 2u);
  for (const auto& wc : rc) EXPECT_EQ(wc.status, SHOAL_WC_LOC_PROT_ERR) << wc.wr_id;
  // An MR in use by a posted WR cannot go.
  ASSERT_EQ(post_recv(b, b.qp, mr, buf.data(), 256, 3), 0);
  EXPECT_EQ(shoal_dereg_mr(mr), 0);  // receives do not pin (only sends do); see docs/api.md
  mrs.erase(mrs.begin());
}

TEST_F(Api, SendPinsItsMemoryRegionUntilItCompletes) {
  auto& src = buffer(4096, 9);
  auto& dst = buffer(4096);
  shoal_mr* smr = reg(a, src);
  shoal_mr* rmr = reg(b, dst);
  ASSERT_EQ(post_recv(b, b.qp, rmr, dst.data(), 4096, 1), 0);
  ASSERT_EQ(post_send(a, a.qp, ah_to(a, b, b.qp), smr, src.data(), 4096, 2), 0);
  EXPECT_EQ(shoal_dereg_mr(smr), EBUSY);
  wait(a, 1);
  wait(b, 1);
}

TEST_F(Api, CqOverrunIsReportedAndLosesNothing) {
  // Overrun needs completions to reach the CQ while nobody polls it: in
  // library mode progress() does that; an engine thread hands completions
  // over only when the CQ is polled.
  if (threaded()) GTEST_SKIP() << "library-mode scenario";
  shoal_cq* tiny = nullptr;
  ASSERT_EQ(shoal_create_cq(b.ctx, 2, SHOAL_ENGINE_ANY, &tiny), 0);
  shoal_qp_init_attr qa{};
  qa.qp_type = SHOAL_QPT_RUD;
  qa.send_cq = tiny;
  qa.recv_cq = tiny;
  qa.cap.max_recv_wr = 16;
  qa.cap.max_recv_sge = 1;
  shoal_qp* qp = nullptr;
  ASSERT_EQ(shoal_create_qp(b.pd, &qa, &qp), 0);
  auto& src = buffer(32, 5);
  auto& dst = buffer(32 * 5);
  shoal_mr* smr = reg(a, src);
  shoal_mr* rmr = reg(b, dst);
  shoal_ah* ah = ah_to(a, b, qp);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(post_recv(b, qp, rmr, dst.data() + 32 * i, 32, i), 0);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(post_send(a, a.qp, ah, smr, src.data(), 32, i), 0);
  wait(a, 5);
  // Let b's engine take all five while nobody polls its 2-deep CQ.
  for (int i = 0; i < 20000; ++i) {
    shoal_progress(b.ctx, SHOAL_ENGINE_ALL, 0);
    shoal_progress(a.ctx, SHOAL_ENGINE_ALL, 0);
  }
  shoal_cq_attr ca;
  ASSERT_EQ(shoal_query_cq(tiny, &ca, sizeof(ca)), 0);
  EXPECT_EQ(ca.held_now, 3u);
  shoal_wc wc[8];
  EXPECT_EQ(shoal_poll_cq(tiny, 8, wc), -EOVERFLOW);
  std::vector<uint64_t> ids;
  for (int tries = 0; tries < 100 && ids.size() < 5; ++tries) {
    const int n = shoal_poll_cq(tiny, 8, wc);
    ASSERT_GE(n, 0);
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(wc[i].status, SHOAL_WC_SUCCESS);
      ids.push_back(wc[i].wr_id);
    }
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  ASSERT_EQ(shoal_query_cq(tiny, &ca, sizeof(ca)), 0);
  EXPECT_EQ(ca.overruns, 1u);
  EXPECT_EQ(ca.held_total, 3u);
  ASSERT_EQ(shoal_destroy_qp(qp), 0);
  ASSERT_EQ(shoal_destroy_cq(tiny), 0);
}

TEST_F(Api, DestroyingAQpFlushesItsReceivesAndObjectsGuardTheirUsers) {
  shoal_qp* qp = make_qp(b, SHOAL_QPT_RUD);
  auto& buf = buffer(64 * 3);
  shoal_mr* mr = reg(b, buf);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(post_recv(b, qp, mr, buf.data() + 64 * i, 64, 10 + i), 0);
  EXPECT_EQ(shoal_destroy_cq(b.cq), EBUSY);
  EXPECT_EQ(shoal_dealloc_pd(b.pd), EBUSY);
  EXPECT_EQ(shoal_close(b.ctx), EBUSY);
  ASSERT_EQ(shoal_destroy_qp(qp), 0);
  shoal_wc wc[8];
  const int n = shoal_poll_cq(b.cq, 8, wc);
  ASSERT_EQ(n, 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(wc[i].status, SHOAL_WC_WR_FLUSH_ERR);
    EXPECT_EQ(wc[i].wr_id, 10u + i);
  }
}

TEST_F(Api, VanishedPeerFailsOutstandingSendsWithRetryExceeded) {
  auto& src = buffer(2000, 1);
  shoal_mr* smr = reg(a, src);
  shoal_ah* ah = ah_to(a, b, b.qp);
  // b goes away entirely.
  ASSERT_EQ(shoal_destroy_qp(b.qp), 0);
  b.qp = nullptr;
  ASSERT_EQ(shoal_destroy_cq(b.cq), 0);
  b.cq = nullptr;
  ASSERT_EQ(shoal_dealloc_pd(b.pd), 0);
  b.pd = nullptr;
  ASSERT_EQ(shoal_close(b.ctx), 0);
  b.ctx = nullptr;
  ASSERT_EQ(post_send(a, a.qp, ah, smr, src.data(), 2000, 1), 0);
  ASSERT_EQ(post_send(a, a.qp, ah, smr, src.data(), 2000, 2), 0);
  auto sc = wait(a, 2, 30);
  ASSERT_EQ(sc.size(), 2u);
  for (const auto& wc : sc) EXPECT_EQ(wc.status, SHOAL_WC_RETRY_EXC_ERR);
}

// A QP's budgets (SHOAL_QP_INIT_ATTR_BUDGETS) end its WRs before those of
// a QP with the context's defaults, on the same PDC: the budgeted WR
// completes first while the other is still being retried.
TEST_F(Api, QpBudgetsEndWorkBeforeTheContextDefaults) {
  shoal_qp_init_attr qa{};
  qa.comp_mask = SHOAL_QP_INIT_ATTR_BUDGETS;
  qa.qp_type = SHOAL_QPT_RUD;
  qa.send_cq = a.cq;
  qa.recv_cq = a.cq;
  qa.cap.max_send_wr = 16;
  qa.cap.max_recv_wr = 16;
  qa.cap.max_send_sge = 1;
  qa.cap.max_recv_sge = 1;
  // Two QPs, one budget each: a busy machine may hold the peer's engine
  // thread off the CPU for milliseconds, which a retry budget rightly sees
  // as silence, so the RNR part must not carry one.
  qa.rnr_budget_us = 200;  // the default: 7 doubling waits from 50 us, about 6 ms
  shoal_qp* qp = nullptr;
  ASSERT_EQ(shoal_create_qp(a.pd, &qa, &qp), 0) << shoal_last_error();
  extra_qps[0].push_back(qp);
  qa.rnr_budget_us = 0;
  qa.retry_budget_us = 20000;  // the default: 12 timeouts, hundreds of ms
  shoal_qp* rqp = nullptr;
  ASSERT_EQ(shoal_create_qp(a.pd, &qa, &rqp), 0) << shoal_last_error();
  extra_qps[0].push_back(rqp);
  auto& src = buffer(100, 1);
  shoal_mr* smr = reg(a, src);
  shoal_ah* ah = ah_to(a, b, b.qp);
  // No receive posted at b.
  ASSERT_EQ(post_send(a, a.qp, ah, smr, src.data(), 100, 10), 0);
  ASSERT_EQ(post_send(a, qp, ah, smr, src.data(), 100, 1), 0);
  // Both in one wait: an application thread held off the CPU for longer
  // than the gap between the two (a busy machine, threaded mode) finds both
  // in the CQ at once. What matters is their order.
  auto sc = wait(a, 2, 30);
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[0].wr_id, 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_RNR_RETRY_EXC_ERR);
  EXPECT_EQ(sc[1].wr_id, 10u);
  EXPECT_EQ(sc[1].status, SHOAL_WC_RNR_RETRY_EXC_ERR);
  // b vanishes.
  ASSERT_EQ(shoal_destroy_qp(b.qp), 0);
  b.qp = nullptr;
  ASSERT_EQ(shoal_destroy_cq(b.cq), 0);
  b.cq = nullptr;
  ASSERT_EQ(shoal_dealloc_pd(b.pd), 0);
  b.pd = nullptr;
  ASSERT_EQ(shoal_close(b.ctx), 0) << shoal_last_error();
  b.ctx = nullptr;
  ASSERT_EQ(post_send(a, a.qp, ah, smr, src.data(), 100, 20), 0);
  ASSERT_EQ(post_send(a, rqp, ah, smr, src.data(), 100, 2), 0);
  sc = wait(a, 2, 30);
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[0].wr_id, 2u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_RETRY_EXC_ERR);
  EXPECT_EQ(sc[1].wr_id, 20u);
  EXPECT_EQ(sc[1].status, SHOAL_WC_RETRY_EXC_ERR);
}

TEST_F(Api, RdmaWriteLandsInTheRemoteRegionAndWithImmCompletesThere) {
  auto& src = buffer(3 * mtu + 17);
  auto& region = buffer(4 * mtu, 0);
  auto& note = buffer(8);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 5 + 1);
  shoal_mr* smr = reg(a, src);
  shoal_mr* rmr = reg(b, region, SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_WRITE);
  shoal_mr* nmr = reg(b, note);
  EXPECT_NE(rmr->rkey, 0u);
  shoal_ah* ah = ah_to(a, b, b.qp);
  shoal_sge sge{reinterpret_cast<uint64_t>(src.data()), static_cast<uint32_t>(src.size()), smr->lkey};
  shoal_send_wr wr{};
  wr.wr_id = 1;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = SHOAL_WR_RDMA_WRITE;
  wr.send_flags = SHOAL_SEND_SIGNALED;
  wr.ah = ah;
  wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(region.data()) + 64;
  wr.wr.rdma.rkey = rmr->rkey;
  shoal_send_wr* bad = nullptr;
  ASSERT_EQ(shoal_post_send(a.qp, &wr, &bad), 0) << shoal_last_error();
  auto sc = wait(a, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_SUCCESS);
  EXPECT_EQ(sc[0].opcode, SHOAL_WC_RDMA_WRITE);
  EXPECT_TRUE(std::equal(src.begin(), src.end(), region.begin() + 64));
  for (size_t i = 0; i < 64; ++i) ASSERT_EQ(region[i], 0);
  // WRITE_WITH_IMM: the data goes to the region, a receive WR reports it.
  ASSERT_EQ(post_recv(b, b.qp, nmr, note.data(), 8, 42), 0);
  wr.wr_id = 2;
  wr.opcode = SHOAL_WR_RDMA_WRITE_WITH_IMM;
  wr.imm_data = 99;
  wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(region.data());
  ASSERT_EQ(shoal_post_send(a.qp, &wr, &bad), 0) << shoal_last_error();
  auto rc = wait(b, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].opcode, SHOAL_WC_RECV_RDMA_WITH_IMM);
  EXPECT_EQ(rc[0].wr_id, 42u);
  EXPECT_EQ(rc[0].imm_data, 99u);
  EXPECT_EQ(rc[0].byte_len, src.size());
  wait(a, 1);
}

TEST_F(Api, RdmaWriteWithABadRkeyLeavesTargetMemoryUntouched) {
  auto& src = buffer(500, 7);
  auto& region = buffer(1000, 0x33);
  shoal_mr* smr = reg(a, src);
  shoal_mr* rmr = reg(b, region, SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_WRITE);
  shoal_sge sge{reinterpret_cast<uint64_t>(src.data()), 500, smr->lkey};
  shoal_send_wr wr{};
  wr.wr_id = 5;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = SHOAL_WR_RDMA_WRITE;
  wr.send_flags = SHOAL_SEND_SIGNALED;
  wr.ah = ah_to(a, b, b.qp);
  wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(region.data());
  wr.wr.rdma.rkey = rmr->rkey ^ 0x1;  // not the key
  shoal_send_wr* bad = nullptr;
  ASSERT_EQ(shoal_post_send(a.qp, &wr, &bad), 0);
  auto sc = wait(a, 1, 30);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_REM_ACCESS_ERR);
  for (uint8_t v : region) ASSERT_EQ(v, 0x33);
}

TEST_F(Api, SendWithNoReceivePostedRetriesThenFailsWithRnrRetryExceeded) {
  auto& src = buffer(100, 1);
  shoal_mr* smr = reg(a, src);
  ASSERT_EQ(post_send(a, a.qp, ah_to(a, b, b.qp), smr, src.data(), 100, 1), 0);
  auto sc = wait(a, 1, 30);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_RNR_RETRY_EXC_ERR);
}

TEST_F(Api, SendToADestroyedQpFailsWithRemInvReqErr) {
  shoal_qp* gone = make_qp(b, SHOAL_QPT_RUD);
  shoal_ah* ah = ah_to(a, b, gone);
  ASSERT_EQ(shoal_destroy_qp(gone), 0);
  auto& src = buffer(100, 1);
  shoal_mr* smr = reg(a, src);
  ASSERT_EQ(post_send(a, a.qp, ah, smr, src.data(), 100, 1), 0);
  auto sc = wait(a, 1, 30);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_REM_INV_REQ_ERR);
}

TEST_F(Api, RdmaReadBringsRemoteBytesAndPastTheMrEndFails) {
  auto& region = buffer(2 * mtu + 300);
  auto& sink = buffer(mtu + 700, 0);
  auto& bad_sink = buffer(64, 0);
  for (size_t i = 0; i < region.size(); ++i) region[i] = static_cast<uint8_t>(i * 11 + 3);
  shoal_mr* rmr = reg(b, region, SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_READ);
  shoal_mr* smr = reg(a, sink);
  shoal_mr* bmr = reg(a, bad_sink);
  shoal_ah* ah = ah_to(a, b, b.qp);
  shoal_sge sge{reinterpret_cast<uint64_t>(sink.data()), static_cast<uint32_t>(sink.size()), smr->lkey};
  shoal_send_wr wr{};
  wr.wr_id = 1;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = SHOAL_WR_RDMA_READ;
  wr.send_flags = SHOAL_SEND_SIGNALED;
  wr.ah = ah;
  wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(region.data()) + 100;
  wr.wr.rdma.rkey = rmr->rkey;
  shoal_send_wr* bad = nullptr;
  ASSERT_EQ(shoal_post_send(a.qp, &wr, &bad), 0) << shoal_last_error();
  auto sc = wait(a, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_SUCCESS);
  EXPECT_EQ(sc[0].opcode, SHOAL_WC_RDMA_READ);
  EXPECT_TRUE(std::equal(sink.begin(), sink.end(), region.begin() + 100));
  // A READ that runs past the end of the remote MR fails, and writes nothing.
  shoal_sge bsge{reinterpret_cast<uint64_t>(bad_sink.data()), 64, bmr->lkey};
  wr.wr_id = 2;
  wr.sg_list = &bsge;
  wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(region.data()) + region.size() - 10;
  ASSERT_EQ(shoal_post_send(a.qp, &wr, &bad), 0);
  sc = wait(a, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_REM_ACCESS_ERR);
  for (uint8_t v : bad_sink) ASSERT_EQ(v, 0);
  // The READ's own SGE must be writable locally.
  auto& ro = buffer(64);
  shoal_mr* romr = reg(a, ro, SHOAL_ACCESS_REMOTE_READ);
  shoal_sge rosge{reinterpret_cast<uint64_t>(ro.data()), 64, romr->lkey};
  wr.wr_id = 3;
  wr.sg_list = &rosge;
  ASSERT_EQ(shoal_post_send(a.qp, &wr, &bad), 0);
  sc = wait(a, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_LOC_PROT_ERR);
}

TEST_F(Api, APostListStopsAtTheFirstBadWr) {
  auto& src = buffer(64);
  shoal_mr* smr = reg(a, src, SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_WRITE);
  shoal_ah* ah = ah_to(a, b, b.qp);
  shoal_sge sge{reinterpret_cast<uint64_t>(src.data()), 64, smr->lkey};
  shoal_send_wr w1{}, w2{};
  w1.wr_id = 1;
  w1.sg_list = &sge;
  w1.num_sge = 1;
  w1.opcode = SHOAL_WR_SEND;
  w1.ah = ah;
  w1.next = &w2;
  w2 = w1;
  w2.wr_id = 2;
  w2.next = nullptr;
  w2.opcode = 77;  // no such opcode
  shoal_send_wr* bad = nullptr;
  EXPECT_EQ(shoal_post_send(a.qp, &w1, &bad), EINVAL);
  EXPECT_EQ(bad, &w2);  // the SEND before it was posted
  EXPECT_STRNE(shoal_last_error(), "");
  // The SEND before it was posted and must end before its buffer goes out
  // of scope (no receive is posted: it ends in RNR_RETRY_EXC_ERR).
  auto sc = wait(a, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].wr_id, 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_RNR_RETRY_EXC_ERR);
}

TEST_F(Api, ScatterGatherListsGatherOnSendAndScatterOnReceive) {
  // Three pieces from two MRs, sent as one message across packet bounds,
  // land in four receive pieces of other sizes.
  const uint32_t n1 = mtu - 5, n2 = 7, n3 = mtu + 300;
  auto& one = buffer(n1 + n3);
  auto& two = buffer(n2);
  for (size_t i = 0; i < one.size(); ++i) one[i] = static_cast<uint8_t>(i * 13 + 1);
  for (size_t i = 0; i < two.size(); ++i) two[i] = static_cast<uint8_t>(200 + i);
  shoal_mr* m1 = reg(a, one);
  shoal_mr* m2 = reg(a, two);
  std::vector<uint8_t> expect;
  expect.insert(expect.end(), one.begin(), one.begin() + n1);
  expect.insert(expect.end(), two.begin(), two.end());
  expect.insert(expect.end(), one.begin() + n1, one.end());
  const uint32_t total = static_cast<uint32_t>(expect.size());
  auto& sink = buffer(total + 64, 0xEE);
  shoal_mr* rm = reg(b, sink);
  // Receive pieces: 100, mtu, 1, the rest (+ 16 spare), with gaps between.
  const uint32_t r1 = 100, r2 = mtu, r3 = 1, r4 = total - r1 - r2 - r3 + 16;
  ASSERT_LE(r1 + r2 + r3 + r4 + 12, sink.size());
  shoal_sge rs[4] = {{reinterpret_cast<uint64_t>(sink.data()), r1, rm->lkey},
                     {reinterpret_cast<uint64_t>(sink.data()) + r1 + 4, r2, rm->lkey},
                     {reinterpret_cast<uint64_t>(sink.data()) + r1 + r2 + 8, r3, rm->lkey},
                     {reinterpret_cast<uint64_t>(sink.data()) + r1 + r2 + r3 + 12, r4, rm->lkey}};
  shoal_qp* bq = make_qp(b, SHOAL_QPT_RUD, 4, 4);
  shoal_qp* aq = make_qp(a, SHOAL_QPT_RUD, 4, 4);
  extra_qps[0].push_back(aq);
  extra_qps[1].push_back(bq);
  shoal_recv_wr rw{};
  rw.wr_id = 9;
  rw.sg_list = rs;
  rw.num_sge = 4;
  shoal_recv_wr* rbad = nullptr;
  ASSERT_EQ(shoal_post_recv(bq, &rw, &rbad), 0) << shoal_last_error();
  shoal_sge ss[3] = {{reinterpret_cast<uint64_t>(one.data()), n1, m1->lkey},
                     {reinterpret_cast<uint64_t>(two.data()), n2, m2->lkey},
                     {reinterpret_cast<uint64_t>(one.data()) + n1, n3, m1->lkey}};
  shoal_send_wr sw{};
  sw.wr_id = 8;
  sw.sg_list = ss;
  sw.num_sge = 3;
  sw.opcode = SHOAL_WR_SEND;
  sw.send_flags = SHOAL_SEND_SIGNALED;
  sw.ah = ah_to(a, b, bq);
  shoal_send_wr* sbad = nullptr;
  ASSERT_EQ(shoal_post_send(aq, &sw, &sbad), 0) << shoal_last_error();
  // Both MRs are pinned by the one WR until it completes.
  EXPECT_EQ(shoal_dereg_mr(m2), EBUSY);
  auto rc = wait(b, 1);
  auto sc = wait(a, 1);
  ASSERT_EQ(rc.size(), 1u);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_SUCCESS);
  EXPECT_EQ(rc[0].status, SHOAL_WC_SUCCESS);
  EXPECT_EQ(rc[0].byte_len, total);
  std::vector<uint8_t> got;
  for (const shoal_sge& r : rs) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(r.addr);
    got.insert(got.end(), p, p + r.length);
  }
  got.resize(total);
  EXPECT_EQ(got, expect);
  // The gaps between the pieces and the spare bytes are untouched.
  for (uint32_t gap : {r1, r1 + 4 + r2, r1 + r2 + 8 + r3}) EXPECT_EQ(sink[gap], 0xEE);
  EXPECT_EQ(sink[r1 + r2 + r3 + 12 + (total - r1 - r2 - r3)], 0xEE);
}

TEST_F(Api, ScatterGatherReadAndWriteAndABadSecondSge) {
  auto& region = buffer(3 * mtu, 0);
  for (size_t i = 0; i < region.size(); ++i) region[i] = static_cast<uint8_t>(i * 5 + 9);
  shoal_mr* rmr = reg(b, region, SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_READ | SHOAL_ACCESS_REMOTE_WRITE);
  auto& x = buffer(mtu + 3, 0);
  auto& y = buffer(mtu, 0);
  shoal_mr* xm = reg(a, x);
  shoal_mr* ym = reg(a, y);
  shoal_qp* aq = make_qp(a, SHOAL_QPT_RUD, 4, 1);
  extra_qps[0].push_back(aq);
  shoal_sge sg[2] = {{reinterpret_cast<uint64_t>(x.data()), static_cast<uint32_t>(x.size()), xm->lkey},
                     {reinterpret_cast<uint64_t>(y.data()), static_cast<uint32_t>(y.size()), ym->lkey}};
  shoal_send_wr wr{};
  wr.wr_id = 1;
  wr.sg_list = sg;
  wr.num_sge = 2;
  wr.opcode = SHOAL_WR_RDMA_READ;
  wr.send_flags = SHOAL_SEND_SIGNALED;
  wr.ah = ah_to(a, b, b.qp);
  wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(region.data()) + 10;
  wr.wr.rdma.rkey = rmr->rkey;
  shoal_send_wr* bad = nullptr;
  ASSERT_EQ(shoal_post_send(aq, &wr, &bad), 0) << shoal_last_error();
  auto sc = wait(a, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_SUCCESS);
  EXPECT_TRUE(std::equal(x.begin(), x.end(), region.begin() + 10));
  EXPECT_TRUE(std::equal(y.begin(), y.end(), region.begin() + 10 + x.size()));
  // A WRITE gathers the same way: y then x, at the region's start.
  std::swap(sg[0], sg[1]);
  for (auto& v : x) v ^= 0x5A;
  wr.wr_id = 2;
  wr.opcode = SHOAL_WR_RDMA_WRITE;
  wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(region.data());
  ASSERT_EQ(shoal_post_send(aq, &wr, &bad), 0) << shoal_last_error();
  sc = wait(a, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_SUCCESS);
  EXPECT_TRUE(std::equal(y.begin(), y.end(), region.begin()));
  EXPECT_TRUE(std::equal(x.begin(), x.end(), region.begin() + y.size()));
  // Every SGE is checked: a bad lkey in the second fails the WR at once.
  sg[1].lkey = 999;
  wr.wr_id = 3;
  ASSERT_EQ(shoal_post_send(aq, &wr, &bad), 0);
  sc = wait(a, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].wr_id, 3u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_LOC_PROT_ERR);
  // ... and pinned nothing.
  EXPECT_EQ(shoal_dereg_mr(ym), 0);
  mrs.erase(std::find(mrs.begin(), mrs.end(), ym));
}

TEST_F(Api, InlineSendsCopyAtPostUpToTheQpsLimit) {
  shoal_qp_init_attr qa{};
  qa.qp_type = SHOAL_QPT_RUD;
  qa.send_cq = a.cq;
  qa.recv_cq = a.cq;
  qa.cap.max_send_wr = 16;
  qa.cap.max_recv_wr = 16;
  qa.cap.max_send_sge = 2;
  qa.cap.max_recv_sge = 1;
  qa.cap.max_inline_data = 100000;
  shoal_qp* qp = nullptr;
  EXPECT_EQ(shoal_create_qp(a.pd, &qa, &qp), EINVAL);  // above the context's max_inline_data
  shoal_context_attr ca;
  ASSERT_EQ(shoal_query_context(a.ctx, &ca, sizeof(ca)), 0);
  ASSERT_GT(ca.max_inline_data, 32u);
  qa.cap.max_inline_data = 32;
  ASSERT_EQ(shoal_create_qp(a.pd, &qa, &qp), 0) << shoal_last_error();
  extra_qps[0].push_back(qp);
  auto& sink = buffer(64, 0);
  shoal_mr* rmr = reg(b, sink);
  ASSERT_EQ(post_recv(b, b.qp, rmr, sink.data(), 64, 5), 0);
  // Not registered at all: inline bytes need no lkey.
  char head[] = "inline:", tail[] = "copied at post";
  shoal_sge sg[2] = {{reinterpret_cast<uint64_t>(head), 7, 0}, {reinterpret_cast<uint64_t>(tail), 14, 0}};
  shoal_send_wr wr{};
  wr.wr_id = 4;
  wr.sg_list = sg;
  wr.num_sge = 2;
  wr.opcode = SHOAL_WR_SEND;
  wr.send_flags = SHOAL_SEND_INLINE | SHOAL_SEND_SIGNALED;
  wr.ah = ah_to(a, b, b.qp);
  shoal_send_wr* bad = nullptr;
  ASSERT_EQ(shoal_post_send(qp, &wr, &bad), 0) << shoal_last_error();
  std::memset(tail, 'X', 14);  // the buffer is the application's again at once
  auto rc = wait(b, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].byte_len, 21u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(sink.data()), 21), "inline:copied at post");
  EXPECT_EQ(wait(a, 1).size(), 1u);
  // Above the QP's limit: EINVAL at post, nothing sent.
  auto& big = buffer(33, 1);
  shoal_sge bs{reinterpret_cast<uint64_t>(big.data()), 33, 0};
  wr.sg_list = &bs;
  wr.num_sge = 1;
  EXPECT_EQ(shoal_post_send(qp, &wr, &bad), EINVAL);
  EXPECT_EQ(bad, &wr);
}

TEST_F(Api, SendLongerThanTheReceiveBufferFailsOnBothSides) {
  auto& src = buffer(mtu + 10, 3);
  auto& small = buffer(100, 0xEE);
  shoal_mr* smr = reg(a, src);
  shoal_mr* rmr = reg(b, small);
  ASSERT_EQ(post_recv(b, b.qp, rmr, small.data(), 50, 1), 0);
  ASSERT_EQ(post_send(a, a.qp, ah_to(a, b, b.qp), smr, src.data(), static_cast<uint32_t>(src.size()), 2), 0);
  auto rc = wait(b, 1);
  auto sc = wait(a, 1);
  ASSERT_EQ(rc.size(), 1u);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(rc[0].status, SHOAL_WC_LOC_LEN_ERR);
  EXPECT_EQ(sc[0].status, SHOAL_WC_REM_INV_REQ_ERR);
  for (uint8_t v : small) ASSERT_EQ(v, 0xEE);
}

// Messages of 1 GiB (the floor for max message size), segmented by
// the core into 262144 packets. Slow: only with SHOAL_CONFORMANCE_HUGE=1
// (the slow suite's conformance_sim_1gib entry).
TEST_F(Api, OneGibibyteSendAndWriteArriveIntact) {
  if (!std::getenv("SHOAL_CONFORMANCE_HUGE")) GTEST_SKIP() << "set SHOAL_CONFORMANCE_HUGE=1 (slow suite)";
  const size_t n = size_t{1} << 30;
  auto& src = buffer(n);
  auto& dst = buffer(n + 64, 0xEE);
  for (size_t i = 0; i < n; i += 4096) src[i] = static_cast<uint8_t>(i >> 12);
  src[n - 1] = 0x5A;
  shoal_mr* smr = reg(a, src);
  shoal_mr* rmr = reg(b, dst, SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_WRITE);
  shoal_ah* ah = ah_to(a, b, b.qp);
  ASSERT_EQ(post_recv(b, b.qp, rmr, dst.data(), static_cast<uint32_t>(n), 1), 0);
  ASSERT_EQ(post_send(a, a.qp, ah, smr, src.data(), static_cast<uint32_t>(n), 2), 0) << shoal_last_error();
  auto rc = wait(b, 1, 300);
  auto sc = wait(a, 1, 300);
  ASSERT_EQ(rc.size(), 1u);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(rc[0].status, SHOAL_WC_SUCCESS);
  EXPECT_EQ(rc[0].byte_len, n);
  EXPECT_EQ(sc[0].status, SHOAL_WC_SUCCESS);
  EXPECT_TRUE(std::equal(src.begin(), src.end(), dst.begin()));
  EXPECT_EQ(dst[n], 0xEE);
  // The same bytes by RDMA WRITE, 64 bytes in: placed at their address.
  std::fill(dst.begin(), dst.end(), 0);
  shoal_sge sge{reinterpret_cast<uint64_t>(src.data()), static_cast<uint32_t>(n), smr->lkey};
  shoal_send_wr wr{};
  wr.wr_id = 3;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = SHOAL_WR_RDMA_WRITE;
  wr.send_flags = SHOAL_SEND_SIGNALED;
  wr.ah = ah;
  wr.wr.rdma.remote_addr = reinterpret_cast<uint64_t>(dst.data()) + 64;
  wr.wr.rdma.rkey = rmr->rkey;
  shoal_send_wr* bad = nullptr;
  ASSERT_EQ(shoal_post_send(a.qp, &wr, &bad), 0) << shoal_last_error();
  sc = wait(a, 1, 300);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, SHOAL_WC_SUCCESS);
  EXPECT_TRUE(std::equal(src.begin(), src.end(), dst.begin() + 64));
  EXPECT_EQ(dst[63], 0);
}

// Two contexts with two engines each: every engine has its own QPs, CQs and
// PDCs, QP numbers carry the engine, a reply through the completion's AH
// reaches the right engine, and an rkey works on every engine of its context.
TEST(ApiEngines, SeveralEnginesPerContextShareNothingButTheContext) {
  struct Ctx {
    shoal_context* ctx = nullptr;
    shoal_pd* pd = nullptr;
    shoal_cq* cq[2] = {};
    shoal_qp* qp[2] = {};
    std::string addr;
  } side[2];
  const std::string uri = uri_for_test();
  shoal_open_attr oa = open_attr();
  oa.comp_mask |= SHOAL_OPEN_ATTR_NUM_ENGINES;
  oa.num_engines = 2;
  for (Ctx& c : side) {
    ASSERT_EQ(shoal_open(uri.c_str(), &oa, &c.ctx), 0) << shoal_last_error();
    shoal_context_attr ca;
    ASSERT_EQ(shoal_query_context(c.ctx, &ca, sizeof(ca)), 0);
    EXPECT_EQ(ca.num_engines, 2u);
    c.addr = ca.local_addr;
    ASSERT_EQ(shoal_alloc_pd(c.ctx, &c.pd), 0);
    for (int e = 0; e < 2; ++e) {
      ASSERT_EQ(shoal_create_cq(c.ctx, 256, e, &c.cq[e]), 0) << shoal_last_error();
      shoal_cq_attr qa;
      ASSERT_EQ(shoal_query_cq(c.cq[e], &qa, sizeof(qa)), 0);
      EXPECT_EQ(qa.engine, static_cast<uint32_t>(e));
      shoal_qp_init_attr ia{};
      ia.qp_type = SHOAL_QPT_RUD;
      ia.send_cq = ia.recv_cq = c.cq[e];
      ia.cap.max_send_wr = ia.cap.max_recv_wr = 64;
      ia.cap.max_send_sge = ia.cap.max_recv_sge = 1;
      ASSERT_EQ(shoal_create_qp(c.pd, &ia, &c.qp[e]), 0) << shoal_last_error();
      EXPECT_EQ(SHOAL_QPN_ENGINE(shoal_qp_num(c.qp[e])), static_cast<uint32_t>(e));
    }
  }
  shoal_cq* extra = nullptr;
  EXPECT_EQ(shoal_create_cq(side[0].ctx, 16, 2, &extra), EINVAL);  // no engine 2
  {
    shoal_qp_init_attr ia{};
    ia.qp_type = SHOAL_QPT_RUD;
    ia.send_cq = side[0].cq[0];
    ia.recv_cq = side[0].cq[1];
    shoal_qp* q = nullptr;
    EXPECT_EQ(shoal_create_qp(side[0].pd, &ia, &q), EINVAL);  // CQs of two engines
  }
  auto drive_until = [&](shoal_cq* cq, shoal_wc* wc) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < end) {
      for (Ctx& c : side) shoal_progress(c.ctx, SHOAL_ENGINE_ALL, 0);
      if (shoal_poll_cq(cq, 1, wc) == 1) return true;
    }
    return false;
  };
  std::vector<uint8_t> bufs(1024, 0);
  shoal_mr* mr[2];
  for (int k = 0; k < 2; ++k)
    ASSERT_EQ(shoal_reg_mr(side[k].pd, bufs.data() + k * 512, 512,
                           SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_WRITE, &mr[k]), 0);
  std::vector<shoal_ah*> ahs;
  auto post_recv = [&](shoal_qp* qp, int k, uint8_t* at, uint64_t wr_id) {
    shoal_sge rs{reinterpret_cast<uint64_t>(at), 16, mr[k]->lkey};
    shoal_recv_wr rw{};
    rw.wr_id = wr_id;
    rw.sg_list = &rs;
    rw.num_sge = 1;
    shoal_recv_wr* bad;
    return shoal_post_recv(qp, &rw, &bad);
  };
  auto post_send = [&](shoal_qp* qp, shoal_ah* ah, int k, uint8_t* at, uint32_t opcode, uint64_t raddr = 0) {
    shoal_sge ss{reinterpret_cast<uint64_t>(at), 2, mr[k]->lkey};
    shoal_send_wr sw{};
    sw.wr_id = 7;
    sw.sg_list = &ss;
    sw.num_sge = 1;
    sw.opcode = opcode;
    sw.send_flags = SHOAL_SEND_SIGNALED;
    sw.ah = ah;
    sw.wr.rdma.remote_addr = raddr;
    sw.wr.rdma.rkey = mr[1]->rkey;
    shoal_send_wr* bad;
    return shoal_post_send(qp, &sw, &bad);
  };
  // Every engine of side 0 to every engine of side 1, and a reply back
  // through the AH made from the receive completion.
  uint64_t side0_engine1 = 0;
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      const int n = i * 2 + j;
      uint8_t* tx0 = bufs.data() + n * 16;         // side 0's message
      uint8_t* rx0 = bufs.data() + 256 + n * 16;   // side 0's receive buffer (the reply)
      uint8_t* rx1 = bufs.data() + 512 + n * 16;   // side 1's receive buffer
      tx0[0] = static_cast<uint8_t>('a' + i);
      tx0[1] = static_cast<uint8_t>('0' + j);
      ASSERT_EQ(post_recv(side[1].qp[j], 1, rx1, 100 + n), 0);
      shoal_ah* ah = nullptr;
      ASSERT_EQ(shoal_create_ah(side[0].pd, side[1].addr.c_str(), shoal_qp_num(side[1].qp[j]), &ah), 0);
      ahs.push_back(ah);
      ASSERT_EQ(post_send(side[0].qp[i], ah, 0, tx0, SHOAL_WR_SEND), 0) << shoal_last_error();
      shoal_wc wc;
      ASSERT_TRUE(drive_until(side[1].cq[j], &wc)) << shoal::api::dump(side[1].ctx);
      EXPECT_EQ(wc.status, SHOAL_WC_SUCCESS);
      EXPECT_EQ(wc.wr_id, 100u + n);
      EXPECT_EQ(wc.qp_num, shoal_qp_num(side[1].qp[j]));
      EXPECT_EQ(wc.src_qp, shoal_qp_num(side[0].qp[i]));
      if (i == 1) side0_engine1 = wc.peer_id;
      EXPECT_EQ(rx1[0], 'a' + i);
      EXPECT_EQ(rx1[1], '0' + j);
      shoal_ah* back = nullptr;
      ASSERT_EQ(shoal_create_ah_from_wc(side[1].pd, &wc, &back), 0);
      ahs.push_back(back);
      shoal_wc sc;
      ASSERT_TRUE(drive_until(side[0].cq[i], &sc));
      EXPECT_EQ(sc.status, SHOAL_WC_SUCCESS);
      EXPECT_EQ(sc.opcode, SHOAL_WC_SEND);
      ASSERT_EQ(post_recv(side[0].qp[i], 0, rx0, 200 + n), 0);
      ASSERT_EQ(post_send(side[1].qp[j], back, 1, rx1, SHOAL_WR_SEND), 0) << shoal_last_error();
      ASSERT_TRUE(drive_until(side[0].cq[i], &wc));
      EXPECT_EQ(wc.status, SHOAL_WC_SUCCESS);
      EXPECT_EQ(wc.wr_id, 200u + n);
      EXPECT_EQ(wc.src_qp, shoal_qp_num(side[1].qp[j]));
      EXPECT_EQ(rx0[0], 'a' + i);
      ASSERT_TRUE(drive_until(side[1].cq[j], &sc));
      EXPECT_EQ(sc.status, SHOAL_WC_SUCCESS);
      // One rkey serves every engine of its context.
      uint8_t* dst = bufs.data() + 512 + 128 + n * 2;
      ASSERT_EQ(post_send(side[0].qp[i], ah, 0, tx0, SHOAL_WR_RDMA_WRITE, reinterpret_cast<uint64_t>(dst)), 0);
      ASSERT_TRUE(drive_until(side[0].cq[i], &sc));
      EXPECT_EQ(sc.status, SHOAL_WC_SUCCESS) << shoal_wc_status_str(sc.status);
      EXPECT_EQ(dst[0], 'a' + i);
      EXPECT_EQ(dst[1], '0' + j);
    }
  }
  // An address and a QP number that disagree (side 0's engine-1 address,
  // an engine-0 QP number) reach an engine that refuses the request.
  {
    char engine1[SHOAL_ADDR_STRLEN];
    ASSERT_EQ(shoal_peer_addr_str(side[1].ctx, side0_engine1, engine1, sizeof(engine1)), 0);
    EXPECT_NE(std::string(engine1), side[0].addr);
    shoal_ah* wrong = nullptr;
    ASSERT_EQ(shoal_create_ah(side[1].pd, engine1, shoal_qp_num(side[0].qp[0]), &wrong), 0);
    ahs.push_back(wrong);
    ASSERT_EQ(post_send(side[1].qp[0], wrong, 1, bufs.data() + 512, SHOAL_WR_SEND), 0);
    shoal_wc wc;
    ASSERT_TRUE(drive_until(side[1].cq[0], &wc));
    EXPECT_EQ(wc.status, SHOAL_WC_REM_INV_REQ_ERR) << shoal_wc_status_str(wc.status);
  }
  for (shoal_ah* ah : ahs) EXPECT_EQ(shoal_destroy_ah(ah), 0);
  for (int k = 0; k < 2; ++k) EXPECT_EQ(shoal_dereg_mr(mr[k]), 0) << shoal_last_error();
  for (Ctx& c : side) {
    for (int e = 0; e < 2; ++e) EXPECT_EQ(shoal_destroy_qp(c.qp[e]), 0);
    for (int e = 0; e < 2; ++e) EXPECT_EQ(shoal_destroy_cq(c.cq[e]), 0);
    EXPECT_EQ(shoal_dealloc_pd(c.pd), 0);
    EXPECT_EQ(shoal_close(c.ctx), 0) << shoal_last_error();
  }
}

}  // namespace
