// lib/api: the C API of include/shoal/verbs.h over engines and a driver.
//
// A context runs num_engines engines, each on its own driver queue with its
// own address (queue 0's address + e). Everything that carries traffic
// belongs to one engine: CQs (round-robin for SHOAL_ENGINE_ANY), the QPs of
// those CQs, their PDCs (each engine has its own pool, so PDCs are sharded
// by the engine of the QP that opened them), and the WR table. QP numbers
// are engine << 12 | endpoint; a request names its engine in pid_on_fep and
// an engine refuses one meant for another. Engines share only the context's
// MR table (guarded by mu); an MR with remote access is registered on every
// engine under one rkey.
//
// Implemented: contexts, PDs, MRs (lkeys checked on every SGE, rkeys checked
// by the engine on every packet), CQs that never drop a completion,
// RUD/ROD/UUD QPs, AHs, SEND / SEND_WITH_IMM, RDMA WRITE / WRITE_WITH_IMM,
// RDMA READ and receives, scatter/gather lists of up to 16 SGEs and inline
// sends. Threaded mode runs each engine on its own thread (lib/engine
// EngineThread); application threads meet at that engine's app_mu (posts
// into its ring, completion routing), never at the engine.
//
// Invariants: every object remembers its context (and CQs and QPs their
// engine); a context refuses to close while objects remain; no C++
// exception crosses the API (every entry point is noexcept and reports
// errno values); engine calls run on the caller's thread (library mode) and
// never block.
#include "shoal/verbs.h"

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "lib/base/log.h"
#include "lib/base/slab.h"
#include "lib/base/status.h"
#include "lib/engine/engine.h"
#include "lib/api/dump.h"
#include "shoal/driver_sdk.h"

namespace {

thread_local std::string g_last_error;

int fail(int err, std::string msg) {
  g_last_error = std::move(msg);
  return err;
}

int errno_of(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument: return EINVAL;
    case absl::StatusCode::kNotFound: return ENODEV;
    case absl::StatusCode::kUnimplemented: return ENOTSUP;
    case absl::StatusCode::kResourceExhausted: return EAGAIN;
    case absl::StatusCode::kAlreadyExists: return EADDRINUSE;
    // Drivers: the address to bind is not one of this host's (udp://).
    case absl::StatusCode::kFailedPrecondition: return EADDRNOTAVAIL;
    case absl::StatusCode::kUnavailable: return EAGAIN;
    default: return EIO;
  }
}

int fail(const absl::Status& st) { return fail(errno_of(st), std::string(st.message())); }

constexpr uint32_t kMaxSge = shoal::ses::kMaxSegments;
// Inline sends copy at most this many bytes at post time.
constexpr uint32_t kMaxInline = 256;
// Multi-SGE and inline WRs outstanding at once per context.
constexpr uint32_t kSgRecords = 4096;
constexpr uint32_t kDefaultCqDepth = 1 << 16;

}  // namespace

struct MrImpl;

// Send WRs in flight: the core carries the record's index as its wr_id,
// so a completion (in any order, RUD) finds its WR, its pinned MR and
// whether the application asked to see it.
struct WrRecord {
  uint64_t wr_id;
  MrImpl* pin;
  shoal_qp* qp;
  bool signaled;
  uint32_t sgl;  // its SgRecord in the context's sgls, or kNoIndex
};

// One engine of a context and what only its thread touches. PDCs, QPs and
// CQs belong to one engine; engines share nothing but the context's MR
// table (under the context's mu), so in library mode each runs on its own
// application thread without locks, as verbs.h promises.
struct EngineSlot {
  uint32_t index = 0;
  // Library mode: the engine the application drives. Threaded mode: the
  // engine runs on `thread`; the application side talks to it through its
  // rings, and app_mu orders application threads among themselves (posts
  // into its post ring, completion routing into its CQs, its WR table).
  std::unique_ptr<shoal::engine::Engine> engine;
  std::unique_ptr<shoal::engine::EngineThread> thread;
  std::mutex app_mu;
  shoal::engine::Engine& eng() { return thread ? const_cast<shoal::engine::Engine&>(thread->engine()) : *engine; }
  // Runs f on the engine: directly (library mode) or on its thread.
  absl::Status on_engine(const std::function<absl::Status(shoal::ses::Transport&)>& f) {
    if (thread) return thread->control(f);
    return f(engine->transport());
  }
  std::vector<shoal_qp*> qp_by_index;  // transport endpoint index -> QP
  shoal::Slab<WrRecord> wrs;
  // deliver_completions' buffer: a local array of 64 Completions would be
  // value-initialised (3.5 KB of stores) on every progress call, most of
  // which find nothing.
  std::array<shoal::ses::Completion, 64> wc_scratch;
};

struct shoal_context {
  std::unique_ptr<shoal::Driver> driver;
  std::vector<std::unique_ptr<EngineSlot>> engines;
  std::atomic<uint32_t> next_cq_engine{0};  // SHOAL_ENGINE_ANY: round-robin
  // Runs f on every engine; stops at the first error.
  absl::Status on_all_engines(const std::function<absl::Status(shoal::ses::Transport&)>& f) {
    for (auto& e : engines) RETURN_IF_ERROR(e->on_engine(f));
    return absl::OkStatus();
  }
  uint32_t job_id = 1;
  std::mutex mu;                 // guards the context-wide tables below
  std::vector<MrImpl*> mrs;      // lkey - 1 -> MR (nullptr when free)
  std::vector<uint32_t> free_lkeys;
  uint32_t pds = 0, mrs_live = 0, cqs = 0, qps = 0, ahs = 0;
  uint64_t next_rkey = 0;        // rkeys are the context's, the same on every engine
  // WRs with several SGEs, and inline sends: the segment list (and the
  // inline bytes) the core reads until the WR completes, and the MRs that
  // list pins. Sized on first use (most applications never need one);
  // guarded by mu. A receive carries its record's index + 1 as the core's tag.
  struct SgRecord {
    shoal::ses::Segment seg[kMaxSge];
    MrImpl* pins[kMaxSge];
    uint32_t count;
    uint8_t inline_data[kMaxInline];
  };
  shoal::Slab<SgRecord> sgls;
  // Takes a record (under mu); kNoIndex when all kSgRecords are in use.
  uint32_t alloc_sgl() {
    if (sgls.capacity() == 0) sgls.reset(kSgRecords);
    const uint32_t i = sgls.alloc();
    if (i != shoal::kNoIndex) sgls[i].count = 0;
    return i;
  }
  // Unpins the record's MRs and frees it (under mu).
  void release_sgl(uint32_t i);
};

struct shoal_pd {
  shoal_context* ctx;
  uint32_t refs = 0;  // MRs, QPs, AHs
};

struct MrImpl {
  shoal_mr pub;  // first: the public fields
  uint32_t inflight = 0;  // posted WRs that use it (dereg: EBUSY)
  bool remote = false;    // registered with the transport for remote access
};

void shoal_context::release_sgl(uint32_t i) {
  SgRecord& r = sgls[i];
  for (uint32_t k = 0; k < r.count; ++k)
    if (r.pins[k]) --r.pins[k]->inflight;
  r.count = 0;
  sgls.free(i);
}

