// CRC32C (Castagnoli) for the datagram trailer.
//
// Why hand-written: the distribution's Abseil (Debian 12 ships 20220623)
// predates absl/crc, and the I/O-free core may not include DPDK's
// rte_hash_crc.h. The checksum runs over every byte of every datagram, so it
// uses the CPU's CRC32C instruction where there is one (SSE4.2 on x86_64,
// the ARMv8 CRC extension on aarch64) and a slice-by-8 table otherwise.
//
// Conventions: reflected polynomial 0x82F63B78, register starts at ~seed and
// the result is inverted, so crc32c(b, crc32c(a)) == crc32c(a || b) and
// crc32c("123456789") == 0xE3069283.
//
// The instruction has a latency of ~3 cycles but a throughput of one per
// cycle, so long buffers are cut into three interleaved streams whose
// registers are merged with a precomputed "append N zero bytes" operator
// (CRC is linear over GF(2), so shifting a register past N bytes is a fixed
// 32x32 bit matrix, tabulated per input byte like the slice tables).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "lib/wire/crc32c_internal.h"
#include "lib/wire/wire.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#define SHOAL_CRC32C_X86 1
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#define SHOAL_CRC32C_ARM 1
#endif

namespace shoal::wire {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;

// Bytes per stream in the three-way interleaved loop. 256 B keeps the merge
// (two table shifts) under a tenth of the work and still lets a 1 KiB-MTU
// datagram use it once.
constexpr size_t kStreamBytes = 256;

struct SliceTables {
  // t[k][b]: register contribution of byte b followed by k zero bytes.
  uint32_t t[8][256];
};

constexpr SliceTables MakeSliceTables() {
  SliceTables x{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (kPoly & (0u - (c & 1u)));
    x.t[0][i] = c;
  }
  for (int s = 1; s < 8; ++s) {
    for (uint32_t i = 0; i < 256; ++i) {
      const uint32_t prev = x.t[s - 1][i];
      x.t[s][i] = (prev >> 8) ^ x.t[0][prev & 0xFF];
    }
  }
  return x;
}

constexpr SliceTables kSlice = MakeSliceTables();

struct ShiftTables {
  // t[k][b]: the register after kStreamBytes zero bytes, starting from a
  // register whose only non-zero byte is byte k with value b.
  uint32_t t[4][256];
};

constexpr ShiftTables MakeShiftTables() {
  // Image of each single-bit register under "append kStreamBytes zeros".
  uint32_t basis[32] = {};
  for (int bit = 0; bit < 32; ++bit) {
    uint32_t r = 1u << bit;
    for (size_t i = 0; i < kStreamBytes; ++i) r = (r >> 8) ^ kSlice.t[0][r & 0xFF];
    basis[bit] = r;
  }
  ShiftTables x{};
  for (int k = 0; k < 4; ++k) {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t v = 0;
      for (int i = 0; i < 8; ++i) {
        if (b & (1u << i)) v ^= basis[8 * k + i];
      }
      x.t[k][b] = v;
    }
  }
  return x;
}

[[maybe_unused]] constexpr ShiftTables kShift = MakeShiftTables();

[[maybe_unused]] inline uint32_t ShiftStream(uint32_t r) {
  return kShift.t[0][r & 0xFF] ^ kShift.t[1][(r >> 8) & 0xFF] ^
         kShift.t[2][(r >> 16) & 0xFF] ^ kShift.t[3][r >> 24];
}

inline uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // little-endian host (see lib/base/bytes.h)
}

// Raw register update (no inversion) with the portable tables.
uint32_t TableUpdate(uint32_t r, const uint8_t* p, size_t n) {
  while (n >= 8) {
    const uint64_t w = LoadLe64(p) ^ r;
    r = kSlice.t[7][w & 0xFF] ^ kSlice.t[6][(w >> 8) & 0xFF] ^
        kSlice.t[5][(w >> 16) & 0xFF] ^ kSlice.t[4][(w >> 24) & 0xFF] ^
        kSlice.t[3][(w >> 32) & 0xFF] ^ kSlice.t[2][(w >> 40) & 0xFF] ^
        kSlice.t[1][(w >> 48) & 0xFF] ^ kSlice.t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) r = (r >> 8) ^ kSlice.t[0][(r ^ *p++) & 0xFF];
  return r;
}

