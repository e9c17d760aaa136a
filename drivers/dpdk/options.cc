// drivers/dpdk/options.cc: parsing of the dpdk:// query (dpdk.h). Pure
// string work, no DPDK: every malformed value is an InvalidArgument that
// names the key, and a key given twice is refused (typos never pass).
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "drivers/dpdk/dpdk.h"
#include "drivers/uri_options.h"
#include "lib/base/status.h"

namespace shoal::dpdk {
namespace {

using sv = absl::string_view;

absl::Status bad(sv key, sv value, sv want) {
  return absl::InvalidArgumentError(absl::StrCat("dpdk: option ", key, "=\"", value, "\" is not ", want));
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool percent_decode(sv in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int h = hex(in[i + 1]), l = hex(in[i + 2]);
    if (h < 0 || l < 0) return false;
    out->push_back(static_cast<char>(h * 16 + l));
    i += 2;
  }
  return true;
}

bool parse_ipv4(sv s, uint32_t* ip) {
  std::vector<sv> parts = absl::StrSplit(s, '.');
  if (parts.size() != 4) return false;
  uint32_t v = 0;
  for (sv p : parts) {
    uint32_t b;
    if (p.empty() || p.size() > 3 || !absl::SimpleAtoi(p, &b) || b > 255) return false;
    v = v << 8 | b;
  }
  *ip = v;
  return true;
}

bool parse_mac(sv s, Mac* mac) {
  std::vector<sv> parts = absl::StrSplit(s, ':');
  if (parts.size() != 6) return false;
  for (size_t i = 0; i < 6; ++i) {
    if (parts[i].size() != 2 || hex(parts[i][0]) < 0 || hex(parts[i][1]) < 0) return false;
    (*mac)[i] = static_cast<uint8_t>(hex(parts[i][0]) * 16 + hex(parts[i][1]));
  }
  return true;
}

template <typename T>
bool parse_uint(sv s, T* out, uint64_t lo, uint64_t hi) {
  uint64_t v;
  if (!absl::SimpleAtoi(s, &v) || v < lo || v > hi) return false;
  *out = static_cast<T>(v);
  return true;
}

}  // namespace

std::vector<std::string> split_eal_args(std::string_view args) {
  std::vector<std::string> out;
  for (sv a : absl::StrSplit(sv(args.data(), args.size()), ' ', absl::SkipEmpty()))
    out.emplace_back(a.data(), a.size());
  return out;
}

absl::StatusOr<DpdkOptions> parse_dpdk_query(std::string_view query_std) {
  sv query(query_std.data(), query_std.size());
  DpdkOptions o;
  ASSIGN_OR_RETURN(const std::vector<UriOption> options, split_uri_options("dpdk", query));
  for (const UriOption& option : options) {
    const sv key = option.key;
    std::string decoded;
    if (!percent_decode(option.value, &decoded))
      return absl::InvalidArgumentError(absl::StrCat("dpdk: option ", key, ": bad percent-encoding"));
    const sv value = decoded;
    bool ok = true;
    sv want;
    if (key == "eal") {
      o.eal = decoded;
      o.eal_given = true;
    } else if (key == "port") {
      ok = parse_uint(value, &o.port_id, 0, 65535);
      want = "a port id 0..65535";
    } else if (key == "fabric") {
      o.fabric = decoded;
      ok = !o.fabric.empty() && o.fabric.size() <= 16 &&
           o.fabric.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
               std::string::npos;
      want = "a name of 1..16 letters, digits, '_' or '-'";
    } else if (key == "ip") {
      const size_t colon = value.find(':');
      ok = parse_ipv4(value.substr(0, colon), &o.ip) && o.ip != 0;
      if (ok && colon != sv::npos) ok = parse_uint(value.substr(colon + 1), &o.udp_port, 1, 65535);
      if (ok) ok = o.udp_port >= kPortBase && o.udp_port < kPortBase + kPortStride;
      want = "A.B.C.D or A.B.C.D:PORT with PORT in 4793..5048 (the listening window)";
    } else if (key == "mtu") {
      ok = parse_uint(value, &o.mtu, 256, 9000);
      want = "an integer 256..9000";
    } else if (key == "entropies") {
      ok = parse_uint(value, &o.entropies, 1, kMaxEntropies);
      want = "an integer 1..64";
    } else if (key == "mbufs") {
      ok = parse_uint(value, &o.mbufs, 512, 1u << 20);
      want = "an integer 512..1048576";
    } else if (key == "ring") {
      ok = parse_uint(value, &o.ring, 64, 16384) && (o.ring & (o.ring - 1)) == 0;
      want = "a power of two 64..16384";
    } else if (key == "flow") {
      ok = value == "0" || value == "1";
      o.flow = value == "1";
      want = "0 or 1";
    } else if (key == "neigh") {
      for (sv e : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        const size_t at = e.find('@');
        std::pair<uint32_t, Mac> n;
        if (at == sv::npos || !parse_ipv4(e.substr(0, at), &n.first) || !parse_mac(e.substr(at + 1), &n.second)) {
          ok = false;
          break;
        }
        o.neigh.push_back(n);
      }
      want = "IP@MAC[,IP@MAC...] (MAC as aa:bb:cc:dd:ee:ff)";
    } else if (key == "lcores") {
      for (sv e : absl::StrSplit(value, ',')) {
        uint32_t l;
        if (!parse_uint(e, &l, 0, 1023)) {
          ok = false;
          break;
        }
        o.lcores.push_back(l);
      }
      want = "a comma-separated list of lcore ids";
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "dpdk: unknown option \"", key,
          "\" (known: eal, port, fabric, ip, mtu, entropies, mbufs, ring, flow, neigh, lcores)"));
    }
    if (!ok) return bad(key, value, want);
  }
  return o;
}

}  // namespace shoal::dpdk