struct shoal_cq {
  shoal_context* ctx;
  EngineSlot* es;
  uint32_t depth;
  std::deque<shoal_wc> entries;  // at most depth
  std::deque<shoal_wc> held;     // completions waiting for room (never dropped)
  bool overrun_unreported = false;
  // The last poll returned completions: the next call that finds the CQ
  // empty is, in the usual drain loop, that loop's end (shoal_poll_cq).
  bool returned_last = false;
  uint64_t overruns = 0, held_total = 0;
  uint32_t qp_refs = 0;
};

struct shoal_qp {
  shoal_pd* pd;
  EngineSlot* es;  // the engine of its CQs
  uint16_t index;  // transport endpoint
  uint32_t type;
  shoal_cq* send_cq;
  shoal_cq* recv_cq;
  void* qp_context;
  shoal_qp_cap cap;
  bool sig_all;
  uint32_t retry_budget_us = 0;  // SHOAL_QP_INIT_ATTR_BUDGETS; 0 = the engine's
  uint32_t rnr_budget_us = 0;
  uint32_t sends_outstanding = 0;
  uint32_t recvs_posted = 0;
};

struct shoal_ah {
  shoal_pd* pd;
  shoal::PeerAddr peer;
  uint32_t remote_qpn;
};

namespace {

void route_completions(shoal_context* ctx, EngineSlot& es, const shoal::ses::Completion* wc, uint32_t n);

// Routes the engine's completions to CQs. Called after every engine pass.
void deliver_completions(shoal_context* ctx, EngineSlot& es) {
  shoal::ses::Completion* wc = es.wc_scratch.data();
  uint32_t n;
  while ((n = es.thread ? es.thread->poll_completions(wc, 64) : es.engine->transport().poll_completions(wc, 64)) > 0) {
    route_completions(ctx, es, wc, n);
  }
}

// Lets go of what a send WR held: its MR pin or its SGE list (and pins).
void release_wr(shoal_context* ctx, WrRecord& rec) {
  if (!rec.pin && rec.sgl == shoal::kNoIndex) return;
  std::lock_guard<std::mutex> l(ctx->mu);
  if (rec.pin) --rec.pin->inflight;
  if (rec.sgl != shoal::kNoIndex) ctx->release_sgl(rec.sgl);
  rec.pin = nullptr;
  rec.sgl = shoal::kNoIndex;
}

void route_completions(shoal_context* ctx, EngineSlot& es, const shoal::ses::Completion* wc, uint32_t n) {
  {
    for (uint32_t i = 0; i < n; ++i) {
      const shoal::ses::Completion& c = wc[i];
      shoal_qp* qp = c.qp < es.qp_by_index.size() ? es.qp_by_index[c.qp] : nullptr;
      const bool send_side = c.opcode == shoal::ses::WcOpcode::kSend || c.opcode == shoal::ses::WcOpcode::kWrite ||
                             c.opcode == shoal::ses::WcOpcode::kRead;
      if (send_side && (!qp || es.wrs[static_cast<uint32_t>(c.wr_id)].qp != qp)) {
        // The WR's QP was destroyed (and the WR reported flushed then): let
        // its record and pin go.
        WrRecord& rec = es.wrs[static_cast<uint32_t>(c.wr_id)];
        if (rec.qp == nullptr) {
          release_wr(ctx, rec);
          es.wrs.free(static_cast<uint32_t>(c.wr_id));
        }
        continue;
      }
      if (!send_side && c.tag) {  // a multi-SGE receive: its list is free now
        std::lock_guard<std::mutex> l(ctx->mu);
        ctx->release_sgl(c.tag - 1);
      }
      if (!qp) continue;  // a receive of a destroyed QP: already flushed
      shoal_wc out{};
      out.wr_id = c.wr_id;
      bool show = true;
      out.qp_num = (es.index << SHOAL_QPN_INDEX_BITS) | qp->index;
      out.peer_id = c.peer;
      out.byte_len = c.byte_len;
      out.src_qp = c.src_qp;
      out.imm_data = c.imm;
      out.wc_flags = c.has_imm ? SHOAL_WC_WITH_IMM : 0;
      switch (c.status) {
        case shoal::ses::WcStatus::kSuccess: out.status = SHOAL_WC_SUCCESS; break;
        case shoal::ses::WcStatus::kLocLenErr: out.status = SHOAL_WC_LOC_LEN_ERR; break;
        case shoal::ses::WcStatus::kLocProtErr: out.status = SHOAL_WC_LOC_PROT_ERR; break;
        case shoal::ses::WcStatus::kRemAccessErr: out.status = SHOAL_WC_REM_ACCESS_ERR; break;
        case shoal::ses::WcStatus::kRemInvReqErr: out.status = SHOAL_WC_REM_INV_REQ_ERR; break;
        case shoal::ses::WcStatus::kRnrRetryExcErr: out.status = SHOAL_WC_RNR_RETRY_EXC_ERR; break;
        case shoal::ses::WcStatus::kRetryExcErr: out.status = SHOAL_WC_RETRY_EXC_ERR; break;
        case shoal::ses::WcStatus::kWrFlushErr: out.status = SHOAL_WC_WR_FLUSH_ERR; break;
      }
      shoal_cq* cq;
      if (c.opcode == shoal::ses::WcOpcode::kSend || c.opcode == shoal::ses::WcOpcode::kWrite ||
          c.opcode == shoal::ses::WcOpcode::kRead) {
        out.opcode = c.opcode == shoal::ses::WcOpcode::kWrite  ? SHOAL_WC_RDMA_WRITE
                     : c.opcode == shoal::ses::WcOpcode::kRead ? SHOAL_WC_RDMA_READ
                                                                : SHOAL_WC_SEND;
        cq = qp->send_cq;
        if (qp->sends_outstanding) --qp->sends_outstanding;
        const uint32_t token = static_cast<uint32_t>(c.wr_id);
        WrRecord& rec = es.wrs[token];
        out.wr_id = rec.wr_id;
        show = rec.signaled || out.status != SHOAL_WC_SUCCESS;
        release_wr(ctx, rec);
        es.wrs.free(token);
      } else {
        out.opcode = c.opcode == shoal::ses::WcOpcode::kRecvRdmaWithImm ? SHOAL_WC_RECV_RDMA_WITH_IMM : SHOAL_WC_RECV;
        cq = qp->recv_cq;
        if (qp->recvs_posted) --qp->recvs_posted;
        if (out.status == SHOAL_WC_WR_FLUSH_ERR) out.peer_id = SHOAL_PEER_ID_NONE;
      }
      if (!show) continue;
      if (cq->entries.size() < cq->depth && cq->held.empty()) {
        cq->entries.push_back(out);
      } else {
        if (cq->held.empty()) {
          ++cq->overruns;
          cq->overrun_unreported = true;
        }
        cq->held.push_back(out);
        ++cq->held_total;
      }
    }
  }
}

int progress(shoal_context* ctx, EngineSlot& es) {
  if (es.thread) {
    // The engine runs by itself; only bring its completions in.
    std::lock_guard<std::mutex> l(es.app_mu);
    deliver_completions(ctx, es);
    return 0;
  }
  const uint32_t work = es.engine->poll();
  deliver_completions(ctx, es);
  return static_cast<int>(work);
}

// Finds the MR of `lkey` covering [addr, addr+len) with `need` access.
MrImpl* check_sge(shoal_context* ctx, const shoal_sge& sge, uint32_t need, std::string* why) {
  if (sge.lkey == 0 || sge.lkey > ctx->mrs.size() || !ctx->mrs[sge.lkey - 1]) {
    *why = absl::StrFormat("lkey %u is not a registered MR of this context", sge.lkey);
    return nullptr;
  }
  MrImpl* m = ctx->mrs[sge.lkey - 1];
  const uint64_t start = reinterpret_cast<uint64_t>(m->pub.addr);
  if (sge.addr < start || sge.addr + sge.length > start + m->pub.length || sge.addr + sge.length < sge.addr) {
    *why = absl::StrFormat("SGE [0x%x, +%u) lies outside MR lkey %u", sge.addr, sge.length, sge.lkey);
    return nullptr;
  }
  if ((m->pub.access & need) != need) {
    *why = absl::StrFormat("MR lkey %u lacks the access this use needs", sge.lkey);
    return nullptr;
  }
  return m;
}

}  // namespace

