# The two commands a new machine needs: `make run` and `make test`.
BUILD ?= build
MESON_FLAGS ?=

.PHONY: all deps build run test test-slow tsan bench fuzz clean

all: build

deps:
	./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_FLAGS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The main demo: a short pair-chaos run on the simulated link.
run: build
	./$(BUILD)/apps/shoal-sim/shoal-sim --scenario pair-chaos --messages 20000 \
	  --msg-size 4096 --loss 0.02 --reorder 0.1 --dup 0.01 --corrupt 0.001 --seed 7

test: build
	meson test -C $(BUILD) --suite fast --print-errorlogs --num-processes 2

test-slow: build
	meson test -C $(BUILD) --suite slow --print-errorlogs

# ThreadSanitizer over the code that runs threads: the engine threads and
# the C API in threaded mode (not part of `make test`: a second full build).
# The suite runs on sim:// only: over udp:// the order between a target
# placing bytes and the initiator's completion goes through the kernel
# (an ACK on a socket), which ThreadSanitizer cannot see, so it reports
# races that are not there.
tsan: deps
	test -f build-tsan/build.ninja || meson setup build-tsan -Db_sanitize=thread -Dbenchmarks=disabled
	ninja -C build-tsan tests/conformance/api_conformance engine_test loopback_test spsc_ring_test udp_test
	TSAN_OPTIONS=halt_on_error=1 ./build-tsan/engine_test
	TSAN_OPTIONS=halt_on_error=1 ./build-tsan/loopback_test
	TSAN_OPTIONS=halt_on_error=1 ./build-tsan/spsc_ring_test
	TSAN_OPTIONS=halt_on_error=1 ./build-tsan/udp_test
	TSAN_OPTIONS=halt_on_error=1 SHOAL_CONFORMANCE_MODE=threaded ./build-tsan/tests/conformance/api_conformance

bench: build
	./bench/micro/run.sh $(BUILD)

fuzz: deps
	./tests/fuzz/build.sh

clean:
	rm -rf $(BUILD)
