#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, private-bus D-Bus and end-to-end).
# TAU_SANITIZE=1 runs the same suite in an AddressSanitizer + UBSan build (build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ "${TAU_SANITIZE:-0}" = 1 ]; then
  export TAU_BUILD_DIR=${TAU_BUILD_DIR:-build-asan}
  scripts/build.sh -DTAU_SANITIZE=ON
else
  export TAU_BUILD_DIR=${TAU_BUILD_DIR:-build}
  scripts/build.sh -DTAU_SANITIZE=OFF
fi
cd "$TAU_BUILD_DIR"
ctest --output-on-failure -j"$(nproc)" --timeout 300
