#include "lib/ses/transport.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "lib/base/log.h"
#include "lib/base/counters.h"
#include "lib/base/status.h"

namespace shoal::ses {

const char* to_string(WcStatus s) {
  switch (s) {
    case WcStatus::kSuccess: return "SUCCESS";
    case WcStatus::kLocLenErr: return "LOC_LEN_ERR";
    case WcStatus::kLocProtErr: return "LOC_PROT_ERR";
    case WcStatus::kRemAccessErr: return "REM_ACCESS_ERR";
    case WcStatus::kRemInvReqErr: return "REM_INV_REQ_ERR";
    case WcStatus::kRnrRetryExcErr: return "RNR_RETRY_EXC_ERR";
    case WcStatus::kRetryExcErr: return "RETRY_EXC_ERR";
    case WcStatus::kWrFlushErr: return "WR_FLUSH_ERR";
  }
  return "?";
}

namespace {

constexpr uint64_t kMaxMessageBytes = 0xffffffffull;  // msg_off and req_len are 32-bit

}  // namespace

namespace {
// The CC works in datagrams of the transport's MTU.
TransportConfig with_cc_mtu(TransportConfig c) {
  c.pds.cc_params.mtu = c.mtu_payload;
  return c;
}
}  // namespace

absl::Status Transport::validate(const TransportConfig& config) {
  if (config.mtu_payload == 0) return absl::InvalidArgumentError("mtu_payload must be positive");
  return pds::validate(with_cc_mtu(config).pds);
}

Transport::Transport(const TransportConfig& config, PeerAddr self, uint64_t seed)
    : config_(with_cc_mtu(config)),
      self_(self),
      rng_(seed),
      pool_(config_.pool, config_.pds, this, seed ^ 0x5ca1ab1e),
      timers_(config_.pool.max_pdcs + 1 + config_.max_reads, Duration::nanos(1), TimePoint::zero()) {
  if (absl::Status st = validate(config_); !st.ok()) {
    SHOAL_LOG(kSes, kError, "transport config refused: %s", std::string(st.message()).c_str());
    std::abort();
  }
  const cc::CcOps* cc = cc::find_cc(config_.pds.cc);
  credit_cc_ = (cc->flags & cc::kCcFlagReceiverCredit) != 0;
  if (credit_cc_) {
    // The receive side of EQDS: one scheduler for every PDC we accept.
    credit_ = std::make_unique<cc::CreditScheduler>(cc::CreditSchedulerConfig::from(config_.pds.cc_params));
    credit_->reserve(config_.pool.max_pdcs);
    grants_.resize(32);
    credit_repeat_.reserve(config_.pool.max_pdcs);
  }
  fired_.reserve(config_.pool.max_pdcs);
  // READ slots travel as the 16-bit rd_msg_id of their responses.
  reads_.reset(std::min<uint32_t>(config_.max_reads, 0xffff));
  ses_.resize(config_.pool.max_pdcs + 1);
  active_.reserve(config_.pool.max_pdcs);
  tx_msgs_.reset(config_.max_send_msgs);
  rx_msgs_.reset(config_.max_recv_msgs);
  rx_index_.reserve(std::min<uint32_t>(config_.max_recv_msgs, 1 << 16));
  qps_.reset(config_.max_qps);
  // QP 0 is the engine's default endpoint and always exists (a well-known
  // service endpoint); create_qp() hands out the others.
  const uint32_t default_qp = qps_.alloc();
  qps_[default_qp].live = true;
  completions_.reserve(4096);
}

Transport::~Transport() = default;

// ============================================================================
// Application side
// ============================================================================

namespace {
// Bytes [off, off + len) of a scatter/gather list, copied out to `flat`
// (kToList false) or in from it. The caller keeps the range inside the list.
template <bool kToList>
void sgl_copy(const Segment* sgl, uint32_t n, uint64_t off, uint8_t* flat, uint32_t len) {
  uint32_t i = 0;
  while (i < n && off >= sgl[i].len) off -= sgl[i++].len;
  for (; len && i < n; ++i, off = 0) {
    const uint32_t take = static_cast<uint32_t>(std::min<uint64_t>(len, sgl[i].len - off));
    if (kToList) {
      std::memcpy(sgl[i].addr + off, flat, take);
    } else {
      std::memcpy(flat, sgl[i].addr + off, take);
    }
    flat += take;
    len -= take;
  }
}

// A budget in microseconds as a count of backoff steps: the fewest steps,
// starting at `first` and doubling up to `cap`, whose waits add up to at
// least the budget; 0 (the PDC's own) for no budget or one the PDC's
// `limit` already meets.
uint8_t budget_steps(uint32_t budget_us, Duration first, Duration cap, uint32_t limit) {
  if (budget_us == 0) return 0;
  const Duration budget = Duration::micros(budget_us);
  Duration sum, step = first;
  uint32_t k = 0;
  while (sum < budget && k < limit) {
    sum += step;
    step = min_dur(step * 2, cap);
    ++k;
  }
  return k >= limit ? 0 : static_cast<uint8_t>(std::max<uint32_t>(k, 1));
}

uint64_t sgl_bytes(std::span<const Segment> sgl) {
  uint64_t n = 0;
  for (const Segment& s : sgl) n += s.len;
  return n;
}
}  // namespace

absl::Status Transport::post_send(const SendRequest& req) {
  ++activity_;
  if (req.sgl.size() > kMaxSegments) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%u segments in one message (at most %u)", req.sgl.size(), kMaxSegments));
  }
  const uint64_t bytes = req.sgl.empty() ? req.data.size() : sgl_bytes(req.sgl);
  if (bytes > kMaxMessageBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "message of %u bytes exceeds the 4 GiB - 1 limit of the SES header", bytes));
  }
  if (req.dst_qp >= 4096 || req.dst_engine >= 4096) {
    return absl::InvalidArgumentError(
        absl::StrFormat("dst_qp %u or dst_engine %u does not fit 12 bits", req.dst_qp, req.dst_engine));
  }
  if (req.op != SendOp::kSend && req.mode == DeliveryMode::kUud) {
    return absl::InvalidArgumentError("RDMA WRITE and READ need a reliable mode (RUD or ROD), not UUD");
  }
  if (req.op == SendOp::kReadResponse) {
    return absl::InvalidArgumentError("kReadResponse is the engine's own, not a request to post");
  }
  if (req.op == SendOp::kRead && reads_.full()) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%u RDMA READs outstanding (max_reads); poll completions first", reads_.capacity()));
  }
  if (req.mode == DeliveryMode::kUud && bytes > config_.mtu_payload) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "UUD message of %u bytes exceeds one packet (%u bytes)", bytes, config_.mtu_payload));
  }
  if (tx_msgs_.full()) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%u sends outstanding (max_send_msgs); poll completions first", config_.max_send_msgs));
  }
  uint16_t id = 0;
  if (req.mode != DeliveryMode::kUud) {
    id = pool_.acquire(req.peer, req.tc, req.mode, last_now_);
    drain_pool_wakes();
    if (id && ses_[id].outstanding_msgs >= config_.max_msgs_per_pdc) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%u messages outstanding to this peer (max_msgs_per_pdc); poll completions first",
          config_.max_msgs_per_pdc));
    }
  }
  const uint32_t m = tx_msgs_.alloc();
  TxMsg& msg = tx_msgs_[m];
  msg.data = req.data.data();
  msg.sgl = req.sgl.data();
  msg.nsge = static_cast<uint8_t>(req.sgl.size());
  msg.len = static_cast<uint32_t>(bytes);
  msg.wr_id = req.wr_id;
  msg.imm = req.imm;
  msg.has_imm = req.has_imm;
  msg.signaled = req.signaled;
  msg.peer = req.peer;
  msg.packets = msg.len == 0 ? 1 : (msg.len + config_.mtu_payload - 1) / config_.mtu_payload;
  msg.next_packet = 0;
  msg.resolved = 0;
  msg.failed = false;
  msg.dst_qp = req.dst_qp;
  msg.dst_engine = req.dst_engine;
  msg.src_qp = req.src_qp;
  msg.mode = req.mode;
  msg.tc = req.tc;
  msg.op = req.op;
  msg.remote_addr = req.remote_addr;
  msg.rkey = req.rkey;
  msg.rnr_retries = budget_steps(req.rnr_budget_us, config_.pds.rnr_delay, Duration::max(),
                                 config_.pds.max_rnr_retries);
  msg.retry_budget_us = req.retry_budget_us;
  msg.landed = 0;
  msg.request_acked = false;
  msg.read_slot = kNoIndex;
  msg.read_gen = 0;
  if (req.op == SendOp::kRead) {
    // One request packet; the bytes come back as READ responses.
    msg.packets = 1;
    const uint32_t slot = reads_.alloc();
    PendingRead& pr = reads_[slot];
    ++pr.gen;
    pr.live = true;
    pr.msg = m;
    pr.timer = timers_.arm(last_now_ + config_.read_timeout, kReadTimerTag | (uint64_t{pr.gen} << 32) | slot);
    msg.read_slot = slot;
    msg.read_gen = pr.gen;
  }
  msg.next = kNone;
  msg.pdc = id;
  if (req.mode == DeliveryMode::kUud) {
    msg.msg_id = 0;
    if (uud_tail_ == kNone) uud_head_ = m; else tx_msgs_[uud_tail_].next = m;
    uud_tail_ = m;
    return absl::OkStatus();
  }
  if (id == 0) {
    // Every PDC is busy and the pool is at its bound: the message waits for
    // one (an idle PDC is being closed to make room), it does not fail.
    ++counters_.msgs_waited_for_pdc;
    if (wait_tail_ == kNone) wait_head_ = m; else tx_msgs_[wait_tail_].next = m;
    wait_tail_ = m;
    return absl::OkStatus();
  }
  enqueue_on_pdc(m, id);
  return absl::OkStatus();
}

