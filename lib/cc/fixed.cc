// lib/cc fixed: see fixed.h. The window is decided once, in init.
#include "lib/cc/fixed.h"

#include "absl/strings/str_format.h"

namespace shoal::cc {
namespace {

struct FixedState {
  uint64_t window = 0;
};
static_assert(sizeof(FixedState) <= kCcPrivBytes);

void fixed_init(CcState& s, const CcParams& p, TimePoint) {
  FixedState& f = cc_priv_init<FixedState>(s);
  f.window = p.fixed.window_bytes != 0 ? p.fixed.window_bytes : p.bdp_bytes();
  s.cwnd_bytes = f.window;
  s.pacing_rate = 0;
  s.credit_bytes = 0;
  s.credit_limited = false;
}
void fixed_on_ack(CcState&, const CcParams&, const AckSample&) {}
void fixed_on_loss(CcState&, const CcParams&, const LossSample&) {}
void fixed_on_timeout(CcState&, const CcParams&, const TimeoutSample&) {}
std::string fixed_dump(const CcState& s, const CcParams&) {
  return absl::StrFormat("window=%u", cc_priv<FixedState>(s).window);
}

}  // namespace

const CcOps kFixedOps = {
    .name = "fixed",
    .init = fixed_init,
    .on_ack = fixed_on_ack,
    .on_loss = fixed_on_loss,
    .on_timeout = fixed_on_timeout,
    .dump = fixed_dump,
};

}  // namespace shoal::cc
