// PdcPool bookkeeping: keys, bounds, idle clocks, eviction, linger. The full
// lifecycle over the wire (idle close, eviction with waiting work) is tested
// through the transport in lib/ses/transport_test.cc.
#include "lib/pool/pool.h"

#include <gtest/gtest.h>

#include <vector>

namespace shoal::pool {
namespace {

class NoUpper : public pds::PdsUpper {
 public:
  bool next_unit(pds::Pdc&, uint64_t*, bool*) override { return false; }
  size_t write_unit(pds::Pdc&, uint64_t, std::span<uint8_t>, wire::NextHdr*) override { return 0; }
  uint32_t peek_unit_bytes(pds::Pdc&) override { return 0; }
  uint64_t backlog_bytes(pds::Pdc&, uint32_t* units) override {
    *units = 0;
    return 0;
  }
  void on_unit_acked(pds::Pdc&, uint64_t) override {}
  void on_unit_failed(pds::Pdc&, uint64_t, pds::UnitFailure, uint8_t) override {}
  pds::RequestVerdict on_request(pds::Pdc&, const wire::Packet&, TimePoint, uint8_t*) override {
    return pds::RequestVerdict::kAccepted;
  }
};

struct Fixture {
  explicit Fixture(uint32_t max, Duration shrink = Duration::micros(100), Duration close = Duration::millis(1)) {
    cfg.max_pdcs = max;
    cfg.idle_shrink = shrink;
    cfg.idle_close = close;
    pool = std::make_unique<PdcPool>(cfg, pds_cfg, &upper, 7);
  }
  std::vector<uint16_t> woken() {
    std::vector<uint16_t> v;
    pool->drain_woken([&](uint16_t id) { v.push_back(id); });
    return v;
  }
  PoolConfig cfg;
  pds::PdsConfig pds_cfg;
  NoUpper upper;
  std::unique_ptr<PdcPool> pool;
};

const TimePoint t0 = TimePoint::zero() + Duration::micros(1);

TEST(PdcPool, OnePdcPerPeerTrafficClassAndMode) {
  Fixture f(16);
  const uint16_t a = f.pool->acquire(10, 0, pds::DeliveryMode::kRud, t0);
  ASSERT_NE(a, 0);
  EXPECT_EQ(f.pool->acquire(10, 0, pds::DeliveryMode::kRud, t0), a);  // shared
  const uint16_t b = f.pool->acquire(10, 1, pds::DeliveryMode::kRud, t0);
  const uint16_t c = f.pool->acquire(10, 0, pds::DeliveryMode::kRod, t0);
  const uint16_t d = f.pool->acquire(11, 0, pds::DeliveryMode::kRud, t0);
  EXPECT_TRUE(b && c && d);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  EXPECT_EQ(f.pool->open(), 4u);
  EXPECT_EQ(f.pool->get(a)->peer(), 10u);
  EXPECT_EQ(f.pool->get(c)->mode(), pds::DeliveryMode::kRod);
  EXPECT_EQ(f.pool->counters().opened, 4u);
}

TEST(PdcPool, AcceptIsKeyedByPeerAndInitiatorIdAndFindableOnlyOnceOpen) {
  Fixture f(16);
  wire::RequestHeader syn;
  syn.spdcid = 33;
  syn.psn = 1000;
  syn.dpdcid = wire::syn_dpdcid(0, 5);
  EXPECT_EQ(f.pool->find_accepted(20, 33), 0);
  const uint16_t id = f.pool->accept(20, syn, pds::DeliveryMode::kRud, t0);
  ASSERT_NE(id, 0);
  EXPECT_EQ(f.pool->accept(20, syn, pds::DeliveryMode::kRud, t0), id);
  EXPECT_EQ(f.pool->find_accepted(20, 33), id);
  EXPECT_EQ(f.pool->find_accepted(21, 33), 0);
  EXPECT_EQ(f.pool->get(id)->cack(), Psn(1000 - 5 - 1));  // start PSN from the SYN's offset
  EXPECT_FALSE(f.pool->initiator(id));
}

TEST(PdcPool, IdleShrinksThenClosesInitiatorsInOrder) {
  Fixture f(16, Duration::micros(100), Duration::millis(1));
  const uint16_t a = f.pool->acquire(1, 0, pds::DeliveryMode::kRud, t0);
  const uint16_t b = f.pool->acquire(2, 0, pds::DeliveryMode::kRud, t0);
  EXPECT_TRUE(f.pool->next_deadline().is_max());
  EXPECT_FALSE(f.pool->after_event(a, true, t0));
  EXPECT_FALSE(f.pool->after_event(b, true, t0 + Duration::micros(50)));
  EXPECT_EQ(f.pool->next_deadline(), t0 + Duration::micros(100));
  // b gets busy again: its idle clock stops.
  f.pool->after_event(b, false, t0 + Duration::micros(60));
  std::vector<uint16_t> freed;
  f.pool->on_timeout(t0 + Duration::micros(100), [&](uint16_t id) { freed.push_back(id); });
  EXPECT_EQ(f.pool->counters().shrunk, 1u);
  EXPECT_EQ(f.pool->next_deadline(), t0 + Duration::millis(1));
  f.pool->on_timeout(t0 + Duration::millis(1), [&](uint16_t id) { freed.push_back(id); });
  EXPECT_EQ(f.pool->counters().closed_idle, 1u);
  EXPECT_EQ(f.pool->get(a)->state(), pds::PdcState::kOpen);  // close() waits for poll_transmit
  EXPECT_EQ(f.woken(), std::vector<uint16_t>{a});
  EXPECT_TRUE(freed.empty());
  // While a is on its way out it takes no new work.
  std::vector<uint8_t> buf(256);
  TxPacket slot;
  slot.data = buf.data();
  slot.capacity = 256;
  TxBatch batch(&slot, 1);
  ASSERT_EQ(f.pool->get(a)->poll_transmit(t0 + Duration::millis(1), batch), 1u);  // the CLOSE
  EXPECT_EQ(f.pool->acquire(1, 0, pds::DeliveryMode::kRud, t0), 0);
}

TEST(PdcPool, AtTheBoundAcquireWaitsAndEvictsTheOldestIdleInitiator) {
  Fixture f(3);
  const uint16_t a = f.pool->acquire(1, 0, pds::DeliveryMode::kRud, t0);
  const uint16_t b = f.pool->acquire(2, 0, pds::DeliveryMode::kRud, t0);
  wire::RequestHeader syn;
  syn.spdcid = 4;
  const uint16_t t = f.pool->accept(9, syn, pds::DeliveryMode::kRud, t0);
  ASSERT_TRUE(a && b && t);
  // Full and nothing idle: wait, nothing to evict.
  EXPECT_EQ(f.pool->acquire(3, 0, pds::DeliveryMode::kRud, t0), 0);
  EXPECT_EQ(f.pool->counters().evicted, 0u);
  EXPECT_TRUE(f.woken().empty());
  // The target and b go idle, then a: the oldest idle *initiator* is b.
  f.pool->after_event(t, true, t0);
  f.pool->after_event(b, true, t0 + Duration::micros(1));
  f.pool->after_event(a, true, t0 + Duration::micros(2));
  EXPECT_EQ(f.pool->acquire(3, 0, pds::DeliveryMode::kRud, t0), 0);
  EXPECT_EQ(f.pool->counters().evicted, 1u);
  EXPECT_EQ(f.woken(), std::vector<uint16_t>{b});
  // One eviction at a time.
  EXPECT_EQ(f.pool->acquire(4, 0, pds::DeliveryMode::kRud, t0), 0);
  EXPECT_EQ(f.pool->counters().evicted, 1u);
  // Once b is gone, the waiting key gets its PDC.
  f.pool->release(b);
  const uint16_t c = f.pool->acquire(3, 0, pds::DeliveryMode::kRud, t0);
  EXPECT_EQ(c, b);  // the freed id is reused
  EXPECT_EQ(f.pool->get(c)->peer(), 3u);
  EXPECT_EQ(f.pool->open(), 3u);
}

TEST(PdcPool, StateBytesAreSmallForIdlePdcs) {
  Fixture f(1000);
  for (PeerAddr p = 1; p <= 1000; ++p) ASSERT_NE(f.pool->acquire(p, 0, pds::DeliveryMode::kRud, t0), 0);
  EXPECT_EQ(f.pool->open(), 1000u);
  EXPECT_LE(f.pool->state_bytes() / f.pool->open(), 1024u);
}

}  // namespace
}  // namespace shoal::pool
