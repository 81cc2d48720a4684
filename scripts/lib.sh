# Shared shell helpers for strata's scripts.

# ensure_packages PKG...: installs the Debian packages that are missing.
ensure_packages() {
  local need=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${#need[@]} Debian packages: ${need[*]}" >&2
  $sudo apt-get update -qq
  # One line per download and per package set up; apt's status is kept.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}" \
    > >(grep --line-buffered -E '^(Get|Setting up)' >&2)
}

# The packages strata's tests and examples use.
STRATA_PACKAGES=(busybox-static openssl gcc libc6-dev skopeo umoci docker-registry apache2-utils procps python3 gpgv debian-archive-keyring uidmap openssh-client qemu-user-static python3-venv podman runc postgresql)

# ensure_debian_mirror: the partial Debian mirror the tests and the
# conformance suite serve on 127.0.0.1 (made once from the host's apt
# mirror, the only download either needs); exports its directory as
# STRATA_TEST_DEBIAN_MIRROR.
ensure_debian_mirror() {
  export STRATA_TEST_DEBIAN_MIRROR=$PWD/.cache/debian-mirror
  scripts/debian-mirror.sh "$STRATA_TEST_DEBIAN_MIRROR" bookworm \
    "nginx" "ca-certificates tzdata" "python3 python3-venv" "cargo" "nodejs npm" \
    "gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross" "arm64:"
}

# ensure_spdx_tools: pyspdxtools (the spdx-tools package) and jsonschema in
# a virtualenv under .cache, which the attestation tests validate SBOMs and
# provenance with; exports the virtualenv's bin directory as
# STRATA_TEST_ATTEST_TOOLS.
ensure_spdx_tools() {
  local venv=$PWD/.cache/attest-tools
  if [ ! -x "$venv/bin/pyspdxtools" ] || [ ! -x "$venv/bin/jsonschema" ]; then
    echo "installing spdx-tools and jsonschema into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet spdx-tools jsonschema
  fi
  export STRATA_TEST_ATTEST_TOOLS=$venv/bin
}

# ensure_buildgrid: BuildGrid (a Remote Execution API service with the
# Remote Workers API) and its PostgreSQL driver in a virtualenv under
# .cache, which the remote execution tests start on 127.0.0.1; exports its
# `bgd` as STRATA_TEST_BGD and the directory of PostgreSQL's initdb and
# postgres (its scheduler's database) as STRATA_TEST_PG_BIN.
ensure_buildgrid() {
  local venv=$PWD/.cache/buildgrid
  if [ ! -e "$venv/.installed-0.4.4" ]; then
    echo "installing BuildGrid into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "buildgrid[database]==0.4.4"
    touch "$venv/.installed-0.4.4"
  fi
  export STRATA_TEST_BGD=$venv/bin/bgd
  STRATA_TEST_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  export STRATA_TEST_PG_BIN
}

# ensure_rootless_user NAME: an ordinary user with 65536 subordinate uids
# and gids (the rootless tests run strata as this user). Needs root.
ensure_rootless_user() {
  local name=$1
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  id "$name" >/dev/null 2>&1 || $sudo useradd --no-create-home --shell /usr/sbin/nologin "$name"
  # A range after every other one in either file: no two users share ids.
  if ! grep -q "^$name:" /etc/subuid 2>/dev/null || ! grep -q "^$name:" /etc/subgid 2>/dev/null; then
    local start
    start=$(cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: 'BEGIN { m = 100000 } NF == 3 && $2 + $3 > m { m = $2 + $3 } END { print m }')
    grep -q "^$name:" /etc/subuid 2>/dev/null || echo "$name:$start:65536" | $sudo tee -a /etc/subuid >/dev/null
    grep -q "^$name:" /etc/subgid 2>/dev/null || echo "$name:$start:65536" | $sudo tee -a /etc/subgid >/dev/null
  fi
}
