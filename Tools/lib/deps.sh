# Shared helpers for the scripts in Tools/. Source it; do not run it.
#
# ensure_packages PKG...   installs the Debian packages that are missing, so a
#                          fresh machine works without manual set-up.
# ensure_pyvenv DIR PKG... creates a Python venv at DIR (if absent) holding the
#                          PyPI packages named, and prints its python path.

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing missing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q >&2
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# The packages every build needs: protobuf-c runtime + generator, libcurl.
BUILD_PACKAGES=(libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libcurl4-openssl-dev zlib1g-dev libssl-dev openssl pkg-config)

ensure_pyvenv() {
  local dir
  mkdir -p "$1" && dir=$(cd "$1" && pwd); shift
  if [ ! -x "$dir/bin/python" ]; then
    python3 -m venv --help >/dev/null 2>&1 || ensure_packages python3 python3-venv
    log "creating Python venv $dir"
    python3 -m venv --system-site-packages "$dir" >&2
  fi
  local p
  for p in "$@"; do
    "$dir/bin/python" -c "import importlib.metadata as m; m.version('${p%%[=<>]*}')" 2>/dev/null \
      || "$dir/bin/python" -m pip install -q --disable-pip-version-check "$p" >&2
  done
  echo "$dir/bin/python"
}
