// lib/pds: the Packet Delivery Context (PDC), UET's reliable connection
// between two engines, as an I/O-free state machine.
//
// A Pdc has two halves. The sender half assigns PSNs to the units (packets)
// its upper layer (lib/ses) hands it, keeps them until they are acknowledged,
// and retransmits exactly the lost ones (selective repeat), or everything
// from the hole on in go-back-N mode (RoCE's behaviour, kept as a baseline).
// The receiver half filters duplicates through a window bitmap, passes new
// requests up, and sends coalesced ACK_CC packets with a SACK bitmap.
//
// Driving it (ngtcp2 / quinn-proto style; the caller owns I/O and clocks):
//   on_packet(pkt, meta, now)    a decoded datagram addressed to this PDC
//   poll_transmit(now, batch)    fill buffers with whatever is due
//   next_deadline()              when on_timeout must run next (or max)
//   on_timeout(now)              fire due timers (ACK delay, RTO, TLP, RACK,
//                                pacing, the CC's own timer, EQDS re-request)
//
// Loss detection on the sender combines RACK-style reasoning with an RTO:
// every transmission gets a sequence number; once a packet sent later than
// p has been delivered, p is lost when rtt + reo_wnd has passed since it was
// sent (reo_wnd = min_rtt/4, widened after spurious retransmissions). The RTO
// (RFC 6298 estimator, microsecond floor) covers everything else and a tail
// loss probe resends the newest packet so that a lost tail is found by SACK
// rather than by the RTO.
//
// Congestion control and path selection (lib/cc, lib/lb) are chosen by name
// in PdsConfig and run per PDC: the CcState and the PathSelector live inline.
// Every data transmission (new, retransmitted, probe) first passes pacing
// (pacing_rate), then cc_window_allows: the window counts the bytes in
// flight plus those waiting for retransmission for new data, the bytes in
// flight only for a retransmission; EQDS credit gates both. Each transmission
// then goes to cc on_send and takes a fresh entropy from the selector, which
// the TxSlot keeps so that its ACK (RTT, CE), loss (RACK/SACK), trim (NACK)
// or timeout (RTO) is reported against that entropy (a loss is reported
// before its retransmission chooses a new one). ACKs feed cc on_ack once
// with the newly acknowledged bytes, the RTT sample and the CE count of
// ack_cc_state[63:32]. Spraying reorders packets; RACK's time-based window
// (not a packet count) keeps that from looking like loss.
// EQDS (a credit-limited CC): data goes as RUD/ROD_CC_REQ whose req_cc_state
// is the datagram's length (what the sender charged, which the receiver
// re-grants if the packet is trimmed); the PDC sends CTRL CREDIT_REQ with its
// cumulative request total when that total grows, and again on the RTO clock
// while it is credit-blocked with a backlog; CTRL CREDIT carries the
// receiver's cumulative grant (both totals travel as their low 32 bits,
// serial-number arithmetic, see docs/wire-format.md).
//
// Invariants:
// - Sender: PSNs in [una, next_psn) are tracked; next_psn - una <= window.
//   Each tracked PSN is in exactly one state: in flight (on tx_order, sorted
//   by transmission), lost (on retx queue), or sacked. inflight_bytes is the
//   sum of the lengths on tx_order, retx_bytes the sum on the retx queue.
// - No data packet leaves before the pacing time or beyond what
//   cc_window_allows permits (a PDC with nothing in flight may always send
//   one; a TLP probe only checks credit; an EQDS PDC the target has not
//   answered yet may resend one packet without credit when nothing is in
//   flight, see syn_probe_allowed). CTRL CLOSE is never gated.
// - Receiver: every PSN <= cack was received and passed up exactly once;
//   bitmap bit (psn mod window) is set iff psn in (cack, cack+window] arrived.
// - No allocation after the first use of each half; no I/O; no clock reads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"

