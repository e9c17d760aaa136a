// A small logger with per-component levels, for control-path and abnormal
// events. Per-packet tracing goes through SHOAL_TRACE, which compiles to
// nothing unless SHOAL_ENABLE_TRACE is defined.
//
// Thread-safety: levels are set at start-up, before engines run; writing a
// line is one fprintf (atomic per line on stderr).
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/strings/str_format.h"

namespace shoal {

enum class LogLevel : uint8_t { kOff = 0, kError, kWarn, kInfo, kDebug, kTrace };
enum class LogComponent : uint8_t { kBase = 0, kWire, kPds, kSes, kPool, kCc, kLb, kEngine, kDriver, kSim, kApp, kCount };

// Sink: receives fully formatted lines. Default writes to stderr.
using LogSink = void (*)(LogComponent, LogLevel, std::string_view line);

class Log {
 public:
  static bool enabled(LogComponent c, LogLevel l) {
    return static_cast<uint8_t>(l) <= levels_[static_cast<int>(c)];
  }
  static void set_level(LogComponent c, LogLevel l) { levels_[static_cast<int>(c)] = static_cast<uint8_t>(l); }
  static void set_all(LogLevel l);
  // Parses "warn" or "pds=debug,sim=info" (a bare level sets every component).
  // Returns false and changes nothing on a malformed spec.
  static bool configure(std::string_view spec);
  static void set_sink(LogSink sink);
  static void write(LogComponent c, LogLevel l, std::string_view line);
  static const char* component_name(LogComponent c);

 private:
  static uint8_t levels_[static_cast<int>(LogComponent::kCount)];
};

}  // namespace shoal

#define SHOAL_LOG(comp, level, ...)                                                   \
  do {                                                                                \
    if (::shoal::Log::enabled(::shoal::LogComponent::comp, ::shoal::LogLevel::level)) \
      ::shoal::Log::write(::shoal::LogComponent::comp, ::shoal::LogLevel::level,      \
                          ::absl::StrFormat(__VA_ARGS__));                            \
  } while (0)

#ifdef SHOAL_ENABLE_TRACE
#define SHOAL_TRACE(comp, ...) SHOAL_LOG(comp, kTrace, __VA_ARGS__)
#else
#define SHOAL_TRACE(comp, ...) do {} while (0)
#endif
