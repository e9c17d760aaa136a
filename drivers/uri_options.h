// drivers/uri_options.h: the query part of a driver URI ("k=v&k=v") as
// key/value pairs, for every driver's option parser (sim, udp, dpdk), so the
// rules live in one place: empty items ("a=1&&b=2", a trailing '&') are
// skipped; an item without '=' and a key given twice are InvalidArgument
// errors naming the scheme and the item (typos never pass silently).
// Values are returned as written; a driver that percent-decodes does so.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace shoal {

struct UriOption {
  absl::string_view key;
  absl::string_view value;
};

inline absl::StatusOr<std::vector<UriOption>> split_uri_options(absl::string_view scheme,
                                                                absl::string_view query) {
  std::vector<UriOption> out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const absl::string_view item = query.substr(0, amp);
    query = amp == absl::string_view::npos ? absl::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(scheme, ": option \"", item, "\" has no value (want key=value)"));
    }
    const UriOption o{item.substr(0, eq), item.substr(eq + 1)};
    for (const UriOption& seen : out) {
      if (seen.key == o.key) {
        return absl::InvalidArgumentError(absl::StrCat(scheme, ": option \"", o.key, "\" given twice"));
      }
    }
    out.push_back(o);
  }
  return out;
}

}  // namespace shoal