void Transport::enqueue_on_pdc(uint32_t m, uint16_t id) {
  TxMsg& msg = tx_msgs_[m];
  PdcSes& ses = ses_[id];
  msg.pdc = id;
  msg.next = kNone;
  msg.msg_id = 0;  // taken when its first packet goes (next_unit)
  ++ses.outstanding_msgs;
  if (credit_cc_) queue_bytes(id, msg, msg.next_packet);
  if (ses.sendq_tail == kNone) ses.sendq_head = m; else tx_msgs_[ses.sendq_tail].next = m;
  ses.sendq_tail = m;
  pool_.get(id)->wake();
  // Busy now: the pool must not shrink or close it under this work.
  pool_.after_event(id, /*idle=*/false, last_now_);
  activate(id);
}

void Transport::retry_waiting() {
  // In order: a message never overtakes an earlier one that waits.
  while (wait_head_ != kNone) {
    const TxMsg& msg = tx_msgs_[wait_head_];
    const uint16_t id = pool_.acquire(msg.peer, msg.tc, msg.mode, last_now_);
    drain_pool_wakes();
    if (id == 0) return;
    const uint32_t m = wait_head_;
    wait_head_ = msg.next;
    if (wait_head_ == kNone) wait_tail_ = kNone;
    enqueue_on_pdc(m, id);
  }
}

void Transport::drain_pool_wakes() {
  pool_.drain_woken([this](uint16_t id) { activate(id); });
}

absl::StatusOr<uint16_t> Transport::create_qp(DeliveryMode type) {
  const uint32_t qp = qps_.alloc();
  if (qp == kNoIndex) {
    return absl::ResourceExhaustedError(absl::StrFormat("all %u QPs of this engine are in use", config_.max_qps));
  }
  qps_[qp] = Endpoint();
  qps_[qp].live = true;
  qps_[qp].type = type;
  return static_cast<uint16_t>(qp);
}

absl::Status Transport::destroy_qp(uint16_t qp) {
  if (qp == 0 || qp >= qps_.capacity() || !qps_[qp].live) {
    return absl::InvalidArgumentError(absl::StrFormat("qp %u is not a live QP created by create_qp", qp));
  }
  Endpoint& ep = qps_[qp];
  // Posted receives end with a flush status; nothing is dropped silently.
  RecvBuf rb;
  while (pop_recv(qp, &rb)) {
    Completion c;
    c.wr_id = rb.wr_id;
    c.tag = rb.tag;
    c.status = WcStatus::kWrFlushErr;
    c.opcode = WcOpcode::kRecv;
    c.qp = qp;
    push_completion(c);
  }
  // Sends of this QP that have not started end now, flushed. One whose
  // packets already hold PSNs on its PDC runs to its end: the PDC's order
  // cannot have a message cut short in it.
  auto flush_unstarted = [&](uint32_t& head, uint32_t& tail) {
    uint32_t prev = kNone;
    for (uint32_t m = head; m != kNone;) {
      TxMsg& msg = tx_msgs_[m];
      const uint32_t next = msg.next;
      if (msg.src_qp == qp && msg.next_packet == 0 && msg.op != SendOp::kReadResponse) {
        if (prev == kNone) head = next; else tx_msgs_[prev].next = next;
        if (tail == m) tail = prev;
        ++counters_.sends_flushed;
        finish_tx(m, WcStatus::kWrFlushErr);
      } else {
        prev = m;
      }
      m = next;
    }
  };
  for (uint32_t id = 1; id < ses_.size(); ++id) {
    if (ses_[id].sendq_head != kNone) flush_unstarted(ses_[id].sendq_head, ses_[id].sendq_tail);
  }
  flush_unstarted(wait_head_, wait_tail_);
  flush_unstarted(uud_head_, uud_tail_);
  ep = Endpoint();
  qps_.free(qp);
  return absl::OkStatus();
}

size_t Transport::qp_state_bytes(uint16_t qp) const {
  if (qp >= qps_.capacity() || !qps_[qp].live) return 0;
  return sizeof(Endpoint) + qps_[qp].rq.ring.capacity() * sizeof(RecvBuf);
}

absl::StatusOr<uint64_t> Transport::register_memory(uint8_t* addr, uint64_t len, uint32_t access) {
  if (!addr || len == 0) return absl::InvalidArgumentError("register_memory: empty region");
  if (access & ~(kRemoteWrite | kRemoteRead | kZeroBased)) {
    return absl::InvalidArgumentError("register_memory: unknown access bits");
  }
  // Keys are never reused during a transport's life and carry random low
  // bits, so a stale or guessed key misses.
  const uint64_t rkey = (next_region_++ << 16) | (rng_.next_u64() & 0xffff);
  regions_.emplace(rkey, Region{addr, len, access});
  return rkey;
}

absl::Status Transport::register_memory_as(uint64_t rkey, uint8_t* addr, uint64_t len, uint32_t access) {
  if (!addr || len == 0) return absl::InvalidArgumentError("register_memory: empty region");
  if (access & ~(kRemoteWrite | kRemoteRead | kZeroBased)) {
    return absl::InvalidArgumentError("register_memory: unknown access bits");
  }
  if (!regions_.emplace(rkey, Region{addr, len, access}).second) {
    return absl::AlreadyExistsError(absl::StrFormat("register_memory: rkey 0x%x is in use", rkey));
  }
  return absl::OkStatus();
}

absl::Status Transport::deregister_memory(uint64_t rkey) {
  if (regions_.erase(rkey) == 0) return absl::NotFoundError("deregister_memory: no such rkey");
  return absl::OkStatus();
}

