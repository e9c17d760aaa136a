// TimerWheel: a hierarchical timing wheel for the engine's many deadlines
// (PDC retransmit and tail-loss probes, pacing, idle close).
//
// Why a wheel and not a heap: an engine holds hundreds of thousands of armed
// deadlines and pushes most of them out before they fire (every ACK moves an
// RTO). The wheel arms, re-arms and cancels in O(1) and fires in O(1)
// amortized per timer (a timer moves down at most kLevels - 1 times), with no
// allocation after construction. Timers are named by 32-bit handles into a
// preallocated node array (like Slab) and carry a 64-bit caller cookie.
//
// Layout: time is counted in ticks of `tick` since `start`. kLevels levels of
// 64 slots; a slot at level l spans 64^l ticks. A timer due at tick e sits at
// the level of the highest 6-bit digit in which e differs from the wheel's
// current tick cur_, in the slot named by e's digit there (the scheme of
// tokio's and Linux's wheels). Timers beyond the top level (64^kLevels ticks,
// 51 days at 1 us) wait on an overflow list. Each level keeps a 64-bit
// occupancy map and a mask of non-empty levels, so the earliest slot is two
// ctz away.
//
// Rounding: a deadline is rounded up to the next tick boundary, so a timer
// never fires before its deadline and fires in the first advance() whose `now`
// reaches that boundary, i.e. less than one tick after the deadline. A
// deadline at or before the wheel's current tick counts as due at the current
// tick (its "effective" tick) and fires in the next advance(). A deadline
// whose tick boundary lies beyond TimePoint::max() (TimePoint::max() itself,
// unless the tick is 1 ns) never fires: max() means "never".
//
// Invariants:
//  - cur_ only grows; all ticks before cur_ are fully processed.
//  - every armed timer has tick >= cur_. At level 0 it agrees with cur_ in all
//    digits above digit 0; at level l > 0 it agrees with cur_ above digit l
//    and has a larger digit l. Hence the lowest occupied slot of the lowest
//    non-empty level holds the earliest timers, and every overflow timer is
//    later than every wheel timer.
//  - a handle is free, armed (on exactly one slot or overflow list), or
//    firing (inside fire(), on no list; released after fire() unless re-armed).
//
// Threading: owned by one engine thread; every method runs on that thread.
#pragma once

#include <array>
#include <cassert>
#include <cstdint>
#include <string>
#include <vector>

#include "lib/base/index_list.h"
#include "lib/base/time.h"

namespace shoal {

class TimerWheel {
 public:
  static constexpr int kSlotBits = 6;
  static constexpr uint32_t kSlots = 1u << kSlotBits;
  static constexpr int kLevels = 7;  // 42 bits of ticks: 51 days at 1 us
  static constexpr uint64_t kNoTick = ~uint64_t{0};

  // `capacity`: the most timers armed at once (plus those inside fire()).
  // `tick`: the resolution, > 0. `start`: tick 0; deadlines before it are due
  // at once, and advance() before it does nothing.
  explicit TimerWheel(uint32_t capacity, Duration tick = Duration::micros(1),
                      TimePoint start = TimePoint::zero())
      : nodes_(capacity), tick_ns_(static_cast<uint64_t>(tick.ns())), start_(start) {
    assert(tick.ns() > 0);
    heads_.fill(kNoIndex);
    // Free list threaded through `next`, lowest index first.
    for (uint32_t i = 0; i < capacity; ++i) {
      nodes_[i].next = i + 1 < capacity ? i + 1 : kNoIndex;
      nodes_[i].list = kListFree;
    }
    free_head_ = capacity > 0 ? 0 : kNoIndex;
  }

  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  TimerWheel(TimerWheel&&) = default;
  TimerWheel& operator=(TimerWheel&&) = default;

  // Arms a new timer; returns its handle, or kNoIndex when `capacity` timers
  // are already armed (the caller turns that into backpressure). The handle
  // stays the caller's until cancel(), or until fire() for it returns without
  // a rearm() of it.
  uint32_t arm(TimePoint when, uint64_t cookie) {
    const uint32_t h = free_head_;
    if (h == kNoIndex) return kNoIndex;
    free_head_ = nodes_[h].next;
    nodes_[h].cookie = cookie;
    place(h, ceil_tick(when));
    return h;
  }