#include "lib/base/bitmap.h"
#include "lib/base/index_list.h"
#include "lib/base/packet.h"
#include "lib/base/psn.h"
#include "lib/base/rng.h"
#include "lib/base/time.h"
#include "lib/lb/lb.h"
#include "lib/wire/wire.h"
#include "include/shoal/cc_sdk.h"

namespace shoal::pds {

enum class DeliveryMode : uint8_t { kRud = 0, kRod = 1, kUud = 2 };
enum class RetxMode : uint8_t { kSelective = 0, kGoBackN = 1 };
const char* to_string(DeliveryMode m);
const char* to_string(RetxMode m);

// 512 packets of 4096 B payload with their PDS (12), SES (44) and trailer
// (4) bytes: the in-flight limit of the PDC before lib/cc existed.
inline constexpr uint64_t kDefaultFixedWindowBytes = 512ull * (4096 + 12 + 44 + 4);
inline cc::CcParams default_cc_params() {
  cc::CcParams p;
  p.fixed.window_bytes = kDefaultFixedWindowBytes;
  return p;
}

struct PdsConfig {
  RetxMode retx = RetxMode::kSelective;
  // PSN window: how far the sender may run ahead of its oldest unacked PSN,
  // and the receiver's bitmap size. Power of two, 64..32768.
  uint32_t window_packets = 1024;
  // Congestion control: a lib/cc registry name ("fixed", "swift", "dcqcn",
  // "eqds") and the knobs shared by every PDC using it. The default is the
  // fixed window the PDC had before lib/cc: 512 full packets in flight
  // (kDefaultFixedWindowBytes). The owner sets cc_params.mtu to its payload MTU.
  std::string cc = "fixed";
  cc::CcParams cc_params = default_cc_params();
  // Path selection: a lib/lb registry name ("ecmp": one entropy per PDC;
  // "spray"; "adaptive") and its knobs. Requests (and CREDIT_REQs) take an
  // entropy per packet; replies echo the latest one (see reply_entropy_).
  std::string lb = "ecmp";
  lb::LbParams lb_params;
  // ACK coalescing: an ACK after this many packets or this delay, whichever
  // comes first; immediately on a new gap, a filled gap, a duplicate, CE or AR.
  uint32_t ack_every_packets = 16;
  Duration ack_delay = Duration::micros(4);
  // Retransmission timeout: RFC 6298 srtt + 4 rttvar, clamped.
  Duration initial_rto = Duration::micros(500);
  Duration min_rto = Duration::micros(100);
  Duration max_rto = Duration::millis(100);
  // Retry budget: the PDC fails (its units with kRetryExceeded) when this
  // many transmissions of its outstanding PSNs went unanswered: the first
  // and max_transmissions - 1 timeouts in a row (RTOs, and the tail probe),
  // each resending everything in flight, with no ACK in between. Losses
  // recovered while ACKs arrive do not count; a single PSN resent
  // kTransmissionCap (64) times fails the PDC regardless.
  uint32_t max_transmissions = 12;
  // ...and only once no ACK progress came for at least this long. The count
  // alone made the give-up horizon follow max_rto: with a 2 ms cap, 11
  // timeouts span ~20 ms, and a live sender in a 127-to-1 incast whose
  // resends met a full queue 11 times in a row was failed (k=8, seeds 1, 2
  // and 13). The default is below what 11 timeouts take at the default
  // max_rto (~430 ms), so it changes nothing there. 0: the count alone.
  Duration fail_after_silence = Duration::millis(50);
  // RNR: NACKs for "no receive buffer" a unit may collect before it fails
  // with kRnrExceeded. Such a unit is resent on the RTO clock (backing off),
  // and RNR NACKs prove the peer alive, so they do not use up
  // max_transmissions.
  uint32_t max_rnr_retries = 7;
  // RACK reordering window floor; the window is min_rtt/4 times a factor
  // that doubles (to 16) on each spurious retransmission.
  Duration min_reorder_window = Duration::nanos(500);
  bool tail_loss_probe = true;
  Duration min_tlp = Duration::micros(10);
  // First wait before resending a unit the target NACKed for lack of a
  // receive buffer; doubles with every further RNR NACK of that unit.
  Duration rnr_delay = Duration::micros(50);
  // DSCP for requests and for ACK/NACK/CTRL (EF) per wire-format.md.
  uint8_t dscp_request = 0;
  uint8_t dscp_control = 46;
};

// Checks the names (registered algorithm and policy) and their knobs.
// Errors: InvalidArgument naming the unknown algorithm/policy or the bad field.
absl::Status validate(const PdsConfig& config);

// Plain counters; exporters read them. Sender and receiver halves both add.
struct PdsCounters {
  uint64_t tx_requests = 0;
  uint64_t tx_request_bytes = 0;
  uint64_t retransmits = 0;
  uint64_t rto_fires = 0;
  uint64_t tlp_probes = 0;
  uint64_t rack_losses = 0;
  uint64_t spurious_retransmits = 0;     // losses found spurious: resent too early, or delivered while waiting to be resent
  uint64_t gbn_rewinds = 0;
  uint64_t acks_received = 0;
  uint64_t nacks_received = 0;
  uint64_t rtt_samples = 0;
  uint64_t rx_requests = 0;
  uint64_t rx_delivered = 0;
  uint64_t rx_duplicates = 0;
  uint64_t rx_out_of_window = 0;
  uint64_t rx_out_of_order_dropped = 0;  // go-back-N receiver
  uint64_t rx_refused = 0;               // upper layer said not now
  uint64_t rx_ce_marked = 0;
  uint64_t acks_sent = 0;
  uint64_t nacks_sent = 0;
  uint64_t nacks_dropped = 0;            // NACK queue full
  uint64_t rnr_nacks_sent = 0;
  uint64_t rnr_nacks_received = 0;
  uint64_t unit_budget_failures = 0;  // units that ran out of their QP's retry budget before the PDC's
  uint64_t rejects_sent = 0;             // terminal SES NACKs
  uint64_t rejects_received = 0;
  uint64_t cleared_psns = 0;             // holes the sender declared resolved (clear PSN)
  uint64_t rx_trimmed = 0;
  uint64_t ctrl_sent = 0;
  uint64_t bad_packets = 0;              // addressed here but inconsistent
  uint64_t tx_no_room = 0;               // a unit did not fit the lent buffer
  uint64_t pacing_waits = 0;             // a data packet waited for the pacing time
  uint64_t credit_blocked = 0;           // EQDS: sending stopped for lack of credit (episodes)
  uint64_t credit_reqs_sent = 0;         // EQDS: CTRL CREDIT_REQ
  uint64_t credits_received = 0;         // EQDS: CTRL CREDIT
};

// What every PDC of one owner (pool) shares: the generator random spraying
// draws from and the path-selection counters (summed here rather than kept
// per PDC, so an idle PDC stays small). Engine thread only.
struct PdcShared {
  Rng lb_rng{0x5eed};
  lb::LbCounters lb_counters;
};

enum class UnitFailure : uint8_t {
  kRetryExceeded = 1,  // max_transmissions reached: peer unreachable
  kClosed = 2,         // PDC torn down with the unit outstanding
  kRejected = 3,       // the target's semantic layer refused it for good (ses_code says why)
  kRnrExceeded = 4,    // the target had no receive buffer within the RNR budget
};

enum class RequestVerdict : uint8_t {
  kAccepted = 0,  // consumed: mark received, acknowledge
  kRefused = 1,   // not now, say nothing (ROD order, message state full): the sender retries
  kDiscard = 2,   // malformed at the semantic layer: acknowledged, dropped
  kRnr = 3,       // no receive buffer: not acknowledged, NACK NO_SES_MSG_AVAIL (the sender retries later)
  kRejected = 4,  // never acceptable (bad rkey, no such QP): not acknowledged, NACK with the SES code
};

class Pdc;

// The layer above (SES). Called only from inside Pdc entry points, on the
// engine's thread.
class PdsUpper {
 public:
  virtual ~PdsUpper() = default;
  // The next new unit for this PDC, if any; *last says whether it is the
  // last one queued right now (the PDC then asks for an immediate ACK, so a
  // lone message completes in one round trip). After returning false the
  // PDC asks again only once wake() was called.
  virtual bool next_unit(Pdc& pdc, uint64_t* cookie, bool* last) = 0;
  // Writes the SES header and payload of `cookie` at `out`; returns bytes.
  // *next_hdr (preset to REQ_STD) names the SES header written: a READ
  // response, say, is RSP_DATA.
  virtual size_t write_unit(Pdc& pdc, uint64_t cookie, std::span<uint8_t> out, wire::NextHdr* next_hdr) = 0;
  // What write_unit() will return for the unit next_unit() would hand out
  // now (0 if none). Asked only when the window or credit is close, so that
  // the check is exact for the packet about to go.
  virtual uint32_t peek_unit_bytes(Pdc& pdc) = 0;
  // Units not handed out yet and what write_unit() will return for them in
  // all (EQDS: the backlog the PDC asks credit for).
  virtual uint64_t backlog_bytes(Pdc& pdc, uint32_t* units) = 0;
  // The unit was delivered (cumulatively or selectively acknowledged).
  virtual void on_unit_acked(Pdc& pdc, uint64_t cookie) = 0;
  // The unit will never be delivered. `ses_code` is the target's SES return
  // code for kRejected, else 0.
  virtual void on_unit_failed(Pdc& pdc, uint64_t cookie, UnitFailure why, uint8_t ses_code) = 0;
  // A new request (not a duplicate) arrived for this PDC. For kRejected the
  // upper layer sets *ses_code (wire::SesReturnCode).
  virtual RequestVerdict on_request(Pdc& pdc, const wire::Packet& pkt, TimePoint now, uint8_t* ses_code) = 0;
  // A unit's own budgets, smaller than the PDC's when its QP asked for that
  // (verbs' retry_budget_us / rnr_budget_us). Asked only on the rare paths
  // (an RNR NACK, an RTO), so the data path pays nothing for it.
  struct UnitBudget {
    uint32_t rnr_retries = 0;  // RNR NACKs it may collect; 0: PdsConfig::max_rnr_retries
    // It fails on its own (kRetryExceeded) at the first RTO once the peer
    // has been silent this long for it: no ACK progress since `since` (when
    // it was handed to the PDC) or since the last progress, whichever is
    // later. Zero: only the PDC's budget applies.
    Duration retry_budget;
    TimePoint since;
  };
  virtual UnitBudget unit_budget(Pdc& pdc, uint64_t cookie) { return {}; }
};

enum class PdcState : uint8_t {
  kOpen = 0,
  kClosing = 1,  // CLOSE sent, waiting for its ACK
  kClosed = 2,   // done; the owner may free it
  kFailed = 3,   // retry budget exhausted; units failed; the owner may free it
};

struct PdcParams {
  PeerAddr peer = 0;
  uint16_t local_id = 0;
  DeliveryMode mode = DeliveryMode::kRud;
  uint16_t entropy = 0;   // UDP source port of ACK/NACK/CTRL; seeds the path selector
  PdcShared* shared = nullptr;  // required: the owner's, outlives the PDC
  TimePoint now;                // when it opens (the CC's init time)
  Psn start_psn;          // first PSN this side sends
  // Target side only: the initiator's id and first PSN, from the SYN.
  bool accepted = false;
  uint16_t remote_id = 0;
  Psn remote_start_psn;
};

class Pdc {
 public:
  // `config` is kept by reference: the owner keeps it alive and unchanged.
  Pdc(const PdsConfig& config, PdsUpper* upper, const PdcParams& params);
  Pdc(const Pdc&) = delete;
  Pdc& operator=(const Pdc&) = delete;