uint8_t* Transport::region_range(uint64_t rkey, uint64_t remote_addr, uint64_t len, uint32_t right,
                                 wire::SesReturnCode* why) {
  auto it = regions_.find(rkey);
  if (it == regions_.end()) {
    *why = wire::SesReturnCode::kBadMkey;
    return nullptr;
  }
  const Region& r = it->second;
  if (!(r.access & right)) {
    *why = wire::SesReturnCode::kPermViolation;
    return nullptr;
  }
  // Offset of the first byte from the region's start, overflow-safe.
  const uint64_t base = reinterpret_cast<uint64_t>(r.addr);
  uint64_t start;
  if (r.access & kZeroBased) {
    start = remote_addr;
  } else {
    start = remote_addr < base ? ~uint64_t{0} : remote_addr - base;
  }
  if (start > r.len || len > r.len - start) {
    *why = wire::SesReturnCode::kBadAddr;
    return nullptr;
  }
  return r.addr + start;
}

uint8_t* Transport::write_target(uint64_t rkey, uint64_t remote_addr, uint32_t msg_len, uint32_t msg_off) {
  // The whole message must fit, so that no packet of a message that runs
  // past the region writes anything (not only the ones that overflow).
  wire::SesReturnCode why;
  uint8_t* start = region_range(rkey, remote_addr, msg_len, kRemoteWrite, &why);
  if (!start || msg_off > msg_len) return nullptr;
  return start + msg_off;
}

pds::RequestVerdict Transport::serve_read(pds::Pdc& pdc, const wire::SesRequest& h, uint8_t* ses_code) {
  wire::SesReturnCode why = wire::SesReturnCode::kOk;
  uint8_t* src = region_range(h.mem_key, h.buf_off, h.req_len, kRemoteRead, &why);
  if (!src) {
    ++counters_.rx_access_denied;
    *ses_code = static_cast<uint8_t>(why);
    return pds::RequestVerdict::kRejected;
  }
  if (tx_msgs_.full()) return pds::RequestVerdict::kRnr;  // no room to answer now: ask again later
  // The answer is a message of our own back to the reader, on our PDC to
  // it (opened with 0 RTT if needed), carrying the reader's slot.
  const uint32_t m = tx_msgs_.alloc();
  TxMsg& msg = tx_msgs_[m];
  msg = TxMsg{};
  msg.data = src;
  msg.len = h.req_len;
  msg.peer = pdc.peer();
  msg.mode = pdc.mode();
  msg.op = SendOp::kReadResponse;
  msg.packets = msg.len == 0 ? 1 : (msg.len + config_.mtu_payload - 1) / config_.mtu_payload;
  msg.read_slot = static_cast<uint32_t>(h.cmpl_data & 0xffffffffu);
  msg.read_gen = static_cast<uint8_t>(h.cmpl_data >> 32);
  msg.next = kNone;
  ++counters_.reads_served;
  const uint16_t id = pool_.acquire(msg.peer, 0, msg.mode, last_now_);
  drain_pool_wakes();
  if (id == 0) {
    if (wait_tail_ == kNone) wait_head_ = m; else tx_msgs_[wait_tail_].next = m;
    wait_tail_ = m;
  } else {
    enqueue_on_pdc(m, id);
  }
  return pds::RequestVerdict::kAccepted;
}

pds::RequestVerdict Transport::on_read_response(pds::Pdc& pdc, const wire::Packet& pkt) {
  const wire::SesResponse& r = pkt.ses_response;
  const uint32_t slot = r.rd_msg_id;
  if (slot >= reads_.capacity() || !reads_[slot].live || reads_[slot].gen != r.ri_gen) {
    ++counters_.read_responses_stale;  // its READ ended (timed out): acknowledge, drop
    return pds::RequestVerdict::kDiscard;
  }
  const uint32_t m = reads_[slot].msg;
  TxMsg& msg = tx_msgs_[m];
  const uint32_t payload = static_cast<uint32_t>(pkt.payload.size());
  if (msg.peer != pdc.peer() || r.mod_len != msg.len || uint64_t{r.msg_off} + payload > msg.len) {
    ++counters_.rx_ses_malformed;
    return pds::RequestVerdict::kDiscard;
  }
  if (payload && msg.nsge) {
    sgl_copy<true>(msg.sgl, msg.nsge, r.msg_off, const_cast<uint8_t*>(pkt.payload.data()), payload);
  } else if (payload) {
    std::memcpy(const_cast<uint8_t*>(msg.data) + r.msg_off, pkt.payload.data(), payload);
  }
  msg.landed += payload;
  counters_.payload_bytes_received += payload;
  maybe_finish_read(m);
  return pds::RequestVerdict::kAccepted;
}

absl::Status Transport::post_recv(uint16_t qp, std::span<uint8_t> buffer, uint64_t wr_id) {
  if (qp >= qps_.capacity() || !qps_[qp].live) {
    return absl::InvalidArgumentError(absl::StrFormat("qp %u is not a live QP of this engine", qp));
  }
  if (buffer.size() > kMaxMessageBytes) {
    return absl::InvalidArgumentError("receive buffer larger than 4 GiB - 1");
  }
  RecvQueue& q = qps_[qp].rq;
  if (q.count == q.ring.size()) {
    if (q.ring.size() >= config_.recv_queue_depth) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "receive queue of qp %u is full (%u buffers)", qp, config_.recv_queue_depth));
    }
    // Grow by doubling (from 16): a QP costs what it uses, not its depth.
    std::vector<RecvBuf> bigger(std::min<size_t>(config_.recv_queue_depth, std::max<size_t>(16, q.ring.size() * 2)));
    for (uint32_t i = 0; i < q.count; ++i) bigger[i] = q.ring[(q.head + i) % q.ring.size()];
    q.ring.swap(bigger);
    q.head = 0;
  }
  RecvBuf& rb = q.ring[(q.head + q.count) % q.ring.size()];
  rb.buf = buffer.data();
  rb.wr_id = wr_id;
  rb.len = static_cast<uint32_t>(buffer.size());
  rb.tag = 0;
  rb.nsge = 0;
  ++q.count;
  return absl::OkStatus();
}

absl::Status Transport::post_recv(uint16_t qp, std::span<const Segment> sgl, uint64_t wr_id, uint32_t tag) {
  if (sgl.size() > kMaxSegments) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%u segments in one receive (at most %u)", sgl.size(), kMaxSegments));
  }
  if (tag >= (1u << 27)) return absl::InvalidArgumentError("receive tag above 2^27 - 1");
  const uint64_t bytes = sgl_bytes(sgl);
  if (bytes > kMaxMessageBytes) return absl::InvalidArgumentError("receive buffer larger than 4 GiB - 1");
  RETURN_IF_ERROR(post_recv(qp, std::span<uint8_t>(), wr_id));
  RecvQueue& q = qps_[qp].rq;
  RecvBuf& rb = q.ring[(q.head + q.count - 1) % q.ring.size()];
  rb.len = static_cast<uint32_t>(bytes);
  rb.sgl = sgl.data();
  rb.nsge = static_cast<uint32_t>(sgl.size());
  rb.tag = tag;
  return absl::OkStatus();
}

bool Transport::pop_recv(uint16_t qp, RecvBuf* out) {
  if (qp >= qps_.capacity() || !qps_[qp].live) return false;
  RecvQueue& q = qps_[qp].rq;
  if (q.count == 0) return false;
  *out = q.ring[q.head];
  q.head = (q.head + 1) % q.ring.size();
  --q.count;
  return true;
}

void Transport::push_completion(const Completion& c) {
  if (completions_head_ > 4096 && completions_head_ * 2 > completions_.size()) {
    completions_.erase(completions_.begin(), completions_.begin() + completions_head_);
    completions_head_ = 0;
  }
  completions_.push_back(c);
}

uint32_t Transport::poll_completions(Completion* out, uint32_t max) {
  uint32_t n = 0;
  while (n < max && completions_head_ < completions_.size()) out[n++] = completions_[completions_head_++];
  if (completions_head_ == completions_.size()) {
    completions_.clear();
    completions_head_ = 0;
  }
  return n;
}

// ============================================================================
// PDCs
// ============================================================================

void Transport::activate(uint16_t id) {
  PdcSes& ses = ses_[id];
  if (ses.active) return;
  ses.active = true;
  active_.push_back(id);
}

