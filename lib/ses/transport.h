// lib/ses: the semantic sublayer and the I/O-free transport of one engine.
//
// Transport owns the PDCs of one engine (a first cut of the pool: one PDC per
// (peer, delivery mode), opened with 0 RTT on first use) and the messages
// that ride on them. It is the sans-I/O object an engine (lib/engine, later)
// or the simulator drives:
//   on_datagram(bytes, meta, now) / poll_transmit(now, batch) /
//   next_deadline() / on_timeout(now)
// and that an application programs through post_send / post_recv /
// poll_completions.
//
// Messages: a SEND is cut into MTU-sized units; each carries msg_id, its
// offset and the total length in the SES standard header, so the receiver
// places every packet straight at its offset in the posted buffer, in
// whatever order packets arrive. A message completes when all of its bytes
// have landed. RUD completes messages in any order. ROD completes the
// messages of a PDC in msg_id order; like SRD's connectionless QPs, a
// message takes a receive buffer when its first packet arrives (buffer order
// across messages is arrival order), and a message waiting for an earlier one
// never takes a QP's last buffer.
// UUD messages are single packets, best effort, with no PDC.
//
// Congestion control and path selection are PdsConfig's (config.pds.cc,
// config.pds.lb, by registry name); every PDC runs them. With a receiver-
// credit algorithm (EQDS, kCcFlagReceiverCredit) the transport also runs one
// cc::CreditScheduler for everything it receives: fed by CTRL CREDIT_REQ
// (the sender's cumulative request) and by every arriving data packet (the
// length its sender charged, from req_cc_state, so a trimmed one is re-granted
// in full), it paces CTRL CREDIT packets carrying each sender's cumulative
// grant. A repeated request (the sender still blocked an RTO later) gets the
// current grant total again, in case the CREDIT was lost.
//
// Invariants:
// - Every posted send and receive ends in exactly one completion, with a status.
// - A payload byte is written into a receive buffer at most once per message
//   (the PDS suppresses duplicates) and never outside the posted buffer.
// - The caller's send buffer must stay valid until its completion (as in verbs).
// Thread: one engine thread calls everything.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/base/packet.h"
#include "lib/base/rng.h"
#include "lib/base/slab.h"
#include "lib/base/timer_wheel.h"
#include "lib/cc/eqds.h"
#include "lib/base/time.h"
#include "lib/pds/pdc.h"
#include "lib/pool/pool.h"
#include "lib/wire/wire.h"

