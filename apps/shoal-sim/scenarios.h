// shoal-sim scenarios: each reads its flags from Args, prints a human
// summary (and with --json one JSON object as the last stdout line), and
// returns the process exit status: 0, or 1 when an invariant broke.
#pragma once

#include <string>
#include <vector>

#include "apps/shoal-sim/args.h"

// Help text of the flags the fabric scenarios share (fabric_scenarios.cc).
#define FABRIC_COMMON_FLAGS                                                                          \
  "    --k K            fat-tree arity: K^3/4 hosts (default 8 -> 128 hosts)\n"                     \
  "    --topology T     fat-tree | leaf-spine (default fat-tree)\n"                                 \
  "    --leaves L --spines S --hosts-per-leaf H --oversub R\n"                                      \
  "                     leaf-spine shape (defaults 4, 4, 8, 1)\n"                                   \
  "    --hosts N        hosts taking part: the first N (default all; without --k, the\n"            \
  "                     smallest fat-tree that holds N)\n"                                          \
  "    --cc NAME        fixed | swift | dcqcn | eqds (default fixed)\n"                             \
  "    --lb NAME        ecmp | spray | adaptive (default ecmp)\n"                                   \
  "    --window-pkts W  fixed cc: packets in flight per PDC (default 0 = one BDP of the\n"          \
  "                     longest path at the link rate)\n"                                          \
  "    --link-gbps G    link rate (default 100)\n"                                                  \
  "    --hop-delay-us D propagation per hop (default 1)\n"                                         \
  "    --jitter-ns J    each hop adds a uniform 0..J ns more (seeded; default 0). Without it,\n" \
  "                     equal-rate arrivals line up with departures and drop-tail\n"          \
  "                     starves some inputs (the phase effect); above ~300 ns 4 KiB\n"      \
  "                     packets on one 100 Gb/s link can reorder\n"                          \
  "    --queue-pkts Q   switch data queue limit in packets (default 35)\n"                          \
  "    --mtu M          payload bytes per packet (default 4096)\n"                                  \
  "    --trim           trim instead of drop-tail when a queue is full (default on for\n"           \
  "                     eqds, off otherwise; --trim false turns it off)\n"                          \
  "    --ecn MODE       off | step | red (default step)\n"                                          \
  "    --ecn-k K        step marking threshold, packets (default queue-pkts/5, at least 1)\n"       \
  "    --red-kmin K --red-kmax K --red-pmax P\n"                                                   \
  "                     red marking: none below kmin packets, rising to pmax at kmax,\n"          \
  "                     all from kmax (defaults 5, 30, 0.2)\n"                                    \
  "    --hash H         switches' ECMP hash: random (an ideal random function per\n"          \
  "                     switch, default) | crc32c (CRC of the 5-tuple, per-switch seed\n"      \
  "                     and bit window, as merchant silicon)\n"                                 \
  "    --cc-param LIST  congestion-control knobs, NAME=VALUE[,NAME=VALUE...], e.g.\n"             \
  "                     dcqcn.g=0.0039,swift.ai=0.5 (durations in us, rates in Gb/s;\n"     \
  "                     an unknown name lists them all)\n"                                    \
  "    --entropies N    spray/adaptive: entropies per PDC, a power of two (default 256)\n"    \
  "    --spray-mode M   spray/adaptive: rr (round-robin) | random (default rr)\n"             \
  "    --max-rto-us U   the transport's RTO backoff cap (default 1000; the library's\n"          \
  "                     default, for shared hosts, is 100000)\n"                                  \
  "    --seed S         seed of the fabric and the hosts (default 13)\n"                            \
  "    --sample-us U    queue sampling period (default 1)\n"                                        \
  "    --bin-us U       goodput time-series bin (default 5)\n"                                      \
  "    --time-limit-ms T virtual time before giving up (default 1000)\n"                           \
  "    --series FILE    write per-flow FCTs and time series (JSON) to FILE\n"                      \
  "    --trace-pdcs FILE every --trace-us (default 100) write one line per sending PDC to\n"      \
  "                     FILE: t, host, peer, cc dump, RTO, flight, PSNs, loss counters\n"

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
int run_permutation(Args& args, bool json);
int run_incast(Args& args, bool json);
int run_all_to_all(Args& args, bool json);
int run_link_failure(Args& args, bool json);
int run_ring_allreduce(Args& args, bool json);


}  // namespace shoal::app
