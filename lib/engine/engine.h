// lib/engine: the runtime that runs the I/O-free core on a driver.
//
// One Engine per driver queue (one lcore / thread), run to completion and
// sharing nothing: each poll() drains what the transport wants to send into
// the driver's transmit bursts, takes a received burst into the transport,
// and fires due timers (sending what they make due). The engine owns the
// clock (the core never reads one): a monotonic clock counted from the
// process's first use of it.
//
// Transmit comes first so that request/response traffic pays one send per
// message, not two: the ACK a receive asks for leaves at the start of the
// next poll, in the same burst as the reply the application posted on
// seeing the completion, and within a burst requests go before ACK, NACK
// and CTRL packets (the peer's application waits for the request; the ACK
// only frees its window). The cost: an ACK waits for the next poll, so an
// application in library mode must keep polling (it must anyway: timers
// and retransmissions run only in poll()); an engine thread polls again at
// once after any work.
//
// Two ways to drive it (ARCHITECTURE rule 6):
//  - library mode: the application calls poll() (or work() through the API)
//    on its own thread and uses transport() directly;
//  - threaded mode: EngineThread runs poll() on its own thread; the
//    application posts work through a lock-free SPSC ring and takes
//    completions back through another. An idle engine thread backs off
//    (spin, then yield, then short sleeps bounded by its next deadline), so
//    two engines can share this 2-core machine.
//
// Invariants: only the engine's thread touches its transport; in threaded
// mode the application touches only the rings and control calls, which run on
// the engine thread and return their Status.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "shoal/driver_sdk.h"
#include "lib/base/spsc_ring.h"
#include "lib/base/time.h"
#include "lib/ses/transport.h"

namespace shoal::engine {

// Monotonic time since the process first asked (small values keep the
// timer wheel's early levels busy, not its overflow list).
TimePoint clock_now();

struct EngineCounters {
  uint64_t polls = 0;
  uint64_t idle_polls = 0;
  uint64_t rx_packets = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_dropped = 0;   // lent, filled, not taken by the driver
  uint64_t timer_runs = 0;
  uint64_t backoff_sleeps = 0;
};

struct EngineConfig {
  ses::TransportConfig transport;
  uint32_t burst = 32;
  // Threaded mode backoff: idle polls before yielding, and the longest sleep.
  uint32_t spin_polls = 256;
  Duration max_sleep = Duration::micros(200);
};

class Engine {
 public:
  // The driver outlives the engine; the engine uses queue `queue` only.
  Engine(Driver& driver, uint32_t queue, const EngineConfig& config, uint64_t seed);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // One run-to-completion pass. Returns the work done: packets received and
  // sent plus one if timers ran; 0 means idle.
  uint32_t poll(TimePoint now);
  uint32_t poll() { return poll(clock_now()); }

  ses::Transport& transport() { return transport_; }
  const ses::Transport& transport() const { return transport_; }
  Driver& driver() { return driver_; }
  uint32_t queue() const { return queue_; }
  PeerAddr local_addr() const { return driver_.local_addr(queue_); }
  const EngineCounters& counters() const { return counters_; }
  const EngineConfig& config() const { return config_; }

 private:
  // Sends what the transport has due, burst by burst; returns packets filled.
  uint32_t transmit(TimePoint now);
  // Reorders tx_[0, filled): requests first, then control packets, each in
  // their order (a stable partition into ctl_, no allocation).
  void requests_first(uint32_t filled);

  Driver& driver_;
  uint32_t queue_;
  EngineConfig config_;
  ses::Transport transport_;
  std::vector<RxPacket> rx_;
  // tx_[0, held_): buffers the driver lent that the core has not filled
  // yet; they stay lent across polls and go back when the engine is destroyed.
  std::vector<TxPacket> tx_;
  uint32_t held_ = 0;
  std::vector<TxPacket> ctl_;  // requests_first()'s scratch, tx_.size() entries
  EngineCounters counters_;
};

// What the application hands a threaded engine through its ring.
struct PostCommand {
  enum Kind : uint8_t { kSend = 0, kRecv = 1 } kind;
  ses::SendRequest send;   // kSend
  uint16_t qp;             // kRecv
  uint8_t* buf;            // kRecv
  uint32_t len;            // kRecv
  uint64_t wr_id;          // kRecv
  // kRecv into a scatter/gather list (nsge > 0) instead of buf/len; the list
  // stays valid until the receive completes, and `tag` comes back with it.
  const ses::Segment* sgl;
  uint32_t tag;
  uint8_t nsge;
};

// An engine on its own thread. The application thread (one at a time) posts
// with post() and reaps with poll_completions(); control() runs a function on
// the engine thread and waits for it (QP creation, queries, teardown).
class EngineThread {
 public:
  EngineThread(Driver& driver, uint32_t queue, const EngineConfig& config, uint64_t seed,
               uint32_t ring_size = 4096);
  ~EngineThread();  // stops and joins
  // Pins the engine thread to one CPU (threaded mode's engine_cpus).
  // Errors: InvalidArgument (the CPU is not one this process may run on).
  absl::Status pin_to_cpu(int cpu);
  EngineThread(const EngineThread&) = delete;
  EngineThread& operator=(const EngineThread&) = delete;

  // Queues work for the engine. Returns false (nothing queued) when the ring
  // is full: the caller retries after reaping completions.
  bool post(const PostCommand& cmd);
  // Completions the engine produced, in order; returns how many were copied.
  uint32_t poll_completions(ses::Completion* out, uint32_t max);
  // Runs f(transport) on the engine thread and returns its Status.
  absl::Status control(const std::function<absl::Status(ses::Transport&)>& f);
  // Errors the engine met applying posted work (a post that its transport
  // refused): counted, and the work completes with an error status.
  uint64_t post_errors() const { return post_errors_.load(std::memory_order_relaxed); }
  const Engine& engine() const { return engine_; }
  // Times the idle engine slept (backoff), readable from any thread.
  uint64_t sleeps() const { return sleeps_.load(std::memory_order_relaxed); }

 private:
  void run();
  void apply(const PostCommand& cmd);

  Engine engine_;
  SpscRing<PostCommand> posts_;
  SpscRing<ses::Completion> completions_;
  std::vector<ses::Completion> spill_;  // engine-side, when the completion ring is full
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> post_errors_{0};
  std::atomic<uint64_t> sleeps_{0};
  // control(): one request at a time, handed over through these.
  std::atomic<const std::function<absl::Status(ses::Transport&)>*> control_fn_{nullptr};
  absl::Status control_result_;
  std::atomic<bool> control_done_{false};
  std::thread thread_;
};

}  // namespace shoal::engine