  // ---- the sans-I/O entry points ----
  void on_packet(const wire::Packet& pkt, const RxMeta& meta, TimePoint now);
  // A request whose payload a switch trimmed (decoded by wire::parse_trimmed):
  // the receiver answers NACK TRIMMED so the sender resends it at once.
  void on_trimmed(const wire::Packet& pkt, const RxMeta& meta, TimePoint now);
  uint32_t poll_transmit(TimePoint now, TxBatch& batch);
  // The control part of poll_transmit alone: NACKs, the ACK, a CLOSE_REQ and
  // (EQDS) a CREDIT_REQ once the packet that opens the PDC has left.
  // An owner with several PDCs sends every PDC's control before anyone's
  // data: one sending PDC can fill every batch, and an ACK stuck behind it
  // stalls the peer's window until its RTO.
  uint32_t poll_control(TimePoint now, TxBatch& batch);
  bool control_due(TimePoint now) const {
    if (state_ == PdcState::kClosed) return ack_due_ <= now;
    if (state_ == PdcState::kFailed) return false;
    return nack_count_ != 0 || ack_due_ <= now || close_req_pending_ || credit_request_due();
  }
  TimePoint next_deadline() const;
  void on_timeout(TimePoint now);

  // The upper layer has new units: ask next_unit() again.
  void wake() {
    upper_ready_ = true;
    credit_req_due_ |= cc_.credit_limited;  // EQDS: the backlog (and request total) grew
  }
  // Whether poll_transmit has something to send right now.
  bool wants_transmit(TimePoint now) const;
  // Close once everything outstanding is acknowledged (CTRL CLOSE).
  void close();
  // Fails every outstanding unit with kClosed and stops (QP/engine teardown).
  void abort();
  // Gives back window memory that idle halves do not need (the sender ring
  // when nothing is outstanding, the receiver bitmap beyond 64 bits when
  // there is no hole, an empty NACK queue). The owner calls it on an idle timer, not per packet.
  void shrink();

