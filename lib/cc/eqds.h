// lib/cc eqds: receiver-driven congestion control after EQDS (Olteanu et al.,
// NSDI 2022), which builds on NDP's pull/credit design.
//
// Idea: the receiver, which alone sees its downlink, schedules its senders.
// A new sender may send an unsolicited initial window (default one BDP, so a
// short message finishes in one RTT) and then only against credit: the
// receiver grants credit round-robin across the senders that have demand,
// paced at its own line rate minus a small headroom, so the bytes arriving
// never exceed what its link drains. Switches trim rather than drop the
// payloads of overflowing packets; the trimmed header reaches the receiver,
// which re-grants credit for those bytes at once.
//
// Sender side (kEqdsOps, per PDC):
//   credit_bytes = initial_window + granted_total - sent_total
//   - on_send charges every transmission, new or retransmitted, so
//     retransmissions need credit like new data;
//   - on_credit adds a grant (or adopts the receiver's cumulative total);
//   - on_trim, on_loss and on_timeout change nothing: a trimmed packet is
//     re-granted by the receiver, a lost one is asked for again (below).
//   cwnd_bytes is effectively unlimited and pacing_rate is 0: credit alone
//   limits the sender.
// Asking for credit without deadlock: demand is cumulative, like QUIC's
// MAX_DATA. The PDC reports eqds_request_total(state, backlog) in CREDIT_REQ
// (and may piggyback it on data), where backlog is every byte it still has to
// send, retransmissions included. The receiver grants the difference between
// the largest total it has seen and what it has granted, so a lost, repeated
// or reordered request neither loses nor duplicates demand. The PDC sends a
// CREDIT_REQ when that total grows past the last one it sent (new messages,
// losses) and repeats it on its RTO clock while credit-blocked with backlog
// (the request itself may be lost). A grant carries the receiver's cumulative
// total too, so a lost grant is repaired by the next one.
//
// Receiver side (CreditScheduler, per receiving engine, not per PDC): see
// below.
//
// Defaults (EqdsParams in cc_sdk.h): initial window = 1 BDP, headroom 2% of
// line rate (room for ACKs, CREDITs and trimmed headers), grant quantum =
// one MTU, a late poll catches up at most 4 grants back to back.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "include/shoal/cc_sdk.h"
#include "lib/base/index_list.h"

namespace shoal::cc {

extern const CcOps kEqdsOps;  // name "eqds"

// Unsolicited bytes a new EQDS sender may send before any credit arrives.
uint64_t eqds_initial_window(const CcParams& p);

// Private per-PDC sender state (in CcState::priv). Exposed for tests and dump().
struct EqdsSenderState {
  uint64_t initial_window = 0;
  uint64_t sent_total = 0;     // bytes charged by on_send
  uint64_t granted_total = 0;  // receiver's cumulative grant, as known here
  uint64_t trimmed_bytes = 0;  // statistics only
  uint64_t lost_bytes = 0;
  uint32_t timeouts = 0;
};

// The cumulative credit total the sender asks for, given `backlog_bytes` it
// still has to send (new and retransmitted): what it has sent plus what it
// will send, beyond the unsolicited window.
uint64_t eqds_request_total(const CcState& s, uint64_t backlog_bytes);

// ---- receiver side ------------------------------------------------------------

struct CreditSchedulerConfig {
  double link_rate = 100e9 / 8;   // receiver's line rate, bytes/s
  double headroom = 0.02;         // fraction of link_rate never granted
  uint32_t quantum = 4096;        // bytes per grant (one MTU)
  uint32_t max_burst_grants = 4;  // how far a late poll may catch up

