// Replays the wire fuzz corpus through the libFuzzer entry point on every
// `meson test` run, so the fuzz target's properties are checked in CI without
// clang or libFuzzer. Also feeds seeded random mutations of the corpus
// (half of them resealed with a correct CRC so they get past the checksum).
// tests/fuzz/build.sh runs the real coverage-guided fuzzer.

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lib/base/rng.h"
#include "lib/wire/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// Tests run with the project source root as working directory.
constexpr const char* kCorpusDir = "tests/fuzz/corpus";
constexpr int kMutations = 10000;

std::vector<std::vector<uint8_t>> LoadCorpus() {
  std::vector<std::vector<uint8_t>> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kCorpusDir, ec)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream f(entry.path(), std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  return out;
}

TEST(WireCorpusReplay, CorpusFiles) {
  const auto corpus = LoadCorpus();
  ASSERT_FALSE(corpus.empty()) << "no seed files in " << kCorpusDir
                               << " (run from the project source root)";
  for (const auto& input : corpus) {
    EXPECT_EQ(LLVMFuzzerTestOneInput(input.data(), input.size()), 0);
  }
  // The corpus is meant to hold at least one valid datagram of each kind;
  // make sure some really do parse, or the seeds have rotted.
  int ok = 0;
  for (const auto& input : corpus) {
    shoal::wire::Packet pkt;
    ok += shoal::wire::parse_datagram(input, pkt) == shoal::wire::WireError::kOk;
  }
  EXPECT_GE(ok, 10);
}

TEST(WireCorpusReplay, SeededMutations) {
  const auto corpus = LoadCorpus();
  ASSERT_FALSE(corpus.empty()) << "no seed files in " << kCorpusDir;
  shoal::Rng rng(0x5eed);
  for (int i = 0; i < kMutations; ++i) {
    std::vector<uint8_t> b = corpus[rng.next_u64() % corpus.size()];
    const int edits = 1 + static_cast<int>(rng.next_u64() % 4);
    for (int e = 0; e < edits; ++e) {
      const uint64_t r = rng.next_u64();
      switch (r % 5) {
        case 0:  // flip a bit
          if (!b.empty()) b[(r >> 8) % b.size()] ^= static_cast<uint8_t>(1u << ((r >> 3) % 8));
          break;
        case 1:  // overwrite a byte
          if (!b.empty()) b[(r >> 8) % b.size()] = static_cast<uint8_t>(r >> 40);
          break;
        case 2:  // truncate
          b.resize(b.empty() ? 0 : (r >> 8) % b.size());
          break;
        case 3:  // insert a byte
          b.insert(b.begin() + static_cast<long>((r >> 8) % (b.size() + 1)),
                   static_cast<uint8_t>(r >> 40));
          break;
        case 4:  // append random bytes
          for (uint64_t n = (r >> 8) % 16; n > 0; --n) b.push_back(static_cast<uint8_t>(rng.next_u64()));
          break;
      }
    }
    if ((rng.next_u64() & 1) && b.size() >= shoal::wire::kTrailerSize) {
      shoal::wire::seal(b, b.size() - shoal::wire::kTrailerSize);
    }
    ASSERT_EQ(LLVMFuzzerTestOneInput(b.data(), b.size()), 0) << "mutation " << i;
  }
}

}  // namespace