extern "C" {

uint32_t shoal_api_version(void) { return SHOAL_API_VERSION; }

const char* shoal_last_error(void) { return g_last_error.c_str(); }

const char* shoal_strerror(int err) {
  if (err < 0) err = -err;
  if (err == 0) return "success";
  return std::strerror(err);
}

const char* shoal_wc_status_str(int status) {
  switch (status) {
    case SHOAL_WC_SUCCESS: return "SUCCESS";
    case SHOAL_WC_LOC_LEN_ERR: return "LOC_LEN_ERR";
    case SHOAL_WC_LOC_PROT_ERR: return "LOC_PROT_ERR";
    case SHOAL_WC_WR_FLUSH_ERR: return "WR_FLUSH_ERR";
    case SHOAL_WC_REM_INV_REQ_ERR: return "REM_INV_REQ_ERR";
    case SHOAL_WC_REM_ACCESS_ERR: return "REM_ACCESS_ERR";
    case SHOAL_WC_REM_OP_ERR: return "REM_OP_ERR";
    case SHOAL_WC_RETRY_EXC_ERR: return "RETRY_EXC_ERR";
    case SHOAL_WC_RNR_RETRY_EXC_ERR: return "RNR_RETRY_EXC_ERR";
    case SHOAL_WC_GENERAL_ERR: return "GENERAL_ERR";
  }
  return "UNKNOWN";
}

int shoal_open(const char* uri, const struct shoal_open_attr* attr, struct shoal_context** out) {
  g_last_error.clear();
  if (!uri || !out) return fail(EINVAL, "shoal_open: uri and out must not be NULL");
  uint32_t engines = 1, mode = SHOAL_MODE_LIBRARY, job = 1;
  std::string cpus_text;
  if (attr) {
    const uint32_t known = SHOAL_OPEN_ATTR_MODE | SHOAL_OPEN_ATTR_NUM_ENGINES | SHOAL_OPEN_ATTR_INSTANCE_NAME |
                           SHOAL_OPEN_ATTR_LOG_SPEC | SHOAL_OPEN_ATTR_ENGINE_CPUS | SHOAL_OPEN_ATTR_JOB_ID;
    if (attr->comp_mask & ~known) return fail(ENOTSUP, "shoal_open: unknown comp_mask bits");
    if (attr->comp_mask & SHOAL_OPEN_ATTR_MODE) mode = attr->mode;
    if (attr->comp_mask & SHOAL_OPEN_ATTR_NUM_ENGINES) engines = attr->num_engines;
    if (attr->comp_mask & SHOAL_OPEN_ATTR_JOB_ID) job = attr->job_id;
    if (attr->comp_mask & SHOAL_OPEN_ATTR_ENGINE_CPUS) {
      if (!attr->engine_cpus) return fail(EINVAL, "shoal_open: engine_cpus is NULL");
      cpus_text = attr->engine_cpus;
    }
    if ((attr->comp_mask & SHOAL_OPEN_ATTR_LOG_SPEC) && attr->log_spec && !shoal::Log::configure(attr->log_spec))
      return fail(EINVAL, std::string("shoal_open: bad log_spec '") + attr->log_spec + "'");
  }
  if (mode != SHOAL_MODE_LIBRARY && mode != SHOAL_MODE_THREADED) return fail(EINVAL, "shoal_open: unknown mode");
  if (engines == 0 || engines > SHOAL_MAX_ENGINES)
    return fail(EINVAL, absl::StrFormat("shoal_open: num_engines must be 1..%u", SHOAL_MAX_ENGINES));
  if (job == 0 || job > SHOAL_MAX_JOB_ID) return fail(EINVAL, "shoal_open: job_id must be 1..2^24-1");
  // engine_cpus: "2-3" or "2,5", one CPU per engine in order (threaded mode).
  std::vector<int> cpus;
  if (!cpus_text.empty() || (attr && (attr->comp_mask & SHOAL_OPEN_ATTR_ENGINE_CPUS))) {
    if (mode != SHOAL_MODE_THREADED)
      return fail(EINVAL, "shoal_open: engine_cpus pins engine threads: it needs SHOAL_MODE_THREADED");
    for (absl::string_view part : absl::StrSplit(cpus_text, ',')) {
      int lo, hi;
      const size_t dash = part.find('-');
      const bool ok = dash == absl::string_view::npos
                          ? absl::SimpleAtoi(part, &lo) && (hi = lo, true)
                          : absl::SimpleAtoi(part.substr(0, dash), &lo) && absl::SimpleAtoi(part.substr(dash + 1), &hi);
      if (!ok || lo < 0 || hi < lo || hi - lo > 4096)
        return fail(EINVAL, "shoal_open: engine_cpus \"" + cpus_text + "\" is not a list like \"2-3\" or \"2,5\"");
      for (int c = lo; c <= hi; ++c) cpus.push_back(c);
    }
    if (cpus.size() < engines)
      return fail(EINVAL, absl::StrFormat("shoal_open: engine_cpus names %u CPUs for %u engines", cpus.size(), engines));
  }
  if (const char* env = std::getenv("SHOAL_LOG")) shoal::Log::configure(env);
  auto driver = shoal::open_driver(uri, engines);
  if (!driver.ok()) return fail(driver.status());
  auto ctx = std::make_unique<shoal_context>();
  ctx->driver = std::move(*driver);
  // A driver's own placement (dpdk's lcores=) applies when the application
  // gave none; library mode runs engines on the application's threads.
  if (cpus.empty() && mode == SHOAL_MODE_THREADED) cpus = ctx->driver->caps().engine_cpus;
  ctx->job_id = job;
  for (uint32_t e = 0; e < engines; ++e) {
    shoal::engine::EngineConfig cfg;
    cfg.transport.job_id = job;
    cfg.transport.engine_index = static_cast<uint16_t>(e);
    const uint64_t seed = (reinterpret_cast<uint64_t>(ctx.get()) ^ 0x5eed) + e * 0x9e3779b97f4a7c15ULL;
    auto es = std::make_unique<EngineSlot>();
    es->index = e;
    if (mode == SHOAL_MODE_THREADED) {
      es->thread = std::make_unique<shoal::engine::EngineThread>(*ctx->driver, e, cfg, seed);
      if (!cpus.empty()) {
        const absl::Status st = es->thread->pin_to_cpu(cpus[e]);
        if (!st.ok())
          return fail(EINVAL, std::string(cpus_text.empty() ? "shoal_open: the driver's engine CPU (dpdk lcores=): "
                                                            : "shoal_open: engine_cpus: ") +
                                  std::string(st.message()));
      }
    } else {
      es->engine = std::make_unique<shoal::engine::Engine>(*ctx->driver, e, cfg, seed);
    }
    es->qp_by_index.assign(cfg.transport.max_qps, nullptr);
    es->wrs.reset(cfg.transport.max_send_msgs);
    ctx->engines.push_back(std::move(es));
  }
  ctx->next_rkey = (reinterpret_cast<uint64_t>(ctx.get()) * 0x9e3779b97f4a7c15ULL) & 0xFFFF;
  *out = ctx.release();
  return 0;
}

int shoal_close(struct shoal_context* ctx) {
  if (!ctx) return fail(EINVAL, "shoal_close: ctx is NULL");
  if (ctx->pds || ctx->mrs_live || ctx->cqs || ctx->qps || ctx->ahs)
    return fail(EBUSY, absl::StrFormat("shoal_close: %u PDs, %u MRs, %u CQs, %u QPs, %u AHs remain",
                                       ctx->pds, ctx->mrs_live, ctx->cqs, ctx->qps, ctx->ahs));
  delete ctx;
  return 0;
}

int shoal_query_context(struct shoal_context* ctx, struct shoal_context_attr* attr, size_t attr_size) {
  if (!ctx || !attr || attr_size == 0) return fail(EINVAL, "shoal_query_context: NULL argument or size 0");
  shoal_context_attr a{};
  const shoal::DriverCaps& caps = ctx->driver->caps();
  std::snprintf(a.driver, sizeof(a.driver), "%s", caps.name.c_str());
  std::snprintf(a.local_addr, sizeof(a.local_addr), "%s",
                ctx->driver->format_addr(ctx->engines[0]->eng().local_addr()).c_str());
  const auto& tc = ctx->engines[0]->eng().transport().config();
  const uint32_t n_eng = static_cast<uint32_t>(ctx->engines.size());
  a.max_msg_size = SHOAL_MAX_MSG_SIZE;
  a.max_mr_size = UINT64_MAX >> 1;
  a.mtu = tc.mtu_payload;
  a.mode = ctx->engines[0]->thread ? SHOAL_MODE_THREADED : SHOAL_MODE_LIBRARY;
  a.num_engines = n_eng;
  a.max_qp = n_eng * (tc.max_qps - 1);
  a.max_qp_per_engine = tc.max_qps - 1;
  a.max_cq = 1024;
  a.max_cq_depth = 1u << 22;
  a.max_mr = 1u << 20;
  a.max_ah = 1u << 20;
  a.max_send_wr = tc.max_send_msgs;
  a.max_recv_wr = tc.recv_queue_depth;
  a.max_sge = kMaxSge;
  a.max_inline_data = kMaxInline;
  a.max_uud_msg_size = tc.mtu_payload;
  a.num_tc = 4;
  a.job_id = ctx->job_id;
  std::memset(attr, 0, attr_size);
  std::memcpy(attr, &a, std::min(attr_size, sizeof(a)));
  return 0;
}

int shoal_progress(struct shoal_context* ctx, int engine, int budget) {
  (void)budget;
  if (!ctx) return -fail(EINVAL, "shoal_progress: ctx is NULL");
  if (engine == SHOAL_ENGINE_ALL) {
    int work = 0;
    for (auto& es : ctx->engines) work += progress(ctx, *es);
    return work;
  }
  if (engine < 0 || static_cast<size_t>(engine) >= ctx->engines.size())
    return -fail(EINVAL, absl::StrFormat("shoal_progress: no engine %d (the context has %u)", engine, ctx->engines.size()));
  return progress(ctx, *ctx->engines[engine]);
}

int shoal_alloc_pd(struct shoal_context* ctx, struct shoal_pd** out) {
  if (!ctx || !out) return fail(EINVAL, "shoal_alloc_pd: NULL argument");
  std::lock_guard<std::mutex> l(ctx->mu);
  *out = new shoal_pd{ctx};
  ++ctx->pds;
  return 0;
}

int shoal_dealloc_pd(struct shoal_pd* pd) {
  if (!pd) return fail(EINVAL, "shoal_dealloc_pd: pd is NULL");
  std::lock_guard<std::mutex> l(pd->ctx->mu);
  if (pd->refs) return fail(EBUSY, absl::StrFormat("shoal_dealloc_pd: %u MRs/QPs/AHs still use it", pd->refs));
  --pd->ctx->pds;
  delete pd;
  return 0;
}

int shoal_reg_mr(struct shoal_pd* pd, void* addr, uint64_t length, uint32_t access, struct shoal_mr** out) {
  if (!pd || !addr || !out || length == 0) return fail(EINVAL, "shoal_reg_mr: NULL argument or length 0");
  const uint32_t known = SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_WRITE | SHOAL_ACCESS_REMOTE_READ |
                         SHOAL_ACCESS_ZERO_BASED;
  if (access & ~known) return fail(EINVAL, "shoal_reg_mr: unknown access flags");
  if ((access & SHOAL_ACCESS_REMOTE_WRITE) && !(access & SHOAL_ACCESS_LOCAL_WRITE))
    return fail(EINVAL, "shoal_reg_mr: REMOTE_WRITE needs LOCAL_WRITE");
  shoal_context* ctx = pd->ctx;
  std::lock_guard<std::mutex> l(ctx->mu);
  uint32_t lkey;
  if (!ctx->free_lkeys.empty()) {
    lkey = ctx->free_lkeys.back();
    ctx->free_lkeys.pop_back();
  } else {
    ctx->mrs.push_back(nullptr);
    lkey = static_cast<uint32_t>(ctx->mrs.size());
  }
  auto* m = new MrImpl{};
  uint64_t rkey = 0;
  if (access & (SHOAL_ACCESS_REMOTE_WRITE | SHOAL_ACCESS_REMOTE_READ)) {
    // Remote access goes through the engine's region table, which checks
    // every packet; the rkey is the engine's.
    uint32_t ra = 0;
    if (access & SHOAL_ACCESS_REMOTE_WRITE) ra |= shoal::ses::kRemoteWrite;
    if (access & SHOAL_ACCESS_REMOTE_READ) ra |= shoal::ses::kRemoteRead;
    if (access & SHOAL_ACCESS_ZERO_BASED) ra |= shoal::ses::kZeroBased;
    // One rkey for every engine of the context: a peer's WRITE or READ
    // may reach any of them. The low 16 bits are random so that a stale or
    // guessed key misses.
    shoal::Rng mix(++ctx->next_rkey ^ reinterpret_cast<uint64_t>(m));
    const uint64_t key = (ctx->next_rkey << 16) | (mix.next_u64() & 0xFFFF);
    const absl::Status st = ctx->on_all_engines([&](shoal::ses::Transport& t) {
      return t.register_memory_as(key, static_cast<uint8_t*>(addr), length, ra);
    });
    if (!st.ok()) {
      (void)ctx->on_all_engines([&](shoal::ses::Transport& t) {
        (void)t.deregister_memory(key);
        return absl::OkStatus();
      });
      ctx->mrs[lkey - 1] = nullptr;
      ctx->free_lkeys.push_back(lkey);
      delete m;
      return fail(st);
    }
    rkey = key;
    m->remote = true;
  }
  m->pub = shoal_mr{ctx, pd, addr, length, access, lkey, rkey};
  ctx->mrs[lkey - 1] = m;
  ++ctx->mrs_live;
  ++pd->refs;
  *out = &m->pub;
  return 0;
}

int shoal_dereg_mr(struct shoal_mr* mr) {
  if (!mr) return fail(EINVAL, "shoal_dereg_mr: mr is NULL");
  auto* m = reinterpret_cast<MrImpl*>(mr);
  shoal_context* ctx = mr->context;
  std::lock_guard<std::mutex> l(ctx->mu);
  if (m->inflight) return fail(EBUSY, absl::StrFormat("shoal_dereg_mr: %u posted WRs still use it", m->inflight));
  if (m->remote) {
    const uint64_t rkey = mr->rkey;
    (void)ctx->on_all_engines([&](shoal::ses::Transport& t) { return t.deregister_memory(rkey); });
  }
  ctx->mrs[mr->lkey - 1] = nullptr;
  ctx->free_lkeys.push_back(mr->lkey);
  --ctx->mrs_live;
  --mr->pd->refs;
  delete m;
  return 0;
}

int shoal_create_cq(struct shoal_context* ctx, uint32_t depth, int engine, struct shoal_cq** out) {
  if (!ctx || !out || depth == 0 || depth > (1u << 22)) return fail(EINVAL, "shoal_create_cq: NULL argument or depth out of 1..2^22");
  const size_t n_eng = ctx->engines.size();
  if (engine != SHOAL_ENGINE_ANY && (engine < 0 || static_cast<size_t>(engine) >= n_eng))
    return fail(EINVAL, absl::StrFormat("shoal_create_cq: no engine %d (the context has %u)", engine, n_eng));
  const size_t e = engine == SHOAL_ENGINE_ANY ? ctx->next_cq_engine.fetch_add(1) % n_eng : static_cast<size_t>(engine);
  std::lock_guard<std::mutex> l(ctx->mu);
  *out = new shoal_cq{ctx, ctx->engines[e].get(), depth};
  ++ctx->cqs;
  return 0;
}

int shoal_destroy_cq(struct shoal_cq* cq) {
  if (!cq) return fail(EINVAL, "shoal_destroy_cq: cq is NULL");
  if (cq->qp_refs) return fail(EBUSY, "shoal_destroy_cq: a QP still uses it");
  std::lock_guard<std::mutex> l(cq->ctx->mu);
  --cq->ctx->cqs;
  delete cq;
  return 0;
}

int shoal_poll_cq(struct shoal_cq* cq, int n, struct shoal_wc* wc) {
  if (!cq || n < 0 || (n > 0 && !wc)) return -fail(EINVAL, "shoal_poll_cq: bad arguments");
  if (cq->entries.empty() && cq->held.empty()) {
    // `while ((n = shoal_poll_cq(...)) > 0)` ends with a call that finds the
    // CQ empty. Running the engine there put a whole engine pass (an ACK's
    // send, a receive: two syscalls over udp://) between a completion and
    // the application's answer to it: 64 B ping-pong over udp:// waited
    // ~5 us per round trip for it. That call returns at once; the next
    // empty one runs the engine, so a loop of poll_cq alone still progresses.
    if (cq->returned_last && !cq->es->thread) {
      cq->returned_last = false;
      return 0;
    }
    progress(cq->ctx, *cq->es);
  }
  std::unique_lock<std::mutex> app_lock(cq->es->app_mu, std::defer_lock);
  if (cq->es->thread) app_lock.lock();
  if (cq->overrun_unreported) {
    cq->overrun_unreported = false;
    return -fail(EOVERFLOW, "shoal_poll_cq: the CQ overran; held completions follow (nothing was lost)");
  }
  int k = 0;
  while (k < n && !cq->entries.empty()) {
    wc[k++] = cq->entries.front();
    cq->entries.pop_front();
  }
  // Room again: held completions move in, in the order they were produced.
  while (!cq->held.empty() && cq->entries.size() < cq->depth) {
    cq->entries.push_back(cq->held.front());
    cq->held.pop_front();
  }
  while (k < n && !cq->entries.empty()) {
    wc[k++] = cq->entries.front();
    cq->entries.pop_front();
  }
  cq->returned_last = k > 0;
  return k;
}

int shoal_query_cq(struct shoal_cq* cq, struct shoal_cq_attr* attr, size_t attr_size) {
  if (!cq || !attr || attr_size == 0) return fail(EINVAL, "shoal_query_cq: NULL argument or size 0");
  shoal_cq_attr a{};
  a.depth = cq->depth;
  a.engine = cq->es->index;
  a.overruns = cq->overruns;
  a.held_total = cq->held_total;
  a.held_now = static_cast<uint32_t>(cq->held.size());
  std::memset(attr, 0, attr_size);
  std::memcpy(attr, &a, std::min(attr_size, sizeof(a)));
  return 0;
}

int shoal_create_qp(struct shoal_pd* pd, const struct shoal_qp_init_attr* attr, struct shoal_qp** out) {
  if (!pd || !attr || !out || !attr->send_cq || !attr->recv_cq) return fail(EINVAL, "shoal_create_qp: NULL argument");
  if (attr->comp_mask & ~uint32_t{SHOAL_QP_INIT_ATTR_BUDGETS}) return fail(ENOTSUP, "shoal_create_qp: unknown comp_mask bits");
  shoal::pds::DeliveryMode mode;
  switch (attr->qp_type) {
    case SHOAL_QPT_RUD: mode = shoal::pds::DeliveryMode::kRud; break;
    case SHOAL_QPT_ROD: mode = shoal::pds::DeliveryMode::kRod; break;
    case SHOAL_QPT_UUD: mode = shoal::pds::DeliveryMode::kUud; break;
    default: return fail(EINVAL, absl::StrFormat("shoal_create_qp: unknown qp_type %u", attr->qp_type));
  }
  if (attr->cap.max_send_sge > kMaxSge || attr->cap.max_recv_sge > kMaxSge)
    return fail(EINVAL, absl::StrFormat("shoal_create_qp: at most %u SGEs per WR", kMaxSge));
  if (attr->cap.max_inline_data > kMaxInline)
    return fail(EINVAL, absl::StrFormat("shoal_create_qp: at most %u bytes of inline data", kMaxInline));
  shoal_context* ctx = pd->ctx;
  if (attr->send_cq->es != attr->recv_cq->es)
    return fail(EINVAL, "shoal_create_qp: send_cq and recv_cq belong to different engines");
  if (attr->send_cq->ctx != ctx) return fail(EINVAL, "shoal_create_qp: the CQs belong to another context");
  EngineSlot& es = *attr->send_cq->es;
  absl::StatusOr<uint16_t> qp_index = absl::InternalError("not run");
  const absl::Status cst = es.on_engine([&](shoal::ses::Transport& t) {
    qp_index = t.create_qp(mode);
    return qp_index.status();
  });
  if (!cst.ok()) return fail(cst);
  auto* qp = new shoal_qp{pd, &es, *qp_index, attr->qp_type, attr->send_cq, attr->recv_cq, attr->qp_context,
                          attr->cap, attr->sq_sig_all != 0};
  if (attr->comp_mask & SHOAL_QP_INIT_ATTR_BUDGETS) {
    qp->retry_budget_us = attr->retry_budget_us;
    qp->rnr_budget_us = attr->rnr_budget_us;
  }
  es.qp_by_index[*qp_index] = qp;
  ++attr->send_cq->qp_refs;
  ++attr->recv_cq->qp_refs;
  {
    std::lock_guard<std::mutex> l(ctx->mu);
    ++pd->refs;
    ++ctx->qps;
  }
  *out = qp;
  return 0;
}

int shoal_destroy_qp(struct shoal_qp* qp) {
  if (!qp) return fail(EINVAL, "shoal_destroy_qp: qp is NULL");
  shoal_context* ctx = qp->pd->ctx;
  // Posted receives flush now: the engine queues their completions, which
  // are routed here before the QP's index is forgotten (in threaded mode they
  // are taken straight from the transport on the engine thread, so none is
  // left behind in the ring for a QP that no longer exists).
  std::vector<shoal::ses::Completion> flushed;
  const uint16_t index = qp->index;
  EngineSlot& es = *qp->es;
  const absl::Status st = es.on_engine([&](shoal::ses::Transport& t) {
    absl::Status s = t.destroy_qp(index);
    shoal::ses::Completion wc[64];
    uint32_t k;
    while ((k = t.poll_completions(wc, 64)) > 0) flushed.insert(flushed.end(), wc, wc + k);
    return s;
  });
  if (!st.ok()) return fail(st);
  std::unique_lock<std::mutex> app_lock(es.app_mu, std::defer_lock);
  if (es.thread) app_lock.lock();
  deliver_completions(ctx, es);
  route_completions(ctx, es, flushed.data(), static_cast<uint32_t>(flushed.size()));
  // Sends still in flight complete later on the CQ; their QP is gone, so
  // report them now as flushed and forget them (the transport's later
  // completions for this index are dropped by deliver_completions).
  for (uint32_t t = 0; t < es.wrs.capacity() && qp->sends_outstanding; ++t) {
    WrRecord& rec = es.wrs[t];
    if (rec.qp != qp) continue;
    shoal_wc w{};
    w.wr_id = rec.wr_id;
    w.status = SHOAL_WC_WR_FLUSH_ERR;
    w.opcode = SHOAL_WC_SEND;
    w.qp_num = shoal_qp_num(qp);
    w.peer_id = SHOAL_PEER_ID_NONE;
    qp->send_cq->entries.push_back(w);
    rec.qp = nullptr;  // the core's completion, when it comes, only frees it
    --qp->sends_outstanding;
  }
  es.qp_by_index[qp->index] = nullptr;
  --qp->send_cq->qp_refs;
  --qp->recv_cq->qp_refs;
  {
    std::lock_guard<std::mutex> l(ctx->mu);
    --qp->pd->refs;
    --ctx->qps;
  }
  delete qp;
  return 0;
}

uint32_t shoal_qp_num(const struct shoal_qp* qp) { return (qp->es->index << SHOAL_QPN_INDEX_BITS) | qp->index; }
void* shoal_qp_context(const struct shoal_qp* qp) { return qp->qp_context; }

int shoal_create_ah(struct shoal_pd* pd, const char* address, uint32_t remote_qpn, struct shoal_ah** out) {
  if (!pd || !address || !out) return fail(EINVAL, "shoal_create_ah: NULL argument");
  if (remote_qpn >= (1u << 24)) return fail(EINVAL, "shoal_create_ah: QP numbers are 24 bits");
  auto addr = pd->ctx->driver->parse_addr(address);
  if (!addr.ok()) return fail(addr.status());
  // The address names the context (its engine 0); engine e of it is the
  // address + e (driver_sdk.h), so the AH keeps the exact engine's address.
  std::lock_guard<std::mutex> l(pd->ctx->mu);
  *out = new shoal_ah{pd, *addr + SHOAL_QPN_ENGINE(remote_qpn), remote_qpn};
  ++pd->refs;
  ++pd->ctx->ahs;
  return 0;
}

int shoal_create_ah_from_wc(struct shoal_pd* pd, const struct shoal_wc* wc, struct shoal_ah** out) {
  if (!pd || !wc || !out) return fail(EINVAL, "shoal_create_ah_from_wc: NULL argument");
  if (wc->status != SHOAL_WC_SUCCESS || (wc->opcode != SHOAL_WC_RECV && wc->opcode != SHOAL_WC_RECV_RDMA_WITH_IMM) ||
      wc->peer_id == SHOAL_PEER_ID_NONE)
    return fail(EINVAL, "shoal_create_ah_from_wc: not a successful receive completion");
  std::lock_guard<std::mutex> l(pd->ctx->mu);
  *out = new shoal_ah{pd, wc->peer_id, wc->src_qp};
  ++pd->refs;
  ++pd->ctx->ahs;
  return 0;
}

int shoal_destroy_ah(struct shoal_ah* ah) {
  if (!ah) return fail(EINVAL, "shoal_destroy_ah: ah is NULL");
  std::lock_guard<std::mutex> l(ah->pd->ctx->mu);
  --ah->pd->refs;
  --ah->pd->ctx->ahs;
  delete ah;
  return 0;
}

int shoal_peer_addr_str(struct shoal_context* ctx, uint64_t peer_id, char* buf, size_t size) {
  if (!ctx || !buf || peer_id == SHOAL_PEER_ID_NONE) return fail(EINVAL, "shoal_peer_addr_str: bad argument");
  const std::string s = ctx->driver->format_addr(peer_id);
  if (s.size() + 1 > size) return fail(ENOSPC, "shoal_peer_addr_str: buffer too small");
  std::memcpy(buf, s.c_str(), s.size() + 1);
  return 0;
}

int shoal_post_send(struct shoal_qp* qp, struct shoal_send_wr* wr, struct shoal_send_wr** bad_wr) {
  if (!qp || !wr || !bad_wr) return fail(EINVAL, "shoal_post_send: NULL argument");
  shoal_context* ctx = qp->pd->ctx;
  EngineSlot& es = *qp->es;
  std::unique_lock<std::mutex> app_lock(es.app_mu, std::defer_lock);
  if (es.thread) app_lock.lock();
  for (; wr; wr = wr->next) {
    *bad_wr = wr;
    const bool write = wr->opcode == SHOAL_WR_RDMA_WRITE || wr->opcode == SHOAL_WR_RDMA_WRITE_WITH_IMM;
    const bool read = wr->opcode == SHOAL_WR_RDMA_READ;
    if (!write && !read && wr->opcode != SHOAL_WR_SEND && wr->opcode != SHOAL_WR_SEND_WITH_IMM)
      return fail(EINVAL, absl::StrFormat("shoal_post_send: unknown opcode %u", wr->opcode));
    if ((write || read) && qp->type == SHOAL_QPT_UUD)
      return fail(EINVAL, "shoal_post_send: RDMA WRITE and READ need an RUD or ROD QP");
    if (!wr->ah || wr->ah->pd != qp->pd) return fail(EINVAL, "shoal_post_send: the WR needs an AH of the QP's PD");
    if (wr->num_sge > qp->cap.max_send_sge || (wr->num_sge && !wr->sg_list))
      return fail(EINVAL, "shoal_post_send: num_sge above the QP's max_send_sge, or no sg_list");
    const bool inl = (wr->send_flags & SHOAL_SEND_INLINE) != 0;
    if (wr->send_flags & ~uint32_t{SHOAL_SEND_FENCE | SHOAL_SEND_SIGNALED | SHOAL_SEND_INLINE})
      return fail(EINVAL, "shoal_post_send: unknown send_flags bit");
    if (inl && read) return fail(EINVAL, "shoal_post_send: an RDMA READ cannot be inline (its SGEs receive data)");
    if (qp->cap.max_send_wr && qp->sends_outstanding >= qp->cap.max_send_wr)
      return fail(EAGAIN, "shoal_post_send: send queue full (max_send_wr)");
    MrImpl* pin = nullptr;
    uint32_t sgl = shoal::kNoIndex;
    shoal::ses::SendRequest r;
    const shoal_wc_opcode wc_op = read ? SHOAL_WC_RDMA_READ : write ? SHOAL_WC_RDMA_WRITE : SHOAL_WC_SEND;
    if (inl) {
      // Copied now: the application may reuse its buffers once this returns.
      uint64_t total = 0;
      for (uint32_t k = 0; k < wr->num_sge; ++k) total += wr->sg_list[k].length;
      if (total > qp->cap.max_inline_data)
        return fail(EINVAL, absl::StrFormat("shoal_post_send: %u inline bytes, above the QP's max_inline_data %u",
                                            total, qp->cap.max_inline_data));
      std::lock_guard<std::mutex> l(ctx->mu);
      sgl = ctx->alloc_sgl();
      if (sgl == shoal::kNoIndex) return fail(EAGAIN, "shoal_post_send: too many inline or multi-SGE WRs outstanding");
      uint8_t* at = ctx->sgls[sgl].inline_data;
      for (uint32_t k = 0; k < wr->num_sge; ++k) {
        if (wr->sg_list[k].length) std::memcpy(at, reinterpret_cast<const void*>(wr->sg_list[k].addr), wr->sg_list[k].length);
        at += wr->sg_list[k].length;
      }
      r.data = {ctx->sgls[sgl].inline_data, static_cast<size_t>(total)};
    } else if (wr->num_sge >= 1) {
      std::string why;
      std::lock_guard<std::mutex> l(ctx->mu);
      // A READ's SGEs are where the bytes land: they need LOCAL_WRITE.
      const uint32_t need = read ? SHOAL_ACCESS_LOCAL_WRITE : 0;
      MrImpl* ms[kMaxSge];
      bool ok = true;
      for (uint32_t k = 0; k < wr->num_sge && ok; ++k) ok = (ms[k] = check_sge(ctx, wr->sg_list[k], need, &why)) != nullptr;
      if (!ok) {
        // A bad local key is a completion status, not a post error.
        shoal_wc w{};
        w.wr_id = wr->wr_id;
        w.status = SHOAL_WC_LOC_PROT_ERR;
        w.opcode = wc_op;
        w.qp_num = shoal_qp_num(qp);
        w.peer_id = wr->ah->peer;
        qp->send_cq->entries.push_back(w);
        g_last_error = why;
        continue;
      }
      if (wr->num_sge == 1) {
        ++ms[0]->inflight;
        pin = ms[0];
        r.data = {reinterpret_cast<const uint8_t*>(wr->sg_list[0].addr), wr->sg_list[0].length};
      } else {
        sgl = ctx->alloc_sgl();
        if (sgl == shoal::kNoIndex) return fail(EAGAIN, "shoal_post_send: too many inline or multi-SGE WRs outstanding");
        shoal_context::SgRecord& rec = ctx->sgls[sgl];
        for (uint32_t k = 0; k < wr->num_sge; ++k) {
          rec.seg[k] = shoal::ses::Segment{reinterpret_cast<uint8_t*>(wr->sg_list[k].addr), wr->sg_list[k].length};
          rec.pins[k] = ms[k];
          ++ms[k]->inflight;
        }
        rec.count = wr->num_sge;
        r.sgl = {rec.seg, rec.count};
      }
    }
    r.peer = wr->ah->peer;
    r.dst_qp = static_cast<uint16_t>(SHOAL_QPN_INDEX(wr->ah->remote_qpn));
    r.dst_engine = static_cast<uint16_t>(SHOAL_QPN_ENGINE(wr->ah->remote_qpn));
    r.src_qp = qp->index;
    r.mode = qp->type == SHOAL_QPT_ROD ? shoal::pds::DeliveryMode::kRod
             : qp->type == SHOAL_QPT_UUD ? shoal::pds::DeliveryMode::kUud
                                         : shoal::pds::DeliveryMode::kRud;
    r.tc = wr->tc;
    const uint32_t token = es.wrs.alloc();
    WrRecord held{wr->wr_id, pin, qp, qp->sig_all || (wr->send_flags & SHOAL_SEND_SIGNALED) != 0, sgl};
    if (token == shoal::kNoIndex) {
      release_wr(ctx, held);
      return fail(EAGAIN, "shoal_post_send: too many send WRs outstanding on this context");
    }
    es.wrs[token] = held;
    r.wr_id = token;
    r.has_imm = wr->opcode == SHOAL_WR_SEND_WITH_IMM || wr->opcode == SHOAL_WR_RDMA_WRITE_WITH_IMM;
    if (write || read) {
      r.op = write ? shoal::ses::SendOp::kWrite : shoal::ses::SendOp::kRead;
      r.remote_addr = wr->wr.rdma.remote_addr;
      r.rkey = wr->wr.rdma.rkey;
    }
    r.imm = wr->imm_data;
    r.retry_budget_us = qp->retry_budget_us;
    r.rnr_budget_us = qp->rnr_budget_us;
    // The core always reports back, so that the record and the MR pin are
    // released; an unsignaled success is then not shown to the application.
    r.signaled = true;
    absl::Status st;
    if (es.thread) {
      // Into the engine's ring; a full ring is EAGAIN, as a full queue is.
      shoal::engine::PostCommand cmd{};
      cmd.kind = shoal::engine::PostCommand::kSend;
      cmd.send = r;
      if (!es.thread->post(cmd)) st = absl::ResourceExhaustedError("shoal_post_send: the engine's post ring is full");
    } else {
      st = es.engine->transport().post_send(r);
    }
    if (!st.ok()) {
      release_wr(ctx, es.wrs[token]);
      es.wrs.free(token);
      return fail(st);
    }
    ++qp->sends_outstanding;
  }
  return 0;
}

int shoal_post_recv(struct shoal_qp* qp, struct shoal_recv_wr* wr, struct shoal_recv_wr** bad_wr) {
  if (!qp || !wr || !bad_wr) return fail(EINVAL, "shoal_post_recv: NULL argument");
  shoal_context* ctx = qp->pd->ctx;
  EngineSlot& es = *qp->es;
  std::unique_lock<std::mutex> app_lock(es.app_mu, std::defer_lock);
  if (es.thread) app_lock.lock();
  for (; wr; wr = wr->next) {
    *bad_wr = wr;
    if (wr->num_sge > qp->cap.max_recv_sge || (wr->num_sge && !wr->sg_list))
      return fail(EINVAL, "shoal_post_recv: num_sge above the QP's max_recv_sge, or no sg_list");
    if (qp->cap.max_recv_wr && qp->recvs_posted >= qp->cap.max_recv_wr)
      return fail(EAGAIN, "shoal_post_recv: receive queue full (max_recv_wr)");
    std::span<uint8_t> buf;
    uint32_t sgl = shoal::kNoIndex;
    if (wr->num_sge >= 1) {
      std::string why;
      std::lock_guard<std::mutex> l(ctx->mu);
      bool ok = true;
      for (uint32_t k = 0; k < wr->num_sge && ok; ++k)
        ok = check_sge(ctx, wr->sg_list[k], SHOAL_ACCESS_LOCAL_WRITE, &why) != nullptr;
      if (!ok) {
        shoal_wc w{};
        w.wr_id = wr->wr_id;
        w.status = SHOAL_WC_LOC_PROT_ERR;
        w.opcode = SHOAL_WC_RECV;
        w.qp_num = shoal_qp_num(qp);
        w.peer_id = SHOAL_PEER_ID_NONE;
        qp->recv_cq->entries.push_back(w);
        g_last_error = why;
        continue;
      }
      if (wr->num_sge == 1) {
        buf = {reinterpret_cast<uint8_t*>(wr->sg_list[0].addr), wr->sg_list[0].length};
      } else {
        sgl = ctx->alloc_sgl();
        if (sgl == shoal::kNoIndex) return fail(EAGAIN, "shoal_post_recv: too many multi-SGE WRs outstanding");
        shoal_context::SgRecord& rec = ctx->sgls[sgl];
        for (uint32_t k = 0; k < wr->num_sge; ++k) {
          rec.seg[k] = shoal::ses::Segment{reinterpret_cast<uint8_t*>(wr->sg_list[k].addr), wr->sg_list[k].length};
          rec.pins[k] = nullptr;  // receives do not pin (as before)
        }
        rec.count = wr->num_sge;
      }
    }
    absl::Status st;
    const uint32_t tag = sgl == shoal::kNoIndex ? 0 : sgl + 1;
    const std::span<const shoal::ses::Segment> list =
        sgl == shoal::kNoIndex ? std::span<const shoal::ses::Segment>() : std::span<const shoal::ses::Segment>(ctx->sgls[sgl].seg, ctx->sgls[sgl].count);
    if (es.thread) {
      shoal::engine::PostCommand cmd{};
      cmd.kind = shoal::engine::PostCommand::kRecv;
      cmd.qp = qp->index;
      cmd.buf = buf.data();
      cmd.len = static_cast<uint32_t>(buf.size());
      cmd.wr_id = wr->wr_id;
      cmd.sgl = list.data();
      cmd.nsge = static_cast<uint8_t>(list.size());
      cmd.tag = tag;
      if (!es.thread->post(cmd)) st = absl::ResourceExhaustedError("shoal_post_recv: the engine's post ring is full");
    } else if (tag) {
      st = es.engine->transport().post_recv(qp->index, list, wr->wr_id, tag);
    } else {
      st = es.engine->transport().post_recv(qp->index, buf, wr->wr_id);
    }
    if (!st.ok() && sgl != shoal::kNoIndex) {
      std::lock_guard<std::mutex> l(ctx->mu);
      ctx->release_sgl(sgl);
    }
    if (!st.ok()) return fail(st);
    ++qp->recvs_posted;
  }
  return 0;
}

}  // extern "C"

