// shoal-perf's two-process mode (remote.cc): a server end and a client end
// in different processes, meeting over TCP to swap addresses and keys.
#pragma once

#include <cstdint>
#include <string>

#include "shoal/verbs.h"

namespace shoal::perf {

struct RemoteOptions {
  std::string oob;     // IP:PORT of the out-of-band TCP connection
  std::string driver;  // this end's driver URI
  bool threaded = false;
  // Client side (the server takes these from the client):
  std::string op = "send";
  uint32_t size = 65536;
  int64_t iters = 10000;
  int64_t lat_iters = 1000;
  uint32_t window = 64;
  uint32_t qp_type = SHOAL_QPT_RUD;
  bool json = false;
  bool stats = false;  // this end's counters on stderr at the end (--stats)
  int timeout_s = 60;  // every wait is bounded by this
};

// Serves one client, then returns 0; 1 on a failure, 2 on a bad option.
int run_server(const RemoteOptions& o);
// Connects, measures (bandwidth, then one-way latency), prints; 0 or 1.
int run_client(const RemoteOptions& o);

}  // namespace shoal::perf
