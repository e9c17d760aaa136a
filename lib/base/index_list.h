// IndexList: an intrusive doubly-linked list over slots of an array, linked
// by 32-bit indices instead of pointers.
//
// The PDS sender threads its in-flight packets through one in transmission
// order (oldest first), so loss detection and the RTO look only at the head.
// Nodes are embedded in the caller's slots (`IndexLinks`), so linking and
// unlinking never allocate.
//
// Invariant: a slot is on at most one IndexList at a time; `linked()` says
// whether it is on one.
#pragma once

#include <cstdint>

namespace shoal {

inline constexpr uint32_t kNoIndex = 0xffffffffu;

struct IndexLinks {
  uint32_t prev = kNoIndex;
  uint32_t next = kNoIndex;
  bool on_list = false;
  bool linked() const { return on_list; }
};

// `LinksOf` maps an index to its IndexLinks&: a functor, so the list itself
// holds no pointer to the storage and stays trivially movable.
template <typename LinksOf>
class IndexList {
 public:
  explicit IndexList(LinksOf links_of = LinksOf()) : links_of_(links_of) {}

  bool empty() const { return head_ == kNoIndex; }
  uint32_t front() const { return head_; }
  uint32_t back() const { return tail_; }
  uint32_t size() const { return size_; }
  uint32_t next(uint32_t i) { return links_of_(i).next; }

  void push_back(uint32_t i) {
    IndexLinks& l = links_of_(i);
    l.prev = tail_;
    l.next = kNoIndex;
    l.on_list = true;
    if (tail_ != kNoIndex) links_of_(tail_).next = i; else head_ = i;
    tail_ = i;
    ++size_;
  }

  void remove(uint32_t i) {
    IndexLinks& l = links_of_(i);
    if (l.prev != kNoIndex) links_of_(l.prev).next = l.next; else head_ = l.next;
    if (l.next != kNoIndex) links_of_(l.next).prev = l.prev; else tail_ = l.prev;
    l.prev = l.next = kNoIndex;
    l.on_list = false;
    --size_;
  }

  uint32_t pop_front() {
    uint32_t i = head_;
    if (i != kNoIndex) remove(i);
    return i;
  }

  LinksOf& links_of() { return links_of_; }

 private:
  LinksOf links_of_;
  uint32_t head_ = kNoIndex;
  uint32_t tail_ = kNoIndex;
  uint32_t size_ = 0;
};

}  // namespace shoal
