// lib/cc registry: the process-wide table of congestion-control algorithms,
// parameter validation and dump dispatch.
//
// The table is a fixed array seeded with the built-ins on first use (a
// function-local static, so initialisation is thread-safe and the built-in
// objects are always linked: nothing relies on self-registering statics that
// a static-library link could drop). Entries never move, so find_cc's
// pointers stay valid. Registration is a startup-time, single-threaded call.
#include <array>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"
#include "include/shoal/cc_sdk.h"
#include "lib/cc/dcqcn.h"
#include "lib/cc/eqds.h"
#include "lib/cc/fixed.h"
#include "lib/cc/swift.h"

namespace shoal::cc {
namespace {

struct Registry {
  std::array<CcOps, kMaxCcAlgorithms> ops;
  size_t size = 0;
};

absl::Status check_ops(const CcOps& o) {
  if (o.name == nullptr || o.name[0] == '\0')
    return absl::InvalidArgumentError("congestion control needs a name");
  const char* missing = !o.init         ? "init"
                        : !o.on_ack     ? "on_ack"
                        : !o.on_loss    ? "on_loss"
                        : !o.on_timeout ? "on_timeout"
                                        : nullptr;
  if (missing != nullptr)
    return absl::InvalidArgumentError(
        absl::StrFormat("congestion control '%s' lacks required hook %s", o.name, missing));
  if ((o.on_timer == nullptr) != (o.next_timer == nullptr))
    return absl::InvalidArgumentError(
        absl::StrFormat("congestion control '%s': on_timer and next_timer come as a pair", o.name));
  return absl::OkStatus();
}

CcOps* find_in(Registry& r, std::string_view name) {
  for (size_t i = 0; i < r.size; ++i)
    if (name == r.ops[i].name) return &r.ops[i];
  return nullptr;
}

absl::Status add(Registry& r, const CcOps& o) {
  if (absl::Status st = check_ops(o); !st.ok()) return st;
  if (find_in(r, o.name) != nullptr)
    return absl::AlreadyExistsError(
        absl::StrFormat("congestion control '%s' is already registered", o.name));
  if (r.size == r.ops.size())
    return absl::ResourceExhaustedError("congestion-control registry is full");
  r.ops[r.size++] = o;
  return absl::OkStatus();
}

Registry& registry() {
  static Registry r = [] {
    Registry reg;
    // The built-ins: always linked, because this table names them.
    for (const CcOps* o : {&kFixedOps, &kSwiftOps, &kDcqcnOps, &kEqdsOps}) {
      absl::Status st = add(reg, *o);
      (void)st;  // built-ins are well-formed and unique (cc_test checks)
    }
    return reg;
  }();
  return r;
}

absl::Status bad(const char* field) {
  return absl::InvalidArgumentError(
      absl::StrFormat("congestion-control parameter %s is out of range", field));
}

}  // namespace

absl::Status register_cc(const CcOps& ops) { return add(registry(), ops); }

const CcOps* find_cc(std::string_view name) { return find_in(registry(), name); }

std::vector<std::string_view> cc_names() {
  Registry& r = registry();
  std::vector<std::string_view> names;
  names.reserve(r.size);
  for (size_t i = 0; i < r.size; ++i) names.emplace_back(r.ops[i].name);
  return names;
}

std::string cc_dump(const CcOps& o, const CcState& s, const CcParams& p) {
  std::string out =
      absl::StrFormat("cc=%s cwnd=%u pacing=%u B/s", o.name, s.cwnd_bytes, s.pacing_rate);
  if (s.credit_limited) absl::StrAppendFormat(&out, " credit=%d", s.credit_bytes);
  if (o.dump) absl::StrAppend(&out, " ", o.dump(s, p));
  return out;
}

absl::Status validate(const CcParams& p) {
  // Written so that NaN fails too.
  if (!(p.link_rate > 0)) return bad("link_rate");
  if (p.mtu == 0) return bad("mtu");
  if (p.base_rtt <= Duration::zero()) return bad("base_rtt");
  if (p.flows == 0) return bad("flows");
  const SwiftParams& s = p.swift;
  if (s.base_target < Duration::zero()) return bad("swift.base_target");
  if (s.hop_scale < Duration::zero()) return bad("swift.hop_scale");
  if (!(s.fs_range_factor >= 0)) return bad("swift.fs_range_factor");
  if (!(s.fs_min_cwnd > 0 && s.fs_max_cwnd > s.fs_min_cwnd))
    return bad("swift.fs_min_cwnd/fs_max_cwnd");
  if (!(s.ai > 0)) return bad("swift.ai");
  if (!(s.beta > 0)) return bad("swift.beta");
  if (!(s.max_mdf > 0 && s.max_mdf < 1)) return bad("swift.max_mdf");
  if (!(s.min_cwnd > 0)) return bad("swift.min_cwnd");
  if (!(s.max_cwnd == 0 || s.max_cwnd >= s.min_cwnd)) return bad("swift.max_cwnd");
  if (!(s.init_cwnd >= 0)) return bad("swift.init_cwnd");
  if (s.retx_reset_threshold == 0) return bad("swift.retx_reset_threshold");
  const DcqcnParams& d = p.dcqcn;
  if (!(d.g > 0 && d.g < 1)) return bad("dcqcn.g");
  if (!(d.initial_alpha > 0 && d.initial_alpha <= 1)) return bad("dcqcn.initial_alpha");
  if (d.cnp_interval < Duration::zero()) return bad("dcqcn.cnp_interval");
  if (d.alpha_timer <= Duration::zero()) return bad("dcqcn.alpha_timer");
  if (d.increase_timer <= Duration::zero()) return bad("dcqcn.increase_timer");
  if (d.byte_counter == 0) return bad("dcqcn.byte_counter");
  if (!(d.rate_ai >= 0)) return bad("dcqcn.rate_ai");
  if (!(d.rate_hai >= 0)) return bad("dcqcn.rate_hai");
  if (!(d.min_rate > 0 && d.min_rate <= p.link_rate)) return bad("dcqcn.min_rate");
  if (!(d.cwnd_bdp_factor > 0)) return bad("dcqcn.cwnd_bdp_factor");
  const EqdsParams& e = p.eqds;
  if (!(e.headroom >= 0 && e.headroom < 1)) return bad("eqds.headroom");
  if (e.max_burst_grants == 0) return bad("eqds.max_burst_grants");
  return absl::OkStatus();
}

}  // namespace shoal::cc