#if defined(SHOAL_CRC32C_X86)

__attribute__((target("sse4.2"))) uint32_t HwUpdate(uint32_t r, const uint8_t* p,
                                                     size_t n) {
  uint64_t a = r;
  while (n >= 3 * kStreamBytes) {
    uint64_t b = 0;
    uint64_t c = 0;
    for (size_t i = 0; i < kStreamBytes; i += 8) {
      a = _mm_crc32_u64(a, LoadLe64(p + i));
      b = _mm_crc32_u64(b, LoadLe64(p + kStreamBytes + i));
      c = _mm_crc32_u64(c, LoadLe64(p + 2 * kStreamBytes + i));
    }
    // reg(A||B) = shift_|B|(reg(A)) ^ reg_from_zero(B), and again for C.
    a = ShiftStream(static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b);
    a = ShiftStream(static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(c);
    p += 3 * kStreamBytes;
    n -= 3 * kStreamBytes;
  }
  while (n >= 8) {
    a = _mm_crc32_u64(a, LoadLe64(p));
    p += 8;
    n -= 8;
  }
  uint32_t r32 = static_cast<uint32_t>(a);
  if (n & 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    r32 = _mm_crc32_u32(r32, w);
    p += 4;
  }
  if (n & 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    r32 = _mm_crc32_u16(r32, w);
    p += 2;
  }
  if (n & 1) r32 = _mm_crc32_u8(r32, *p);
  return r32;
}

bool DetectHw() {
  // Required before __builtin_cpu_supports when this runs as a static
  // initializer, possibly ahead of libgcc's own constructor.
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}

// Zero-initialized (false) until this TU's static initializers run, so an
// earlier caller still gets a correct answer from the table path.
const bool g_have_hw = DetectHw();

#elif defined(SHOAL_CRC32C_ARM)

uint32_t HwUpdate(uint32_t r, const uint8_t* p, size_t n) {
  uint32_t a = r;
  while (n >= 3 * kStreamBytes) {
    uint32_t b = 0;
    uint32_t c = 0;
    for (size_t i = 0; i < kStreamBytes; i += 8) {
      a = __crc32cd(a, LoadLe64(p + i));
      b = __crc32cd(b, LoadLe64(p + kStreamBytes + i));
      c = __crc32cd(c, LoadLe64(p + 2 * kStreamBytes + i));
    }
    a = ShiftStream(a) ^ b;
    a = ShiftStream(a) ^ c;
    p += 3 * kStreamBytes;
    n -= 3 * kStreamBytes;
  }
  while (n >= 8) {
    a = __crc32cd(a, LoadLe64(p));
    p += 8;
    n -= 8;
  }
  while (n-- > 0) a = __crc32cb(a, *p++);
  return a;
}

// The extension is a compile-time guarantee (-march with +crc).
constexpr bool g_have_hw = true;

#else

uint32_t HwUpdate(uint32_t r, const uint8_t* p, size_t n) { return TableUpdate(r, p, n); }
constexpr bool g_have_hw = false;

#endif

}  // namespace

uint32_t crc32c(std::span<const uint8_t> data, uint32_t seed) {
  const uint32_t r = ~seed;
  if (g_have_hw) return ~HwUpdate(r, data.data(), data.size());
  return ~TableUpdate(r, data.data(), data.size());
}

namespace internal {

uint32_t crc32c_table(std::span<const uint8_t> data, uint32_t seed) {
  return ~TableUpdate(~seed, data.data(), data.size());
}

uint32_t crc32c_hw(std::span<const uint8_t> data, uint32_t seed) {
  if (!g_have_hw) return crc32c_table(data, seed);
  return ~HwUpdate(~seed, data.data(), data.size());
}

bool crc32c_hw_available() { return g_have_hw; }

}  // namespace internal
}  // namespace shoal::wire