  // Moves an armed timer, or re-arms the timer being fired from inside
  // fire(). A new deadline at or before `now` of the running advance() fires
  // in that same advance().
  void rearm(uint32_t h, TimePoint when) {
    assert(h < nodes_.size() && nodes_[h].list != kListFree);
    if (nodes_[h].list != kListFiring) unlink(h);
    place(h, ceil_tick(when));
  }

  // Disarms the timer and releases its handle (also from inside fire(), for
  // any timer including the one being fired).
  void cancel(uint32_t h) {
    assert(h < nodes_.size() && nodes_[h].list != kListFree);
    if (nodes_[h].list != kListFiring) unlink(h);
    release(h);
  }

  // True while the timer waits to fire (false inside its own fire()).
  bool armed(uint32_t h) const { return h < nodes_.size() && nodes_[h].list < kListFiring; }
  uint64_t cookie(uint32_t h) const { return nodes_[h].cookie; }
  // The time at which the timer will fire: its deadline rounded up to a tick
  // (later if it was armed for a time the wheel had already passed).
  TimePoint deadline(uint32_t h) const { return time_of(nodes_[h].tick); }

  // Fires, by calling fire(handle, cookie), every timer whose effective tick
  // is <= now's tick, in non-decreasing effective tick (no order within a
  // tick). fire() may arm, rearm and cancel any timer; it must not call
  // advance(). A `now` earlier than a previous one (or than `start`) fires
  // nothing. Returns the number of fire() calls.
  template <typename F>
  size_t advance(TimePoint now, F&& fire) {
    assert(!in_advance_);
    if (now < start_) return 0;
    const uint64_t target = floor_tick(now);
    if (target < cur_) return 0;
    in_advance_ = true;
    size_t fired = 0;
    uint32_t list;
    uint64_t at;
    while (next_slot(&list, &at) && at <= target) {
      if (list < kSlots) {
        // Level 0: every timer here is due exactly at `at`. Pop one at a time
        // so that fire() may cancel or rearm the others, or add to this slot.
        cur_ = at;
        next_valid_ = false;
        uint32_t h;
        while ((h = heads_[list]) != kNoIndex) {
          unlink(h);
          nodes_[h].list = kListFiring;
          ++fired;
          fire(h, nodes_[h].cookie);
          if (nodes_[h].list == kListFiring) release(h);
        }
      } else if (list < kOverflowList) {
        cur_ = at;
        cascade(list);
      } else if (!drain_overflow(target)) {
        break;
      }
    }
    cur_ = target;
    in_advance_ = false;
    return fired;
  }

  // The time at which the next advance() would fire something: exact to the
  // tick (it is deadline() of the earliest timer); TimePoint::max() when
  // nothing is armed. Cheap when called again: cached until a fire, or a
  // cancel/rearm of the earliest timer; a recomputation scans one slot.
  TimePoint next_deadline() const {
    if (!next_valid_) {
      next_cache_ = min_tick();
      next_valid_ = true;
    }
    return next_cache_ == kNoTick ? TimePoint::max() : time_of(next_cache_);
  }

  // O(1) lower bound on next_deadline(): the start of the earliest occupied
  // slot, for callers that only need a safe sleep bound.
  TimePoint next_deadline_bound() const {
    uint32_t list;
    uint64_t at;
    return next_slot(&list, &at) ? time_of(at) : TimePoint::max();
  }

  // The wheel's current time: the start of the last tick advance() reached.
  TimePoint current() const { return time_of(cur_); }
  Duration tick() const { return Duration::nanos(static_cast<int64_t>(tick_ns_)); }
  uint32_t size() const { return armed_; }
  uint32_t capacity() const { return static_cast<uint32_t>(nodes_.size()); }
  bool empty() const { return armed_ == 0; }
  size_t memory_bytes() const { return nodes_.size() * sizeof(Node) + sizeof(*this); }

  std::string dump() const {
    std::string s = "TimerWheel{armed=" + std::to_string(armed_) + "/" +
                    std::to_string(nodes_.size()) + " tick_ns=" + std::to_string(tick_ns_) +
                    " cur_tick=" + std::to_string(cur_) + " slots_used=[";
    for (int l = 0; l < kLevels; ++l)
      s += (l ? "," : "") + std::to_string(__builtin_popcountll(occupied_[l]));
    s += "] overflow=" + std::string(heads_[kOverflowList] == kNoIndex ? "empty" : "used") + "}";
    return s;
  }