void Transport::release_pdc(uint16_t id) {
  pds::Pdc& pdc = *pool_.get(id);
  PdcSes& ses = ses_[id];
  // Messages never handed to the PDS fail with the PDC.
  const WcStatus why = pdc.state() == pds::PdcState::kFailed ? WcStatus::kRetryExcErr : WcStatus::kWrFlushErr;
  while (ses.sendq_head != kNone) {
    const uint32_t m = ses.sendq_head;
    ses.sendq_head = tx_msgs_[m].next;
    tx_msgs_[m].failed = true;
    finish_tx(m, why);
  }
  if (pdc.state() == pds::PdcState::kFailed) ++counters_.pdcs_failed;
  pool_.release(id);
  forget_pdc(id);
}

void Transport::update_timer(uint16_t id) {
  // Lazy: a timer only ever moves earlier. When the PDC's deadline moves
  // later (every ACK pushes the RTO out) the armed timer stays and fires
  // early; Pdc::on_timeout then finds nothing due and the timer is set again
  // from next_deadline(). That trades a rare spurious wake for a re-arm per
  // packet.
  PdcSes& ses = ses_[id];
  const pds::Pdc* pdc = pool_.get(id);
  const TimePoint d = pdc ? pdc->next_deadline() : TimePoint::max();
  if (d.is_max()) return;
  if (ses.timer == kNoIndex) {
    ses.timer = timers_.arm(d, id);
  } else if (d < timers_.deadline(ses.timer)) {
    timers_.rearm(ses.timer, d);
  }
}

void Transport::forget_pdc(uint16_t id) {
  // The pool has freed the id; whatever SES kept for it goes too. A PDC the
  // pool closed cleanly has nothing outstanding, but work may have been
  // queued on it in the moment it was deciding to close: that work goes back
  // to wait for a PDC (a new one opens with 0 RTT), ahead of later work.
  PdcSes& ses = ses_[id];
  if (ses.sendq_head != kNone) {
    tx_msgs_[ses.sendq_tail].next = wait_head_;
    if (wait_head_ == kNone) wait_tail_ = ses.sendq_tail;
    wait_head_ = ses.sendq_head;
    for (uint32_t m = ses.sendq_head;; m = tx_msgs_[m].next) {
      tx_msgs_[m].pdc = 0;
      if (m == ses.sendq_tail) break;
    }
  }
  if (ses.timer != kNoIndex) timers_.cancel(ses.timer);
  if (credit_) credit_->remove(id);
  if (ses.credit_repeat) {
    credit_repeat_.erase(std::find(credit_repeat_.begin(), credit_repeat_.end(), id));
  }
  ses_[id] = PdcSes();
  ++counters_.pdcs_freed;
  retry_waiting();
}

void Transport::after_pdc_event(uint16_t id, TimePoint now) {
  pds::Pdc& pdc = *pool_.get(id);
  if (pdc.state() == pds::PdcState::kFailed) {
    release_pdc(id);
    return;
  }
  const PdcSes& ses = ses_[id];
  const bool idle = pdc.quiescent() && ses.sendq_head == kNone && ses.outstanding_msgs == 0;
  if (pool_.after_event(id, idle, now)) {
    forget_pdc(id);
    return;
  }
  update_timer(id);
  if (pdc.wants_transmit(now)) activate(id);
  // Work waiting for a PDC may now evict this idle one.
  if (idle && wait_head_ != kNone) retry_waiting();
}

uint32_t Transport::pdcs_open() const { return pool_.open(); }

pds::PdsCounters Transport::pds_counters() const {
  pds::PdsCounters total = pool_.freed_pdc_counters();
  pool_.for_each([&](uint16_t, const pds::Pdc& pdc) { add_counters(total, pdc.counters()); });
  return total;
}

// ============================================================================
// I/O side
// ============================================================================

void Transport::on_datagram(std::span<const uint8_t> datagram, const RxMeta& meta, TimePoint now) {
  ++counters_.rx_datagrams;
  ++activity_;
  last_now_ = now;
  wire::Packet pkt;
  const wire::WireError err =
      meta.trimmed ? wire::parse_trimmed(datagram, pkt) : wire::parse_datagram(datagram, pkt);
  if (err != wire::WireError::kOk) {
    ++counters_.rx_wire_errors[static_cast<int>(err)];
    return;
  }
  if (meta.trimmed) ++counters_.rx_trimmed;
  uint16_t id = 0;
  switch (pkt.prologue.type) {
    case wire::PdsType::kUudReq:
      on_uud(pkt, meta);
      return;
    case wire::PdsType::kRudReq:
    case wire::PdsType::kRodReq:
    case wire::PdsType::kRudCcReq:
    case wire::PdsType::kRodCcReq: {
      const DeliveryMode mode = (pkt.prologue.type == wire::PdsType::kRodReq ||
                                 pkt.prologue.type == wire::PdsType::kRodCcReq)
                                    ? DeliveryMode::kRod
                                    : DeliveryMode::kRud;
      if (pkt.request.prologue.flags & wire::kReqFlagSyn) {
        // A trimmed header was never CRC-checked: it may find a PDC, never
        // create one (the sender's RACK/TLP recovers a trimmed first packet).
        if (meta.trimmed) {
          id = pool_.find_accepted(meta.peer, pkt.request.spdcid);
        } else {
          id = pool_.accept(meta.peer, pkt.request, mode, now);
          drain_pool_wakes();
        }
        if (id == 0) {
          ++counters_.rx_no_pdc;
          return;
        }
      } else {
        id = pkt.request.dpdcid;
      }
      break;
    }
    case wire::PdsType::kAck:
    case wire::PdsType::kAckCc:
    case wire::PdsType::kAckCcx:
      id = pkt.ack.dpdcid;
      break;
    case wire::PdsType::kNack:
    case wire::PdsType::kNackCcx:
      id = pkt.nack.dpdcid;
      break;
    case wire::PdsType::kCtrl:
      // A CREDIT_REQ sent before the sender knew our id names its own.
      id = (pkt.ctrl.prologue.flags & wire::kCtrlFlagSyn) ? pool_.find_accepted(meta.peer, pkt.ctrl.spdcid)
                                                          : pkt.ctrl.dpdcid;
      break;
    default:
      ++counters_.rx_no_pdc;
      return;
  }
  pds::Pdc* found = pool_.get(id);
  if (!found) {
    ++counters_.rx_no_pdc;
    return;
  }
  pds::Pdc& pdc = *found;
  if (pdc.peer() != meta.peer) {
    ++counters_.rx_pdc_mismatch;
    return;
  }
  if (credit_) {
    if (pkt.prologue.type == wire::PdsType::kCtrl && pkt.ctrl.ctrl_type() == wire::CtrlType::kCreditReq) {
      pdc.heard_on(meta.entropy);
      on_credit_request(id, pkt.ctrl, now);
      return;
    }
    // Every data packet of a credit sender, whole or trimmed, at the length
    // its sender charged (a trimmed one is re-granted so it can be resent).
    if (pkt.prologue.type == wire::PdsType::kRudCcReq || pkt.prologue.type == wire::PdsType::kRodCcReq) {
      credit_->on_data_arrived(id, pkt.request.req_cc_state, meta.trimmed, now);
    }
  }
  if (meta.trimmed) {
    pdc.on_trimmed(pkt, meta, now);
  } else {
    pdc.on_packet(pkt, meta, now);
  }
  after_pdc_event(id, now);
}

