#!/usr/bin/env bash
# Installs exactly the Debian 12 packages Shoal's build, tests and benchmarks
# need. Idempotent: packages already present are not fetched again, and
# apt-get update runs only when something is missing.
set -euo pipefail

packages=(
  meson ninja-build g++ pkg-config        # build
  libabsl-dev                              # Status, containers, formatting
  liburing-dev                             # drivers/udp (io_uring)
  libgtest-dev libgmock-dev                # tests
  libbenchmark-dev                         # bench/micro
  valgrind                                 # callgrind instruction counts
  clang                                    # libFuzzer targets (tests/fuzz)
  python3                                  # result tables and plots
  libdpdk-dev dpdk dpdk-dev                # drivers/dpdk (DPDK 22.11); dpdk-dev has dpdk-testpmd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
