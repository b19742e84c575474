#!/usr/bin/env bash
# Makes sure `redis-server` is on PATH for the Redis store tests and benchmark: installs
# Debian's package where it is missing (CI runs as root on a clean Debian machine). The
# package's init script is kept from starting a system-wide server: the tests start their own,
# on the loopback interface, on a free port, with a temporary directory.
set -euo pipefail

# openssl makes the throwaway certificates of the TLS (rediss://) test.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "setup-redis: ${missing[*]} missing and cannot be installed here (needs root and apt-get);" \
    "the Redis store tests that need it will be skipped" >&2
  exit 0
fi

policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  # The Debian way to install a service without starting it.
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  made_policy=1
fi
cleanup() { if [ -n "$made_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
redis-server --version