  // ---- identity and state ----
  PdcState state() const { return state_; }
  // Open and not asked to close: the only state new work may be queued in.
  bool accepting() const { return state_ == PdcState::kOpen && !close_requested_; }
  PeerAddr peer() const { return peer_; }
  uint16_t local_id() const { return local_id_; }
  uint16_t remote_id() const { return remote_id_; }
  uint16_t reply_entropy() const { return reply_entropy_; }  // of its ACK/NACK/CTRL (and CREDITs for it)
  // A CREDIT_REQ for this PDC arrived on `entropy` (the transport takes
  // those): answer on it.
  void heard_on(uint16_t entropy) { reply_entropy_ = entropy; }
  bool remote_known() const { return remote_known_; }
  DeliveryMode mode() const { return mode_; }

  // Sender half.
  uint32_t in_flight() const { return static_cast<uint32_t>(tx_order_.size()); }
  uint32_t outstanding() const { return static_cast<uint32_t>(next_psn_ - una_); }
  bool idle() const { return outstanding() == 0 && !upper_ready_; }
  // Nothing in flight, nothing to acknowledge, no hole: the PDC could be
  // shrunk or closed without losing anything (the owner adds "and nothing
  // queued above").
  bool quiescent() const {
    return state_ == PdcState::kOpen && outstanding() == 0 && ack_due_.is_max() && nack_count_ == 0 &&
           !close_requested_ && (!receiver_started_ || rx_highest_ == cack_);
  }
  uint32_t bytes_in_flight() const { return inflight_bytes_; }
  const cc::CcState& cc_state() const { return cc_; }
  const cc::CcOps& cc_ops() const { return *cc_ops_; }
  const lb::PathSelector& path_selector() const { return lb_; }
  Duration srtt() const { return srtt_; }
  Duration rto() const { return rto_; }
  Psn next_psn() const { return next_psn_; }
  // Receiver half.
  Psn cack() const { return cack_; }

