// shoal-sim scenarios: each reads its flags from Args, prints a human
// summary (and with --json one JSON object as the last stdout line), and
// returns the process exit status: 0, or 1 when an invariant broke.
#pragma once

#include <string>
#include <vector>

#include "apps/shoal-sim/args.h"

namespace shoal::app {

struct Scenario {
  const char* name;
  const char* summary;
  const char* flags;  // help text, one flag per line
  int (*run)(Args& args, bool json);
};

const std::vector<Scenario>& scenarios();

int run_pair_chaos(Args& args, bool json);
int run_loss_sweep(Args& args, bool json);
int run_pair_throughput(Args& args, bool json);
int run_pool_scale(Args& args, bool json);

}  // namespace shoal::app
