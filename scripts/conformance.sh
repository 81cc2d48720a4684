#!/usr/bin/env bash
# The conformance suite against BuildKit: installs what it needs, starts
# dockerd when none answers (and stops it afterwards), builds strata, then
# builds every case of tests/conformance/cases.py with both and compares the
# images. Usage: scripts/conformance.sh [--fast] [--only NAME...] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages docker.io docker-registry busybox-static skopeo umoci python3 openssh-client
cargo build --quiet
# The real-world cases' Debian bases and their apt-get come from it.
ensure_debian_mirror
started=""
if ! /usr/bin/docker info >/dev/null 2>&1; then
  dockerd --iptables=false --bridge=none >/tmp/strata-conformance-dockerd.log 2>&1 &
  started=$!
  for _ in $(seq 1 60); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
stop() {
  if [ -n "$started" ]; then
    # A daemon of our own: its build cache goes with it.
    /usr/bin/docker builder prune -af >/dev/null 2>&1 || true
    kill "$started" 2>/dev/null
    wait "$started" 2>/dev/null || true
  fi
}
trap stop EXIT
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
python3 tests/conformance/run.py "$target_dir/debug/strata" "$@"