  const PdsCounters& counters() const { return counters_; }
  size_t memory_bytes() const;

 private:
  static constexpr uint32_t kInitialTxSlots = 16;
  // Most transmissions of one PSN before the PDC gives up even while ACKs
  // for other PSNs still arrive (TxSlot.transmissions is 8 bits).
  static constexpr uint32_t kTransmissionCap = 64;
  static constexpr uint32_t kInitialRxBits = 64;
  enum SlotState : uint8_t { kFree = 0, kInFlight, kLost, kSacked };
  struct TxSlot {
    uint64_t cookie;
    int64_t last_send_ns;
    uint64_t tx_seq;
    int64_t not_before_ns;  // RNR: do not resend before this
    IndexLinks links;
    uint16_t len;           // datagram bytes of its last transmission
    uint16_t entropy;       // the path of its last transmission (lib/lb feedback)
    uint8_t transmissions;
    uint8_t rnr;  // RNR NACKs collected
    SlotState state;
    bool is_close;  // the CTRL CLOSE occupies a PSN like a unit
    // Declared lost by an RTO with its last copy at least an RTO old: the
    // resend that follows may give an RTT sample (see emit_request).
    bool timed_out;
    // This transmission's ACK gives an RTT sample: a first transmission, or
    // a resend after a timed-out copy, or of a copy that left at least an
    // RTO (backed off) before it (either way that copy is an RTO older; an
    // ACK sooner than that is for the resend).
    bool sample_ok;
  };
  static_assert(sizeof(TxSlot) <= 56, "TxSlot: keep the send ring small");
  struct SlotLinks {
    TxSlot* slots = nullptr;
    IndexLinks& operator()(uint32_t i) const { return slots[i].links; }
  };

