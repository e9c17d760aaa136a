#include "lib/engine/engine.h"

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "lib/base/log.h"

namespace shoal::engine {

TimePoint clock_now() {
  static const std::chrono::steady_clock::time_point epoch = std::chrono::steady_clock::now();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - epoch);
  return TimePoint::from_ns(ns.count());
}

Engine::Engine(Driver& driver, uint32_t queue, const EngineConfig& config, uint64_t seed)
    : driver_(driver),
      queue_(queue),
      config_(config),
      transport_([&] {
        ses::TransportConfig t = config.transport;
        // The wire carries what the driver can: never more than its MTU.
        if (t.mtu_payload > driver.caps().mtu_payload) t.mtu_payload = driver.caps().mtu_payload;
        return t;
      }(), driver.local_addr(queue), seed),
      rx_(std::min(config.burst, driver.caps().max_burst)),
      tx_(std::min(config.burst, driver.caps().max_burst)),
      ctl_(tx_.size()) {}

uint32_t Engine::poll(TimePoint now) {
  ++counters_.polls;
  // Transmit first: the ACKs the previous poll's receive asked for leave
  // together with the work the application posted since, in one burst (the
  // reply it posted on seeing that receive's completion goes ahead of the
  // ACK, see transmit()), and the application saw that completion without
  // waiting for an ACK's send.
  uint32_t work = transmit(now);
  // Timers that are due now; an ACK deadline the receive below sets waits
  // for the next poll's transmit, like the ACKs themselves.
  const bool timers_due = transport_.next_deadline() <= now;
  // Receive: one burst into the core, then the buffers go back.
  const uint32_t n = driver_.rx_burst(queue_, rx_);
  for (uint32_t i = 0; i < n; ++i) transport_.on_datagram(rx_[i].data, rx_[i].meta, now);
  if (n) driver_.rx_release(queue_, std::span<RxPacket>(rx_.data(), n));
  counters_.rx_packets += n;
  work += n;
  // Timers, and what they make due (retransmissions, probes) right away.
  if (timers_due) {
    transport_.on_timeout(now);
    ++counters_.timer_runs;
    ++work;
    work += transmit(now);
  }
  if (work == 0) ++counters_.idle_polls;
  return work;
}

Engine::~Engine() {
  // Buffers still held go back to the driver unsent (len == 0).
  if (held_ == 0) return;
  for (uint32_t i = 0; i < held_; ++i) tx_[i].len = 0;
  driver_.tx_burst(queue_, std::span<TxPacket>(tx_.data(), held_));
}

uint32_t Engine::transmit(TimePoint now) {
  uint32_t work = 0;
  // Transmit until the core has nothing due or the driver lends no buffer.
  // Buffers the core did not fill stay lent to the engine for the next pass
  // (the SDK allows holding them): giving back a burst's worth of unused
  // buffers on every send cost ~3,000 instructions per message when a poll
  // sends one packet (callgrind, shoal-perf latency over udp://).
  while (transport_.wants_transmit()) {
    if (held_ < tx_.size())
      held_ += driver_.tx_alloc(queue_, std::span<TxPacket>(tx_.data() + held_, tx_.size() - held_));
    if (held_ == 0) break;
    for (uint32_t i = 0; i < held_; ++i) {
      // A clean slot: only the buffer survives from an earlier pass.
      TxPacket fresh;
      fresh.data = tx_[i].data;
      fresh.capacity = tx_[i].capacity;
      tx_[i] = fresh;
    }
    TxBatch batch(tx_.data(), held_);
    const uint32_t filled = transport_.poll_transmit(now, batch);
    if (filled == 0) break;  // nothing due now: keep the buffers
    requests_first(filled);
    const uint32_t sent = driver_.tx_burst(queue_, std::span<TxPacket>(tx_.data(), filled));
    counters_.tx_packets += sent;
    if (sent < filled) counters_.tx_dropped += filled - sent;
    work += filled;
    const uint32_t offered = held_;
    // The unfilled buffers move up front; the driver took the filled ones.
    for (uint32_t i = filled; i < held_; ++i) tx_[i - filled] = tx_[i];
    held_ -= filled;
    if (filled < offered) break;
  }
  return work;
}

void Engine::requests_first(uint32_t filled) {
  // Stable, without allocating: control packets aside, requests forward.
  uint32_t data = 0, ctl = 0;
  for (uint32_t i = 0; i < filled; ++i) {
    if (tx_[i].control) {
      ctl_[ctl++] = tx_[i];
    } else {
      if (ctl) tx_[data] = tx_[i];
      ++data;
    }
  }
  if (ctl == 0 || data == 0) return;
  for (uint32_t k = 0; k < ctl; ++k) tx_[data + k] = ctl_[k];
}

// ============================================================================
// Threaded mode
// ============================================================================

EngineThread::EngineThread(Driver& driver, uint32_t queue, const EngineConfig& config, uint64_t seed,
                           uint32_t ring_size)
    : engine_(driver, queue, config, seed), posts_(ring_size), completions_(ring_size) {
  thread_ = std::thread([this] { run(); });
  // "shoal-e<queue>": ps, top and the tests can find the engine threads.
  const std::string name = "shoal-e" + std::to_string(queue);
  pthread_setname_np(thread_.native_handle(), name.substr(0, 15).c_str());
}

