// lib/lb: parameter validation and the policy registry.
//
// The builtins are listed in an explicit table here rather than registered by
// static constructors in their own files: a static library drops object files
// nothing references, and with them their constructors. Referencing the ops
// from this file (which every user of find_lb links) keeps them all.
//
// Invariants: names are unique across builtins and registered policies;
// registered ops are copied and never move or die, so find_lb's pointers
// stay valid for the life of the process.
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/lb/policies.h"

namespace shoal::lb {
namespace {

constexpr const LbOps* kBuiltins[] = {&kEcmpOps, &kSprayOps, &kAdaptiveOps};

struct Registered {
  std::string name;  // owns the characters ops.name points at
  LbOps ops;
};

// Leaked on purpose: no destruction-order hazard at exit.
std::vector<std::unique_ptr<Registered>>& registered() {
  static auto* list = new std::vector<std::unique_ptr<Registered>>();
  return *list;
}

const LbOps* lookup(std::string_view name) {
  for (const LbOps* ops : kBuiltins)
    if (name == ops->name) return ops;
  for (const auto& r : registered())
    if (name == r->name) return &r->ops;
  return nullptr;
}

}  // namespace

absl::Status validate_lb_params(const LbParams& p) {
  const uint32_t n = p.entropy_count;
  if (n == 0 || n > 32768 || (n & (n - 1)) != 0)
    return absl::InvalidArgumentError(
        absl::StrCat("entropy_count must be a power of two in [1, 32768], got ", n));
  if (uint32_t{p.entropy_base} + n > 65536)
    return absl::InvalidArgumentError(absl::StrCat(
        "entropy_base ", p.entropy_base, " + entropy_count ", n, " exceeds the port range"));
  if (p.spray_mode != SprayMode::kRoundRobin && p.spray_mode != SprayMode::kRandom)
    return absl::InvalidArgumentError("spray_mode is neither round-robin nor random");
  if (!(p.slow_rtt_factor >= 1.0))
    return absl::InvalidArgumentError(
        absl::StrCat("slow_rtt_factor must be >= 1, got ", p.slow_rtt_factor));
  // The 1 s bounds keep adaptive's coarse 32-bit deadlines unambiguous and
  // its backoff shifts free of overflow (see policies.h).
  if (p.quarantine_min <= Duration::zero() || p.quarantine_max < p.quarantine_min ||
      p.quarantine_max > Duration::seconds(1))
    return absl::InvalidArgumentError("need 0 < quarantine_min <= quarantine_max <= 1 s");
  if (p.quarantine_rtts > 1000000)
    return absl::InvalidArgumentError("quarantine_rtts is unreasonably large");
  if (p.probe_interval <= Duration::zero() || p.probe_interval > Duration::seconds(1))
    return absl::InvalidArgumentError("need 0 < probe_interval <= 1 s");
  return absl::OkStatus();
}

absl::Status register_lb(const LbOps& ops) {
  if (ops.name == nullptr || ops.name[0] == '\0')
    return absl::InvalidArgumentError("an LB policy needs a name");
  if (ops.init == nullptr || ops.choose_entropy == nullptr || ops.on_ack == nullptr ||
      ops.on_loss == nullptr || ops.on_trim == nullptr || ops.on_timeout == nullptr)
    return absl::InvalidArgumentError(
        absl::StrCat("LB policy '", ops.name, "' lacks a required hook (all six are required)"));
  if (ops.state_size > kLbStateBytes)
    return absl::InvalidArgumentError(absl::StrCat("LB policy '", ops.name, "' needs ",
                                                   ops.state_size, " bytes of state; the limit is ",
                                                   kLbStateBytes));
  if (lookup(ops.name) != nullptr)
    return absl::AlreadyExistsError(
        absl::StrCat("LB policy '", ops.name, "' is already registered"));
  auto r = std::make_unique<Registered>();
  r->name = ops.name;
  r->ops = ops;
  r->ops.name = r->name.c_str();  // the string lives in the heap node, which never moves
  registered().push_back(std::move(r));
  return absl::OkStatus();
}

absl::StatusOr<const LbOps*> find_lb(std::string_view name) {
  if (const LbOps* ops = lookup(name)) return ops;
  return absl::NotFoundError(
      absl::StrCat("no LB policy named '", absl::string_view(name.data(), name.size()), "'"));
}

std::vector<std::string> lb_names() {
  std::vector<std::string> names;
  for (const LbOps* ops : kBuiltins) names.emplace_back(ops->name);
  for (const auto& r : registered()) names.push_back(r->name);
  return names;
}

std::string PathSelector::dump() const {
  const LbCounters& c = *state_.counters;
  return absl::StrFormat(
      "lb=%s choices=%d explored=%d recycled=%d not_recycled=%d quarantined=%d probes=%d "
      "reinstated=%d",
      ops_ != nullptr ? ops_->name : "(none)", c.choices, c.explored, c.recycled, c.not_recycled,
      c.quarantined, c.probes, c.reinstated);
}

}  // namespace shoal::lb