  static CreditSchedulerConfig from(const CcParams& p);
};

// One credit grant to hand to the sender of PDC `id` (a CREDIT packet).
struct CreditGrant {
  uint32_t id = 0;
  uint32_t bytes = 0;          // this grant
  uint64_t granted_total = 0;  // cumulative grant to `id`, including this one
};

struct CreditSchedulerCounters {
  uint64_t grants = 0;
  uint64_t granted_bytes = 0;
  uint64_t arrived_bytes = 0;
  uint64_t trimmed_bytes = 0;  // re-granted
  uint64_t requests = 0;
  uint64_t stale_requests = 0;  // total not above what was known
};

// Hands out credit for one receiving engine: round-robin across senders with
// demand, one quantum (or the rest of the demand) per grant, the grants paced
// so that granted bytes per second stay at link_rate * (1 - headroom).
//
// Driving (engine thread only, like a PDC):
//   on_request(id, total, now)           CREDIT_REQ (or a data packet carrying it)
//   on_data_arrived(id, bytes, trimmed)  every data packet, trimmed or whole
//   poll(now, out)                       fill `out` with due grants
//   next_deadline()                      when poll has something next
//   remove(id)                           the PDC closed
//
// Invariants: a sender is on the active (round-robin) list iff its demand,
// requested - granted, is positive; granted never exceeds requested; the
// pacing clock never runs more than max_burst_grants quanta behind `now`, so
// an idle or late receiver does not burst. Per-sender state is created by
// the first request or trimmed arrival (this may allocate: reserve() ahead);
// poll, on_data_arrived for known senders and remove never allocate.
class CreditScheduler {
 public:
  explicit CreditScheduler(const CreditSchedulerConfig& config);
  CreditScheduler(const CreditScheduler&) = delete;
  CreditScheduler& operator=(const CreditScheduler&) = delete;

  void reserve(size_t senders);

  // The sender of `id` wants cumulative credit `requested_total` (see
  // eqds_request_total). A total not above the largest seen is stale and
  // ignored.
  void on_request(uint32_t id, uint64_t requested_total, TimePoint now);

  // A data packet of `bytes` from `id` arrived; `trimmed` if a switch cut its
  // payload, in which case its bytes (the length the sender charged, from
  // the header, not what survived the trim) are re-granted (the sender retransmits
  // them and counts them in its request total too, so nothing is granted
  // twice). Unknown senders are created only for trimmed packets.
  void on_data_arrived(uint32_t id, uint32_t bytes, bool trimmed, TimePoint now);

  // Writes up to out.size() grants that are due at `now`; returns how many.
  // If `out` filled up, more may be due: call again.
  size_t poll(TimePoint now, std::span<CreditGrant> out);

  // When poll next has a grant to hand out; max() when no sender has demand.
  TimePoint next_deadline() const;

  // Forgets `id` (its PDC closed). Unknown ids are ignored.
  void remove(uint32_t id);

  bool contains(uint32_t id) const { return index_.contains(id); }
  uint64_t demand(uint32_t id) const;  // bytes still to grant to `id`
  uint64_t granted_total(uint32_t id) const;
  size_t senders() const { return index_.size(); }
  size_t active_senders() const { return active_.size(); }
  double grant_rate() const { return rate_; }  // bytes/s
  const CreditSchedulerCounters& counters() const { return counters_; }
  std::string dump() const;

 private:
  struct Sender {
    uint32_t id = 0;
    uint64_t requested = 0;  // largest cumulative total known (reported or anticipated)
    uint64_t granted = 0;    // cumulative bytes granted
    uint64_t arrived = 0;    // bytes arrived (whole or trimmed)
    IndexLinks links;
    bool in_use = false;
  };
  struct LinksOf {
    std::vector<Sender>* v;
    IndexLinks& operator()(uint32_t i) const { return (*v)[i].links; }
  };

  uint32_t slot_for(uint32_t id);
  void activate(uint32_t slot, TimePoint now);

  CreditSchedulerConfig config_;
  double rate_;  // bytes/s actually granted
  double ns_per_byte_;
  double next_grant_ns_ = 0;  // pacing clock: the next grant is due then
  std::vector<Sender> slots_;
  std::vector<uint32_t> free_;
  absl::flat_hash_map<uint32_t, uint32_t> index_;  // id -> slot
  IndexList<LinksOf> active_;
  CreditSchedulerCounters counters_;
};

}  // namespace shoal::cc
