// lib/cc params: set one CcParams knob by name from text, for tools and
// deployment config ("dcqcn.g=0.0039", "swift.ai=0.5").
//
// Names are "<algorithm>.<field>" as in cc_sdk.h, plus the common fields
// (link_gbps, mtu, base_rtt_us, hops, flows). Units are the ones people type:
// durations in microseconds (suffix _us), rates in Gb/s (suffix _gbps), the
// rest as the struct holds them. One table drives both set_param and
// param_names, so a knob listed is a knob that can be set.
//
// Invariant: set_param changes at most the one field named, and only when the
// value parses completely; the caller runs validate() for cross-field checks.
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "include/shoal/cc_sdk.h"

namespace shoal::cc {
namespace {

enum class Kind { kDouble, kU64, kU32, kBool, kMicros, kGbps };

struct Knob {
  const char* name;
  Kind kind;
  void* (*field)(CcParams&);
};

// The C++ type a Kind's field has; SHOAL_KNOB checks it at compile time, so
// a knob listed with the wrong kind does not build.
template <Kind K> struct FieldOf;
template <> struct FieldOf<Kind::kDouble> { using type = double; };
template <> struct FieldOf<Kind::kU64> { using type = uint64_t; };
template <> struct FieldOf<Kind::kU32> { using type = uint32_t; };
template <> struct FieldOf<Kind::kBool> { using type = bool; };
template <> struct FieldOf<Kind::kMicros> { using type = Duration; };
template <> struct FieldOf<Kind::kGbps> { using type = double; };

#define SHOAL_KNOB(name, kind, expr)                   \
  Knob {                                               \
    name, kind, [](CcParams& p) -> void* {             \
      typename FieldOf<kind>::type* field = &(expr);   \
      return field;                                    \
    }                                                  \
  }

const Knob kKnobs[] = {
    SHOAL_KNOB("link_gbps", Kind::kGbps, p.link_rate),
    SHOAL_KNOB("mtu", Kind::kU32, p.mtu),
    SHOAL_KNOB("base_rtt_us", Kind::kMicros, p.base_rtt),
    SHOAL_KNOB("hops", Kind::kU32, p.hops),
    SHOAL_KNOB("flows", Kind::kU32, p.flows),
    SHOAL_KNOB("fixed.window_bytes", Kind::kU64, p.fixed.window_bytes),
    SHOAL_KNOB("swift.base_target_us", Kind::kMicros, p.swift.base_target),
    SHOAL_KNOB("swift.hop_scale_us", Kind::kMicros, p.swift.hop_scale),
    SHOAL_KNOB("swift.fs_range_factor", Kind::kDouble, p.swift.fs_range_factor),
    SHOAL_KNOB("swift.fs_min_cwnd", Kind::kDouble, p.swift.fs_min_cwnd),
    SHOAL_KNOB("swift.fs_max_cwnd", Kind::kDouble, p.swift.fs_max_cwnd),
    SHOAL_KNOB("swift.ai", Kind::kDouble, p.swift.ai),
    SHOAL_KNOB("swift.beta", Kind::kDouble, p.swift.beta),
    SHOAL_KNOB("swift.max_mdf", Kind::kDouble, p.swift.max_mdf),
    SHOAL_KNOB("swift.min_cwnd", Kind::kDouble, p.swift.min_cwnd),
    SHOAL_KNOB("swift.max_cwnd", Kind::kDouble, p.swift.max_cwnd),
    SHOAL_KNOB("swift.init_cwnd", Kind::kDouble, p.swift.init_cwnd),
    SHOAL_KNOB("swift.retx_reset_threshold", Kind::kU32, p.swift.retx_reset_threshold),
    SHOAL_KNOB("swift.cut_on_any_loss", Kind::kBool, p.swift.cut_on_any_loss),
    SHOAL_KNOB("dcqcn.g", Kind::kDouble, p.dcqcn.g),
    SHOAL_KNOB("dcqcn.initial_alpha", Kind::kDouble, p.dcqcn.initial_alpha),
    SHOAL_KNOB("dcqcn.cnp_interval_us", Kind::kMicros, p.dcqcn.cnp_interval),
    SHOAL_KNOB("dcqcn.alpha_timer_us", Kind::kMicros, p.dcqcn.alpha_timer),
    SHOAL_KNOB("dcqcn.increase_timer_us", Kind::kMicros, p.dcqcn.increase_timer),
    SHOAL_KNOB("dcqcn.byte_counter", Kind::kU64, p.dcqcn.byte_counter),
    SHOAL_KNOB("dcqcn.fast_recovery_steps", Kind::kU32, p.dcqcn.fast_recovery_steps),
    SHOAL_KNOB("dcqcn.rate_ai_gbps", Kind::kGbps, p.dcqcn.rate_ai),
    SHOAL_KNOB("dcqcn.rate_hai_gbps", Kind::kGbps, p.dcqcn.rate_hai),
    SHOAL_KNOB("dcqcn.min_rate_gbps", Kind::kGbps, p.dcqcn.min_rate),
    SHOAL_KNOB("dcqcn.cwnd_bdp_factor", Kind::kDouble, p.dcqcn.cwnd_bdp_factor),
    SHOAL_KNOB("dcqcn.cut_on_any_loss", Kind::kBool, p.dcqcn.cut_on_any_loss),
    SHOAL_KNOB("dcqcn.mark_scaled_cut", Kind::kBool, p.dcqcn.mark_scaled_cut),
    SHOAL_KNOB("eqds.initial_window_bytes", Kind::kU64, p.eqds.initial_window_bytes),
    SHOAL_KNOB("eqds.headroom", Kind::kDouble, p.eqds.headroom),
    SHOAL_KNOB("eqds.grant_quantum", Kind::kU32, p.eqds.grant_quantum),
    SHOAL_KNOB("eqds.max_burst_grants", Kind::kU32, p.eqds.max_burst_grants),
};
#undef SHOAL_KNOB

absl::Status bad_value(std::string_view key, std::string_view value, const char* want) {
  return absl::InvalidArgumentError(
      absl::StrFormat("congestion-control parameter %s: '%s' is not %s", key, value, want));
}

}  // namespace

absl::Status set_param(CcParams& p, std::string_view key, std::string_view value) {
  for (const Knob& k : kKnobs) {
    if (key != k.name) continue;
    void* f = k.field(p);
    // Debian's Abseil has its own string_view, not std's.
    const absl::string_view text(value.data(), value.size());
    double d = 0;
    switch (k.kind) {
      case Kind::kBool: {
        bool b = false;
        if (!absl::SimpleAtob(text, &b)) return bad_value(key, value, "true or false");
        *static_cast<bool*>(f) = b;
        return absl::OkStatus();
      }
      case Kind::kU64: {
        uint64_t u = 0;
        if (!absl::SimpleAtoi(text, &u)) return bad_value(key, value, "an unsigned integer");
        *static_cast<uint64_t*>(f) = u;
        return absl::OkStatus();
      }
      case Kind::kU32: {
        uint32_t u = 0;
        if (!absl::SimpleAtoi(text, &u)) return bad_value(key, value, "an unsigned 32-bit integer");
        *static_cast<uint32_t*>(f) = u;
        return absl::OkStatus();
      }
      case Kind::kDouble:
      case Kind::kMicros:
      case Kind::kGbps:
        // SimpleAtod takes "nan" and "inf"; every knob wants a finite number.
        if (!absl::SimpleAtod(text, &d) || !(d - d == 0)) return bad_value(key, value, "a finite number");
        if (k.kind == Kind::kDouble) *static_cast<double*>(f) = d;
        if (k.kind == Kind::kGbps) *static_cast<double*>(f) = d * 1e9 / 8;
        if (k.kind == Kind::kMicros) *static_cast<Duration*>(f) = Duration::micros_f(d);
        return absl::OkStatus();
    }
  }
  return absl::NotFoundError(absl::StrFormat(
      "no congestion-control parameter named '%s'", key));
}

absl::Status set_param(CcParams& p, std::string_view key_eq_value) {
  const size_t eq = key_eq_value.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return absl::InvalidArgumentError(
        absl::StrFormat("congestion-control parameter '%s' is not NAME=VALUE", key_eq_value));
  return set_param(p, key_eq_value.substr(0, eq), key_eq_value.substr(eq + 1));
}

std::vector<std::string_view> param_names() {
  std::vector<std::string_view> names;
  for (const Knob& k : kKnobs) names.emplace_back(k.name);
  return names;
}

}  // namespace shoal::cc
