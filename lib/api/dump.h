// Internal: a human-readable dump of a context's engine state (counters of
// the transport, its PDCs and its pool), for tests, tools and debugging.
// Not part of the C ABI.
#pragma once

#include <string>

struct shoal_context;

namespace shoal::api {
std::string dump(const shoal_context* ctx);
}  // namespace shoal::api
