// A minimal JSON object writer for the tools' one-line machine output.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"

namespace shoal::app {

class JsonObject {
 public:
  JsonObject& add(const std::string& k, const std::string& v) {
    return raw(k, "\"" + escape(v) + "\"");
  }
  JsonObject& add(const std::string& k, const char* v) { return add(k, std::string(v)); }
  JsonObject& add(const std::string& k, uint64_t v) { return raw(k, absl::StrFormat("%u", v)); }
  JsonObject& add(const std::string& k, int64_t v) { return raw(k, absl::StrFormat("%d", v)); }
  JsonObject& add(const std::string& k, int v) { return raw(k, absl::StrFormat("%d", v)); }
  JsonObject& add(const std::string& k, uint32_t v) { return raw(k, absl::StrFormat("%u", v)); }
  JsonObject& add(const std::string& k, bool v) { return raw(k, v ? "true" : "false"); }
  JsonObject& add(const std::string& k, double v) {
    return raw(k, std::isfinite(v) ? absl::StrFormat("%.6g", v) : std::string("null"));
  }
  JsonObject& raw(const std::string& k, const std::string& json) {
    if (!body_.empty()) body_ += ", ";
    body_ += "\"" + escape(k) + "\": " + json;
    return *this;
  }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  static std::string escape(const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '"' || c == '\\') o += '\\';
      if (static_cast<unsigned char>(c) < 0x20) { o += absl::StrFormat("\\u%04x", c); continue; }
      o += c;
    }
    return o;
  }
  std::string body_;
};

}  // namespace shoal::app
