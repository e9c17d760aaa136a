// shoal::open_driver (driver_sdk.h): URI -> driver. `sim://` is parsed here
// and always built; `udp://` goes to drivers/udp (udp::open_udp); `dpdk://`
// to drivers/dpdk when the build found libdpdk (SHOAL_HAVE_DPDK, see
// drivers/dpdk/meson.build), else it is Unimplemented.
//
// URI form: scheme://rest[?key=value&key=value]. For sim, `rest` names the
// fabric (empty: "default"); the keys are mtu, inbox, loss, ecn, seed (see
// LoopbackOptions). For udp see drivers/udp/udp.h and docs/drivers.md.
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "drivers/sim/loopback.h"
#include "drivers/uri_options.h"
#include "drivers/udp/udp.h"
#ifdef SHOAL_HAVE_DPDK
#include "drivers/dpdk/dpdk.h"
#endif
#include "lib/base/status.h"
#include "shoal/driver_sdk.h"

namespace shoal {
namespace {

// Debian's Abseil has its own string_view type, distinct from std's.
using sv = absl::string_view;

absl::Status bad_value(sv key, sv value, sv want) {
  return absl::InvalidArgumentError(
      absl::StrCat("sim: option ", key, "=\"", value, "\" is not ", want));
}

absl::StatusOr<sim::LoopbackOptions> parse_sim_query(sv query) {
  sim::LoopbackOptions o;
  ASSIGN_OR_RETURN(const std::vector<UriOption> options, split_uri_options("sim", query));
  for (const auto& [key, value] : options) {
    bool ok = true;
    sv want;
    if (key == "mtu") {
      ok = absl::SimpleAtoi(value, &o.mtu);
      want = "an integer";
    } else if (key == "inbox") {
      ok = absl::SimpleAtoi(value, &o.inbox);
      want = "an integer";
    } else if (key == "loss") {
      ok = absl::SimpleAtod(value, &o.loss);
      want = "a number";
    } else if (key == "ecn") {
      ok = absl::SimpleAtod(value, &o.ecn);
      want = "a number";
    } else if (key == "seed") {
      ok = absl::SimpleAtoi(value, &o.seed);
      want = "an integer";
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("sim: unknown option \"", key, "\" (known: mtu, inbox, loss, ecn, seed)"));
    }
    if (!ok) return bad_value(key, value, want);
  }
  return o;
}

absl::StatusOr<std::unique_ptr<Driver>> open_sim(sv rest, uint32_t queues) {
  const size_t qm = rest.find('?');
  std::string name(rest.substr(0, qm).data(), rest.substr(0, qm).size());
  if (name.empty()) name = "default";
  sim::LoopbackOptions options;
  if (qm != sv::npos) {
    ASSIGN_OR_RETURN(options, parse_sim_query(rest.substr(qm + 1)));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<sim::LoopbackDriver> d,
                   sim::LoopbackDriver::open(sim::LoopbackFabric::get(name), queues, options));
  return std::unique_ptr<Driver>(std::move(d));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Driver>> open_driver(std::string_view uri_std, uint32_t queues) {
  const sv uri(uri_std.data(), uri_std.size());
  const size_t sep = uri.find("://");
  if (sep == sv::npos || sep == 0)
    return absl::InvalidArgumentError(
        absl::StrCat("driver URI \"", uri, "\" is not scheme://... (e.g. sim://, udp://IP:PORT)"));
  const sv scheme = uri.substr(0, sep), rest = uri.substr(sep + 3);
  if (scheme == "sim") return open_sim(rest, queues);
  if (scheme == "udp") return udp::open_udp(std::string_view(rest.data(), rest.size()), queues);
#ifdef SHOAL_HAVE_DPDK
  if (scheme == "dpdk") return dpdk::open_dpdk(std::string_view(rest.data(), rest.size()), queues);
#endif
  if (scheme == "dpdk")
    return absl::UnimplementedError(
        absl::StrCat("the ", scheme, " driver is not built yet (see the drivers issue; dpdk needs libdpdk-dev)"));
  return absl::NotFoundError(
      absl::StrCat("no driver for scheme \"", scheme, "\" (known: sim, udp, dpdk)"));
}

}  // namespace shoal
