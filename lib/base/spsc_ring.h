// SpscRing<T>: a lock-free single-producer single-consumer ring of
// trivially copyable T, moved in bursts.
//
// Role: the only way a thread other than an engine's own talks to the engine
// (commands in, completions out), and later the host <-> DPU command channel
// (ARCHITECTURE rule 6). The core starts no threads; this header only needs
// <atomic>, and each side just calls its own methods from its own thread.
//
// Design (the rte_ring / folly ProducerConsumerQueue idea): head_ and tail_
// are free-running 32-bit counters (the slot is counter & mask), so "full" is
// tail - head == capacity and all capacity slots are usable. Each side owns
// one counter and writes only that, with release after it has copied the
// items, and reads the other side's with acquire. Each side also keeps a
// private cached copy of the other side's counter and reloads it only when
// the cache says there is not enough room (producer) or data (consumer), so
// in steady state a burst touches the shared line of the other side once per
// many bursts, not once per burst. The producer's and consumer's lines are
// kept apart (kFalseSharingBytes) so the two cores do not ping-pong them.
//
// Invariants: 0 <= tail_ - head_ <= capacity (unsigned arithmetic);
// capacity is a power of two <= 2^31; slots [head_, tail_) hold items the
// consumer has not taken, slots [tail_, head_ + capacity) are free.
//
// Threading: enqueue_* only from the one producer thread, dequeue_* only from
// the one consumer thread; size_approx()/capacity() from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>
#include <type_traits>

namespace shoal {

// 128, not 64: x86's adjacent-line prefetcher pulls cache lines in pairs, so
// two hot fields 64 bytes apart can still false-share.
inline constexpr size_t kFalseSharingBytes = 128;

template <typename T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>, "SpscRing moves items by copying bytes");

 public:
  // `capacity`: a power of two in [1, 2^31]; allocated here, never again.
  explicit SpscRing(uint32_t capacity)
      : mask_(capacity - 1), slots_(std::make_unique<T[]>(capacity)) {
    assert(capacity > 0 && (capacity & (capacity - 1)) == 0 && capacity <= (1u << 31));
  }

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  // Producer: copies up to n items in order; returns how many fit (0 when
  // full). The consumer sees them all at once.
  uint32_t enqueue_burst(const T* items, uint32_t n) {
    const uint32_t tail = prod_.tail.load(std::memory_order_relaxed);  // ours
    uint32_t room = capacity() - (tail - prod_.head_cache);
    if (room < n) {
      prod_.head_cache = cons_.head.load(std::memory_order_acquire);
      room = capacity() - (tail - prod_.head_cache);
    }
    if (n > room) n = room;
    if (n == 0) return 0;
    copy_in(tail, items, n);
    // Release: the consumer's acquire of tail sees the items copied above.
    prod_.tail.store(tail + n, std::memory_order_release);
    return n;
  }
  bool enqueue(const T& item) { return enqueue_burst(&item, 1) == 1; }

  // Consumer: copies out up to n items in order; returns how many (0 when
  // empty).
  uint32_t dequeue_burst(T* out, uint32_t n) {
    const uint32_t head = cons_.head.load(std::memory_order_relaxed);  // ours
    uint32_t avail = cons_.tail_cache - head;
    if (avail < n) {
      cons_.tail_cache = prod_.tail.load(std::memory_order_acquire);
      avail = cons_.tail_cache - head;
    }
    if (n > avail) n = avail;
    if (n == 0) return 0;
    copy_out(head, out, n);
    // Release: the producer's acquire of head knows these slots are read.
    cons_.head.store(head + n, std::memory_order_release);
    return n;
  }
  bool dequeue(T* out) { return dequeue_burst(out, 1) == 1; }

  // A snapshot that may be stale by the time it returns; exact when called
  // by either side while the other is idle.
  uint32_t size_approx() const {
    const uint32_t head = cons_.head.load(std::memory_order_acquire);
    const uint32_t tail = prod_.tail.load(std::memory_order_acquire);
    const uint32_t n = tail - head;  // head read first: n may briefly overshoot
    return n > capacity() ? capacity() : n;
  }
  bool empty_approx() const { return size_approx() == 0; }
  uint32_t capacity() const { return mask_ + 1; }

 private:
  // Two copies at most: the run up to the end of the array, then from 0.
  void copy_in(uint32_t pos, const T* items, uint32_t n) {
    const uint32_t at = pos & mask_;
    const uint32_t first = n < capacity() - at ? n : capacity() - at;
    std::copy_n(items, first, &slots_[at]);
    std::copy_n(items + first, n - first, &slots_[0]);
  }
  void copy_out(uint32_t pos, T* out, uint32_t n) const {
    const uint32_t at = pos & mask_;
    const uint32_t first = n < capacity() - at ? n : capacity() - at;
    std::copy_n(&slots_[at], first, out);
    std::copy_n(&slots_[0], n - first, out + first);
  }

  // Written by the producer only (tail), read by the consumer.
  struct alignas(kFalseSharingBytes) Producer {
    std::atomic<uint32_t> tail{0};
    uint32_t head_cache = 0;  // the producer's last view of cons_.head
  };
  // Written by the consumer only (head), read by the producer.
  struct alignas(kFalseSharingBytes) Consumer {
    std::atomic<uint32_t> head{0};
    uint32_t tail_cache = 0;  // the consumer's last view of prod_.tail
  };

  // Read-only after construction; on its own line, shared by both sides.
  alignas(kFalseSharingBytes) const uint32_t mask_;
  const std::unique_ptr<T[]> slots_;
  Producer prod_;
  Consumer cons_;
};

}  // namespace shoal
