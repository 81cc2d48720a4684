#!/usr/bin/env bash
# Runs strata's whole test suite (unit and integration tests), installing
# the tools the tests use first. Usage: scripts/test.sh [cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages "${STRATA_PACKAGES[@]}"
cargo test --workspace "$@"
