// Internal entry points of crc32c.cc, exposed so tests and the fuzz target
// can check that the accelerated path and the portable table path agree.
// Production code calls shoal::wire::crc32c() and nothing here.
#pragma once

#include <cstdint>
#include <span>

namespace shoal::wire::internal {

// Same contract as shoal::wire::crc32c(data, seed), forced onto one path.
uint32_t crc32c_table(std::span<const uint8_t> data, uint32_t seed = 0);
// Only meaningful when crc32c_hw_available(); otherwise it falls back to the
// table path so that calling it is never undefined.
uint32_t crc32c_hw(std::span<const uint8_t> data, uint32_t seed = 0);
bool crc32c_hw_available();

}  // namespace shoal::wire::internal
