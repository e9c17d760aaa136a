// shoal-sim: runs named scenarios on Shoal's simulated links and fabrics.
#include <cstdio>
#include <string>

#include "apps/shoal-sim/scenarios.h"
#include "lib/base/log.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: shoal-sim --scenario NAME [flags] [--json] [--log SPEC]\n\n"
               "Runs a scenario on the real Shoal protocol core over a simulated\n"
               "network in virtual time (deterministic for a given --seed).\n\n"
               "  --json        print one JSON object as the last line of stdout\n"
               "  --log SPEC    log levels, e.g. 'warn' or 'pds=debug,sim=info'\n"
               "  --help        this page; with --scenario NAME, that scenario's flags\n\n"
               "Exit status: 0 ok, 1 an invariant broke (the message says which),\n"
               "2 bad command line.\n\nScenarios:\n");
  for (const auto& s : shoal::app::scenarios()) std::fprintf(out, "  %-16s %s\n", s.name, s.summary);
  std::fprintf(out, "\nFlags per scenario:\n");
  for (const auto& s : shoal::app::scenarios()) std::fprintf(out, "\n  %s:\n%s", s.name, s.flags);
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = shoal::app::Args::parse(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "shoal-sim: %s\n", std::string(parsed.status().message()).c_str());
    usage(stderr);
    return 2;
  }
  shoal::app::Args args = *std::move(parsed);
  const std::string name = args.str("scenario", "");
  if (args.flag("help") || args.flag("h")) {
    for (const auto& s : shoal::app::scenarios()) {
      if (name == s.name) {
        std::printf("shoal-sim --scenario %s: %s\n\nflags:\n%s", s.name, s.summary, s.flags);
        return 0;
      }
    }
    usage(stdout);
    return 0;
  }
  if (name.empty()) {
    std::fprintf(stderr, "shoal-sim: --scenario is required\n\n");
    usage(stderr);
    return 2;
  }
  const std::string log = args.str("log", "warn");
  if (!shoal::Log::configure(log)) {
    std::fprintf(stderr, "shoal-sim: bad --log spec '%s' (levels: off error warn info debug trace)\n", log.c_str());
    return 2;
  }
  const bool json = args.flag("json");
  for (const auto& s : shoal::app::scenarios()) {
    if (name == s.name) return s.run(args, json);
  }
  std::fprintf(stderr, "shoal-sim: unknown scenario '%s'\n\n", name.c_str());
  usage(stderr);
  return 2;
}