namespace shoal::api {

std::string dump(const shoal_context* ctx) {
  std::string s;
  for (const auto& slot : ctx->engines) {
    auto& eng = slot->eng();
    const auto& t = eng.transport();
    const auto& c = t.counters();
    const auto p = t.pds_counters();
    const auto& e = eng.counters();
    s += absl::StrFormat(
        "context %s engine %u: polls %u (idle %u) rx %u tx %u tx_dropped %u timer_runs %u\n",
        ctx->driver->format_addr(ctx->engines[0]->eng().local_addr()), slot->index, e.polls, e.idle_polls,
        e.rx_packets, e.tx_packets, e.tx_dropped, e.timer_runs);
    s += absl::StrFormat(
        "  transport: datagrams %u no_pdc %u mismatch %u malformed %u rnr %u access_denied %u too_long %u "
        "wrong_engine %u msgs sent %u received %u pdcs open %u failed %u freed %u waited %u\n",
        c.rx_datagrams, c.rx_no_pdc, c.rx_pdc_mismatch, c.rx_ses_malformed, c.rx_rnr, c.rx_access_denied,
        c.rx_too_long, c.rx_wrong_engine, c.msgs_sent, c.msgs_received, t.pdcs_open(), c.pdcs_failed,
        c.pdcs_freed, c.msgs_waited_for_pdc);
    s += "  wire errors:";
    for (uint64_t v : c.rx_wire_errors) s += absl::StrFormat(" %u", v);
    s += absl::StrFormat(
        "\n  pds: tx %u retx %u rto %u tlp %u rack %u acks rx %u nacks rx %u rx %u delivered %u dup %u "
        "oow %u refused %u acks tx %u nacks tx %u rnr tx/rx %u/%u rejects tx/rx %u/%u bad %u no_room %u\n",
        p.tx_requests, p.retransmits, p.rto_fires, p.tlp_probes, p.rack_losses, p.acks_received,
        p.nacks_received, p.rx_requests, p.rx_delivered, p.rx_duplicates, p.rx_out_of_window, p.rx_refused,
        p.acks_sent, p.nacks_sent, p.rnr_nacks_sent, p.rnr_nacks_received, p.rejects_sent, p.rejects_received,
        p.bad_packets, p.tx_no_room);
    const auto& pc = t.pool().counters();
    s += absl::StrFormat("  pool: opened %u accepted %u closed_idle %u evicted %u freed %u shrunk %u waits %u\n",
                         pc.opened, pc.accepted, pc.closed_idle, pc.evicted, pc.freed, pc.shrunk,
                         pc.acquire_waits);
  }
  return s;
}

}  // namespace shoal::api