namespace shoal::ses {

using pds::DeliveryMode;

// Completion statuses, named after ibv_wc_status.
enum class WcStatus : uint8_t {
  kSuccess = 0,
  kLocLenErr,       // receive buffer smaller than the message
  kLocProtErr,
  kRemAccessErr,
  kRemInvReqErr,
  kRnrRetryExcErr,  // no receive posted within the retry budget
  kRetryExcErr,     // peer unreachable within the retry budget
  kWrFlushErr,      // torn down with the work outstanding
};
const char* to_string(WcStatus s);

enum class WcOpcode : uint8_t {
  kSend = 0,
  kRecv = 1,
  kWrite = 2,             // an RDMA WRITE this side sent
  kRecvRdmaWithImm = 3,   // a WRITE_WITH_IMM landed here and took a receive
  kRead = 4,              // an RDMA READ this side asked for, all bytes landed
};

// What a send request does at the target.
enum class SendOp : uint8_t {
  kSend = 0,   // into the next posted receive buffer
  kWrite = 1,  // into registered memory named by rkey + remote_addr
  kRead = 2,   // from registered memory named by rkey + remote_addr into `data`
  kReadResponse = 3,  // internal: the bytes a READ asked for, going back
};

// Access rights of a registered region (register_memory).
inline constexpr uint32_t kRemoteWrite = 1;
inline constexpr uint32_t kRemoteRead = 2;
inline constexpr uint32_t kZeroBased = 4;  // remote addresses are offsets into the region

// One piece of a scatter/gather list: `len` bytes at `addr`.
struct Segment {
  uint8_t* addr = nullptr;
  uint32_t len = 0;
};
// Most segments in one list (what verbs calls max_sge).
inline constexpr uint32_t kMaxSegments = 16;

struct Completion {
  uint64_t wr_id = 0;
  uint32_t tag = 0;      // receive: the tag its post_recv gave
  WcStatus status = WcStatus::kSuccess;
  WcOpcode opcode = WcOpcode::kSend;
  bool has_imm = false;
  uint32_t byte_len = 0;
  uint64_t imm = 0;
  PeerAddr peer = 0;     // receive: the sender; send: the destination
  uint32_t src_qp = 0;   // receive: the sender's QP number (engine << 12 | endpoint)
  uint16_t qp = 0;       // the local endpoint
};

struct SendRequest {
  PeerAddr peer = 0;
  uint16_t dst_qp = 0;      // endpoint index at the target engine (12 bits)
  uint16_t dst_engine = 0;  // the target engine within its context (12 bits, SES pid_on_fep)
  uint16_t src_qp = 0;
  DeliveryMode mode = DeliveryMode::kRud;
  uint8_t tc = 0;  // traffic class: PDCs are per (peer, tc, mode)
  SendOp op = SendOp::kSend;
  uint64_t remote_addr = 0;  // kWrite/kRead: target address (an offset with kZeroBased regions)
  uint64_t rkey = 0;         // kWrite/kRead: the target region's key
  // kSend/kWrite: the bytes to send. kRead: the local buffer the bytes read
  // land in (written by the engine; its size is the read length).
  std::span<const uint8_t> data;
  // Instead of `data`, when not empty: the message is these segments, in
  // order (kSend/kWrite gather from them, kRead scatters into them). The
  // list, like the bytes, must stay valid and unchanged until completion.
  std::span<const Segment> sgl;
  uint64_t wr_id = 0;
  bool has_imm = false;
  uint64_t imm = 0;
  bool signaled = true;
  // Budgets of this message's QP, 0 = the PDC's (PdsConfig): the peer silent
  // this long ends it with kRetryExcErr (at the first RTO after that), no
  // receive buffer at the target for this long with kRnrRetryExcErr (rounded
  // up to whole RNR waits, which start at rnr_delay and double). Neither goes
  // beyond the PDC's own budget.
  uint32_t retry_budget_us = 0;
  uint32_t rnr_budget_us = 0;
};

struct TransportConfig {
  // Includes the congestion-control and path-selection names and knobs.
  // cc_params.mtu is set from mtu_payload below.
  pds::PdsConfig pds;
  uint32_t mtu_payload = 4096;       // payload bytes per packet
  uint32_t max_send_msgs = 1 << 16;  // outstanding sends, all PDCs
  uint32_t max_recv_msgs = 1 << 16;  // receive messages in progress
  uint32_t max_qps = 64;             // endpoints (receive queues)
  uint32_t recv_queue_depth = 1 << 14;  // per QP; the ring grows to it from 16
  // Outstanding messages per PDC: bounds msg_id reuse (16-bit ids).
  uint32_t max_msgs_per_pdc = 8192;
  uint32_t job_id = 1;
  // This engine's index within its context: requests must name it (SES
  // pid_on_fep), and it is the high half of this side's QP numbers.
  uint16_t engine_index = 0;
  pool::PoolConfig pool;  // PDC bound, idle shrink/close, linger
  // RDMA READs outstanding at once, and how long one may wait for its data
  // after the request went out (longer than a peer's retry budget, so that
  // a response still being retransmitted is not given up early).
  uint32_t max_reads = 4096;
  Duration read_timeout = Duration::seconds(2);
};

struct TransportCounters {
  uint64_t rx_datagrams = 0;
  uint64_t rx_wire_errors[static_cast<int>(wire::WireError::kCount)] = {};
  uint64_t rx_no_pdc = 0;          // addressed to a PDC we do not have
  uint64_t rx_pdc_mismatch = 0;    // PDC id from the wrong peer
  uint64_t rx_ses_malformed = 0;   // SES fields inconsistent with the message
  uint64_t rx_unsupported_op = 0;
  uint64_t rx_rnr = 0;             // no receive buffer posted (refused)
  uint64_t rx_uud_dropped = 0;
  uint64_t rx_access_denied = 0;   // WRITE/READ to an unknown rkey, outside it, or without the right
  uint64_t rx_wrong_engine = 0;    // requests naming another engine (pid_on_fep) of this context
  uint64_t rx_too_long = 0;        // SEND packets refused: the message is longer than its receive buffer
  uint64_t reads_served = 0;       // READ requests answered with data
  uint64_t read_responses_stale = 0;  // data for a READ that had ended (timed out): dropped
  uint64_t read_timeouts = 0;
  uint64_t rx_trimmed = 0;         // trimmed requests (answered with NACK TRIMMED)
  uint64_t pdcs_failed = 0;
  uint64_t pdcs_freed = 0;
  uint64_t msgs_waited_for_pdc = 0;  // posted while the pool was at its bound
  uint64_t sends_flushed = 0;        // not started when their QP was destroyed
  uint64_t msgs_sent = 0;
  uint64_t msgs_received = 0;
  uint64_t payload_bytes_received = 0;
  uint64_t credit_reqs_received = 0;  // EQDS CTRL CREDIT_REQ taken by the scheduler
  uint64_t credits_sent = 0;          // EQDS CTRL CREDIT (grants and repeats)
  uint64_t credit_repeats = 0;        // of which repeats of a grant total (answering a repeated request)
};

class Transport final : public pds::PdsUpper {
 public:
  // `config` must pass validate(); the constructor logs why and aborts if
  // it does not (a program error: check with validate() first).
  Transport(const TransportConfig& config, PeerAddr self, uint64_t seed);
  // Errors: InvalidArgument for an unknown congestion-control algorithm or
  // path-selection policy, or out-of-range knobs (see pds::validate).
  static absl::Status validate(const TransportConfig& config);
  ~Transport() override;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // ---- application side ----
  // Errors: InvalidArgument (UUD message larger than one packet, message over
  // 4 GiB, dst_qp out of range), ResourceExhausted (too many outstanding
  // sends overall or on this PDC; retry after polling completions),
  // Unavailable (no PDC slot free).
  absl::Status post_send(const SendRequest& req);
  // Errors: InvalidArgument (not a live QP), ResourceExhausted (queue full).
  absl::Status post_recv(uint16_t qp, std::span<uint8_t> buffer, uint64_t wr_id);
  // A receive into a scatter/gather list (at most kMaxSegments), which must
  // stay valid until its completion; `tag` comes back in that completion (the
  // owner of the list frees it then). Errors: as above, and InvalidArgument
  // for more than kMaxSegments segments.
  absl::Status post_recv(uint16_t qp, std::span<const Segment> sgl, uint64_t wr_id, uint32_t tag);
  // Endpoints. QP 0 is the engine's default endpoint and always exists.
  // create_qp errors: ResourceExhausted (max_qps in use). destroy_qp ends
  // every posted receive, and every send not yet started, with WR_FLUSH_ERR
  // (a send with packets already out runs to its end); errors:
  // InvalidArgument (not a live QP, or QP 0).
  absl::StatusOr<uint16_t> create_qp(DeliveryMode type);
  absl::Status destroy_qp(uint16_t qp);
  // What the engine keeps for one QP (its record and its receive ring).
  size_t qp_state_bytes(uint16_t qp) const;

