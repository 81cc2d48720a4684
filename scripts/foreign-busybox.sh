#!/usr/bin/env bash
# Makes (once) a busybox root filesystem tarball for another architecture
# from Debian's busybox-static .deb of that architecture, found and pinned
# through `strata lock` against the host's apt mirror and checked against
# its SHA256. The multi-platform tests build images for it under QEMU.
# Usage: scripts/foreign-busybox.sh OUT.tar ARCH   (ARCH: Debian's, e.g. arm64)
set -euo pipefail
out=$1
arch=$2
[ -f "$out" ] && exit 0
cd "$(dirname "$0")/.."
echo "== making an $arch busybox for the multi-platform tests in $out (once)" >&2
cargo build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'debian("bookworm", ["busybox-static"], #{ arch: "%s" });\nimage("x", scratch());\n' "$arch" >"$work/strata.rhai"
echo "resolving busybox-static for $arch" >&2
STRATA_HOME="$work/store" target/debug/strata lock -f "$work/strata.rhai" >/dev/null
python3 - "$work/strata.lock" "$work/busybox.deb" <<'PY'
import hashlib, json, sys, urllib.request
lock, dest = sys.argv[1], sys.argv[2]
entry = next(iter(json.load(open(lock))["debian"].values()))
pkg = next(p for p in entry["packages"] if p["name"] == "busybox-static")
data = urllib.request.urlopen(f"{entry['mirror']}/{pkg['filename']}", timeout=120).read()
if hashlib.sha256(data).hexdigest() != pkg["sha256"]:
    sys.exit(f"{pkg['filename']}: SHA256 mismatch")
open(dest, "wb").write(data)
PY
dpkg-deb -x "$work/busybox.deb" "$work/root"
mkdir -p "$(dirname "$out")"
bash scripts/make-busybox-rootfs.sh "$out.tmp" "$work/root/bin/busybox"
mv "$out.tmp" "$out"
echo "made $out" >&2