  // Sender.
  void ensure_sender();
  uint32_t slot_of(Psn p) const { return p.value() & slot_mask_; }
  Psn psn_of(uint32_t idx) const { return una_ + static_cast<int32_t>((idx - slot_of(una_)) & slot_mask_); }
  void grow_sender();
  void grow_receiver(uint32_t needed);
  bool window_open() const;
  // Pacing, window and credit for a data packet of `bytes` with `in_flight`
  // bytes counted against the window. Notes why it waits.
  bool may_send(TimePoint now, uint64_t in_flight, uint32_t bytes);
  // The same for the next new unit, peeking at its size only when the
  // buffer's capacity (`cap`) could cross the window or credit. Inline: the
  // unpaced, window-limited case is every packet's.
  bool may_send_new(TimePoint now, uint32_t cap) {
    if (cc_.pacing_rate == 0 && !cc_.credit_limited &&
        uint64_t{inflight_bytes_} + retx_bytes_ + cap <= cc_.cwnd_bytes) {
      return true;
    }
    return may_send_new_slow(now, cap);
  }
  bool may_send_new_slow(TimePoint now, uint32_t cap);
  // EQDS: a receiver creates our PDC only from a whole (untrimmed) SYN data
  // packet and ignores CREDIT_REQs until then, so a sender whose unsolicited
  // window was all trimmed or lost could wait for credit forever. Until the
  // target answers, a retransmission may therefore go without credit when
  // nothing is in flight: one packet per retransmission timeout, charged as
  // usual (its credit goes negative until the grants catch up).
  bool syn_probe_allowed() const { return cc_.credit_limited && !remote_known_ && inflight_bytes_ == 0; }
  // A CREDIT_REQ is owed and the target can place it: the SYN went first.
  bool credit_request_due() const { return credit_req_due_ && next_psn_ != start_psn_; }
  bool paced(TimePoint now) const { return cc_.pacing_rate != 0 && next_send_ns_ > now.ns(); }
  // Keeps pace_wait_ (a wake-up at next_send_ns_) true only while data waits for it.
  void note_pacing(TimePoint now) {
    if (cc_.pacing_rate != 0 || pace_wait_) note_pacing_slow(now);
  }
  void note_pacing_slow(TimePoint now);
  uint32_t request_header_size() const { return cc_.credit_limited ? wire::kCcRequestSize : wire::kRequestSize; }
  size_t encode_request_header(Psn psn, bool retx, wire::NextHdr next_hdr, uint32_t charged, uint8_t* out) const;
  // `tail`: nothing else will follow right away; the packet carries AR.
  bool emit_request(Psn psn, bool retx, bool tail, TimePoint now, TxBatch& batch);
  void on_ack(const wire::AckHeader& ack, TimePoint now);
  void on_nack(const wire::NackHeader& nack, TimePoint now);
  // `rtt`: the sample to give lib/lb for this packet (zero: none).
  // Returns the datagram bytes newly delivered (0: already was, or CLOSE).
  uint32_t mark_delivered(Psn psn, TimePoint now, Duration rtt, bool ce, bool* progressed);
  void detect_losses(TimePoint now);
  void mark_lost(uint32_t idx);
  void unlink(uint32_t idx);  // off tx_order or retx, bytes accounted
  void rewind_to(Psn from);  // go-back-N
  void rtt_sample(Duration rtt);
  void on_rto(TimePoint now);
  void fire_loss_timers(TimePoint now);  // RACK, RTO, TLP
  void fail(TimePoint now);
  bool have_rtt() const { return min_rtt_ != Duration::max(); }
  TimePoint rto_deadline() const;
  // EQDS: the request total grew (or must be repeated): send CREDIT_REQ.
  void request_credit(TimePoint now, TxBatch& batch);
  void on_credit(const wire::CtrlHeader& c, TimePoint now);

