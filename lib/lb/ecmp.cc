// lib/lb ecmp: one entropy per PDC for its whole life, today's RoCE behaviour
// and the baseline the other policies are measured against.
//
// The entropy is a hash of the PDC seed (and LbParams::seed), so different
// PDCs spread over the set, but all of one PDC's packets share one path:
// a failed or congested link stalls the PDC until the fabric reroutes.
// Invariant: choose_entropy always returns the value fixed by init.
#include "lib/lb/policies.h"

namespace shoal::lb {
namespace {

void ecmp_init(LbState& s, const LbParams& p, uint64_t pdc_seed) {
  const uint16_t mask = static_cast<uint16_t>(p.entropy_count - 1);
  s.as<EcmpState>().entropy =
      static_cast<uint16_t>(p.entropy_base + (static_cast<uint16_t>(pdc_hash(p, pdc_seed)) & mask));
}

uint16_t ecmp_choose(LbState& s, TimePoint, Rng&, bool) {
  ++s.counters->choices;
  return s.as<EcmpState>().entropy;
}

// ECMP has no alternative path to move to, so feedback changes nothing.
void ecmp_ack(LbState&, uint16_t, Duration, bool, TimePoint) {}
void ecmp_event(LbState&, uint16_t, TimePoint) {}

}  // namespace

const LbOps kEcmpOps = {
    .name = "ecmp",
    .state_size = sizeof(EcmpState),
    .init = ecmp_init,
    .choose_entropy = ecmp_choose,
    .on_ack = ecmp_ack,
    .on_loss = ecmp_event,
    .on_trim = ecmp_event,
    .on_timeout = ecmp_event,
};

}  // namespace shoal::lb
