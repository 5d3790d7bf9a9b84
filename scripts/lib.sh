# Shared by scripts/up, scripts/test, scripts/down and scripts/fresh-root:
# logging and idempotent installs.
# shellcheck shell=bash

# Debian packages, by what needs them. Nothing may rely on what a machine
# happens to have: scripts/fresh-root installs exactly these lists into a
# pristine Debian 12 root and builds and starts rudder there.
#   gcc, libc6-dev: build scripts and the pause program link against libc
#     (gcc with --no-install-recommends does not bring libc6-dev);
#   protobuf-compiler, libprotobuf-dev: protoc and its well-known types
#     (google/protobuf/*.proto), for etcd-client's and CRI's gRPC code;
#   binutils: objcopy, which scripts/up strips the installed binary with;
#   git: the commit `rudder --version` names.
BUILD_PACKAGES=(gcc libc6-dev protobuf-compiler libprotobuf-dev binutils git)
# What the tests call: etcd (backend), openssl (TLS certificates),
# busybox-static (the test image), docker-registry with basic auth
# (htpasswd) and curl to push to it, ip (test hosts), pgrep/pkill,
# python3 with venv (the Kubernetes Python client), and mmdebstrap for the
# fresh-root check itself.
TEST_PACKAGES=(etcd-server openssl busybox-static docker-registry apache2-utils curl
    iproute2 procps python3 python3-venv mmdebstrap)
# What a node runs: containerd (with ctr), runc, the CNI plugins (bridge,
# host-local, portmap, loopback), iptables (the CNI plugins' masquerading
# and host ports), nftables, setpriv (util-linux) and kill (procps); the
# server reads CronJobs' time zones from tzdata's /usr/share/zoneinfo.
RUNTIME_PACKAGES=(containerd runc containernetworking-plugins iptables nftables util-linux procps tzdata)

# Not installed by any script: what the README asks of a machine (Rust by
# rustup) and of its users (the real kubectl, 1.27 to 1.33 for the tests).

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Installs the Debian packages that are not installed yet; says what it does.
install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "packages present: $*"
    return
  fi
  is_root || die "missing Debian packages: ${missing[*]}; run as root, or install them with: apt-get install ${missing[*]}"
  say "installing ${missing[*]}"
  apt-get update -qq
  # No service is started for us here; policy-rc.d keeps package scripts
  # from trying (containerd, etcd are started by rudder and the tests).
  local policy=/usr/sbin/policy-rc.d created_policy=
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$created_policy" ] || rm -f "$policy"
}

# Everything the build, a node and the tests need: both quick-start
# commands install the same lists, so running one never leaves the other
# short of a package.
install_all_packages() {
  install_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
}

require_cargo() {
  command -v cargo >/dev/null 2>&1 && return
  [ -x "$HOME/.cargo/bin/cargo" ] && { export PATH="$HOME/.cargo/bin:$PATH"; return; }
  die "Rust is not installed: install a current stable toolchain with rustup (https://rustup.rs), then run this again"
}

# The tests drive the real kubectl, oldest and newest supported: the
# versioned binaries kubectl.1.27 and kubectl.1.33 beside the kubectl on
# PATH (Google's kubectl package ships them with a dispatcher).
require_kubectl() {
  local k dir
  k=$(command -v kubectl) || die "kubectl is not installed: the tests drive the real kubectl (1.27 and 1.33, as kubectl.1.27 and kubectl.1.33 beside it)"
  dir=$(dirname "$(readlink -f "$k")")
  for v in 1.27 1.33; do
    [ -x "$dir/kubectl.$v" ] || die "kubectl.$v is missing beside $k: the tests need the versioned kubectl binaries 1.27 and 1.33"
  done
}

# The official Kubernetes Python client, in a venv under target/, for the
# API tests (they find it through RUDDER_TEST_PYTHON).
require_python_client() {
  local venv=target/pyclient
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import kubernetes' 2>/dev/null; then
    say "installing the Kubernetes Python client (pip, into $venv)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check kubernetes
  fi
  RUDDER_TEST_PYTHON="$PWD/$venv/bin/python"
  export RUDDER_TEST_PYTHON
}

require_nextest() {
  cargo nextest --version >/dev/null 2>&1 && return
  say "installing cargo-nextest from crates.io (one-time, a few minutes)"
  cargo install --locked cargo-nextest
}

# Where scripts/up puts the cluster, and what scripts/down removes; the
# tests of scripts/down point these elsewhere through the environment.
up_locations() {
  DATA_DIR=${RUDDER_DATA_DIR:-/var/lib/rudder}
  RUN_DIR=${RUDDER_RUN_DIR:-/run/rudder}
  LOG_DIR=${RUDDER_LOG_DIR:-/var/log/rudder}
  KUBECONFIG_PATH=${RUDDER_KUBECONFIG:-/etc/rudder/rudder.yaml}
  BIN=${RUDDER_BIN:-/usr/local/bin/rudder}
  # The binary's debug info, where gdb and Rust's backtraces look for the
  # file its .gnu_debuglink names.
  DEBUG_FILE=${RUDDER_DEBUG_FILE:-/usr/lib/debug$BIN.debug}
  BRIDGE=${RUDDER_POD_BRIDGE:-rudder0}
  CGROUP_ROOT=${RUDDER_CGROUP_ROOT:-/}
}
