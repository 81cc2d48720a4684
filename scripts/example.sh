#!/usr/bin/env bash
# Builds strata and the examples end to end on a fresh machine, then checks
# the images with skopeo and umoci. Usage: scripts/example.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
echo "== checking the Debian packages the examples use"
ensure_packages "${STRATA_PACKAGES[@]}"

echo "== building strata (cargo build --release; a few minutes the first time)"
cargo build --release
strata=$PWD/target/release/strata
echo "strata is $strata (or: cargo install --path . puts it in ~/.cargo/bin)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export STRATA_HOME="$work/store"

echo "== examples/hello: a scratch image and an artifact"
[ -f examples/hello/busybox.tar ] || scripts/make-busybox-rootfs.sh examples/hello/busybox.tar
"$strata" build -f examples/hello/strata.rhai --out-dir "$work/out" \
  --output "oci:$work/hello-oci" --output "docker-archive:$work/hello.tar"
skopeo inspect --format 'skopeo sees {{.Digest}} with {{len .Layers}} layers' "oci:$work/hello-oci:example/hello:latest"
skopeo inspect --format 'docker-archive: {{.Digest}}' "docker-archive:$work/hello.tar"
umoci unpack --image "$work/hello-oci:example/hello:latest" "$work/bundle" >/dev/null
(cd "$work/bundle/rootfs" && find . -printf '%M %U:%G %p\n' | sort -k3)
echo "artifact: $(cd "$work/out/www" && find . -type f | sort | tr '\n' ' ')"

echo "== examples/busybox: a busybox base from Debian's busybox-static"
[ -f examples/busybox/busybox.tar ] || scripts/make-busybox-rootfs.sh examples/busybox/busybox.tar
"$strata" build -f examples/busybox/strata.rhai --output "oci:$work/bb-oci"
umoci unpack --image "$work/bb-oci:example/busybox-hello:latest" "$work/bb" >/dev/null
chroot "$work/bb/rootfs" /usr/local/bin/hello

echo "== a second, fully cached build"
time "$strata" build -f examples/hello/strata.rhai --out-dir "$work/out" --progress plain

"$strata" images
"$strata" history example/hello:latest

echo "== examples/nginx: the seed's nginx image on a native Debian base (the host's apt mirror)"
"$strata" build -f examples/nginx/strata.rhai nginx nginx-check
"$strata" history example/nginx:latest
