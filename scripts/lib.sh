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
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# The packages strata's tests and examples use.
STRATA_PACKAGES=(busybox-static gcc libc6-dev skopeo umoci docker-registry apache2-utils procps python3 gpgv debian-archive-keyring)
