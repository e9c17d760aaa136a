// A small command-line parser for the Shoal tools: --flag value and
// --flag=value, typed getters with defaults, and an error for every flag a
// scenario does not know. Why our own: the tools print one --help page per
// scenario with its own flags, which absl::flags (global, every linked flag
// in one list) does not give.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal::app {

class Args {
 public:
  // Parses argv; a bare flag (no value, or followed by another --flag) is "true".
  static absl::StatusOr<Args> parse(int argc, char** argv);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string str(const std::string& name, const std::string& def);
  absl::StatusOr<int64_t> i64(const std::string& name, int64_t def);
  absl::StatusOr<double> f64(const std::string& name, double def);
  bool flag(const std::string& name);
  // Flags given but never read by the scenario: an error names them.
  std::vector<std::string> unused() const;

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> used_;
};

}  // namespace shoal::app
