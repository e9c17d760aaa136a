#include "apps/shoal-sim/scenarios.h"

namespace shoal::app {

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> kScenarios = {
      {"pair-chaos",
       "two hosts, one lossy/reordering/duplicating/corrupting link; checks exactly-once intact delivery",
       "    --messages N     messages to send (default 10000)\n"
       "    --msg-size B     bytes per message (default 4096; >= 0)\n"
       "    --loss P         drop probability per packet (default 0.01)\n"
       "    --reorder P      probability a packet is delayed by up to --reorder-us (default 0.05)\n"
       "    --reorder-us U   max extra delay of a reordered packet (default 4)\n"
       "    --dup P          duplication probability (default 0.01)\n"
       "    --corrupt P      probability one bit is flipped (default 0.001)\n"
       "    --trim P         probability a data packet is trimmed to its headers (default 0)\n"
       "    --mode rud|rod   delivery mode (default rud)\n"
       "    --retx sack|gbn  retransmission mode (default sack)\n"
       "    --window N       messages outstanding at the sender (default 256)\n"
       "    --link-gbps G    link rate (default 100)\n"
       "    --delay-us U     one-way delay (default 2)\n"
       "    --seed S         seed of the whole run (default 1)\n"
       "    --time-limit-s T virtual seconds before giving up (default 60)\n"
       "    --cc NAME        congestion control: fixed, swift, dcqcn, eqds (default fixed)\n"
       "    --lb NAME        path selection: ecmp, spray, adaptive (default ecmp)\n"
       ,
       run_pair_chaos},
      {"loss-sweep",
       "selective repeat vs go-back-N goodput at random loss 0..1e-2 (400 Gb/s, 10 us RTT)",
       "    --messages N     4096 B messages per run (default 40000)\n"
       "    --link-gbps G    link rate (default 400)\n"
       "    --rtt-us U       round-trip propagation delay (default 10)\n"
       "    --seed S         seed (default 1)\n"
       "    --cc NAME        congestion control: fixed, swift, dcqcn, eqds (default fixed)\n"
       "    --lb NAME        path selection: ecmp, spray, adaptive (default ecmp)\n"
       ,
       run_loss_sweep},
      {"pair-throughput",
       "engine cost: two transports through a zero-delay in-memory link, one thread",
       "    --messages N     messages (default 1000000)\n"
       "    --msg-size B     bytes per message (default 64)\n"
       "    --window N       messages outstanding (default 512)\n"
       "    --only both|shoal|bare  run Shoal, the bare-link reference (no protocol,\n"
       "                     two copies per message), or both in one run (default)\n"
       "    --cc NAME        congestion control: fixed, swift, dcqcn, eqds (default fixed)\n"
       "    --lb NAME        path selection: ecmp, spray, adaptive (default ecmp)\n"
       ,
       run_pair_throughput},
      {"pool-scale",
       "many QPs on few peers through one switch: PDCs per peer, state per PDC and QP, 0-RTT first message",
       "    --qps Q          QPs in all, spread over the peers (default 100000)\n"
       "    --peers P        peer hosts, each sending to one hub host (default 1000)\n"
       "    --msg-size B     bytes per message, one message per QP (default 64)\n"
       "    --link-gbps G    link rate (default 100)\n"
       "    --hop-delay-us U one-way delay per hop (default 1)\n"
       "    --seed S         seed (default 13)\n",
       run_pool_scale},
      {"permutation",
       "fat-tree or leaf-spine, every host sends one flow to another host, all at t = 0",
       "    --flow-size B    bytes per flow (default 2097152)\n"
       "    --pattern P      shift (host i -> i + n/2: every flow crosses pods) | random\n"
       "                     (a seeded derangement) (default shift)\n" FABRIC_COMMON_FLAGS,
       run_permutation},
      {"incast",
       "N senders to one receiver: receiver goodput, its downlink queue, drops/trims, FCT spread",
       "    --flow-size B    bytes per sender (default 2097152)\n"
       "    --senders N      senders: the N hosts after the receiver (default 0 = all others)\n"
       "    --receiver R     the receiving host (default 0)\n" FABRIC_COMMON_FLAGS,
       run_incast},
      {"all-to-all",
       "every host sends --flow-size to every other host: completion time vs ideal",
       "    --flow-size B    bytes per pair (default 262144)\n" FABRIC_COMMON_FLAGS,
       run_all_to_all},
      {"link-failure",
       "permutation with one aggregation-core (leaf-spine) link failing mid-run: recovery (bin by bin against the same run without the failure, which runs first), stalls, bytes lost",
       "    --flow-size B    bytes per flow (default 8388608: long enough to watch recovery)\n"
       "    --pattern P      shift | random (default shift)\n"
       "    --fail-at-us U   when the link fails (default 50)\n"
       "    --fail-link L    busiest (the agg->core link that carried most bytes by then) or N\n"
       "                     (core_link(N)) (default busiest)\n"
       "    --reroute-us U   switches stop hashing onto the dead link U us after the failure\n"
       "                     (default never: failover must come from the transport)\n"
       "    --stall-us U     a flow whose receiver saw no bytes for > U us counts as stalled (default 50)\n"
       "    --recovery-window-us U  recovery compares goodput averaged over a centred window of\n"
       "                     U us (default 25; 0 = single --bin-us bins)\n"
       FABRIC_COMMON_FLAGS,
       run_link_failure},
      {"ring-allreduce",
       "ring allreduce over all hosts, chunked and pipelined: algbw/busbw vs ideal",
       "    --flow-size B    allreduce buffer per host (default 16777216)\n"
       "    --chunk-bytes B  message size within a step's segment (default 65536)\n" FABRIC_COMMON_FLAGS,
       run_ring_allreduce},
  };
  return kScenarios;
}

}  // namespace shoal::app