absl::Status EngineThread::pin_to_cpu(int cpu) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof(allowed), &allowed) != 0 ||
      !CPU_ISSET(cpu, &allowed)) {
    return absl::InvalidArgumentError(absl::StrFormat("CPU %d is not one this process may run on", cpu));
  }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  const int rc = pthread_setaffinity_np(thread_.native_handle(), sizeof(one), &one);
  if (rc != 0) return absl::InvalidArgumentError(absl::StrFormat("pinning to CPU %d failed: %s", cpu, strerror(rc)));
  return absl::OkStatus();
}

EngineThread::~EngineThread() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

bool EngineThread::post(const PostCommand& cmd) { return posts_.enqueue(cmd); }

uint32_t EngineThread::poll_completions(ses::Completion* out, uint32_t max) {
  return completions_.dequeue_burst(out, max);
}

absl::Status EngineThread::control(const std::function<absl::Status(ses::Transport&)>& f) {
  control_done_.store(false, std::memory_order_relaxed);
  control_fn_.store(&f, std::memory_order_release);
  // A control call is rare and waits for one engine pass: yield, don't spin hot.
  while (!control_done_.load(std::memory_order_acquire)) std::this_thread::yield();
  return control_result_;
}

void EngineThread::apply(const PostCommand& cmd) {
  ses::Transport& t = engine_.transport();
  absl::Status st;
  if (cmd.kind == PostCommand::kSend) {
    st = t.post_send(cmd.send);
    if (!st.ok()) {
      // The application cannot see this Status: the work still ends in a
      // completion, with an error, as every posted work request must.
      ses::Completion c;
      c.wr_id = cmd.send.wr_id;
      c.status = ses::WcStatus::kLocProtErr;
      c.opcode = ses::WcOpcode::kSend;
      c.qp = cmd.send.src_qp;
      spill_.push_back(c);
    }
  } else {
    st = cmd.nsge ? t.post_recv(cmd.qp, std::span<const ses::Segment>(cmd.sgl, cmd.nsge), cmd.wr_id, cmd.tag)
                  : t.post_recv(cmd.qp, std::span<uint8_t>(cmd.buf, cmd.len), cmd.wr_id);
    if (!st.ok()) {
      ses::Completion c;
      c.wr_id = cmd.wr_id;
      c.tag = cmd.tag;
      c.status = ses::WcStatus::kLocProtErr;
      c.opcode = ses::WcOpcode::kRecv;
      c.qp = cmd.qp;
      spill_.push_back(c);
    }
  }
  if (!st.ok()) {
    post_errors_.fetch_add(1, std::memory_order_relaxed);
    SHOAL_LOG(kEngine, kWarn, "engine %u: posted work refused: %s", engine_.queue(), std::string(st.message()));
  }
}

void EngineThread::run() {
  PostCommand cmds[32];
  ses::Completion wc[64];
  uint32_t idle = 0;
  while (!stop_.load(std::memory_order_acquire)) {
    uint32_t work = 0;
    if (auto* f = control_fn_.exchange(nullptr, std::memory_order_acq_rel)) {
      // Work the application posted before this call comes first (it sees
      // the QP it was posted to): drain the ring, then run the call.
      uint32_t k;
      while ((k = posts_.dequeue_burst(cmds, 32)) > 0)
        for (uint32_t i = 0; i < k; ++i) apply(cmds[i]);
      control_result_ = (*f)(engine_.transport());
      control_done_.store(true, std::memory_order_release);
      ++work;
    }
    const uint32_t n = posts_.dequeue_burst(cmds, 32);
    for (uint32_t i = 0; i < n; ++i) apply(cmds[i]);
    work += n;
    work += engine_.poll(clock_now());
    // Completions out: what the ring cannot take now waits in spill_ (in
    // order), so nothing is lost when the application is slow to reap.
    uint32_t k;
    while ((k = engine_.transport().poll_completions(wc, 64)) > 0) spill_.insert(spill_.end(), wc, wc + k);
    if (!spill_.empty()) {
      const uint32_t pushed = completions_.enqueue_burst(spill_.data(), static_cast<uint32_t>(spill_.size()));
      spill_.erase(spill_.begin(), spill_.begin() + pushed);
      work += pushed;
    }
    if (work) {
      idle = 0;
      continue;
    }
    // Back off: spin a little, then yield, then sleep until the next deadline
    // (bounded, since the application may post at any time).
    if (++idle < engine_.config().spin_polls) continue;
    if (idle < engine_.config().spin_polls * 2) {
      std::this_thread::yield();
      continue;
    }
    const TimePoint now = clock_now();
    Duration sleep = engine_.config().max_sleep;
    const TimePoint next = engine_.transport().next_deadline();
    if (!next.is_max() && next > now) sleep = min_dur(sleep, next - now);
    if (sleep > Duration::zero()) {
      sleeps_.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::nanoseconds(sleep.ns()));
    }
  }
}

}  // namespace shoal::engine