  // Verifies the invariants above by walking every list; for tests.
  bool check() const {
    uint32_t seen = 0;
    for (uint32_t list = 0; list <= kOverflowList; ++list) {
      if (list < kOverflowList &&
          (((occupied_[list / kSlots] >> (list % kSlots)) & 1) != 0) != (heads_[list] != kNoIndex))
        return false;
      uint32_t prev = kNoIndex;
      for (uint32_t h = heads_[list]; h != kNoIndex; prev = h, h = nodes_[h].next) {
        const Node& n = nodes_[h];
        if (n.list != list || n.prev != prev || n.tick < cur_) return false;
        if (list < kOverflowList && list_for(n.tick) != list) return false;
        if (list == kOverflowList && (n.tick ^ cur_) >> (kSlotBits * kLevels) == 0) return false;
        if (list == kOverflowList && n.tick < overflow_min_) return false;
        ++seen;
      }
    }
    for (int l = 0; l < kLevels; ++l)
      if (((level_mask_ >> l) & 1) != (occupied_[l] != 0)) return false;
    return seen == armed_;
  }

 private:
  static constexpr uint32_t kOverflowList = kLevels * kSlots;
  static constexpr uint32_t kListFiring = 0xfffffffeu;
  static constexpr uint32_t kListFree = 0xffffffffu;
  static constexpr int kTopBits = kSlotBits * kLevels;

  // 32 bytes: two per cache line.
  struct Node {
    uint32_t prev = kNoIndex;
    uint32_t next = kNoIndex;   // also the free-list link
    uint32_t list = kListFree;  // slot list id, kOverflowList, kListFiring or kListFree
    uint64_t tick = 0;          // effective tick
    uint64_t cookie = 0;
  };

  uint64_t floor_tick(TimePoint t) const {  // t >= start_
    return (static_cast<uint64_t>(t.ns()) - static_cast<uint64_t>(start_.ns())) / tick_ns_;
  }
  uint64_t ceil_tick(TimePoint t) const {
    if (t <= start_) return 0;
    const uint64_t d = static_cast<uint64_t>(t.ns()) - static_cast<uint64_t>(start_.ns());
    const uint64_t q = d / tick_ns_;
    return q + (q * tick_ns_ != d);
  }
  TimePoint time_of(uint64_t tick) const {
    const __int128 ns = static_cast<__int128>(start_.ns()) +
                        static_cast<__int128>(tick) * static_cast<__int128>(tick_ns_);
    if (ns >= static_cast<__int128>(TimePoint::max().ns())) return TimePoint::max();
    return TimePoint::from_ns(static_cast<int64_t>(ns));
  }

  // The list a timer due at `tick` (>= cur_) belongs on.
  uint32_t list_for(uint64_t tick) const {
    const uint64_t diff = tick ^ cur_;
    if (diff < kSlots) return static_cast<uint32_t>(tick & (kSlots - 1));
    const int level = (63 - __builtin_clzll(diff)) / kSlotBits;
    if (level >= kLevels) return kOverflowList;
    return static_cast<uint32_t>(level) * kSlots +
           static_cast<uint32_t>((tick >> (level * kSlotBits)) & (kSlots - 1));
  }

  void place(uint32_t h, uint64_t tick) {
    if (tick < cur_) tick = cur_;
    nodes_[h].tick = tick;
    ++armed_;
    if (next_valid_ && tick < next_cache_) next_cache_ = tick;
    link(h, list_for(tick));
  }

  void link(uint32_t h, uint32_t list) {
    Node& n = nodes_[h];
    n.list = list;
    n.prev = kNoIndex;
    n.next = heads_[list];
    if (n.next != kNoIndex) nodes_[n.next].prev = h;
    heads_[list] = h;
    if (list < kOverflowList) {
      occupied_[list / kSlots] |= uint64_t{1} << (list % kSlots);
      level_mask_ |= 1u << (list / kSlots);
    } else if (n.tick < overflow_min_) {
      overflow_min_ = n.tick;
    }
  }

  // Takes an armed timer off its list; it is then firing or about to be
  // placed or released.
  void unlink(uint32_t h) {
    Node& n = nodes_[h];
    const uint32_t list = n.list;
    if (n.next != kNoIndex) nodes_[n.next].prev = n.prev;
    if (n.prev != kNoIndex) {
      nodes_[n.prev].next = n.next;
    } else {
      heads_[list] = n.next;
      if (n.next == kNoIndex && list < kOverflowList) clear_slot(list);
    }
    --armed_;
    if (next_valid_ && n.tick == next_cache_) next_valid_ = false;
  }