  // Receiver.
  void on_request(const wire::Packet& pkt, const RxMeta& meta, TimePoint now);
  void on_ctrl(const wire::Packet& pkt, TimePoint now);
  void queue_nack(wire::NackCode code, Psn psn, uint8_t vendor_code = 0);
  void apply_clear(Psn clear);
  void resolve_failed(uint32_t idx, UnitFailure why, uint8_t ses_code);
  // Seals the `len` bytes written at tx.data, stamps the metadata of a
  // request or a control packet (ACK/NACK/CTRL) and commits it to the batch.
  bool commit_packet(TxPacket& tx, size_t len, bool control, TxBatch& batch);
  bool emit_ack(TimePoint now, TxBatch& batch);
  bool emit_nack(TxBatch& batch);
  bool emit_ctrl(wire::CtrlType type, Psn psn, uint32_t payload, TxBatch& batch);
  void schedule_ack(TimePoint now, bool immediate);

  // ---- congestion control and path selection (first: CcState is 64-aligned) ----
  cc::CcState cc_;
  lb::PathSelector lb_;
  const cc::CcOps* cc_ops_;

  const PdsConfig& config_;  // the owner's, shared by its PDCs; outlives them
  PdsUpper* upper_;
  PdcShared* shared_;
  PeerAddr peer_;
  uint16_t local_id_;
  // What ACK/NACK/CTRL CREDIT/CLOSE_REQ travel on: the entropy of the latest
  // request or CREDIT_REQ that arrived, PdcParams::entropy until then. Those
  // carry the sender's path selection's choice, and a reply on the same
  // entropy lets that selection, which sees a lost ACK as a lost request,
  // steer both directions (the two directions of one entropy take
  // unrelated paths, so a reply cannot trust an entropy on its own). A
  // fixed entropy would strand a PDC whose reply path crosses a failed
  // link however well its requests steer around it.
  uint16_t reply_entropy_;
  DeliveryMode mode_;
  PdcState state_ = PdcState::kOpen;
  uint16_t remote_id_ = 0;
  // Flags of both halves, together so that they pack.
  bool remote_known_ = false;
  bool upper_ready_ = true;
  bool close_requested_ = false;
  bool close_sent_ = false;
  bool tlp_pending_ = false;      // a probe is due in poll_transmit
  bool tlp_used_ = false;         // one probe per tail episode
  bool pace_wait_ = false;        // a data packet waits for next_send_ns_
  bool credit_blocked_ = false;   // EQDS: waiting for credit with work to send
  bool credit_req_due_ = false;   // EQDS: see whether the request total grew
  bool credit_req_repeat_ = false;  // EQDS: send the request even if it did not grow
  bool window_blocked_ = false;   // the next new unit did not fit the CC window (until the next event)
  uint8_t reo_wnd_mult_ = 1;
  bool receiver_started_ = false;
  bool trigger_is_new_ = false;
  bool trigger_retx_ = false;  // the trigger arrived with the RETX flag (echoed to the sender)
  bool gbn_nacked_ = false;       // one NACK per hole, like RoCE's NAK
  bool close_ack_pending_ = false;
  bool close_req_pending_ = false;
  uint8_t nack_head_ = 0;
  uint8_t nack_count_ = 0;

