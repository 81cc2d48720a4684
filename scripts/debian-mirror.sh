#!/usr/bin/env bash
# Makes (once) a partial Debian mirror for the tests, so that they never
# leave 127.0.0.1: the real, signed InRelease of a suite, its Packages index,
# and the .debs of each `debian(SUITE, [PACKAGES])` request as strata
# resolves it against the host's apt mirror. The tests serve it on loopback.
# Usage: scripts/debian-mirror.sh DIR SUITE "PKG PKG" "PKG" ...   (one request per argument;
# "arm64: PKG…" asks for another architecture, "arm64:" alone for its base set)
set -euo pipefail
dir=$1
suite=$2
shift 2
requests=("$@")
# (v3: made again when what debian() reads changed: apt's choices, then the overlays)
stamp="$dir/.complete-v3-$suite-$(printf '%s-' "${requests[@]}" | tr ' ' '+')"
[ -f "$stamp" ] && exit 0
cd "$(dirname "$0")/.."
echo "== making the tests' partial Debian mirror in $dir (once; later runs reuse it)" >&2
cargo build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for request in "${requests[@]}"; do
  opts=""
  case "$request" in
    *:*) opts=", #{ arch: \"${request%%:*}\" }"; request=${request#*:} ;;
  esac
  list=""
  [ -n "${request// /}" ] && list=$(printf '"%s", ' $request)
  echo "debian(\"$suite\", [${list%, }]$opts);" >>"$work/strata.rhai"
done
echo 'image("x", scratch());' >>"$work/strata.rhai"
echo "resolving ${#requests[@]} package sets against the host's apt mirror" >&2
STRATA_HOME="$work/store" target/debug/strata lock -f "$work/strata.rhai" >/dev/null
python3 - "$dir" "$work/strata.lock" <<'PY'
import hashlib, json, os, sys, urllib.request
out, lock = sys.argv[1], sys.argv[2]
entries = list(json.load(open(lock))["debian"].values())

def get(mirror, rel, sha256=None):
    dest = os.path.join(out, rel)
    if sha256 and os.path.exists(dest) and hashlib.sha256(open(dest, "rb").read()).hexdigest() == sha256:
        return open(dest, "rb").read()
    data = urllib.request.urlopen(f"{mirror}/{rel}", timeout=120).read()
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        sys.exit(f"{rel}: SHA256 mismatch")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest + ".tmp", "wb") as f:
        f.write(data)
    os.replace(dest + ".tmp", dest)
    return data

# Every suite the locks read (the suite and its -updates and -security
# overlays), each from its own mirror, laid out in one tree: the tests
# serve it as the mirror of all three.
suites = {}
for e in entries:
    suites.setdefault(e["suite"], [e["mirror"], set()])[1].add(e["arch"])
    for suite, mirror in e.get("overlays", {}).items():
        suites.setdefault(suite, [mirror, set()])[1].add(e["arch"])
for suite, (mirror, arches) in sorted(suites.items()):
    release = get(mirror, f"dists/{suite}/InRelease").decode()
    for line in release.split("SHA256:", 1)[1].splitlines()[1:]:
        if not line.startswith(" "):
            break
        sha, _, path = line.split()
        if path in [f"main/binary-{a}/Packages.xz" for a in arches]:
            get(mirror, f"dists/{suite}/{path}", sha)
files = {}
for e in entries:
    for p in e["packages"]:
        mirror = e.get("overlays", {}).get(p.get("suite"), e["mirror"])
        files[p["filename"]] = (mirror, p["sha256"])
for n, (filename, (mirror, sha256)) in enumerate(sorted(files.items()), 1):
    get(mirror, filename, sha256)
    if n % 50 == 0 or n == len(files):
        print(f"  {n} / {len(files)} packages", file=sys.stderr, flush=True)
print(f"mirror in {out}: {len(files)} packages of {', '.join(sorted(suites))}")
PY
touch "$stamp"
