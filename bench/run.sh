#!/usr/bin/env bash
# The benchmark harness: installs what it needs, starts dockerd if it is not
# running (and stops it afterwards), builds strata in release mode, then runs
# bench.py. Usage: bench/run.sh [--journaled-fs] [--quick] [--only w2 w4 ...]
#
# --journaled-fs: everything both tools write (strata's stores, the build
# contexts, dockerd's data root) goes to a fresh ext4 filesystem with a
# journal, made in a sparse file and mounted for this run, and removed
# afterwards; dockerd is started on it, so none may be running.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
fresh_fs=""
args=()
for a in "$@"; do
  if [ "$a" = "--journaled-fs" ]; then fresh_fs=1; else args+=("$a"); fi
done
ensure_packages docker.io hyperfine docker-registry mmdebstrap busybox-static skopeo umoci e2fsprogs
cargo build --release --quiet
started=""
mnt=""
image=""
stop() {
  if [ -n "$started" ]; then kill "$started" 2>/dev/null; wait "$started" 2>/dev/null || true; fi
  if [ -n "$mnt" ]; then umount "$mnt" 2>/dev/null || umount -l "$mnt"; rmdir "$mnt"; fi
  if [ -n "$image" ]; then rm -f "$image"; fi
}
trap stop EXIT
dockerd_args=(--iptables=false --bridge=none)
if [ -n "$fresh_fs" ]; then
  if /usr/bin/docker info >/dev/null 2>&1; then
    echo "bench/run.sh --journaled-fs starts its own dockerd on the new filesystem: stop the running one first" >&2
    exit 2
  fi
  image=$(mktemp /var/tmp/strata-bench-fs.XXXXXX)
  truncate -s 64G "$image"
  mkfs.ext4 -q -F "$image"
  mnt=$(mktemp -d /var/tmp/strata-bench-mnt.XXXXXX)
  mount -o loop "$image" "$mnt"
  mkdir "$mnt/tmp" "$mnt/docker"
  export TMPDIR=$mnt/tmp
  dockerd_args+=(--data-root "$mnt/docker" --exec-root /run/strata-bench-docker --pidfile /run/strata-bench-docker.pid)
  # A journaled ext4 reuses freed inodes at once: no settling after a wipe.
  export BENCH_SETTLE_S=${BENCH_SETTLE_S:-0}
  export BENCH_FILESYSTEM="fresh ext4 with a journal (loop device)"
fi
if ! /usr/bin/docker info >/dev/null 2>&1; then
  dockerd "${dockerd_args[@]}" >/tmp/strata-bench-dockerd.log 2>&1 &
  started=$!
  for _ in $(seq 1 60); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
python3 bench/bench.py "${args[@]}"