  // ---- sender half ----
  Psn start_psn_;
  // Sent-but-unacknowledged PSNs, indexed by psn mod slot_cap_. Starts small
  // on first send and doubles up to window_packets as the flight grows, so
  // an idle or lightly used PDC costs little; shrink() gives it back.
  std::unique_ptr<TxSlot[]> slots_;
  uint32_t slot_cap_ = 0;
  uint32_t slot_mask_ = 0;
  Psn next_psn_;
  Psn una_;  // lowest PSN not yet cumulatively acknowledged
  IndexList<SlotLinks> tx_order_;  // in flight, oldest transmission first
  IndexList<SlotLinks> retx_;      // declared lost, waiting to go again
  uint32_t inflight_bytes_ = 0;    // lengths of the slots on tx_order_
  uint32_t retx_bytes_ = 0;        // lengths of the slots on retx_
  uint32_t rto_backoff_ = 0;  // timeouts in a row with no ACK progress (the retry budget)
  // When an ACK last acknowledged something new, in microseconds modulo
  // 2^32 (unit budgets compare silences far shorter than the 71-minute wrap;
  // 4 bytes keep the Pdc within its cache lines).
  uint32_t last_progress_us_ = 0;
  int64_t next_send_ns_ = 0;       // pacing: no data packet before this
  uint64_t next_tx_seq_ = 1;
  uint64_t rack_seq_ = 0;         // newest transmission known delivered
  Duration rack_rtt_;             // its RTT
  TimePoint rack_deadline_ = TimePoint::max();
  Duration srtt_;
  Duration rttvar_;
  Duration min_rtt_ = Duration::max();  // max until the first sample (have_rtt())
  Duration rto_;
  TimePoint tlp_deadline_ = TimePoint::max();
  TimePoint gbn_last_rewind_;
  // EQDS: the request total last sent (the receiver's view, as far as we
  // know) and when to repeat it while credit-blocked.
  TimePoint credit_req_retry_ = TimePoint::max();
  uint64_t credit_req_sent_ = 0;

  // ---- receiver half ----
  RingBitmap rx_bitmap_;
  TimePoint ack_due_ = TimePoint::max();
  TimePoint trigger_arrival_;  // when ack_trigger_ arrived
  Psn cack_;         // all PSNs <= cack arrived
  Psn rx_highest_;   // highest PSN arrived
  Psn ack_trigger_;  // the PSN this ACK reports as acked
  uint32_t unacked_ = 0;
  uint32_t ce_since_ack_ = 0;
  Psn gbn_rewound_at_;  // sender (go-back-N), here to pack
  // NACKs waiting to go out: trims come in bursts (incast), so a few queue.
  // The queue is allocated at the first NACK and given back by shrink():
  // most PDCs never NACK, and an idle one should not carry it.
  static constexpr uint8_t kMaxPendingNacks = 16;
  struct PendingNack {
    uint32_t psn;
    wire::NackCode code;
    uint8_t vendor_code;
  };
  std::unique_ptr<PendingNack[]> nacks_;

  PdsCounters counters_;

 public:
  // Declared here, not with the other accessors, so that cc_ opens the object
  // (no padding before the 64-aligned CcState).
  uint64_t user_data = 0;  // owner's tag (e.g. pool slot)
};

}  // namespace shoal::pds
