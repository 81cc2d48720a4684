#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while on the committed corpus (new
# inputs that reach new code are added to it; crashes land in
# fuzz/artifacts/TARGET/). Usage: scripts/fuzz.sh TARGET [SECONDS]
# Targets: unpack docker_archive oci_layout debian_control recipe ssh_agent deb manifest
# The toolchain is stable, so the build uses no sanitizer (`-s none`):
# libFuzzer's coverage and Rust's own checks (panics, overflow in debug
# assertions, which -O keeps on here) are what find bugs.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
seconds=${2:-600}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
mkdir -p "fuzz/corpus/$target"
cd fuzz
exec cargo fuzz run -s none -O --debug-assertions "$target" "corpus/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -max_len=1048576 -print_final_stats=1