  // Registered memory that peers may WRITE into (kRemoteWrite) or READ
  // (kRemoteRead). Returns the rkey to hand to peers. Every packet is checked
  // against the region's bounds and rights; a packet that fails is rejected
  // (never acknowledged, its bytes never written, NACKed with the SES code),
  // so the initiator's WRITE ends in REM_ACCESS_ERR. Errors: InvalidArgument
  // (null or empty region, unknown access bits).
  absl::StatusOr<uint64_t> register_memory(uint8_t* addr, uint64_t len, uint32_t access);
  // The same with a key chosen by the caller (the C API registers one region
  // on every engine of a context under one rkey). Errors: as above, and
  // AlreadyExists (the key is in use).
  absl::Status register_memory_as(uint64_t rkey, uint8_t* addr, uint64_t len, uint32_t access);
  // Errors: NotFound (no such rkey).
  absl::Status deregister_memory(uint64_t rkey);
  uint32_t poll_completions(Completion* out, uint32_t max);
  size_t pending_completions() const { return completions_.size() - completions_head_; }

  // ---- I/O side (see pds::Pdc for the contract) ----
  void on_datagram(std::span<const uint8_t> datagram, const RxMeta& meta, TimePoint now);
  uint32_t poll_transmit(TimePoint now, TxBatch& batch);
  TimePoint next_deadline() const;
  void on_timeout(TimePoint now);
  // Whether poll_transmit may emit something now.
  bool wants_transmit() const {
    return !active_.empty() || uud_head_ != kNone ||
           (credit_ && (!credit_repeat_.empty() || credit_->next_deadline() <= last_now_));
  }
  // Bumps on every call that can create work to transmit (post_send,
  // on_datagram, on_timeout): a driver that polled and got nothing need not
  // poll again until it changes.
  uint64_t activity() const { return activity_; }

