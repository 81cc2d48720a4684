#!/usr/bin/env bash
# The benchmark harness: installs what it needs, starts dockerd if it is not
# running (and stops it afterwards), builds strata in release mode, then runs
# bench.py. Usage: bench/run.sh [--quick] [--only w2 w4 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages docker.io hyperfine docker-registry mmdebstrap busybox-static skopeo umoci
cargo build --release --quiet
started=""
if ! /usr/bin/docker info >/dev/null 2>&1; then
  dockerd --iptables=false --bridge=none >/tmp/strata-bench-dockerd.log 2>&1 &
  started=$!
  for _ in $(seq 1 60); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
stop() { if [ -n "$started" ]; then kill "$started" 2>/dev/null; wait "$started" 2>/dev/null || true; fi; }
trap stop EXIT
python3 bench/bench.py "$@"
