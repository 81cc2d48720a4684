#!/usr/bin/env bash
# Remote execution benchmark: W4 (four parallel 2 s steps) and the
# monorepo's cold build, locally and through a BuildGrid service with one
# and with two `strata worker`s, all on this machine.
#
# Usage: bench/remote.sh [--runs N] [--services N] [--files N]
#
# Every build starts from an empty client store, and every run changes the
# steps' commands (a nonce), so the service's ActionCache never answers:
# what is measured is remote execution, plus the uploads it needs (the
# `bytes sent` column: only blobs the CAS lacks are sent). The workers keep
# their stores between runs, as long-lived workers do. Needs what
# scripts/test.sh installs (BuildGrid, PostgreSQL, busybox-static).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

runs=3 services=6 files=1500
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --services) services=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    *) echo "usage: bench/remote.sh [--runs N] [--services N] [--files N]" >&2; exit 2 ;;
  esac
done

ensure_packages "${STRATA_PACKAGES[@]}"
ensure_buildgrid
cargo build --release --quiet
strata=$PWD/target/release/strata

scratch=$(mktemp -d /var/tmp/strata-remote-bench.XXXXXX)
chown postgres: "$scratch"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 600); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# PostgreSQL (BuildGrid's scheduler refuses anything else), then BuildGrid.
pg_port=$(free_port)
setpriv --reuid postgres --regid postgres --init-groups \
  "$STRATA_TEST_PG_BIN/initdb" -A trust -U bgd -E UTF8 --no-sync -D "$scratch/pg" >/dev/null
setpriv --reuid postgres --regid postgres --init-groups \
  "$STRATA_TEST_PG_BIN/postgres" -D "$scratch/pg" -k "$scratch" -p "$pg_port" \
  -c listen_addresses=127.0.0.1 -c fsync=off 2>"$scratch/postgres.log" &
pids+=($!)
wait_port "$pg_port"
db=postgresql+psycopg2://bgd@127.0.0.1:$pg_port/postgres
"$STRATA_TEST_BGD" migrate apply "$db" >/dev/null
port=$(free_port)
sed -e "s|@ADDRESS@|127.0.0.1:$port|" -e "s|@DATABASE@|$db|" -e "s|@DIR@|$scratch|" \
  -e "s|@ACL@|$PWD/scripts/buildgrid-acl.yml|" \
  scripts/buildgrid.yml >"$scratch/bgd.yml"
"$STRATA_TEST_BGD" server start "$scratch/bgd.yml" >"$scratch/bgd.log" 2>&1 &
pids+=($!)
wait_port "$port"
url=grpc://127.0.0.1:$port

worker_pids=() generation=0
start_workers() { # N (fresh bot names each time: a name's old session may linger)
  generation=$((generation + 1))
  for pid in "${worker_pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  worker_pids=()
  for i in $(seq "$1"); do
    "$strata" --store "$scratch/worker$i" worker --remote "$url" --bot-id "bench-$generation-w$i" \
      2>"$scratch/worker$generation-$i.log" &
    worker_pids+=($!); pids+=($!)
  done
  for i in $(seq "$1"); do
    until grep -q serving "$scratch/worker$generation-$i.log" 2>/dev/null; do sleep 0.1; done
  done
}

# The projects: W4 and the monorepo, each RUN command starting with a nonce.
scripts/make-busybox-rootfs.sh "$scratch/busybox.tar" >/dev/null
mkdir -p "$scratch/w4"
cp "$scratch/busybox.tar" "$scratch/w4/"
sed 's/run(`sleep/run(`: nonce-0 \&\& sleep/' bench/workloads/w4-parallel-stages/strata.rhai >"$scratch/w4/strata.rhai"
grep -q nonce-0 "$scratch/w4/strata.rhai"
python3 examples/monorepo/generate.py "$scratch/mono" --services "$services" --files "$files" >/dev/null
cp "$scratch/busybox.tar" "$scratch/mono/"
sed -i 's/\.run("find/.run(": nonce-0 \&\& find/' "$scratch/mono/service.rhai"
grep -q nonce-0 "$scratch/mono/service.rhai"

nonce=0
measure() { # LABEL DIR TARGET [ARGS...]
  local label=$1 dir=$2 target=$3; shift 3
  local args=()
  [ "$target" = all ] && args=(--arg "services=$services")
  local times=() line
  for _ in $(seq "$runs"); do
    nonce=$((nonce + 1))
    sed -i "s/nonce-[0-9]*/nonce-$nonce/" "$dir"/*.rhai
    rm -rf "$scratch/client"
    local start end
    start=$(date +%s.%N)
    (cd "$dir" && "$strata" --store "$scratch/client" build "$target" "${args[@]}" "$@" \
      >/dev/null 2>"$scratch/build.log") || { cat "$scratch/build.log" >&2; exit 1; }
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
    line=$(grep '^remote executor' "$scratch/build.log" | sed 's/^remote executor [^:]*: //' || true)
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  printf '%-28s median %6.2f s  (runs: %s)  %s\n' "$label" "$median" "${times[*]}" "${line:-}"
}

echo "== remote execution: $(nproc) cores, $runs runs each, monorepo $services x $files files"
for workload in w4 mono; do
  if [ $workload = w4 ]; then dir=$scratch/w4 target=w4; else dir=$scratch/mono target=all; fi
  measure "$workload local" "$dir" "$target"
  start_workers 1
  measure "$workload 1 worker" "$dir" "$target" --remote-executor "$url"
  start_workers 2
  measure "$workload 2 workers" "$dir" "$target" --remote-executor "$url"
done