uint32_t Transport::poll_transmit(TimePoint now, TxBatch& batch) {
  last_now_ = now;
  const uint32_t start = batch.count();
  if (credit_) emit_credits(now, batch);  // control first, like ACKs
  while (uud_head_ != kNone && !batch.full()) {
    if (!emit_uud(batch)) break;
  }
  // Every PDC's ACKs and NACKs before anyone's data: they are small and free
  // the peers' windows, and a PDC with data can fill every batch, so an ACK
  // waiting its turn behind it would stall the peer until its RTO.
  for (size_t i = 0; i < active_.size() && !batch.full(); ++i) {
    const uint16_t id = active_[i];
    pds::Pdc* pdc = pool_.get(id);
    if (pdc && pdc->control_due(now) && pdc->poll_control(now, batch) != 0) after_pdc_event(id, now);
  }
  // Then data, round-robin from where the last call stopped (a PDC that
  // fills the batch leaves the next one first in line). A PDC that has
  // nothing more leaves the list.
  size_t i = active_cursor_;
  for (size_t visits = active_.size(); visits != 0 && !active_.empty() && !batch.full(); --visits) {
    if (i >= active_.size()) i = 0;
    const uint16_t id = active_[i];
    pds::Pdc* pdc = pool_.get(id);
    if (pdc) {
      pdc->poll_transmit(now, batch);
      after_pdc_event(id, now);  // may free it
      pdc = pool_.get(id);
    }
    if (!pdc || !pdc->wants_transmit(now)) {
      if (pdc) ses_[id].active = false;
      active_[i] = active_.back();
      active_.pop_back();
      continue;
    }
    ++i;
  }
  active_cursor_ = i;
  return batch.count() - start;
}

TimePoint Transport::next_deadline() const {
  const TimePoint t = min_time(pool_.next_deadline(), timers_.next_deadline());
  return credit_ ? min_time(t, credit_->next_deadline()) : t;
}

void Transport::on_timeout(TimePoint now) {
  ++activity_;
  last_now_ = now;
  // Collect first, act after: acting re-arms timers, and a timer re-armed
  // for `now` inside advance() would fire again in the same call.
  fired_.clear();
  timers_.advance(now, [this](uint32_t, uint64_t cookie) { fired_.push_back(cookie); });
  for (uint64_t cookie : fired_) {
    if (cookie & kReadTimerTag) {
      // A READ whose data did not all arrive in time.
      const uint32_t slot = static_cast<uint32_t>(cookie & 0xffffffffu);
      PendingRead& pr = reads_[slot];
      pr.timer = kNoIndex;
      if (pr.live && pr.gen == static_cast<uint8_t>(cookie >> 32)) {
        ++counters_.read_timeouts;
        TxMsg& msg = tx_msgs_[pr.msg];
        if (msg.request_acked) {
          finish_tx(pr.msg, WcStatus::kRetryExcErr);
        } else {
          // The request itself is still with the PDS, which ends it (acked
          // or failed) by its own budget; wait for that.
          pr.timer = timers_.arm(now + config_.read_timeout, cookie);
        }
      }
      continue;
    }
    const uint16_t id = static_cast<uint16_t>(cookie);
    PdcSes& ses = ses_[id];
    ses.timer = kNoIndex;  // released by advance(): it was not re-armed inside
    pds::Pdc* pdc = pool_.get(id);
    if (!pdc) continue;
    pdc->on_timeout(now);
    after_pdc_event(id, now);
  }
  if (pool_.next_deadline() <= now) {
    pool_.on_timeout(now, [this](uint16_t id) { forget_pdc(id); });
    drain_pool_wakes();
  }
}

// ============================================================================
// PdsUpper: the sender's units
// ============================================================================

bool Transport::next_unit(pds::Pdc& pdc, uint64_t* cookie, bool* last) {
  PdcSes& slot = ses_[pdc.local_id()];
  const uint32_t m = slot.sendq_head;
  if (m == kNone) return false;
  TxMsg& msg = tx_msgs_[m];
  // SEND and WRITE take a place in the PDC's msg_id order (ROD completes in
  // it) when their first packet leaves, so that a message dropped before
  // that (its QP destroyed) leaves no hole in the order. READ requests and
  // responses are matched by their read slot instead.
  if (msg.next_packet == 0) {
    msg.started = last_now_;
    if (msg.op == SendOp::kSend || msg.op == SendOp::kWrite) msg.msg_id = slot.next_msg_id++;
  }
  *cookie = (uint64_t{m} << 32) | msg.next_packet;
  if (credit_cc_) unqueue_bytes(pdc.local_id(), msg, msg.next_packet, msg.next_packet + 1);
  if (++msg.next_packet == msg.packets) {
    slot.sendq_head = msg.next;
    if (slot.sendq_head == kNone) slot.sendq_tail = kNone;
    ++counters_.msgs_sent;
  }
  *last = slot.sendq_head == kNone;
  return true;
}

size_t Transport::encode_ses(const TxMsg& m, uint32_t packet, uint8_t* out, size_t cap,
                             wire::NextHdr* next_hdr) const {
  const uint32_t off = packet * config_.mtu_payload;
  // A READ request carries no payload: its length is what it asks for.
  const uint32_t len = m.op == SendOp::kRead ? 0 : std::min(config_.mtu_payload, m.len - off);
  if (m.op == SendOp::kReadResponse) {
    if (cap < wire::kSesResponseDataSize + len) return 0;
    wire::SesResponse r;
    r.opcode = 2;  // response with data
    r.ret_code = static_cast<uint8_t>(wire::SesReturnCode::kOk);
    r.job_id = config_.job_id;
    r.rd_msg_id = static_cast<uint16_t>(m.read_slot);
    r.ri_gen = m.read_gen;
    r.payload_len = static_cast<uint16_t>(len);
    r.mod_len = m.len;
    r.msg_off = off;
    const size_t n = wire::encode_ses_response(r, /*with_data=*/true, std::span<uint8_t>(out, cap));
    if (len) std::memcpy(out + n, m.data + off, len);  // from a registered region: contiguous
    *next_hdr = wire::NextHdr::kRspData;
    return n + len;
  }
  if (cap < wire::kSesRequestSize + len) return 0;
  wire::SesRequest h;
  h.opcode = m.op == SendOp::kWrite  ? wire::SesOpcode::kWrite
             : m.op == SendOp::kRead ? wire::SesOpcode::kRead
                                     : wire::SesOpcode::kSend;
  // IE on every packet of a message with immediate data (cmpl_data itself
  // rides on SOM): a WRITE_WITH_IMM is tracked from whichever packet lands first.
  h.flags = (packet == 0 ? wire::kSesFlagSom : 0) | (packet + 1 == m.packets ? wire::kSesFlagEom : 0) |
            (m.has_imm ? wire::kSesFlagIe : 0);
  h.buf_off = m.remote_addr;
  h.mem_key = m.rkey;
  h.msg_id = m.msg_id;
  h.job_id = config_.job_id;
  h.pid_on_fep = m.dst_engine;
  h.res_index = m.dst_qp;
  h.initiator = (uint32_t{config_.engine_index} << 12) | m.src_qp;
  if (packet == 0) {
    // A READ's cmpl_data names the slot (and its generation) its data must
    // come back to; otherwise it is the immediate data.
    h.cmpl_data = m.op == SendOp::kRead ? (uint64_t{m.read_gen} << 32) | m.read_slot : m.imm;
  } else {
    h.payload_len = static_cast<uint16_t>(len);
    h.msg_off = off;
  }
  h.req_len = m.len;
  const size_t n = wire::encode_ses_request(h, std::span<uint8_t>(out, cap));
  if (len && m.nsge) {
    sgl_copy<false>(m.sgl, m.nsge, off, out + n, len);
  } else if (len) {
    std::memcpy(out + n, m.data + off, len);
  }
  return n + len;
}

size_t Transport::write_unit(pds::Pdc& pdc, uint64_t cookie, std::span<uint8_t> out, wire::NextHdr* next_hdr) {
  (void)pdc;
  const TxMsg& m = tx_msgs_[cookie >> 32];
  return encode_ses(m, static_cast<uint32_t>(cookie), out.data(), out.size(), next_hdr);
}