  // ---- introspection ----
  const pool::PdcPool& pool() const { return pool_; }
  const TransportCounters& counters() const { return counters_; }
  pds::PdsCounters pds_counters() const;  // summed over live and freed PDCs
  const lb::LbCounters& lb_counters() const { return pool_.lb_counters(); }  // all PDCs
  // The EQDS receiver's scheduler; nullptr unless the CC is receiver-credit.
  const cc::CreditScheduler* credit_scheduler() const { return credit_.get(); }
  uint32_t pdcs_open() const;
  PeerAddr self() const { return self_; }
  const TransportConfig& config() const { return config_; }

 private:
  static constexpr uint32_t kNone = 0xffffffffu;

  struct TxMsg {
    const uint8_t* data;
    const Segment* sgl;     // with nsge > 0, the message instead of data
    uint64_t wr_id;
    uint64_t imm;
    PeerAddr peer;
    uint32_t len;
    uint32_t packets;
    uint32_t next_packet;   // next unit to hand the PDS
    uint32_t resolved;      // units acked or failed
    uint32_t next;          // queue link (per-PDC send queue or UUD queue)
    uint16_t msg_id;
    uint16_t dst_qp;
    uint16_t dst_engine;
    uint16_t src_qp;
    uint16_t pdc;
    bool has_imm;
    bool signaled;
    bool failed;
    uint8_t nsge;
    uint8_t rnr_retries;        // its RNR budget as a count of RNR waits, 0 = the PDC's
    uint32_t retry_budget_us;   // 0 = the PDC's
    TimePoint started;          // its first packet went to the PDC (retry budget clock)
    WcStatus fail_status;  // set with `failed`
    DeliveryMode mode;
    uint8_t tc;
    SendOp op;
    uint64_t remote_addr;
    uint64_t rkey;
    // kRead: its slot in reads_ and the bytes landed so far; whether the
    // request itself was acknowledged. kReadResponse: the initiator's slot.
    uint32_t read_slot;
    uint8_t read_gen;
    uint32_t landed;
    bool request_acked;
  };
  struct PendingRead {
    uint32_t msg = kNoIndex;  // the kRead TxMsg
    uint32_t timer = kNoIndex;
    uint8_t gen = 0;          // bumped on every reuse: stale data is recognised
    bool live = false;
  };
  struct RxMsg {
    uint8_t* buf;
    const Segment* sgl;  // with nsge > 0, the buffer instead of buf
    uint64_t wr_id;
    uint32_t tag;
    uint8_t nsge;
    uint64_t imm;
    uint32_t buf_len;
    uint32_t msg_len;
    uint32_t landed;
    uint16_t qp;
    uint32_t src_qp;
    bool has_imm;
    bool complete;
    bool len_error;
    bool write;    // an RDMA WRITE: bytes go to registered memory, not buf
    bool silent;   // a plain WRITE tracked only for ROD order: no completion
  };
  // 24 bytes: a deep receive ring is most of a QP's memory.
  struct RecvBuf {
    union {
      uint8_t* buf;        // nsge == 0
      const Segment* sgl;  // nsge > 0
    };
    uint64_t wr_id;
    uint32_t len;          // bytes in all
    uint32_t tag : 27;     // post_recv's tag (below 2^27)
    uint32_t nsge : 5;
  };
  static_assert(sizeof(RecvBuf) == 24);
  static_assert(kMaxSegments < 32);
  struct RecvQueue {
    std::vector<RecvBuf> ring;
    uint32_t head = 0, count = 0;
  };
  // SES state per PDC, indexed by the PDC's local id (the pool owns the PDC).
  struct PdcSes {
    uint32_t sendq_head = kNone, sendq_tail = kNone;
    uint32_t outstanding_msgs = 0;
    uint16_t next_msg_id = 0;     // sender
    uint16_t next_complete = 0;   // ROD receiver: next message to complete
    bool active = false;          // on active_
    bool credit_repeat = false;   // on credit_repeat_
    uint32_t timer = kNoIndex;    // its deadline in timers_
    // Sender with a credit CC: what write_unit() will still return for the
    // units queued here and not handed out yet (the EQDS backlog).
    uint32_t queued_units = 0;
    uint64_t queued_bytes = 0;
  };

