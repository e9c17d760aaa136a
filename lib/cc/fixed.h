// lib/cc fixed: a constant window, the baseline every other algorithm is
// measured against (and what the PDC did before lib/cc existed).
//
// Idea: no congestion control at all; the window is a knob. It never reacts
// to ACKs, ECN, loss, timeouts or trims.
// Invariant: cwnd_bytes == resolved window after init and forever after;
// pacing_rate == 0; never credit-limited.
// Default: window_bytes = one BDP (CcParams::bdp_bytes(), at least one MTU).
#pragma once

#include "include/shoal/cc_sdk.h"

namespace shoal::cc {

extern const CcOps kFixedOps;  // name "fixed"

}  // namespace shoal::cc