uint32_t Transport::unit_bytes(const TxMsg& m, uint32_t packet) const {
  // As encode_ses() writes it: the SES header, then the packet's payload.
  if (m.op == SendOp::kRead) return static_cast<uint32_t>(wire::kSesRequestSize);
  const uint32_t off = packet * config_.mtu_payload;
  const uint32_t len = std::min(config_.mtu_payload, m.len - off);
  return static_cast<uint32_t>(
      (m.op == SendOp::kReadResponse ? wire::kSesResponseDataSize : wire::kSesRequestSize) + len);
}

uint64_t Transport::remaining_bytes(const TxMsg& m, uint32_t from) const {
  if (from >= m.packets) return 0;
  const uint64_t units = m.packets - from;
  if (m.op == SendOp::kRead) return units * wire::kSesRequestSize;
  const uint64_t payload = m.len - std::min<uint64_t>(m.len, uint64_t{from} * config_.mtu_payload);
  return units * (m.op == SendOp::kReadResponse ? wire::kSesResponseDataSize : wire::kSesRequestSize) + payload;
}

// Out of line: only credit CCs keep the backlog, and the common path should
// not pay for the registers this takes.
[[gnu::noinline]] void Transport::queue_bytes(uint16_t id, const TxMsg& m, uint32_t from) {
  PdcSes& ses = ses_[id];
  ses.queued_units += m.packets - from;
  ses.queued_bytes += remaining_bytes(m, from);
}

[[gnu::noinline]] void Transport::unqueue_bytes(uint16_t id, const TxMsg& m, uint32_t from, uint32_t to) {
  if (!credit_cc_ || from >= to) return;
  PdcSes& ses = ses_[id];
  ses.queued_units -= to - from;
  ses.queued_bytes -= remaining_bytes(m, from) - remaining_bytes(m, to);
}

uint32_t Transport::peek_unit_bytes(pds::Pdc& pdc) {
  const uint32_t m = ses_[pdc.local_id()].sendq_head;
  if (m == kNone) return 0;
  const TxMsg& msg = tx_msgs_[m];
  return unit_bytes(msg, msg.next_packet);
}

uint64_t Transport::backlog_bytes(pds::Pdc& pdc, uint32_t* units) {
  const PdcSes& ses = ses_[pdc.local_id()];
  *units = ses.queued_units;
  return ses.queued_bytes;
}

// ============================================================================
// EQDS receiver: credit requests in, paced grants out
// ============================================================================

void Transport::on_credit_request(uint16_t id, const wire::CtrlHeader& c, TimePoint now) {
  ++counters_.credit_reqs_received;
  // The request total travels as its low 32 bits: widen it against what the
  // scheduler knows (granted + still to grant = the largest total seen).
  const uint64_t granted = credit_->granted_total(id);
  const uint64_t known = granted + credit_->demand(id);
  const int32_t diff = static_cast<int32_t>(c.payload - static_cast<uint32_t>(known));
  if (diff > 0) {
    credit_->on_request(id, known + static_cast<uint32_t>(diff), now);
    return;
  }
  // Nothing new: the sender repeats itself because it is still blocked, so
  // the CREDIT that covered it may have been lost. Say the total again.
  if (granted != 0 && !ses_[id].credit_repeat) {
    ses_[id].credit_repeat = true;
    credit_repeat_.push_back(id);
  }
}

bool Transport::emit_credit(uint16_t id, uint64_t granted_total, TxBatch& batch) {
  const pds::Pdc* pdc = pool_.get(id);
  if (!pdc || pdc->state() != pds::PdcState::kOpen) return false;
  TxPacket& tx = batch.next();
  wire::CtrlHeader c;
  c.prologue.type = wire::PdsType::kCtrl;
  c.prologue.next_hdr = static_cast<uint8_t>(wire::CtrlType::kCredit);
  c.spdcid = id;
  c.dpdcid = pdc->remote_id();
  c.payload = static_cast<uint32_t>(granted_total);  // low 32 bits; the sender widens it
  const size_t n = wire::encode_ctrl(c, std::span<uint8_t>(tx.data, tx.capacity));
  if (n == 0) return false;
  tx.len = static_cast<uint32_t>(wire::seal(std::span<uint8_t>(tx.data, tx.capacity), n));
  tx.peer = pdc->peer();
  tx.entropy = pdc->reply_entropy();
  tx.dscp = config_.pds.dscp_control;
  tx.ecn = Ecn::kNotEct;
  tx.control = true;
  batch.commit();
  ++counters_.credits_sent;
  return true;
}

void Transport::emit_credits(TimePoint now, TxBatch& batch) {
  while (!credit_repeat_.empty() && !batch.full()) {
    const uint16_t id = credit_repeat_.back();
    credit_repeat_.pop_back();
    ses_[id].credit_repeat = false;
    if (emit_credit(id, credit_->granted_total(id), batch)) ++counters_.credit_repeats;
  }
  while (!batch.full()) {
    const uint32_t room = std::min<uint32_t>(static_cast<uint32_t>(grants_.size()), batch.capacity() - batch.count());
    const size_t n = credit_->poll(now, std::span<cc::CreditGrant>(grants_.data(), room));
    for (size_t i = 0; i < n; ++i) {
      // A grant for a PDC that is gone or closing is dropped: nobody spends it.
      if (!emit_credit(static_cast<uint16_t>(grants_[i].id), grants_[i].granted_total, batch)) {
        if (!pool_.get(static_cast<uint16_t>(grants_[i].id))) credit_->remove(grants_[i].id);
      }
    }
    if (n < room) break;
  }
}

void Transport::finish_tx(uint32_t m, WcStatus status) {
  TxMsg& msg = tx_msgs_[m];
  if (msg.op == SendOp::kRead && msg.read_slot != kNoIndex) {
    PendingRead& pr = reads_[msg.read_slot];
    if (pr.timer != kNoIndex) timers_.cancel(pr.timer);
    pr.timer = kNoIndex;
    pr.live = false;
    pr.msg = kNoIndex;
    reads_.free(msg.read_slot);
    msg.read_slot = kNoIndex;
  }
  if (msg.op == SendOp::kReadResponse) {
    // The engine's own message: nobody waits for a completion here.
    if (msg.mode != DeliveryMode::kUud && msg.pdc && ses_[msg.pdc].outstanding_msgs) --ses_[msg.pdc].outstanding_msgs;
    tx_msgs_.free(m);
    return;
  }
  if (msg.mode != DeliveryMode::kUud && msg.pdc && ses_[msg.pdc].outstanding_msgs) --ses_[msg.pdc].outstanding_msgs;
  if (msg.signaled || status != WcStatus::kSuccess) {
    Completion c;
    c.wr_id = msg.wr_id;
    c.status = status;
    c.opcode = msg.op == SendOp::kWrite ? WcOpcode::kWrite : msg.op == SendOp::kRead ? WcOpcode::kRead : WcOpcode::kSend;
    c.byte_len = msg.len;
    c.peer = msg.peer;
    c.qp = msg.src_qp;
    push_completion(c);
  }
  tx_msgs_.free(m);
}

void Transport::on_unit_acked(pds::Pdc& pdc, uint64_t cookie) {
  (void)pdc;
  const uint32_t m = static_cast<uint32_t>(cookie >> 32);
  TxMsg& msg = tx_msgs_[m];
  if (msg.op == SendOp::kRead) {
    // The request arrived; the READ ends when its bytes have too.
    ++msg.resolved;
    msg.request_acked = true;
    maybe_finish_read(m);
    return;
  }
  if (++msg.resolved == msg.packets) finish_tx(m, msg.failed ? msg.fail_status : WcStatus::kSuccess);
}

void Transport::maybe_finish_read(uint32_t m) {
  TxMsg& msg = tx_msgs_[m];
  if (msg.request_acked && msg.landed == msg.len) finish_tx(m, WcStatus::kSuccess);
}

