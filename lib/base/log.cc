#include "lib/base/log.h"

#include <cstdio>
#include <string>

namespace shoal {
namespace {

const char* const kComponentNames[] = {"base", "wire", "pds", "ses", "pool", "cc",
                                       "lb",   "engine", "driver", "sim", "app"};
const char* const kLevelNames[] = {"off", "error", "warn", "info", "debug", "trace"};

void stderr_sink(LogComponent c, LogLevel l, std::string_view line) {
  std::fprintf(stderr, "shoal %s %s: %.*s\n", kLevelNames[static_cast<int>(l)],
               kComponentNames[static_cast<int>(c)], static_cast<int>(line.size()), line.data());
}

LogSink g_sink = stderr_sink;

bool parse_level(std::string_view s, LogLevel* out) {
  for (int i = 0; i < 6; ++i) {
    if (s == kLevelNames[i]) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

}  // namespace

uint8_t Log::levels_[static_cast<int>(LogComponent::kCount)] = {
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};  // warn everywhere by default

void Log::set_all(LogLevel l) {
  for (auto& v : levels_) v = static_cast<uint8_t>(l);
}

bool Log::configure(std::string_view spec) {
  uint8_t next[static_cast<int>(LogComponent::kCount)];
  std::copy(std::begin(levels_), std::end(levels_), next);
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    LogLevel level;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      if (!parse_level(item, &level)) return false;
      for (auto& v : next) v = static_cast<uint8_t>(level);
      continue;
    }
    std::string_view comp = item.substr(0, eq);
    if (!parse_level(item.substr(eq + 1), &level)) return false;
    int found = -1;
    for (int i = 0; i < static_cast<int>(LogComponent::kCount); ++i)
      if (comp == kComponentNames[i]) found = i;
    if (found < 0) return false;
    next[found] = static_cast<uint8_t>(level);
  }
  std::copy(std::begin(next), std::end(next), levels_);
  return true;
}

void Log::set_sink(LogSink sink) { g_sink = sink ? sink : stderr_sink; }

void Log::write(LogComponent c, LogLevel l, std::string_view line) { g_sink(c, l, line); }

const char* Log::component_name(LogComponent c) { return kComponentNames[static_cast<int>(c)]; }

}  // namespace shoal