  void clear_slot(uint32_t list) {
    const uint32_t level = list / kSlots;
    occupied_[level] &= ~(uint64_t{1} << (list % kSlots));
    if (occupied_[level] == 0) level_mask_ &= ~(1u << level);
  }

  void release(uint32_t h) {
    nodes_[h].list = kListFree;
    nodes_[h].next = free_head_;
    free_head_ = h;
  }

  // The earliest occupied list and the first tick it can hold.
  bool next_slot(uint32_t* list, uint64_t* at) const {
    if (level_mask_ != 0) {
      const int level = __builtin_ctz(level_mask_);
      const int slot = __builtin_ctzll(occupied_[level]);
      const int shift = level * kSlotBits;
      const uint64_t above = (cur_ >> (shift + kSlotBits)) << (shift + kSlotBits);
      *at = above | (static_cast<uint64_t>(slot) << shift);
      *list = static_cast<uint32_t>(level) * kSlots + static_cast<uint32_t>(slot);
      return true;
    }
    if (heads_[kOverflowList] != kNoIndex) {
      // The next top-level rotation, or the rotation of the earliest overflow
      // timer if that is later: lets a huge jump skip empty rotations.
      // (No wrap: a timer on the overflow list means cur_ is not in the last
      // rotation.)
      const uint64_t next_rotation = ((cur_ >> kTopBits) + 1) << kTopBits;
      const uint64_t min_rotation = (overflow_min_ >> kTopBits) << kTopBits;
      *at = next_rotation > min_rotation ? next_rotation : min_rotation;
      *list = kOverflowList;
      return true;
    }
    return false;
  }

  // Moves the timers of one slot at a level > 0 down, relative to cur_ (the
  // slot's start). No callbacks run, so the detached chain is safe to walk.
  void cascade(uint32_t list) {
    uint32_t h = heads_[list];
    heads_[list] = kNoIndex;
    clear_slot(list);
    while (h != kNoIndex) {
      const uint32_t next = nodes_[h].next;
      link(h, list_for(nodes_[h].tick));
      h = next;
    }
  }

  // Called with every wheel level empty. Rescans the overflow list (its
  // minimum may be stale after cancels), then either moves cur_ to the
  // earliest overflow timer's rotation and re-places every overflow timer, or,
  // if that rotation is beyond `target`, leaves them and returns false.
  bool drain_overflow(uint64_t target) {
    uint64_t min = kNoTick;
    for (uint32_t h = heads_[kOverflowList]; h != kNoIndex; h = nodes_[h].next)
      if (nodes_[h].tick < min) min = nodes_[h].tick;
    overflow_min_ = min;
    const uint64_t next_rotation = ((cur_ >> kTopBits) + 1) << kTopBits;
    const uint64_t min_rotation = (min >> kTopBits) << kTopBits;
    const uint64_t at = next_rotation > min_rotation ? next_rotation : min_rotation;
    if (at > target) return false;
    cur_ = at;
    uint32_t h = heads_[kOverflowList];
    heads_[kOverflowList] = kNoIndex;
    overflow_min_ = kNoTick;
    while (h != kNoIndex) {
      const uint32_t next = nodes_[h].next;
      link(h, list_for(nodes_[h].tick));
      h = next;
    }
    return true;
  }

  uint64_t min_tick() const {
    uint32_t list;
    uint64_t at;
    if (!next_slot(&list, &at)) return kNoTick;
    if (list < kSlots) return at;  // level 0: the slot is one tick
    uint64_t min = kNoTick;
    for (uint32_t h = heads_[list]; h != kNoIndex; h = nodes_[h].next)
      if (nodes_[h].tick < min) min = nodes_[h].tick;
    return min;
  }

  std::vector<Node> nodes_;
  std::array<uint32_t, kOverflowList + 1> heads_;
  std::array<uint64_t, kLevels> occupied_{};  // bit s of [l]: slot s of level l is non-empty
  uint32_t level_mask_ = 0;                   // bit l: occupied_[l] != 0
  uint32_t free_head_ = kNoIndex;
  uint32_t armed_ = 0;
  bool in_advance_ = false;
  mutable bool next_valid_ = true;  // next_cache_ is exact (kNoTick: nothing armed)
  mutable uint64_t next_cache_ = kNoTick;
  uint64_t cur_ = 0;                 // the wheel's current tick
  uint64_t overflow_min_ = kNoTick;  // lower bound on overflow ticks
  uint64_t tick_ns_;
  TimePoint start_;
};

}  // namespace shoal
