// Layering rules for the I/O-free protocol core (lib/*):
//   * no I/O or threading headers: rte_*, liburing*, sys/socket*, netinet/*,
//     <thread>;
//   * no clock reads: steady_clock::now, system_clock::now, clock_gettime,
//     rte_rdtsc. The core takes `now` from its caller. Files ending in
//     _test.cc are exempt from the clock rule only.
// The test runs with the project source root as its working directory.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace {

namespace fs = std::filesystem;

constexpr const char* kCoreModules[] = {"base", "wire", "pds", "ses", "pool", "cc", "lb"};
constexpr const char* kForbiddenHeaderPrefixes[] = {"rte_", "liburing", "sys/socket", "netinet/"};
constexpr const char* kForbiddenHeadersExact[] = {"thread"};
constexpr const char* kForbiddenClockCalls[] = {"steady_clock::now", "system_clock::now",
                                                "clock_gettime", "rte_rdtsc"};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Returns `text` with comments replaced by spaces (newlines kept, so line
// numbers survive). If `blank_strings`, the contents of string and character
// literals are blanked too. Raw strings are not special-cased; the core has
// none worth worrying about.
std::string strip(const std::string& text, bool blank_strings) {
  std::string out = text;
  enum { kCode, kLine, kBlock, kStr, kChr } st = kCode;
  for (size_t i = 0; i < out.size(); ++i) {
    const char c = text[i];
    const char n = i + 1 < text.size() ? text[i + 1] : '\0';
    switch (st) {
      case kCode:
        if (c == '/' && n == '/') {
          st = kLine;
          out[i] = ' ';
        } else if (c == '/' && n == '*') {
          st = kBlock;
          out[i] = out[i + 1] = ' ';
          ++i;
        } else if (c == '"') {
          st = kStr;
        } else if (c == '\'') {
          st = kChr;
        }
        break;
      case kLine:
        if (c == '\n') st = kCode; else out[i] = ' ';
        break;
      case kBlock:
        if (c == '*' && n == '/') {
          st = kCode;
          out[i] = out[i + 1] = ' ';
          ++i;
        } else if (c != '\n') {
          out[i] = ' ';
        }
        break;
      case kStr:
      case kChr: {
        const char close = st == kStr ? '"' : '\'';
        if (c == '\\') {
          if (blank_strings) out[i] = ' ';
          if (i + 1 < out.size() && blank_strings && n != '\n') out[i + 1] = ' ';
          ++i;
        } else if (c == close || c == '\n') {
          st = kCode;
        } else if (blank_strings) {
          out[i] = ' ';
        }
        break;
      }
    }
  }
  return out;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Scans one file's text; each violation is "path:line: what".
std::vector<std::string> scan_text(const std::string& path, const std::string& text) {
  std::vector<std::string> violations;
  static const std::regex kInclude(R"(^\s*#\s*include\s*[<"]([^>"]+)[>"])");
  const bool clock_exempt = ends_with(path, "_test.cc");

  const std::vector<std::string> code = split_lines(strip(text, /*blank_strings=*/false));
  for (size_t i = 0; i < code.size(); ++i) {
    std::smatch m;
    if (!std::regex_search(code[i], m, kInclude)) continue;
    const std::string header = m[1];
    bool bad = false;
    for (const char* p : kForbiddenHeaderPrefixes) bad |= header.rfind(p, 0) == 0;
    for (const char* h : kForbiddenHeadersExact) bad |= header == h;
    if (bad)
      violations.push_back(path + ":" + std::to_string(i + 1) + ": includes forbidden header <" +
                           header + "> (the core does no I/O and starts no threads)");
  }

  if (!clock_exempt) {
    const std::vector<std::string> bare = split_lines(strip(text, /*blank_strings=*/true));
    for (size_t i = 0; i < bare.size(); ++i) {
      for (const char* call : kForbiddenClockCalls) {
        if (bare[i].find(call) != std::string::npos)
          violations.push_back(path + ":" + std::to_string(i + 1) + ": calls " + call +
                               " (the core takes `now` from its caller)");
      }
    }
  }
  return violations;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "  " + s + "\n";
  return out;
}

// --- The scanner itself, on synthetic input.

TEST(LayeringScannerTest, FlagsForbiddenIncludesWithLine) {
  const std::string text =
      "#include <cstdint>\n"              // 1 ok
      "#include <rte_mbuf.h>\n"           // 2
      "#include \"liburing.h\"\n"         // 3
      "  #  include <sys/socket.h>\n"     // 4
      "#include <netinet/in.h>\n"         // 5
      "#include <thread>\n"               // 6
      "#include <threads.h>\n"            // 7 ok: not <thread>
      "#include \"lib/base/rte_shim.h\"\n"  // 8 ok: rte_ is not the start
      "#include <sys/types.h>\n";         // 9 ok
  const auto v = scan_text("lib/x/a.cc", text);
  ASSERT_EQ(v.size(), 5u) << join(v);
  EXPECT_EQ(v[0].rfind("lib/x/a.cc:2: ", 0), 0u) << v[0];
  EXPECT_NE(v[0].find("rte_mbuf.h"), std::string::npos);
  EXPECT_EQ(v[1].rfind("lib/x/a.cc:3: ", 0), 0u) << v[1];
  EXPECT_EQ(v[2].rfind("lib/x/a.cc:4: ", 0), 0u) << v[2];
  EXPECT_EQ(v[3].rfind("lib/x/a.cc:5: ", 0), 0u) << v[3];
  EXPECT_EQ(v[4].rfind("lib/x/a.cc:6: ", 0), 0u) << v[4];
}

TEST(LayeringScannerTest, FlagsClockCallsOutsideTests) {
  const std::string text =
      "int64_t f() {\n"
      "  auto t = std::chrono::steady_clock::now();\n"   // 2
      "  auto u = std::chrono::system_clock::now();\n"   // 3
      "  timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);\n"  // 4
      "  return rte_rdtsc();\n"                            // 5
      "}\n";
  const auto v = scan_text("lib/pds/x.cc", text);
  ASSERT_EQ(v.size(), 4u) << join(v);
  EXPECT_EQ(v[0].rfind("lib/pds/x.cc:2: ", 0), 0u) << v[0];
  EXPECT_EQ(v[3].rfind("lib/pds/x.cc:5: ", 0), 0u) << v[3];
  EXPECT_EQ(scan_text("lib/pds/x.h", text).size(), 4u);
  // Test files may read clocks...
  EXPECT_TRUE(scan_text("lib/pds/x_test.cc", text).empty());
  // ...but not include I/O headers.
  EXPECT_EQ(scan_text("lib/pds/x_test.cc", "#include <rte_ethdev.h>\n").size(), 1u);
}

TEST(LayeringScannerTest, IgnoresCommentsAndStrings) {
  const std::string text =
      "// never call clock_gettime or steady_clock::now here\n"
      "/* #include <thread>\n"
      "   rte_rdtsc() */\n"
      "// #include <rte_mbuf.h>\n"
      "const char* k = \"clock_gettime is banned\";\n"
      "int x = 1; /* steady_clock::now */ int y = 2;\n";
  const auto v = scan_text("lib/base/x.h", text);
  EXPECT_TRUE(v.empty()) << join(v);
  // Code after a closed block comment on the same line is still scanned.
  EXPECT_EQ(scan_text("lib/base/x.h", "/* c */ auto t = rte_rdtsc();\n").size(), 1u);
}

// --- The real tree.

TEST(LayeringTest, CoreHasNoIoHeadersOrClockReads) {
  ASSERT_TRUE(fs::is_directory("lib/base"))
      << "lib/base not found from " << fs::current_path()
      << "; run this test from the project source root";
  std::vector<fs::path> files;
  for (const char* m : kCoreModules) {
    const fs::path dir = fs::path("lib") / m;
    if (!fs::is_directory(dir)) continue;  // module not written yet
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (!e.is_regular_file()) continue;
      const std::string ext = e.path().extension().string();
      if (ext == ".h" || ext == ".cc") files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty()) << "no sources found under lib/";

  std::vector<std::string> violations;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    ASSERT_TRUE(in) << "cannot read " << f;
    std::stringstream ss;
    ss << in.rdbuf();
    const auto v = scan_text(f.generic_string(), ss.str());
    violations.insert(violations.end(), v.begin(), v.end());
  }
  EXPECT_TRUE(violations.empty()) << violations.size() << " layering violation(s):\n"
                                  << join(violations);
}

}  // namespace
