# Shared by scripts/up and scripts/test: logging and idempotent installs.
# shellcheck shell=bash

# Debian packages, by what needs them.
BUILD_PACKAGES=(gcc protobuf-compiler)            # protoc: etcd-client's and CRI's gRPC code
# etcd backend, TLS certificates, the busybox test image, a local registry
# with basic auth (htpasswd) and curl to push to it
TEST_PACKAGES=(etcd-server openssl busybox-static docker-registry apache2-utils curl)
RUNTIME_PACKAGES=(containerd runc containernetworking-plugins iptables nftables)

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

require_cargo() {
  command -v cargo >/dev/null 2>&1 && return
  [ -x "$HOME/.cargo/bin/cargo" ] && { export PATH="$HOME/.cargo/bin:$PATH"; return; }
  die "Rust is not installed: install a current stable toolchain with rustup (https://rustup.rs), then run this again"
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
