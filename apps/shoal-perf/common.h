// apps/shoal-perf: what the in-process run (main.cc) and the two-process
// run (remote.cc) share: opening an end, making a QP, dying with the API's
// own error text.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "shoal/verbs.h"

namespace shoal::perf {

struct Host {
  shoal_context* ctx = nullptr;
  shoal_pd* pd = nullptr;
  shoal_cq* cq = nullptr;
  std::string addr;
};

[[noreturn]] inline void die(const char* what, int rc) {
  std::fprintf(stderr, "shoal-perf: %s failed: %s (%s)\n", what, shoal_strerror(rc), shoal_last_error());
  std::exit(1);
}
#define OK(call)                  \
  do {                            \
    int rc_ = (call);             \
    if (rc_ != 0) ::shoal::perf::die(#call, rc_); \
  } while (0)

// The URI of end `i` (0 = the sender). Every end of a udp:// run lives in
// this process, so each needs its own port: port 0 (the driver picks a free
// block) unless the URI names one, then PORT + i.
inline std::string host_uri(const std::string& uri, int64_t i) {
  if (uri.rfind("udp://", 0) != 0) return uri;
  const size_t q = uri.find('?');
  const std::string authority = uri.substr(6, q == std::string::npos ? std::string::npos : q - 6);
  const std::string query = q == std::string::npos ? "" : uri.substr(q);
  const size_t colon = authority.find(':');
  const std::string ip = authority.substr(0, colon);
  long port = 0;
  if (colon != std::string::npos) port = std::strtol(authority.c_str() + colon + 1, nullptr, 10);
  return "udp://" + ip + ":" + std::to_string(port == 0 ? 0 : port + i) + query;
}

inline Host open_host(const std::string& uri, bool threaded) {
  Host h;
  shoal_open_attr oa{};
  if (threaded) {
    oa.comp_mask = SHOAL_OPEN_ATTR_MODE;
    oa.mode = SHOAL_MODE_THREADED;
  }
  OK(shoal_open(uri.c_str(), &oa, &h.ctx));
  OK(shoal_alloc_pd(h.ctx, &h.pd));
  OK(shoal_create_cq(h.ctx, 1 << 16, SHOAL_ENGINE_ANY, &h.cq));
  shoal_context_attr a;
  OK(shoal_query_context(h.ctx, &a, sizeof(a)));
  h.addr = a.local_addr;
  return h;
}

inline shoal_qp* make_qp(Host& h, uint32_t type, uint32_t depth) {
  shoal_qp_init_attr qa{};
  qa.qp_type = type;
  qa.send_cq = h.cq;
  qa.recv_cq = h.cq;
  qa.cap.max_send_wr = depth;
  qa.cap.max_recv_wr = depth;
  qa.cap.max_send_sge = 1;
  qa.cap.max_recv_sge = 1;
  shoal_qp* qp;
  OK(shoal_create_qp(h.pd, &qa, &qp));
  return qp;
}


}  // namespace shoal::perf
