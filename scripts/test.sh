#!/usr/bin/env bash
# Runs strata's whole test suite (unit and integration tests), installing
# the tools the tests use first. Usage: scripts/test.sh [cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
echo "== checking the Debian packages the tests use" >&2
ensure_packages "${STRATA_PACKAGES[@]}"
# The rootless tests run strata as this ordinary user.
export STRATA_TEST_ROOTLESS_USER=${STRATA_TEST_ROOTLESS_USER:-strata-test}
ensure_rootless_user "$STRATA_TEST_ROOTLESS_USER"
# The Debian tests serve a partial mirror on 127.0.0.1.
ensure_debian_mirror
# The multi-platform tests build arm64 images under QEMU from this busybox.
scripts/foreign-busybox.sh .cache/busybox-arm64.tar arm64
export STRATA_TEST_BUSYBOX_ARM64=$PWD/.cache/busybox-arm64.tar
# The SBOM tests check documents with pyspdxtools.
ensure_spdx_tools
# The remote execution tests start a BuildGrid server.
ensure_buildgrid
echo "== building and running the tests (cargo test --workspace; the first build takes a few minutes)" >&2
cargo test --workspace "$@"