  // PdsUpper.
  bool next_unit(pds::Pdc& pdc, uint64_t* cookie, bool* last) override;
  size_t write_unit(pds::Pdc& pdc, uint64_t cookie, std::span<uint8_t> out, wire::NextHdr* next_hdr) override;
  void on_unit_acked(pds::Pdc& pdc, uint64_t cookie) override;
  void on_unit_failed(pds::Pdc& pdc, uint64_t cookie, pds::UnitFailure why, uint8_t ses_code) override;
  UnitBudget unit_budget(pds::Pdc& pdc, uint64_t cookie) override;
  pds::RequestVerdict on_request(pds::Pdc& pdc, const wire::Packet& pkt, TimePoint now, uint8_t* ses_code) override;
  uint32_t peek_unit_bytes(pds::Pdc& pdc) override;
  uint64_t backlog_bytes(pds::Pdc& pdc, uint32_t* units) override;
  // What write_unit() returns for `packet` of `m`, and for all its packets
  // from `from` on.
  uint32_t unit_bytes(const TxMsg& m, uint32_t packet) const;
  uint64_t remaining_bytes(const TxMsg& m, uint32_t from) const;
  // The backlog of PDC `id` gains / loses packets [from, to) of `m`.
  void queue_bytes(uint16_t id, const TxMsg& m, uint32_t from);
  void unqueue_bytes(uint16_t id, const TxMsg& m, uint32_t from, uint32_t to);

  // EQDS receiver.
  void on_credit_request(uint16_t id, const wire::CtrlHeader& c, TimePoint now);
  void emit_credits(TimePoint now, TxBatch& batch);
  bool emit_credit(uint16_t id, uint64_t granted_total, TxBatch& batch);

  void enqueue_on_pdc(uint32_t m, uint16_t id);
  void retry_waiting();
  void drain_pool_wakes();
  void forget_pdc(uint16_t id);
  void update_timer(uint16_t id);
  void activate(uint16_t id);
  void after_pdc_event(uint16_t id, TimePoint now);
  void release_pdc(uint16_t id);
  void finish_tx(uint32_t m, WcStatus status);
  void complete_rx(uint32_t r, PeerAddr peer);
  void deliver_rod(uint16_t id, PeerAddr peer);
  bool emit_uud(TxBatch& batch);
  void on_uud(const wire::Packet& pkt, const RxMeta& meta);
  bool pop_recv(uint16_t qp, RecvBuf* out);
  size_t encode_ses(const TxMsg& m, uint32_t packet, uint8_t* out, size_t cap, wire::NextHdr* next_hdr) const;
  pds::RequestVerdict serve_read(pds::Pdc& pdc, const wire::SesRequest& h, uint8_t* ses_code);
  pds::RequestVerdict on_read_response(pds::Pdc& pdc, const wire::Packet& pkt);
  void maybe_finish_read(uint32_t m);
  // The region range [start, start + len) of `rkey` that `right` allows, or nullptr.
  uint8_t* region_range(uint64_t rkey, uint64_t remote_addr, uint64_t len, uint32_t right, wire::SesReturnCode* why);
  void push_completion(const Completion& c);