namespace {
WcStatus status_of(pds::UnitFailure why, uint8_t ses_code) {
  switch (why) {
    case pds::UnitFailure::kRetryExceeded: return WcStatus::kRetryExcErr;
    case pds::UnitFailure::kClosed: return WcStatus::kWrFlushErr;
    case pds::UnitFailure::kRnrExceeded: return WcStatus::kRnrRetryExcErr;
    case pds::UnitFailure::kRejected:
      switch (static_cast<wire::SesReturnCode>(ses_code)) {
        case wire::SesReturnCode::kBadMkey:
        case wire::SesReturnCode::kBadAddr:
        case wire::SesReturnCode::kPermViolation: return WcStatus::kRemAccessErr;
        default: return WcStatus::kRemInvReqErr;
      }
  }
  return WcStatus::kRemInvReqErr;
}
}  // namespace

pds::PdsUpper::UnitBudget Transport::unit_budget(pds::Pdc& pdc, uint64_t cookie) {
  (void)pdc;
  const TxMsg& msg = tx_msgs_[cookie >> 32];
  UnitBudget b;
  b.rnr_retries = msg.rnr_retries;
  b.retry_budget = Duration::micros(msg.retry_budget_us);
  b.since = msg.started;
  return b;
}

void Transport::on_unit_failed(pds::Pdc& pdc, uint64_t cookie, pds::UnitFailure why, uint8_t ses_code) {
  (void)pdc;
  const uint32_t m = static_cast<uint32_t>(cookie >> 32);
  TxMsg& msg = tx_msgs_[m];
  // The first failure names the message's status.
  if (!msg.failed) msg.fail_status = status_of(why, ses_code);
  msg.failed = true;
  // Units never handed out will not be reported by the PDS: count them here
  // once, when the last handed-out unit resolves.
  if (++msg.resolved + (msg.packets - msg.next_packet) == msg.packets) {
    // Unlink from the PDC's send queue if it was still partly queued.
    PdcSes& slot = ses_[msg.pdc];
    if (msg.next_packet < msg.packets && slot.sendq_head == m) {
      unqueue_bytes(msg.pdc, msg, msg.next_packet, msg.packets);
      slot.sendq_head = msg.next;
      if (slot.sendq_head == kNone) slot.sendq_tail = kNone;
    }
    finish_tx(m, msg.fail_status);
  }
}

// ============================================================================
// PdsUpper: the receiver's requests
// ============================================================================

pds::RequestVerdict Transport::on_request(pds::Pdc& pdc, const wire::Packet& pkt, TimePoint now,
                                          uint8_t* ses_code) {
  (void)now;
  if (pkt.has_ses_response) return on_read_response(pdc, pkt);
  if (!pkt.has_ses_request) {
    ++counters_.rx_ses_malformed;
    return pds::RequestVerdict::kDiscard;
  }
  const wire::SesRequest& h = pkt.ses_request;
  if (h.pid_on_fep != config_.engine_index) {
    // Meant for another engine of this context: the address and the QP
    // number disagree. Nothing here will ever accept it.
    ++counters_.rx_wrong_engine;
    *ses_code = static_cast<uint8_t>(wire::SesReturnCode::kBadIndex);
    return pds::RequestVerdict::kRejected;
  }
  if (h.opcode == wire::SesOpcode::kRead) return serve_read(pdc, h, ses_code);
  if (h.opcode != wire::SesOpcode::kSend && h.opcode != wire::SesOpcode::kWrite) {
    ++counters_.rx_unsupported_op;
    return pds::RequestVerdict::kDiscard;
  }
  const uint32_t payload = static_cast<uint32_t>(pkt.payload.size());
  const uint32_t off = h.msg_off;
  if (uint64_t{off} + payload > h.req_len) {
    ++counters_.rx_ses_malformed;
    return pds::RequestVerdict::kDiscard;
  }
  uint8_t* write_dst = nullptr;
  const bool is_write = h.opcode == wire::SesOpcode::kWrite;
  const bool with_imm = (h.flags & wire::kSesFlagIe) != 0;
  if (is_write) {
    uint8_t* dst = write_target(h.mem_key, h.buf_off, h.req_len, off);
    if (!dst) {
      // Refused for good: not acknowledged, nothing written, and the
      // initiator's WRITE ends with REM_ACCESS_ERR.
      ++counters_.rx_access_denied;
      *ses_code = static_cast<uint8_t>(regions_.contains(h.mem_key) ? wire::SesReturnCode::kBadAddr
                                                                    : wire::SesReturnCode::kBadMkey);
      return pds::RequestVerdict::kRejected;
    }
    // A plain WRITE on RUD needs no bookkeeping here: it completes only at
    // the initiator. A WRITE with immediate data takes a receive WR (no
    // bytes go there) and completes there once every byte landed; on ROD
    // every message, WRITEs too, keeps its place in the msg_id order.
    if (!with_imm && pdc.mode() != DeliveryMode::kRod) {
      if (payload) std::memcpy(dst, pkt.payload.data(), payload);
      counters_.payload_bytes_received += payload;
      return pds::RequestVerdict::kAccepted;
    }
    write_dst = dst;
  }
  const uint16_t id = pdc.local_id();
  PdcSes& slot = ses_[id];
  const uint32_t key = (uint32_t{id} << 16) | h.msg_id;
  const uint32_t psn = pkt.request.psn;
  if (too_long_live_ && !is_write && is_too_long(key, psn, h.req_len)) {
    ++counters_.rx_too_long;
    *ses_code = static_cast<uint8_t>(wire::SesReturnCode::kTooLong);
    return pds::RequestVerdict::kRejected;
  }
  uint32_t r;
  bool indexed = true;  // r is in rx_index_ under key
  auto it = rx_index_.find(key);
  if (it != rx_index_.end()) {
    r = it->second;
    if (rx_msgs_[r].msg_len != h.req_len) {
      ++counters_.rx_ses_malformed;
      return pds::RequestVerdict::kDiscard;
    }
  } else {
    // First packet of this message: take the next posted receive buffer.
    if (rx_msgs_.full()) return pds::RequestVerdict::kRefused;
    if (pdc.mode() == DeliveryMode::kRod && h.msg_id != slot.next_complete && (!is_write || with_imm) &&
        h.res_index < qps_.capacity() && qps_[h.res_index].rq.count <= 1) {
      // A ROD message that must wait for an earlier one may not take the
      // last buffer: the earlier message may need it, and nothing would
      // complete to free another (a deadlock, not just a stall).
      ++counters_.rx_rnr;
      return pds::RequestVerdict::kRefused;
    }
    RecvBuf rb{nullptr, 0, 0};
    const bool needs_recv = !is_write || with_imm;
    if (needs_recv && (h.res_index >= qps_.capacity() || !qps_[h.res_index].live)) {
      // No such endpoint here: no buffer will ever come.
      *ses_code = static_cast<uint8_t>(wire::SesReturnCode::kBadIndex);
      return pds::RequestVerdict::kRejected;
    }
    if (needs_recv && !pop_recv(h.res_index, &rb)) {
      ++counters_.rx_rnr;
      return pds::RequestVerdict::kRnr;
    }
    r = rx_msgs_.alloc();
    indexed = false;
    RxMsg& rm = rx_msgs_[r];
    rm.buf = rb.nsge ? nullptr : rb.buf;
    rm.sgl = rb.nsge ? rb.sgl : nullptr;
    rm.nsge = rb.nsge;
    rm.tag = rb.tag;
    rm.buf_len = rb.len;
    rm.wr_id = rb.wr_id;
    rm.msg_len = h.req_len;
    rm.landed = 0;
    rm.qp = h.res_index;
    rm.src_qp = h.initiator & 0xFFFFFFu;
    rm.has_imm = false;
    rm.imm = 0;
    rm.complete = false;
    rm.write = is_write;
    rm.silent = !needs_recv;
    rm.len_error = !is_write && h.req_len > rb.len;
    if (rm.len_error) {
      // The buffer ends with LOC_LEN_ERR now, in its place in the order on
      // ROD; the message itself is refused packet by packet (see too_long_).
      remember_too_long(key, psn, h.req_len);
      ++counters_.rx_too_long;
      *ses_code = static_cast<uint8_t>(wire::SesReturnCode::kTooLong);
      rm.landed = rm.msg_len;
      rm.complete = true;
      if (pdc.mode() != DeliveryMode::kRod || h.msg_id == slot.next_complete) {
        complete_rx(r, pdc.peer());
        if (pdc.mode() == DeliveryMode::kRod) {
          ++slot.next_complete;
          deliver_rod(id, pdc.peer());
        }
      } else {
        rx_index_.emplace(key, r);  // deliver_rod completes it in turn
      }
      return pds::RequestVerdict::kRejected;
    }
    // A message whose first packet is also its last and that may complete
    // now (RUD, or the ROD message next in order) never needs the index.
    const bool whole = (h.flags & wire::kSesFlagSom) && (h.flags & wire::kSesFlagEom) && payload == h.req_len;
    if (!(whole && (pdc.mode() != DeliveryMode::kRod || h.msg_id == slot.next_complete))) {
      rx_index_.emplace(key, r);
      indexed = true;
    }
  }
  RxMsg& rm = rx_msgs_[r];
  if (h.flags & wire::kSesFlagSom) {
    rm.has_imm = (h.flags & wire::kSesFlagIe) != 0;
    rm.imm = h.cmpl_data;
  }
  // Direct placement at the packet's offset: never past the posted buffer,
  // and for a WRITE at the checked address in the registered region.
  if (rm.write) {
    if (payload) std::memcpy(write_dst, pkt.payload.data(), payload);
  } else if (!rm.len_error && payload && rm.nsge) {
    sgl_copy<true>(rm.sgl, rm.nsge, off, const_cast<uint8_t*>(pkt.payload.data()), payload);
  } else if (!rm.len_error && payload) {
    std::memcpy(rm.buf + off, pkt.payload.data(), payload);
  }
  rm.landed += payload;
  counters_.payload_bytes_received += payload;
  if (rm.landed == rm.msg_len && (payload > 0 || rm.msg_len == 0)) {
    rm.complete = true;
    if (!indexed) {
      complete_rx(r, pdc.peer());
      if (pdc.mode() == DeliveryMode::kRod) {
        ++slot.next_complete;
        deliver_rod(id, pdc.peer());  // later messages that were waiting for this one
      }
    } else if (pdc.mode() == DeliveryMode::kRod) {
      deliver_rod(id, pdc.peer());
    } else {
      rx_index_.erase(key);
      complete_rx(r, pdc.peer());
    }
  }
  return pds::RequestVerdict::kAccepted;
}

