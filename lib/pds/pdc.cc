#include "lib/pds/pdc.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lib/base/bytes.h"
#include "lib/base/log.h"
#include "lib/cc/eqds.h"

namespace shoal::pds {

const char* to_string(DeliveryMode m) {
  switch (m) {
    case DeliveryMode::kRud: return "rud";
    case DeliveryMode::kRod: return "rod";
    case DeliveryMode::kUud: return "uud";
  }
  return "?";
}

const char* to_string(RetxMode m) { return m == RetxMode::kSelective ? "sack" : "gbn"; }

namespace {

// ack_cc_state layout (Shoal's use of UET's CC-state word, docs/wire-format.md):
// [63:32] CE-marked packets since the previous ACK; [31] the copy that
// triggered this ACK is known, [30] that copy carried the RETX flag;
// [29:0] how long the receiver held it before this ACK left (ns,
// saturating at ~1.07 s), so the sender can take coalescing delay out of its
// RTT sample. The echo tells the sender which copy an ACK answers: a first
// copy that arrives late is not taken for its resend (too short a sample),
// and a PSN's only resend can be sampled (Karn would skip it).
constexpr uint64_t kEchoKnown = uint64_t{1} << 31;
constexpr uint64_t kEchoRetx = uint64_t{1} << 30;
constexpr uint64_t kHoldMask = kEchoRetx - 1;

uint64_t pack_ack_cc_state(uint32_t ce_count, Duration hold, bool known, bool retx) {
  uint64_t h = hold.ns() < 0 ? 0 : static_cast<uint64_t>(hold.ns());
  if (h > kHoldMask) h = kHoldMask;
  return (uint64_t{ce_count} << 32) | (known ? kEchoKnown : 0) | (known && retx ? kEchoRetx : 0) | h;
}

// EQDS totals travel as their low 32 bits: the full value is the one nearest
// `known` (serial-number arithmetic; the two never drift 2^31 apart).
uint64_t widen32(uint64_t known, uint32_t low) {
  const int32_t diff = static_cast<int32_t>(low - static_cast<uint32_t>(known));
  return diff >= 0 ? known + static_cast<uint32_t>(diff) : known - static_cast<uint32_t>(-static_cast<int64_t>(diff));
}

const lb::LbOps* lb_or_ecmp(const std::string& name) {
  auto ops = lb::find_lb(name);
  return ops.ok() ? *ops : *lb::find_lb("ecmp");
}

}  // namespace

absl::Status validate(const PdsConfig& config) {
  if (cc::find_cc(config.cc) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown congestion control '", config.cc, "'"));
  }
  if (absl::Status st = cc::validate(config.cc_params); !st.ok()) return st;
  if (config.fail_after_silence < Duration::zero())
    return absl::InvalidArgumentError("fail_after_silence must be >= 0 (0: the timeout count alone)");
  if (auto lb = lb::find_lb(config.lb); !lb.ok()) return lb.status();
  return lb::validate_lb_params(config.lb_params);
}

Pdc::Pdc(const PdsConfig& config, PdsUpper* upper, const PdcParams& params)
    : config_(config),
      upper_(upper),
      shared_(params.shared),
      peer_(params.peer),
      local_id_(params.local_id),
      reply_entropy_(params.entropy),
      mode_(params.mode) {
  // The owner validated the names (validate()); an unknown one here is a
  // bug, answered with the defaults rather than a crash on the data path.
  cc_ops_ = cc::find_cc(config.cc);
  if (cc_ops_ == nullptr) {
    SHOAL_LOG(kPds, kError, "pdc %u: unknown congestion control '%s', using fixed", local_id_, config.cc.c_str());
    cc_ops_ = cc::find_cc("fixed");
  }
  cc_ops_->init(cc_, config.cc_params, params.now);
  lb_.init(*lb_or_ecmp(config.lb), config.lb_params, (params.peer << 16) ^ params.local_id ^ params.entropy,
           &shared_->lb_counters);
  start_psn_ = params.start_psn;
  next_psn_ = params.start_psn;
  una_ = params.start_psn;
  rto_ = config_.initial_rto;
  if (params.accepted) {
    remote_id_ = params.remote_id;
    remote_known_ = true;
    receiver_started_ = true;
    rx_bitmap_.reset(kInitialRxBits);
    cack_ = params.remote_start_psn - 1;
    rx_highest_ = cack_;
  }
}

size_t Pdc::memory_bytes() const {
  size_t bytes = sizeof(*this) + rx_bitmap_.memory_bytes();
  if (slots_) bytes += sizeof(TxSlot) * slot_cap_;
  if (nacks_) bytes += sizeof(PendingNack) * kMaxPendingNacks;
  return bytes;
}

void Pdc::ensure_sender() {
  if (slots_) {
    if (outstanding() == slot_cap_ && slot_cap_ < config_.window_packets) grow_sender();
    return;
  }
  slot_cap_ = std::min(kInitialTxSlots, config_.window_packets);
  slot_mask_ = slot_cap_ - 1;
  slots_.reset(new TxSlot[slot_cap_]());
  tx_order_ = IndexList<SlotLinks>(SlotLinks{slots_.get()});
  retx_ = IndexList<SlotLinks>(SlotLinks{slots_.get()});
}

void Pdc::grow_sender() {
  // Double the ring and move every tracked PSN to its new slot; the two
  // lists are rebuilt in their old order (transmission order matters to RACK).
  const uint32_t cap = slot_cap_ * 2, mask = cap - 1;
  std::unique_ptr<TxSlot[]> bigger(new TxSlot[cap]());
  auto new_index = [&](uint32_t old_idx) {
    const Psn psn = una_ + static_cast<int32_t>((old_idx - slot_of(una_)) & slot_mask_);
    return psn.value() & mask;
  };
  for (Psn p = una_; p < next_psn_; ++p) {
    TxSlot moved = slots_[slot_of(p)];
    moved.links = IndexLinks();
    bigger[p.value() & mask] = moved;
  }
  IndexList<SlotLinks> order(SlotLinks{bigger.get()}), retx(SlotLinks{bigger.get()});
  for (uint32_t i = tx_order_.front(); i != kNoIndex; i = tx_order_.next(i)) order.push_back(new_index(i));
  for (uint32_t i = retx_.front(); i != kNoIndex; i = retx_.next(i)) retx.push_back(new_index(i));
  slots_ = std::move(bigger);
  slot_cap_ = cap;
  slot_mask_ = mask;
  tx_order_ = order;
  retx_ = retx;
}

void Pdc::grow_receiver(uint32_t needed) {
  uint32_t cap = rx_bitmap_.capacity();
  while (cap < needed) cap *= 2;
  rx_bitmap_.grow(cap, (cack_ + 1).value());
}

void Pdc::shrink() {
  if (slots_ && outstanding() == 0 && tx_order_.empty() && retx_.empty()) {
    slots_.reset();
    slot_cap_ = slot_mask_ = 0;
    tx_order_ = IndexList<SlotLinks>();
    retx_ = IndexList<SlotLinks>();
  }
  if (receiver_started_ && rx_highest_ == cack_ && rx_bitmap_.capacity() > kInitialRxBits) {
    rx_bitmap_.reset(kInitialRxBits);  // no hole: no bit is set
  }
  if (nacks_ && nack_count_ == 0) nacks_.reset();
}

// ============================================================================
// Entry points
// ============================================================================

void Pdc::on_packet(const wire::Packet& pkt, const RxMeta& meta, TimePoint now) {
  if (state_ == PdcState::kClosed && receiver_started_ &&
      pkt.prologue.type == wire::PdsType::kCtrl && pkt.ctrl.ctrl_type() == wire::CtrlType::kClose) {
    // Our ACK of the CLOSE was lost: say it again while the owner lingers.
    ack_trigger_ = cack_;
    trigger_is_new_ = false;
    ack_due_ = now;
    return;
  }
  if (state_ == PdcState::kClosed || state_ == PdcState::kFailed) return;
  window_blocked_ = false;  // an ACK, NACK or CREDIT may change the window
  switch (pkt.prologue.type) {
    case wire::PdsType::kRudReq:
    case wire::PdsType::kRodReq:
    case wire::PdsType::kRudCcReq:
    case wire::PdsType::kRodCcReq:
      on_request(pkt, meta, now);
      break;
    case wire::PdsType::kAck:
    case wire::PdsType::kAckCc:
    case wire::PdsType::kAckCcx:
      on_ack(pkt.ack, now);
      note_pacing(now);  // the ACK may have opened the window to a paced sender
      break;
    case wire::PdsType::kNack:
    case wire::PdsType::kNackCcx:
      on_nack(pkt.nack, now);
      note_pacing(now);
      break;
    case wire::PdsType::kCtrl:
      on_ctrl(pkt, now);
      note_pacing(now);
      break;
    default:
      ++counters_.bad_packets;
      break;
  }
}

bool Pdc::wants_transmit(TimePoint now) const {
  if (state_ == PdcState::kClosed && ack_due_ <= now) return true;
  if (state_ == PdcState::kClosed || state_ == PdcState::kFailed) return false;
  if (nack_count_ || close_ack_pending_ || close_req_pending_ || credit_req_due_) return true;
  if (ack_due_ <= now) return true;
  if (close_requested_ && !close_sent_ && outstanding() == 0) return true;
  // Data: pacing first (next_deadline() wakes the owner when it is over),
  // then the window and credit.
  if (paced(now)) return false;
  if (credit_blocked_) {
    return !retx_.empty() && syn_probe_allowed() && slots_[retx_.front()].not_before_ns <= now.ns();
  }
  if (tlp_pending_) return true;
  if (!retx_.empty()) {
    const TxSlot& s = slots_[retx_.front()];
    if (s.not_before_ns <= now.ns() && (cc::cc_window_allows(cc_, inflight_bytes_, s.len) || syn_probe_allowed()))
      return true;
  }
  // New data: room in the window (poll_transmit checked the exact size of
  // the next unit if it did not fit).
  return upper_ready_ && !close_requested_ && window_open() && !window_blocked_ &&
         cc::cc_window_allows(cc_, uint64_t{inflight_bytes_} + retx_bytes_, 1);
}

uint32_t Pdc::poll_control(TimePoint now, TxBatch& batch) {
  const uint32_t start = batch.count();
  if (state_ == PdcState::kClosed && ack_due_ <= now && !batch.full()) emit_ack(now, batch);
  if (state_ == PdcState::kClosed || state_ == PdcState::kFailed) return batch.count() - start;
  while (nack_count_ && !batch.full() && emit_nack(batch)) {
  }
  if (ack_due_ <= now && !batch.full()) emit_ack(now, batch);
  if (close_req_pending_ && !batch.full() && emit_ctrl(wire::CtrlType::kCloseReq, Psn(0), 0, batch)) {
    close_req_pending_ = false;
  }
  // EQDS: ask for credit as soon as the PDC is open, not after the initial
  // window, or the grants arrive a window late and the sender idles.
  if (credit_request_due() && !batch.full()) request_credit(now, batch);
  return batch.count() - start;
}

uint32_t Pdc::poll_transmit(TimePoint now, TxBatch& batch) {
  const uint32_t start = batch.count();
  // Receiver half first: ACKs free the peer's window.
  poll_control(now, batch);
  if (state_ == PdcState::kClosed || state_ == PdcState::kFailed) return batch.count() - start;

  // Sender half: retransmissions, then the probe, then new units.
  if (slots_) {
    while (!retx_.empty() && !batch.full()) {
      const uint32_t idx = retx_.front();
      if (slots_[idx].not_before_ns > now.ns()) break;  // an RNR wait
      if (!may_send(now, inflight_bytes_, slots_[idx].len) && !syn_probe_allowed()) break;
      const bool tail = retx_.size() == 1 && !tlp_pending_;
      if (!emit_request(psn_of(idx), /*retx=*/true, tail, now, batch)) break;
    }
    if (tlp_pending_ && !batch.full() && !tx_order_.empty()) {
      // Resend the newest in-flight PSN: its SACK reveals a lost tail.
      Psn newest = una_;
      for (Psn p = next_psn_ - 1; p >= una_; p = p - 1) {
        if (slots_[slot_of(p)].state == kInFlight) {
          newest = p;
          break;
        }
      }
      // A probe adds nothing to the flight (the PSN is in it already): only
      // pacing and credit apply.
      if (may_send(now, 0, slots_[slot_of(newest)].len) &&
          emit_request(newest, /*retx=*/true, /*tail=*/true, now, batch)) {
        ++counters_.tlp_probes;
        tlp_pending_ = false;
      }
    } else if (tlp_pending_ && tx_order_.empty()) {
      tlp_pending_ = false;
    }
  }
  while (!batch.full() && upper_ready_ && !close_requested_ && window_open() &&
         may_send_new(now, batch.next().capacity)) {
    uint64_t cookie;
    bool last = false;
    if (!upper_->next_unit(*this, &cookie, &last)) {
      upper_ready_ = false;
      break;
    }
    ensure_sender();
    TxSlot& s = slots_[slot_of(next_psn_)];
    s.cookie = cookie;
    s.transmissions = 0;
    s.timed_out = false;
    s.rnr = 0;
    s.not_before_ns = 0;
    s.is_close = false;
    s.state = kInFlight;  // set properly by emit_request
    const Psn psn = next_psn_;
    ++next_psn_;
    // The flight ends here if the upper layer has nothing more or the PSN
    // window closes behind this packet (emit_request adds the CC window).
    const bool tail = last || outstanding() >= config_.window_packets;
    if (!emit_request(psn, /*retx=*/false, tail, now, batch)) {
      // No room in the buffer: cannot happen with MTU-sized buffers; undo.
      --next_psn_;
      s.state = kFree;
      break;
    }
  }
  if (close_requested_ && !close_sent_ && outstanding() == 0 && !batch.full()) {
    ensure_sender();
    TxSlot& s = slots_[slot_of(next_psn_)];
    s.cookie = 0;
    s.transmissions = 0;
    s.timed_out = false;
    s.rnr = 0;
    s.not_before_ns = 0;
    s.is_close = true;
    const Psn psn = next_psn_;
    ++next_psn_;
    if (emit_request(psn, /*retx=*/false, /*tail=*/false, now, batch)) {
      close_sent_ = true;
      state_ = PdcState::kClosing;
    } else {
      --next_psn_;
    }
  }
  // After the data: a SYN request that opens the PDC must reach the target first.
  if (credit_req_due_ && !batch.full()) request_credit(now, batch);
  note_pacing(now);
  return batch.count() - start;
}

TimePoint Pdc::next_deadline() const {
  if (state_ == PdcState::kClosed) return ack_due_;
  if (state_ == PdcState::kFailed) return TimePoint::max();
  TimePoint t = ack_due_;
  if (!retx_.empty()) {
    // The end of its RNR wait (or a time past: due now), unless pacing, the
    // window or credit hold it: their own events wake it then, and a time
    // already past would only make the owner spin.
    const TxSlot& front = slots_[retx_.front()];
    if ((!pace_wait_ && !credit_blocked_ && cc::cc_window_allows(cc_, inflight_bytes_, front.len)) ||
        syn_probe_allowed()) {
      t = min_time(t, TimePoint::from_ns(front.not_before_ns));
    }
  }
  if (!tx_order_.empty()) {
    t = min_time(t, rto_deadline());
    t = min_time(t, tlp_deadline_);
    t = min_time(t, rack_deadline_);
  }
  if (pace_wait_) t = min_time(t, TimePoint::from_ns(next_send_ns_));
  if (cc_ops_->next_timer != nullptr) t = min_time(t, cc_ops_->next_timer(cc_, config_.cc_params));
  return min_time(t, credit_req_retry_);
}

void Pdc::on_timeout(TimePoint now) {
  if (state_ == PdcState::kClosed || state_ == PdcState::kFailed) return;
  window_blocked_ = false;
  // The ACK timer needs no action here: poll_transmit sends it when due;
  // neither does the pacing time (note_pacing drops the wait).
  if (cc_ops_->next_timer != nullptr && cc_ops_->next_timer(cc_, config_.cc_params) <= now) {
    cc_ops_->on_timer(cc_, config_.cc_params, now);
  }
  if (credit_req_retry_ <= now) {
    // Still credit-blocked a retransmission timeout after the last
    // CREDIT_REQ: it (or the CREDIT answering it) may have been lost.
    credit_req_retry_ = TimePoint::max();
    credit_req_due_ = true;
    credit_req_repeat_ = true;
  }
  fire_loss_timers(now);
  // Last: the timers above may have queued retransmissions behind the pacing time.
  note_pacing(now);
}

void Pdc::fire_loss_timers(TimePoint now) {
  if (tx_order_.empty()) return;
  if (rack_deadline_ <= now) {
    rack_deadline_ = TimePoint::max();
    detect_losses(now);
  }
  if (!tx_order_.empty() && rto_deadline() <= now) {
    on_rto(now);
    return;
  }
  if (tlp_deadline_ <= now) {
    tlp_deadline_ = TimePoint::max();
    if (config_.tail_loss_probe && !tlp_used_ && !tx_order_.empty()) {
      tlp_pending_ = true;
      tlp_used_ = true;
      ++rto_backoff_;  // a timeout without an ACK too (see on_rto)
    }
  }
}

void Pdc::note_pacing_slow(TimePoint now) {
  if (cc_.pacing_rate != 0 && next_send_ns_ > now.ns()) {
    // The gap was fixed by the rate when the last packet left. A rate that
    // rose since ends it sooner: no later than a full packet's gap at the
    // new rate from now. Swift below one packet paces at cwnd / srtt, so a
    // packet sent right after a reset to min_cwnd (0.001 packets) set the
    // next send ~1000 srtt ahead, and the PDC sat that out (~30 ms in the
    // k=8 incast) after its window had grown back, with nothing in flight.
    // Compared by multiplying (no division on every ACK of a paced PDC):
    // wait * rate > full * 1e9 <=> the wait exceeds a full packet's gap.
    const uint64_t full = uint64_t{config_.cc_params.mtu} + request_header_size() + wire::kTrailerSize;
    const auto wait = static_cast<unsigned __int128>(next_send_ns_ - now.ns());
    if (wait * cc_.pacing_rate > static_cast<unsigned __int128>(full) * 1000000000u)
      next_send_ns_ = now.ns() + static_cast<int64_t>(full * 1000000000 / cc_.pacing_rate);
  }
  // Wake the owner at the pacing time only if data is waiting for it;
  // otherwise next_deadline() would keep naming a time already past.
  pace_wait_ = cc_.pacing_rate != 0 && next_send_ns_ > now.ns() &&
               (upper_ready_ || !retx_.empty() || tlp_pending_);
}

void Pdc::close() {
  if (state_ != PdcState::kOpen) return;
  close_requested_ = true;
}

void Pdc::abort() {
  if (state_ == PdcState::kClosed || state_ == PdcState::kFailed) return;
  if (slots_) {
    for (Psn p = una_; p < next_psn_; ++p) {
      TxSlot& s = slots_[slot_of(p)];
      if (s.state != kFree && s.state != kSacked && !s.is_close) {
        upper_->on_unit_failed(*this, s.cookie, UnitFailure::kClosed, 0);
      }
      s.state = kFree;
    }
  }
  inflight_bytes_ = retx_bytes_ = 0;
  state_ = PdcState::kClosed;
}

// ============================================================================
// Sender half
// ============================================================================

bool Pdc::window_open() const {
  if (state_ != PdcState::kOpen) return false;
  const uint32_t span = outstanding();
  if (span >= config_.window_packets) return false;
  // Before the first ACK the SYN's 12-bit psn_offset bounds how far we run.
  return remote_known_ || static_cast<uint32_t>(next_psn_ - start_psn_) < 4096;
}

bool Pdc::may_send(TimePoint now, uint64_t in_flight, uint32_t bytes) {
  if (paced(now)) {
    ++counters_.pacing_waits;
    return false;
  }
  if (cc::cc_window_allows(cc_, in_flight, bytes)) return true;
  if (cc_.credit_limited && cc_.credit_bytes < static_cast<int64_t>(bytes) && !credit_blocked_) {
    // Out of credit with work to send: say so to the receiver (CREDIT_REQ).
    credit_blocked_ = true;
    credit_req_due_ = true;
    ++counters_.credit_blocked;
  }
  return false;
}

bool Pdc::may_send_new_slow(TimePoint now, uint32_t cap) {
  const uint64_t charged = uint64_t{inflight_bytes_} + retx_bytes_;
  // Far from the window and not credit-limited: whatever the next unit is,
  // it fits (a datagram never exceeds its buffer), so no need to ask its size.
  if (!cc_.credit_limited && !paced(now) && (charged == 0 || charged + cap <= cc_.cwnd_bytes)) return true;
  const uint32_t body = upper_->peek_unit_bytes(*this);
  if (body == 0) return !paced(now);  // nothing queued: next_unit() says so
  if (may_send(now, charged, request_header_size() + body + static_cast<uint32_t>(wire::kTrailerSize))) return true;
  // Remembered so that wants_transmit() is exact until an ACK, loss, credit
  // or timer changes the window.
  window_blocked_ = !paced(now);
  return false;
}

TimePoint Pdc::rto_deadline() const {
  if (tx_order_.empty()) return TimePoint::max();
  const TxSlot& head = slots_[tx_order_.front()];
  return TimePoint::from_ns(head.last_send_ns) + rto_;
}

size_t Pdc::encode_request_header(Psn psn, bool retx, wire::NextHdr next_hdr, uint32_t charged,
                                  uint8_t* out) const {
  wire::RequestHeader h;
  const bool rod = mode_ == DeliveryMode::kRod;
  if (cc_.credit_limited) {
    // EQDS: the CC request types carry what this packet was charged, so a
    // receiver that gets it trimmed re-grants exactly that.
    h.prologue.type = rod ? wire::PdsType::kRodCcReq : wire::PdsType::kRudCcReq;
    h.req_cc_state = charged;
  } else {
    h.prologue.type = rod ? wire::PdsType::kRodReq : wire::PdsType::kRudReq;
  }
  h.prologue.next_hdr = static_cast<uint8_t>(next_hdr);
  h.prologue.flags = retx ? wire::kReqFlagRetx : 0;
  h.psn = psn.value();
  h.spdcid = local_id_;
  // clear_psn_offset: PSNs below una are acknowledged; the receiver may forget them.
  const int32_t clear = una_ - psn;
  h.clear_psn_offset = static_cast<int16_t>(std::max<int32_t>(clear, -32768));
  if (remote_known_) {
    h.dpdcid = remote_id_;
  } else {
    h.prologue.flags |= wire::kReqFlagSyn;
    h.dpdcid = wire::syn_dpdcid(0, static_cast<uint16_t>(psn - start_psn_));
  }
  return wire::encode_request(h, std::span<uint8_t>(out, request_header_size()));
}

bool Pdc::emit_request(Psn psn, bool retx, bool tail, TimePoint now, TxBatch& batch) {
  const uint32_t idx = slot_of(psn);
  TxSlot& s = slots_[idx];
  TxPacket& tx = batch.next();
  const uint32_t hdr = request_header_size();
  if (tx.capacity < hdr + wire::kTrailerSize + 64) return false;
  size_t len;
  if (s.is_close) {
    wire::CtrlHeader c;
    c.prologue.type = wire::PdsType::kCtrl;
    c.prologue.next_hdr = static_cast<uint8_t>(wire::CtrlType::kClose);
    c.prologue.flags = (retx ? wire::kCtrlFlagRetx : 0) |
                       (mode_ == DeliveryMode::kRod ? wire::kCtrlFlagIsRod : 0) |
                       wire::kCtrlFlagAckReq;
    c.psn = psn.value();
    c.spdcid = local_id_;
    c.dpdcid = remote_id_;
    len = wire::encode_ctrl(c, std::span<uint8_t>(tx.data, tx.capacity));
  } else {
    // The SES part first: it says which SES header follows the PDS one.
    wire::NextHdr next_hdr = wire::NextHdr::kReqStd;
    const size_t body = upper_->write_unit(
        *this, s.cookie, std::span<uint8_t>(tx.data + hdr, tx.capacity - hdr - wire::kTrailerSize), &next_hdr);
    if (body == 0) {
      // The buffer cannot hold this unit (a driver whose buffers are smaller
      // than its MTU promised): send nothing rather than a headless packet.
      ++counters_.tx_no_room;
      return false;
    }
    const uint32_t charged = static_cast<uint32_t>(hdr + body + wire::kTrailerSize);
    len = encode_request_header(psn, retx, next_hdr, charged, tx.data) + body;
    // New data also ends the flight when another packet like it would not
    // fit the CC window or credit.
    if (!retx && !tail) {
      const uint64_t after = uint64_t{inflight_bytes_} + retx_bytes_ + charged;
      tail = !cc::cc_window_allows(cc_, after, charged) ||
             (cc_.credit_limited && cc_.credit_bytes < 2 * static_cast<int64_t>(charged));
    }
  }
  // Ask for an immediate ACK when this packet ends what we can send now, so
  // the receiver does not sit on it for the coalescing delay.
  if (tail && !s.is_close) tx.data[1] |= wire::kReqFlagAckReq;
  if (!commit_packet(tx, len, /*control=*/false, batch)) return false;
  len = tx.len;
  // A fresh path per transmission; a loss of the previous one was already
  // reported against its entropy, so an adaptive policy can steer away.
  const uint16_t entropy = lb_.choose_entropy(now, shared_->lb_rng, retx);
  tx.entropy = entropy;

  if (s.state == kLost || (s.state == kInFlight && s.links.linked())) unlink(idx);
  s.state = kInFlight;
  // The copy this one replaces left at least an RTO ago: an ACK after this
  // send is for this send (see sample_ok below).
  const bool prev_copy_old = retx && now.ns() - s.last_send_ns >= rto_.ns();
  s.last_send_ns = now.ns();
  s.tx_seq = next_tx_seq_++;
  s.len = static_cast<uint16_t>(len);
  s.entropy = entropy;
  ++s.transmissions;
  // Karn, relaxed where it is safe: a resend after an RTO is sampled. Were
  // it not, a flow whose whole window timed out (every later ACK naming a
  // resend) never got a sample, and its RTO stayed doubled for good (incast
  // flows waited out 16 ms RTOs; af_packet flows could not shed an RTO
  // storm without the backoff).
  s.sample_ok = s.transmissions == 1 || (retx && (s.timed_out || prev_copy_old));
  s.timed_out = false;
  // Sending after an idle spell: the silence that may fail the PDC counts
  // from here, not from the ACK that ended the last busy spell.
  if (!retx && outstanding() == 1) last_progress_us_ = static_cast<uint32_t>(now.ns() / 1000);
  tx_order_.push_back(idx);
  inflight_bytes_ += s.len;
  ++counters_.tx_requests;
  counters_.tx_request_bytes += len;
  if (retx) ++counters_.retransmits;
  if (!s.is_close) {
    cc::cc_on_send(*cc_ops_, cc_, config_.cc_params, static_cast<uint32_t>(len), now);
    if (cc_.pacing_rate != 0) {
      next_send_ns_ = std::max(next_send_ns_, now.ns()) +
                      static_cast<int64_t>(len * uint64_t{1000000000} / cc_.pacing_rate);
    }
    if (cc_.credit_limited) credit_blocked_ = false;
  }
  if (config_.tail_loss_probe && !tlp_used_) {
    const Duration pto = have_rtt() ? max_dur(srtt_ * 2, config_.min_tlp) : config_.initial_rto / 2;
    tlp_deadline_ = now + pto;
  }
  return true;
}

void Pdc::rtt_sample(Duration rtt) {
  if (rtt < Duration::zero()) return;
  ++counters_.rtt_samples;
  const bool first = !have_rtt();
  if (rtt < min_rtt_) min_rtt_ = rtt;
  if (first) {
    srtt_ = rtt;
    rttvar_ = rtt / 2;
  } else {
    const Duration err = srtt_ > rtt ? srtt_ - rtt : rtt - srtt_;
    rttvar_ = (rttvar_ * 3 + err) / 4;
    srtt_ = (srtt_ * 7 + rtt) / 8;
  }
  Duration rto = srtt_ + max_dur(rttvar_ * 4, Duration::micros(1));
  rto_ = std::clamp(rto, config_.min_rto, config_.max_rto);
}

void Pdc::unlink(uint32_t idx) {
  TxSlot& s = slots_[idx];
  if (s.state == kInFlight) {
    tx_order_.remove(idx);
    inflight_bytes_ -= s.len;
  } else if (s.state == kLost) {
    retx_.remove(idx);
    retx_bytes_ -= s.len;
  }
}

uint32_t Pdc::mark_delivered(Psn psn, TimePoint now, Duration lb_rtt, bool ce, bool* progressed) {
  const uint32_t idx = slot_of(psn);
  TxSlot& s = slots_[idx];
  if (s.state != kInFlight && s.state != kLost) return 0;  // already sacked or free
  const bool was_lost = s.state == kLost;
  unlink(idx);
  if (was_lost) {
    if (s.transmissions == 1 && s.rnr == 0) {
      // Declared lost, never resent, and delivered: RACK took reordering for
      // loss (certain, unlike the timing test below). Widen the reordering
      // window as a DSACK would (RFC 8985 6.2) and let the CC undo its cut.
      ++counters_.spurious_retransmits;
      if (reo_wnd_mult_ < 16) reo_wnd_mult_ *= 2;
      cc::SpuriousLossSample l;
      l.now = now;
      l.bytes = s.len;
      l.packets = 1;
      cc::cc_on_spurious_loss(*cc_ops_, cc_, config_.cc_params, l);
    }
  }
  const Duration rtt = now - TimePoint::from_ns(s.last_send_ns);
  // Delivered sooner after its retransmission than a round trip takes: the
  // original was only late. Such a delivery says nothing about what was sent
  // before the retransmission (RFC 8985 step 2), and it widens the
  // reordering window (RACK's DSACK-driven adaptation, inferred from timing).
  const bool spurious = s.transmissions > 1 && have_rtt() && rtt < min_rtt_;
  if (spurious) {
    ++counters_.spurious_retransmits;
    if (reo_wnd_mult_ < 16) reo_wnd_mult_ *= 2;
  }
  s.state = kSacked;
  if (!spurious && s.tx_seq > rack_seq_) {
    rack_seq_ = s.tx_seq;
    rack_rtt_ = rtt;
  }
  *progressed = true;
  lb_.on_ack(s.entropy, lb_rtt, ce, now);
  if (s.is_close) return 0;
  upper_->on_unit_acked(*this, s.cookie);
  return s.len;
}

void Pdc::on_ack(const wire::AckHeader& ack, TimePoint now) {
  ++counters_.acks_received;
  if (!slots_) return;
  const Psn cack(ack.cack_psn);
  const Psn acked = cack + ack.ack_psn_offset;
  // An ACK for PSNs we never sent is not trusted (not even its spdcid).
  if (cack >= next_psn_ || acked >= next_psn_) {
    ++counters_.bad_packets;
    return;
  }
  if (!remote_known_) {
    remote_id_ = ack.spdcid;
    remote_known_ = true;
    // EQDS: a CREDIT_REQ sent before the target had our PDC found none; say
    // the total again now that it has (see syn_probe_allowed).
    credit_req_due_ |= cc_.credit_limited;
    credit_req_repeat_ |= cc_.credit_limited;
  }
  bool progressed = false;
  const uint32_t ce = static_cast<uint32_t>(ack.ack_cc_state >> 32);
  uint64_t acked_bytes = 0;
  uint32_t acked_packets = 0;
  auto count = [&](uint32_t bytes) {
    acked_bytes += bytes;
    acked_packets += bytes != 0;
  };

  // RTT from the PSN that triggered this ACK, if sent once (Karn). That PSN
  // is reported first, with the sample and the CE echo (the receiver ACKs
  // at once on CE, so the CE-marked packet is normally the trigger).
  Duration rtt = Duration::zero();
  if (acked >= una_) {
    const TxSlot& s = slots_[slot_of(acked)];
    // With the copy echoed: a first copy answers for a PSN sent once only,
    // and a resend is sampled when it was the only one (or by sample_ok's
    // RTO-age rule). Without it (an ACK not for a new arrival): Karn, relaxed.
    bool sample = s.sample_ok;
    if ((ack.ack_cc_state & kEchoKnown) != 0) {
      const bool echoed_retx = (ack.ack_cc_state & kEchoRetx) != 0;
      sample = echoed_retx ? s.transmissions == 2 || (s.sample_ok && s.transmissions > 1) : s.transmissions == 1;
    }
    if (sample && s.state != kSacked && s.state != kFree) {
      const Duration hold = Duration::nanos(static_cast<int64_t>(ack.ack_cc_state & kHoldMask));
      rtt = now - TimePoint::from_ns(s.last_send_ns);
      if (hold < rtt) rtt -= hold;
      rtt_sample(rtt);
    }
    count(mark_delivered(acked, now, rtt, ce != 0, &progressed));
  }

  // Cumulative part.
  while (una_ <= cack) {
    count(mark_delivered(una_, now, Duration::zero(), false, &progressed));
    slots_[slot_of(una_)].state = kFree;
    ++una_;
    progressed = true;
  }
  // Selective part.
  if (ack.prologue.type != wire::PdsType::kAck) {
    uint64_t bits = ack.sack_bitmap;
    const Psn base = cack + ack.sack_psn_offset;
    while (bits) {
      const int i = __builtin_ctzll(bits);
      bits &= bits - 1;
      const Psn p = base + i;
      if (p < una_ || p >= next_psn_) continue;
      count(mark_delivered(p, now, Duration::zero(), false, &progressed));
    }
  }
  // Skip over a prefix that was sacked earlier.
  while (una_ < next_psn_ && slots_[slot_of(una_)].state == kSacked) {
    slots_[slot_of(una_)].state = kFree;
    ++una_;
  }

  if (close_sent_ && una_ == next_psn_) {
    state_ = PdcState::kClosed;
    return;
  }
  if (acked_packets != 0 || ce != 0) {
    cc::AckSample a;
    a.now = now;
    a.acked_bytes = acked_bytes;
    a.acked_packets = acked_packets;
    a.ce_packets = ce;
    a.rtt = rtt;
    a.bytes_in_flight = inflight_bytes_;
    cc_ops_->on_ack(cc_, config_.cc_params, a);
  }
  if (progressed) {
    rto_backoff_ = 0;
    last_progress_us_ = static_cast<uint32_t>(now.ns() / 1000);
    tlp_used_ = false;
    tlp_pending_ = false;
    if (tx_order_.empty()) tlp_deadline_ = TimePoint::max();
    else if (config_.tail_loss_probe) tlp_deadline_ = now + max_dur(srtt_ * 2, config_.min_tlp);
  }
  if (config_.retx == RetxMode::kSelective) detect_losses(now);
}

void Pdc::detect_losses(TimePoint now) {
  // RACK (RFC 8985): a packet is lost once something sent after it was
  // delivered and it has had rtt + reo_wnd to arrive. Time, not a packet
  // count, so that sprayed packets overtaking each other are not "lost".
  const Duration base = have_rtt() ? min_rtt_ / 4 : Duration::micros(1);
  const Duration reo_wnd = max_dur(base * reo_wnd_mult_, config_.min_reorder_window);
  rack_deadline_ = TimePoint::max();
  cc::LossSample loss;
  while (!tx_order_.empty()) {
    const uint32_t idx = tx_order_.front();
    const TxSlot& s = slots_[idx];
    if (s.tx_seq >= rack_seq_) break;  // nothing sent later was delivered
    const TimePoint expires = TimePoint::from_ns(s.last_send_ns) + rack_rtt_ + reo_wnd;
    if (expires <= now) {
      SHOAL_LOG(kPds, kDebug, "rack lost slot %u tx_seq %u sent %.3f now %.3f rack_seq %u rack_rtt %.3f reo %.3f",
                idx, s.tx_seq, s.last_send_ns / 1e3, now.us(), rack_seq_, rack_rtt_.us(), reo_wnd.us());
      ++counters_.rack_losses;
      ++loss.lost_packets;
      loss.lost_bytes += s.len;
      lb_.on_loss(s.entropy, now);  // before its retransmission picks a path
      mark_lost(idx);
      continue;
    }
    rack_deadline_ = expires;
    break;
  }
  if (loss.lost_packets != 0) {
    loss.now = now;
    loss.bytes_in_flight = inflight_bytes_;
    cc_ops_->on_loss(cc_, config_.cc_params, loss);
  }
}

void Pdc::resolve_failed(uint32_t idx, UnitFailure why, uint8_t ses_code) {
  TxSlot& s = slots_[idx];
  unlink(idx);
  s.state = kSacked;  // resolved: una may pass it, the clear PSN tells the target
  if (!s.is_close) upper_->on_unit_failed(*this, s.cookie, why, ses_code);
}

void Pdc::mark_lost(uint32_t idx) {
  TxSlot& s = slots_[idx];
  s.timed_out = false;  // on_rto sets it after this for the copies an RTO old
  tx_order_.remove(idx);
  inflight_bytes_ -= s.len;
  s.state = kLost;
  retx_.push_back(idx);
  retx_bytes_ += s.len;
  // EQDS: the backlog grew by this packet; the request total may have too.
  credit_req_due_ |= cc_.credit_limited;
}

void Pdc::rewind_to(Psn from) {
  // Go-back-N: everything from `from` on goes again, in PSN order.
  ++counters_.gbn_rewinds;
  while (!retx_.empty()) {
    const uint32_t idx = retx_.front();
    unlink(idx);
    slots_[idx].state = kInFlight;  // re-queued below in PSN order
  }
  for (Psn p = max_psn(from, una_); p < next_psn_; ++p) {
    const uint32_t idx = slot_of(p);
    TxSlot& s = slots_[idx];
    if (s.state == kInFlight) {
      if (s.links.linked()) {
        tx_order_.remove(idx);
        inflight_bytes_ -= s.len;
      }
      s.state = kLost;
      retx_.push_back(idx);
      retx_bytes_ += s.len;
    }
  }
  credit_req_due_ |= cc_.credit_limited;
}

void Pdc::on_nack(const wire::NackHeader& nack, TimePoint now) {
  ++counters_.nacks_received;
  if (!slots_) return;
  const Psn psn(nack.nack_psn);
  if (psn < una_ || psn >= next_psn_) return;
  // A target that refused everything so far (a bad rkey, say) never ACKed:
  // its NACKs are the only way to learn its PDC id, which the CLOSE needs.
  if (!remote_known_) {
    remote_id_ = nack.spdcid;
    remote_known_ = true;
  }
  switch (nack.code) {
    case wire::NackCode::kPsnOorWindow:
      if (config_.retx == RetxMode::kGoBackN) {
        // Everything before the expected PSN arrived: take it as a cumulative ACK.
        bool progressed = false;
        while (una_ < psn) {
          mark_delivered(una_, now, Duration::zero(), false, &progressed);
          slots_[slot_of(una_)].state = kFree;
          ++una_;
        }
        // The receiver expects `psn`; one rewind per RTT at most, as a RoCE
        // NIC ignores NAKs for a hole it is already resending.
        if (gbn_rewound_at_ == psn && now - gbn_last_rewind_ < max_dur(srtt_, Duration::micros(1))) return;
        gbn_rewound_at_ = psn;
        gbn_last_rewind_ = now;
        const TxSlot& hole = slots_[slot_of(psn)];
        if (hole.state == kInFlight) {
          // The hole is a loss on its path and to the CC.
          lb_.on_loss(hole.entropy, now);
          cc::LossSample loss;
          loss.now = now;
          loss.lost_bytes = hole.len;
          loss.lost_packets = 1;
          loss.bytes_in_flight = inflight_bytes_ - hole.len;
          cc_ops_->on_loss(cc_, config_.cc_params, loss);
        }
        rewind_to(psn);
      }
      break;
    case wire::NackCode::kExpNackErr: {
      // The target's semantic layer refuses this unit for good.
      ++counters_.rejects_received;
      const uint32_t idx = slot_of(psn);
      if (slots_[idx].state == kInFlight || slots_[idx].state == kLost) {
        resolve_failed(idx, UnitFailure::kRejected, nack.vendor_code);
        while (una_ < next_psn_ && slots_[slot_of(una_)].state == kSacked) {
          slots_[slot_of(una_)].state = kFree;
          ++una_;
        }
      }
      break;
    }
    case wire::NackCode::kNoSesMsgAvail: {
      // No receive buffer at the target: resend later, backing off; the
      // peer answered, so this is no step towards RETRY_EXC (and no
      // congestion signal either).
      ++counters_.rnr_nacks_received;
      const uint32_t idx = slot_of(psn);
      TxSlot& s = slots_[idx];
      if (s.state != kInFlight) break;
      const uint32_t own = upper_->unit_budget(*this, s.cookie).rnr_retries;
      if (++s.rnr > (own ? own : config_.max_rnr_retries)) {
        resolve_failed(idx, UnitFailure::kRnrExceeded, 0);
        while (una_ < next_psn_ && slots_[slot_of(una_)].state == kSacked) {
          slots_[slot_of(una_)].state = kFree;
          ++una_;
        }
        break;
      }
      s.transmissions = 0;
      s.timed_out = false;
      s.not_before_ns = (now + config_.rnr_delay * (int64_t{1} << std::min<int>(s.rnr - 1, 16))).ns();
      mark_lost(idx);
      break;
    }
    case wire::NackCode::kTrimmed:
    case wire::NackCode::kTrimmedLastHop: {
      // The payload was cut in the network: congestion on that path, not a
      // loss to the CC (on_trim only). Resend this PSN now.
      const uint32_t idx = slot_of(psn);
      TxSlot& s = slots_[idx];
      if (s.state == kInFlight) {
        lb_.on_trim(s.entropy, now);
        cc::TrimSample t;
        t.now = now;
        t.trimmed_bytes = s.len;
        t.trimmed_packets = 1;
        cc::cc_on_trim(*cc_ops_, cc_, config_.cc_params, t);
        mark_lost(idx);
      }
      break;
    }
    default:
      break;
  }
}

void Pdc::on_rto(TimePoint now) {
  ++counters_.rto_fires;
  // The peer is unreachable once max_transmissions - 1 timeouts (RTOs, and
  // the tail probe before them) came in a row with no acknowledgement in
  // between: each resent everything in flight, so every outstanding PSN has
  // then gone max_transmissions times or once less. Losses that SACK/RACK
  // find while ACKs still arrive do not count: a congested peer is alive.
  // The silence since the last ACK progress must also have lasted
  // fail_after_silence (see PdsConfig). A PSN resent kTransmissionCap times
  // fails the PDC all the same.
  const TxSlot& head = slots_[tx_order_.front()];
  const uint32_t silent_us = static_cast<uint32_t>(now.ns() / 1000) - last_progress_us_;
  const bool silent_long = Duration::micros(silent_us) >= config_.fail_after_silence;
  if ((rto_backoff_ + 1 >= config_.max_transmissions && silent_long) || head.transmissions >= kTransmissionCap) {
    fail(now);
    return;
  }
  // Units whose QP gave them a smaller budget than the PDC's end on their
  // own (at the first RTO after it ran out); the target's hole closes with
  // the clear PSN, as after a reject.
  bool resolved = false;
  for (uint32_t idx = tx_order_.front(); idx != kNoIndex;) {
    const uint32_t next = tx_order_.next(idx);
    bool expired = false;
    if (!slots_[idx].is_close) {
      const PdsUpper::UnitBudget b = upper_->unit_budget(*this, slots_[idx].cookie);
      if (b.retry_budget > Duration::zero()) {
        const uint32_t now_us = static_cast<uint32_t>(now.ns() / 1000);
        const int64_t since_progress_us = static_cast<uint32_t>(now_us - last_progress_us_);
        const Duration silent = min_dur(now - b.since, Duration::micros(since_progress_us));
        expired = silent >= b.retry_budget;
      }
    }
    if (expired) {
      ++counters_.unit_budget_failures;
      resolve_failed(idx, UnitFailure::kRetryExceeded, 0);
      resolved = true;
    }
    idx = next;
  }
  if (resolved) {
    while (una_ < next_psn_ && slots_[slot_of(una_)].state == kSacked) {
      slots_[slot_of(una_)].state = kFree;
      ++una_;
    }
    if (tx_order_.empty()) {
      ++rto_backoff_;
      rto_ = min_dur(rto_ * 2, config_.max_rto);
      return;
    }
  }
  const TxSlot& head_now = slots_[tx_order_.front()];
  if (config_.retx == RetxMode::kGoBackN) {
    lb_.on_timeout(head_now.entropy, now);
    rewind_to(una_);
  } else {
    // Everything in flight is presumed lost (RACK-TLP, RFC 8985 6.3). Only
    // the packets an RTO old would be too few: with the RTO doubled, the
    // ones sent a little later would each wait for a fire of their own, and
    // a dead path would take hundreds of fires instead of max_transmissions.
    // Path selection hears only of the packets that did time out: the
    // younger ones are resent without blaming their entropy.
    while (!tx_order_.empty()) {
      const uint32_t idx = tx_order_.front();
      const bool aged = TimePoint::from_ns(slots_[idx].last_send_ns) + rto_ <= now;
      if (aged) lb_.on_timeout(slots_[idx].entropy, now);
      mark_lost(idx);
      slots_[idx].timed_out = aged;
    }
  }
  cc::TimeoutSample t;
  t.now = now;
  t.bytes_in_flight = inflight_bytes_;
  cc_ops_->on_timeout(cc_, config_.cc_params, t);
  ++rto_backoff_;
  rto_ = min_dur(rto_ * 2, config_.max_rto);
  tlp_deadline_ = TimePoint::max();
  // The timeout was the wait: the first resend leaves now, as TCP resends
  // on an RTO, and pacing spaces what follows it from here. Otherwise a
  // window the timeout cut below one packet (Swift: min_cwnd after
  // retx_reset_threshold timeouts, one packet per ~1000 srtt) held the resend
  // ~25 ms more on top of the backed-off RTO.
  next_send_ns_ = std::min(next_send_ns_, now.ns());
}

void Pdc::fail(TimePoint now) {
  SHOAL_LOG(kPds, kWarn, "pdc %u peer %u: retry budget (%u transmissions) exhausted at %.1f us",
            local_id_, static_cast<unsigned>(peer_), config_.max_transmissions, now.us());
  state_ = PdcState::kFailed;
  for (Psn p = una_; p < next_psn_; ++p) {
    TxSlot& s = slots_[slot_of(p)];
    if ((s.state == kInFlight || s.state == kLost) && !s.is_close) {
      upper_->on_unit_failed(*this, s.cookie, UnitFailure::kRetryExceeded, 0);
    }
    s.state = kFree;
  }
  while (!tx_order_.empty()) tx_order_.pop_front();
  while (!retx_.empty()) retx_.pop_front();
  inflight_bytes_ = retx_bytes_ = 0;
}

void Pdc::request_credit(TimePoint now, TxBatch& batch) {
  credit_req_due_ = false;
  if (!cc_.credit_limited) return;
  // Everything still to send: units not handed out (with our headers) and
  // packets waiting for retransmission. Capped so that the total never runs
  // 2^31 ahead of what the receiver knows (it travels as 32 bits); the
  // total grows again as this is granted and sent.
  uint32_t units = 0;
  uint64_t backlog = upper_->backlog_bytes(*this, &units);
  backlog += uint64_t{units} * (request_header_size() + wire::kTrailerSize) + retx_bytes_;
  backlog = std::min<uint64_t>(backlog, uint64_t{1} << 30);
  const uint64_t total = cc::eqds_request_total(cc_, backlog);
  const bool blocked = credit_blocked_ && backlog != 0;
  const bool repeat = credit_req_repeat_ && blocked;
  credit_req_repeat_ = false;
  bool sent = false;
  if (total > credit_req_sent_ || repeat) {
    if (!emit_ctrl(wire::CtrlType::kCreditReq, next_psn_, static_cast<uint32_t>(total), batch)) {
      credit_req_due_ = true;  // no room in this batch: next poll
      credit_req_repeat_ = repeat;
      return;
    }
    // A request of ours like the data: on a path our path selection trusts
    // (a repeat tries another), and the target answers on the same one.
    batch.filled()[batch.count() - 1].entropy = lb_.choose_entropy(now, shared_->lb_rng, /*retransmission=*/true);
    ++counters_.credit_reqs_sent;
    credit_req_sent_ = std::max(credit_req_sent_, total);
    sent = true;
  }
  // Blocked with a backlog: say it again an RTO from now unless credit comes
  // first (on_credit disarms; the next block re-arms).
  if (!blocked) {
    credit_req_retry_ = TimePoint::max();
  } else if (sent || credit_req_retry_.is_max()) {
    credit_req_retry_ = now + rto_;
  }
}

void Pdc::on_credit(const wire::CtrlHeader& c, TimePoint now) {
  ++counters_.credits_received;
  if (!cc_.credit_limited) return;
  const cc::EqdsSenderState& e = cc::cc_priv<cc::EqdsSenderState>(cc_);
  const uint64_t total = widen32(e.granted_total, c.payload);
  if (total <= e.granted_total) return;  // reordered or repeated: nothing new
  cc::CreditSample sample;
  sample.now = now;
  sample.credit_bytes = total - e.granted_total;
  sample.granted_total = total;
  cc::cc_on_credit(*cc_ops_, cc_, config_.cc_params, sample);
  credit_blocked_ = false;  // poll_transmit finds out whether it is enough
  credit_req_retry_ = TimePoint::max();
}

// ============================================================================
// Receiver half
// ============================================================================

void Pdc::schedule_ack(TimePoint now, bool immediate) {
  if (immediate || unacked_ >= config_.ack_every_packets) {
    ack_due_ = now;
  } else if (ack_due_.is_max()) {
    ack_due_ = now + config_.ack_delay;
  }
}

void Pdc::on_request(const wire::Packet& pkt, const RxMeta& meta, TimePoint now) {
  ++counters_.rx_requests;
  const wire::RequestHeader& h = pkt.request;
  const Psn psn(h.psn);
  if (!receiver_started_) {
    // Only a PDC created from a SYN receives requests in this version.
    ++counters_.bad_packets;
    return;
  }
  // Everything below the sender's clear PSN is resolved at the sender
  // (delivered, or given up after a terminal NACK): holes there are closed.
  if (h.clear_psn_offset <= 0) apply_clear(psn + h.clear_psn_offset);
  const bool ce = meta.ecn == Ecn::kCe;
  if (ce) {
    ++counters_.rx_ce_marked;
    ++ce_since_ack_;
  }
  const bool ack_requested = (h.prologue.flags & wire::kReqFlagAckReq) != 0;
  reply_entropy_ = meta.entropy;  // the sender's path selection chose it: answer on it
  // Duplicate: already passed up. Tell the sender again, now.
  if (psn <= cack_ || (psn - cack_ <= static_cast<int32_t>(rx_bitmap_.capacity()) &&
                       rx_bitmap_.test(psn.value()))) {
    ++counters_.rx_duplicates;
    ack_trigger_ = psn <= cack_ ? cack_ : psn;
    trigger_is_new_ = false;
    schedule_ack(now, true);
    return;
  }
  if (psn - cack_ > static_cast<int32_t>(config_.window_packets)) {
    ++counters_.rx_out_of_window;
    queue_nack(wire::NackCode::kPsnOorWindow, psn);
    return;
  }
  if (config_.retx == RetxMode::kGoBackN && psn != cack_ + 1) {
    // RoCE receiver: only the expected PSN is taken; NAK the hole once.
    ++counters_.rx_out_of_order_dropped;
    if (!gbn_nacked_) {
      gbn_nacked_ = true;
      queue_nack(wire::NackCode::kPsnOorWindow, cack_ + 1);
    }
    return;
  }
  uint8_t ses_code = 0;
  const RequestVerdict verdict = upper_->on_request(*this, pkt, now, &ses_code);
  if (verdict == RequestVerdict::kRefused) {
    ++counters_.rx_refused;
    return;
  }
  if (verdict == RequestVerdict::kRnr) {
    ++counters_.rx_refused;
    ++counters_.rnr_nacks_sent;
    queue_nack(wire::NackCode::kNoSesMsgAvail, psn);
    return;
  }
  if (verdict == RequestVerdict::kRejected) {
    // Not received: the PSN stays a hole until the sender, having given the
    // unit up, moves its clear PSN past it. A retransmission that crosses
    // our NACK is refused again, so no ACK ever passes it off as delivered.
    ++counters_.rx_refused;
    ++counters_.rejects_sent;
    queue_nack(wire::NackCode::kExpNackErr, psn, ses_code);
    return;
  }
  if (verdict == RequestVerdict::kAccepted) ++counters_.rx_delivered;

  const bool new_gap = psn > rx_highest_ + 1;
  const bool fills_gap = psn < rx_highest_;
  if (psn > rx_highest_) rx_highest_ = psn;
  if (psn == cack_ + 1) {
    ++cack_;
    gbn_nacked_ = false;
    // Slide over whatever arrived ahead of it.
    const uint32_t run = rx_bitmap_.count_run((cack_ + 1).value(), rx_highest_ - cack_);
    if (run) {
      rx_bitmap_.clear_range((cack_ + 1).value(), run);
      cack_ += run;
    }
  } else {
    if (psn - cack_ > static_cast<int32_t>(rx_bitmap_.capacity())) grow_receiver(static_cast<uint32_t>(psn - cack_));
    rx_bitmap_.set(psn.value());
  }
  ++unacked_;
  ack_trigger_ = psn;
  trigger_arrival_ = now;
  trigger_is_new_ = true;
  trigger_retx_ = (h.prologue.flags & wire::kReqFlagRetx) != 0;
  schedule_ack(now, new_gap || fills_gap || ce || ack_requested);
}

void Pdc::queue_nack(wire::NackCode code, Psn psn, uint8_t vendor_code) {
  if (nack_count_ == kMaxPendingNacks) {
    // The sender still has RACK and the RTO: a NACK is a shortcut, not the
    // only way the loss is found.
    ++counters_.nacks_dropped;
    return;
  }
  if (!nacks_) nacks_.reset(new PendingNack[kMaxPendingNacks]);
  nacks_[(nack_head_ + nack_count_) % kMaxPendingNacks] = PendingNack{psn.value(), code, vendor_code};
  ++nack_count_;
}

void Pdc::apply_clear(Psn clear) {
  if (clear <= cack_ + 1 || clear - cack_ > static_cast<int32_t>(config_.window_packets)) return;
  const uint32_t n = static_cast<uint32_t>(clear - (cack_ + 1));
  // Count the holes (PSNs that never arrived) among the n passed.
  uint32_t arrived = 0;
  for (uint32_t i = 0; i < std::min(n, rx_bitmap_.capacity()); i += 64) {
    uint64_t bits = rx_bitmap_.extract64((cack_ + 1 + i).value());
    const uint32_t span = std::min<uint32_t>(64, n - i);
    if (span < 64) bits &= (uint64_t{1} << span) - 1;
    arrived += static_cast<uint32_t>(__builtin_popcountll(bits));
  }
  if (n >= rx_bitmap_.capacity()) {
    rx_bitmap_.reset(rx_bitmap_.capacity());
  } else {
    rx_bitmap_.clear_range((cack_ + 1).value(), n);
  }
  counters_.cleared_psns += n - arrived;
  cack_ = clear - 1;
  if (rx_highest_ < cack_) rx_highest_ = cack_;
  const uint32_t run = rx_bitmap_.count_run((cack_ + 1).value(), rx_highest_ - cack_);
  if (run) {
    rx_bitmap_.clear_range((cack_ + 1).value(), run);
    cack_ += run;
  }
}

void Pdc::on_trimmed(const wire::Packet& pkt, const RxMeta& meta, TimePoint now) {
  (void)now;
  if (state_ != PdcState::kOpen || !receiver_started_) return;
  ++counters_.rx_trimmed;
  reply_entropy_ = meta.entropy;
  if (meta.ecn == Ecn::kCe) ++ce_since_ack_;
  const Psn psn(pkt.request.psn);
  // A trim of something we already have, or of a PSN outside the window,
  // asks for nothing.
  if (psn <= cack_ || psn - cack_ > static_cast<int32_t>(config_.window_packets) ||
      (psn - cack_ <= static_cast<int32_t>(rx_bitmap_.capacity()) && rx_bitmap_.test(psn.value()))) {
    return;
  }
  queue_nack(wire::NackCode::kTrimmed, psn);
}

void Pdc::on_ctrl(const wire::Packet& pkt, TimePoint now) {
  const wire::CtrlHeader& c = pkt.ctrl;
  switch (c.ctrl_type()) {
    case wire::CtrlType::kAckReq:
      if (receiver_started_) {
        // The ACK names cack_ now, not the held arrival: no hold time and
        // no copy echo belong to it.
        ack_trigger_ = cack_;
        trigger_is_new_ = false;
        schedule_ack(now, true);
      }
      break;
    case wire::CtrlType::kClose: {
      if (!receiver_started_) break;
      const Psn psn(c.psn);
      // The sender closes only with nothing outstanding: every PSN below the
      // CLOSE is resolved (a hole there was given up).
      apply_clear(psn);
      // CLOSE takes effect once every PSN before it arrived.
      if (psn == cack_ + 1) {
        ++cack_;
        ack_trigger_ = psn;
        trigger_is_new_ = false;  // a CLOSE, not a data copy: nothing to echo
        close_ack_pending_ = true;
        schedule_ack(now, true);
      } else if (psn <= cack_) {
        ack_trigger_ = cack_;
        trigger_is_new_ = false;
        schedule_ack(now, true);
      } else {
        ++counters_.rx_refused;  // earlier PSNs still missing; sender retries
      }
      break;
    }
    case wire::CtrlType::kCloseReq:
      close();
      break;
    case wire::CtrlType::kCredit:
      on_credit(c, now);
      break;
    default:
      break;
  }
}

bool Pdc::commit_packet(TxPacket& tx, size_t len, bool control, TxBatch& batch) {
  if (len == 0) return false;
  tx.len = static_cast<uint32_t>(wire::seal(std::span<uint8_t>(tx.data, tx.capacity), len));
  if (tx.len == 0) return false;
  tx.peer = peer_;
  tx.entropy = reply_entropy_;  // a request's is then the path selector's (emit_request)
  // Requests are ECN-capable at the request class; ACK/NACK/CTRL travel at
  // the control class (EF) and are not ECN-capable (they carry the signal).
  tx.dscp = control ? config_.dscp_control : config_.dscp_request;
  tx.ecn = control ? Ecn::kNotEct : Ecn::kEct0;
  tx.control = control;
  batch.commit();
  return true;
}

bool Pdc::emit_ack(TimePoint now, TxBatch& batch) {
  TxPacket& tx = batch.next();
  wire::AckHeader a;
  a.prologue.type = wire::PdsType::kAckCc;
  a.prologue.flags = ce_since_ack_ ? wire::kAckFlagEcnEcho : 0;
  a.cack_psn = cack_.value();
  a.ack_psn_offset = static_cast<int16_t>(ack_trigger_ - cack_);
  a.spdcid = local_id_;
  a.dpdcid = remote_id_;
  // SACK base: right after cack if the newest arrival fits in 64 bits;
  // otherwise the 64 PSNs ending at the newest arrival (the sender keeps
  // what earlier ACKs told it, so older holes are not forgotten).
  Psn base = cack_ + 1;
  if (rx_highest_ - base >= 64) base = rx_highest_ - 63;
  a.sack_psn_offset = static_cast<int16_t>(base - cack_);
  a.sack_bitmap = base > cack_ + 1 || rx_highest_ > cack_ ? rx_bitmap_.extract64(base.value()) : 0;
  // The hold time of the PSN this ACK names, so that the sender's RTT sample
  // for exactly that PSN excludes the coalescing delay.
  a.ack_cc_state = pack_ack_cc_state(ce_since_ack_, trigger_is_new_ ? now - trigger_arrival_ : Duration::zero(),
                                     trigger_is_new_, trigger_retx_);
  const size_t n = wire::encode_ack(a, std::span<uint8_t>(tx.data, tx.capacity));
  if (!commit_packet(tx, n, /*control=*/true, batch)) return false;
  ++counters_.acks_sent;
  unacked_ = 0;
  ce_since_ack_ = 0;
  trigger_is_new_ = false;
  ack_due_ = TimePoint::max();
  if (close_ack_pending_) {
    close_ack_pending_ = false;
    state_ = PdcState::kClosed;
  }
  return true;
}

bool Pdc::emit_nack(TxBatch& batch) {
  TxPacket& tx = batch.next();
  wire::NackHeader h;
  h.prologue.type = wire::PdsType::kNack;
  const PendingNack& next = nacks_[nack_head_];
  h.code = next.code;
  h.vendor_code = next.vendor_code;
  h.nack_psn = next.psn;
  h.spdcid = local_id_;
  h.dpdcid = remote_id_;
  h.payload = cack_.value();
  const size_t n = wire::encode_nack(h, std::span<uint8_t>(tx.data, tx.capacity));
  if (!commit_packet(tx, n, /*control=*/true, batch)) return false;
  ++counters_.nacks_sent;
  nack_head_ = (nack_head_ + 1) % kMaxPendingNacks;
  --nack_count_;
  return true;
}

bool Pdc::emit_ctrl(wire::CtrlType type, Psn psn, uint32_t payload, TxBatch& batch) {
  TxPacket& tx = batch.next();
  wire::CtrlHeader c;
  c.prologue.type = wire::PdsType::kCtrl;
  c.prologue.next_hdr = static_cast<uint8_t>(type);
  c.psn = psn.value();
  c.spdcid = local_id_;
  c.dpdcid = remote_id_;
  c.payload = payload;
  if (!remote_known_) {
    // Before the target's first answer (an EQDS CREDIT_REQ right behind the
    // SYN data): SYN says "find me by my spdcid".
    c.prologue.flags |= wire::kCtrlFlagSyn;
    c.dpdcid = 0;
  }
  const size_t n = wire::encode_ctrl(c, std::span<uint8_t>(tx.data, tx.capacity));
  if (!commit_packet(tx, n, /*control=*/true, batch)) return false;
  ++counters_.ctrl_sent;
  return true;
}

}  // namespace shoal::pds
