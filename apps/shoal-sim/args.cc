#include "apps/shoal-sim/args.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace shoal::app {

absl::StatusOr<Args> Args::parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0 || s.size() == 2) {
      return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s' (flags start with --)", s));
    }
    s = s.substr(2);
    const size_t eq = s.find('=');
    if (eq != std::string::npos) {
      a.values_[s.substr(0, eq)] = s.substr(eq + 1);
    } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      a.values_[s] = argv[++i];
    } else {
      a.values_[s] = "true";
    }
  }
  return a;
}

std::string Args::str(const std::string& name, const std::string& def) {
  used_.insert(name);
  auto it = values_.find(name);
  return it == values_.end() ? def : it->second;
}

absl::StatusOr<int64_t> Args::i64(const std::string& name, int64_t def) {
  used_.insert(name);
  auto it = values_.find(name);
  if (it == values_.end()) return def;
  int64_t v;
  if (!absl::SimpleAtoi(it->second, &v)) {
    double d;
    // Accept 1e5-style integers.
    if (absl::SimpleAtod(it->second, &d) && d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
    return absl::InvalidArgumentError(absl::StrFormat("--%s wants an integer, got '%s'", name, it->second));
  }
  return v;
}

absl::StatusOr<double> Args::f64(const std::string& name, double def) {
  used_.insert(name);
  auto it = values_.find(name);
  if (it == values_.end()) return def;
  double v;
  if (!absl::SimpleAtod(it->second, &v)) {
    return absl::InvalidArgumentError(absl::StrFormat("--%s wants a number, got '%s'", name, it->second));
  }
  return v;
}

bool Args::flag(const std::string& name) {
  used_.insert(name);
  auto it = values_.find(name);
  return it != values_.end() && it->second != "false" && it->second != "0";
}

std::vector<std::string> Args::unused() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : values_) if (!used_.count(k)) out.push_back(k);
  return out;
}

}  // namespace shoal::app