bool Transport::is_too_long(uint32_t key, uint32_t psn, uint32_t req_len) const {
  for (const TooLong& t : too_long_) {
    // Within 65536 PSNs of the first packet seen: the same msg_id on this
    // PDC comes back only after 65536 further messages, each a PSN at least.
    if (t.live && t.key == key && t.req_len == req_len && psn - t.first_psn + 65535u < 131071u) return true;
  }
  return false;
}

void Transport::remember_too_long(uint32_t key, uint32_t psn, uint32_t req_len) {
  TooLong& t = too_long_[too_long_next_];
  if (!t.live) ++too_long_live_;
  t = TooLong{key, psn, req_len, true};
  too_long_next_ = (too_long_next_ + 1) % kTooLongSlots;
}

void Transport::complete_rx(uint32_t r, PeerAddr peer) {
  RxMsg& rm = rx_msgs_[r];
  if (rm.silent) {  // a plain WRITE on ROD: its place in the order, no completion
    rx_msgs_.free(r);
    return;
  }
  Completion c;
  c.wr_id = rm.wr_id;
  c.tag = rm.tag;
  c.status = rm.len_error ? WcStatus::kLocLenErr : WcStatus::kSuccess;
  c.opcode = rm.write ? WcOpcode::kRecvRdmaWithImm : WcOpcode::kRecv;
  c.byte_len = rm.len_error ? 0 : rm.msg_len;
  c.has_imm = rm.has_imm;
  c.imm = rm.imm;
  c.peer = peer;
  c.src_qp = rm.src_qp;
  c.qp = rm.qp;
  push_completion(c);
  ++counters_.msgs_received;
  rx_msgs_.free(r);
}

void Transport::deliver_rod(uint16_t id, PeerAddr peer) {
  PdcSes& slot = ses_[id];
  for (;;) {
    const uint32_t key = (uint32_t{id} << 16) | slot.next_complete;
    auto it = rx_index_.find(key);
    if (it == rx_index_.end() || !rx_msgs_[it->second].complete) return;
    const uint32_t r = it->second;
    rx_index_.erase(it);
    complete_rx(r, peer);
    ++slot.next_complete;
  }
}

// ============================================================================
// UUD: one packet, no PDC, no acknowledgement
// ============================================================================

bool Transport::emit_uud(TxBatch& batch) {
  const uint32_t m = uud_head_;
  TxMsg& msg = tx_msgs_[m];
  TxPacket& tx = batch.next();
  wire::UudHeader u;
  u.prologue.type = wire::PdsType::kUudReq;
  u.prologue.next_hdr = static_cast<uint8_t>(wire::NextHdr::kReqStd);
  size_t n = wire::encode_uud(u, std::span<uint8_t>(tx.data, tx.capacity));
  if (n == 0) return false;
  wire::NextHdr uud_next = wire::NextHdr::kReqStd;
  const size_t body = encode_ses(msg, 0, tx.data + n, tx.capacity - n - wire::kTrailerSize, &uud_next);
  if (body == 0) return false;
  tx.len = static_cast<uint32_t>(wire::seal(std::span<uint8_t>(tx.data, tx.capacity), n + body));
  tx.peer = msg.peer;
  tx.entropy = config_.pool.entropy_base;
  tx.dscp = config_.pds.dscp_request;
  tx.ecn = Ecn::kEct0;
  tx.control = false;
  batch.commit();
  uud_head_ = msg.next;
  if (uud_head_ == kNone) uud_tail_ = kNone;
  ++counters_.msgs_sent;
  finish_tx(m, WcStatus::kSuccess);  // best effort: done once it left
  return true;
}

void Transport::on_uud(const wire::Packet& pkt, const RxMeta& meta) {
  if (!pkt.has_ses_request || pkt.ses_request.opcode != wire::SesOpcode::kSend ||
      pkt.payload.size() != pkt.ses_request.req_len) {
    ++counters_.rx_ses_malformed;
    return;
  }
  const wire::SesRequest& h = pkt.ses_request;
  if (h.pid_on_fep != config_.engine_index) {
    ++counters_.rx_wrong_engine;
    return;
  }
  RecvBuf rb;
  if (rx_msgs_.full() || !pop_recv(h.res_index, &rb)) {
    ++counters_.rx_uud_dropped;
    return;
  }
  const uint32_t r = rx_msgs_.alloc();
  RxMsg& rm = rx_msgs_[r];
  rm.buf = rb.nsge ? nullptr : rb.buf;
  rm.sgl = rb.nsge ? rb.sgl : nullptr;
  rm.nsge = rb.nsge;
  rm.tag = rb.tag;
  rm.buf_len = rb.len;
  rm.wr_id = rb.wr_id;
  rm.msg_len = h.req_len;
  rm.landed = h.req_len;
  rm.qp = h.res_index;
  rm.src_qp = h.initiator & 0xFFFFFFu;
  rm.has_imm = (h.flags & wire::kSesFlagIe) != 0;
  rm.imm = h.cmpl_data;
  rm.len_error = h.req_len > rb.len;
  rm.write = false;
  rm.silent = false;
  if (!rm.len_error && h.req_len && rm.nsge) {
    sgl_copy<true>(rm.sgl, rm.nsge, 0, const_cast<uint8_t*>(pkt.payload.data()), h.req_len);
  } else if (!rm.len_error && h.req_len) {
    std::memcpy(rm.buf, pkt.payload.data(), h.req_len);
  }
  counters_.payload_bytes_received += h.req_len;
  complete_rx(r, meta.peer);
}

}  // namespace shoal::ses
