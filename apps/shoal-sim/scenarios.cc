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
  };
  return kScenarios;
}

}  // namespace shoal::app