  TransportConfig config_;
  PeerAddr self_;
  Rng rng_;

  pool::PdcPool pool_;
  bool credit_cc_ = false;  // the CC spends receiver credit: keep PdcSes backlogs
  std::unique_ptr<cc::CreditScheduler> credit_;
  std::vector<cc::CreditGrant> grants_;    // scratch for credit_->poll
  std::vector<uint16_t> credit_repeat_;    // PDCs whose grant total goes out again
  std::vector<PdcSes> ses_;            // index = local PDC id (0 unused)
  // One timer per PDC at its next_deadline(), so that finding the next
  // deadline and firing due ones never scans the pool. 1 ns ticks: exact.
  TimerWheel timers_;
  std::vector<uint64_t> fired_;        // scratch for on_timeout: fired cookies
  std::vector<uint16_t> active_;       // PDCs that may want to transmit
  uint32_t wait_head_ = kNone, wait_tail_ = kNone;  // sends waiting for a PDC
  TimePoint last_now_;                 // the latest `now` any entry point saw
  size_t active_cursor_ = 0;

  Slab<TxMsg> tx_msgs_;
  uint32_t uud_head_ = kNone, uud_tail_ = kNone;

  Slab<RxMsg> rx_msgs_;
  Slab<PendingRead> reads_;
  static constexpr uint64_t kReadTimerTag = uint64_t{1} << 63;  // timers_ cookie of a READ timeout
  absl::flat_hash_map<uint32_t, uint32_t> rx_index_;  // (pdc id << 16 | msg_id) -> rx msg
  // SENDs longer than the receive buffer they took. The receiver completes
  // that buffer with LOC_LEN_ERR at the first packet and refuses every packet
  // of the message with TOO_LONG, so the sender ends with REM_INV_REQ_ERR, as
  // an RC QP's NAK does. A refused PSN is never acknowledged and may come
  // again (the NACK was lost), so the message is remembered here, by key and
  // the PSN of the first packet seen, to refuse it again without taking a
  // second buffer. A bounded ring: the oldest entry makes room.
  struct TooLong {
    uint32_t key = 0;
    uint32_t first_psn = 0;
    uint32_t req_len = 0;
    bool live = false;
  };
  static constexpr uint32_t kTooLongSlots = 32;
  TooLong too_long_[kTooLongSlots];
  uint32_t too_long_next_ = 0;
  uint32_t too_long_live_ = 0;
  bool is_too_long(uint32_t key, uint32_t psn, uint32_t req_len) const;
  void remember_too_long(uint32_t key, uint32_t psn, uint32_t req_len);
  // Endpoints (QPs) of this engine; QP 0 always exists.
  struct Endpoint {
    RecvQueue rq;
    DeliveryMode type = DeliveryMode::kRud;
    bool live = false;
  };
  Slab<Endpoint> qps_;

  std::vector<Completion> completions_;
  size_t completions_head_ = 0;

  uint64_t activity_ = 0;
  struct Region {
    uint8_t* addr;
    uint64_t len;
    uint32_t access;
  };
  absl::flat_hash_map<uint64_t, Region> regions_;
  uint64_t next_region_ = 1;
  // Where the byte at msg_off of a WRITE of msg_len bytes to remote_addr in
  // region `rkey` goes, or nullptr if the message is not allowed there.
  uint8_t* write_target(uint64_t rkey, uint64_t remote_addr, uint32_t msg_len, uint32_t msg_off);
  TransportCounters counters_;
};

}  // namespace shoal::ses
