#!/usr/bin/env bash
# Builds the lib/wire libFuzzer target with ASan+UBSan and runs it briefly on
# a scratch copy of the seed corpus (the checked-in corpus stays untouched;
# new interesting inputs land in tests/fuzz/out/corpus).
#
#   tests/fuzz/build.sh                  # build + fuzz for 30 s
#   FUZZ_SECONDS=3600 tests/fuzz/build.sh
#   FUZZ_JOBS=4 FUZZ_SECONDS=600 tests/fuzz/build.sh   # parallel workers
#
# Needs clang with libFuzzer (Debian: clang + libclang-rt-dev / llvm's
# compiler-rt). `meson test` replays the corpus without clang
# (tests/fuzz/corpus_replay_test.cc).
set -euo pipefail
cd "$(dirname "$0")/../.."

CXX=${FUZZ_CXX:-clang++}
OUT=tests/fuzz/out
SECONDS_TO_RUN=${FUZZ_SECONDS:-30}
JOBS=${FUZZ_JOBS:-1}
mkdir -p "$OUT"

echo "building $OUT/wire_fuzz with $CXX"
"$CXX" -std=c++20 -O1 -g -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I. -Iinclude \
  lib/wire/wire.cc lib/wire/crc32c.cc tests/fuzz/wire_fuzz.cc \
  -o "$OUT/wire_fuzz"

rm -rf "$OUT/corpus"
mkdir -p "$OUT/corpus" "$OUT/artifacts"
cp tests/fuzz/corpus/* "$OUT/corpus/"

echo "fuzzing for ${SECONDS_TO_RUN}s (crashes go to $OUT/artifacts/)"
PAR=()
# With -jobs libFuzzer writes one fuzz-N.log per job into the working
# directory, hence the cd into $OUT.
if [ "$JOBS" -gt 1 ]; then PAR=(-jobs="$JOBS" -workers="$JOBS"); fi
(cd "$OUT" && ./wire_fuzz -max_total_time="$SECONDS_TO_RUN" -max_len=9216 \
  -print_final_stats=1 -artifact_prefix=artifacts/ "${PAR[@]}" corpus)

cat <<MSG
done. To fuzz longer:  FUZZ_SECONDS=3600 $0
To replay a crash:     $OUT/wire_fuzz $OUT/artifacts/crash-...
To keep new seeds:     copy small, distinct files from $OUT/corpus into tests/fuzz/corpus
MSG
