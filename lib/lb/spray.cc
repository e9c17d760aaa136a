// lib/lb spray: every packet takes the next entropy of the set, oblivious to
// feedback (per-packet spraying as in SRD/UET's oblivious mode).
//
// Round-robin walks a per-PDC odd stride over the N entropies, so any N
// consecutive packets use each entropy exactly once; random draws uniformly
// from the caller's Rng. Either way the state is the 12-byte SpraySeq and no
// per-entropy memory, so N costs nothing per PDC.
// Invariant: every entropy returned lies in [base, base + N).
#include "lib/lb/policies.h"

namespace shoal::lb {
namespace {

void spray_init(LbState& s, const LbParams& p, uint64_t pdc_seed) {
  s.as<SprayState>().seq.init(p, pdc_hash(p, pdc_seed));
}

uint16_t spray_choose(LbState& s, TimePoint, Rng& rng, bool) {
  ++s.counters->choices;
  ++s.counters->explored;
  return s.as<SprayState>().seq.next(rng);
}

// Oblivious by design: a failed path keeps receiving 1/N of the packets (the
// PDC's retransmissions recover them). `adaptive` is the policy that listens.
void spray_ack(LbState&, uint16_t, Duration, bool, TimePoint) {}
void spray_event(LbState&, uint16_t, TimePoint) {}

}  // namespace

const LbOps kSprayOps = {
    .name = "spray",
    .state_size = sizeof(SprayState),
    .init = spray_init,
    .choose_entropy = spray_choose,
    .on_ack = spray_ack,
    .on_loss = spray_event,
    .on_trim = spray_event,
    .on_timeout = spray_event,
};

}  // namespace shoal::lb
