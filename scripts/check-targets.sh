#!/usr/bin/env bash
# Type-checks the crate for the published targets other than the host (macOS, Windows, musl,
# arm64), so platform code behind cfg cannot rot unseen between releases.
#
# rustup cannot add targets without network access to its own servers, so the standard library
# for those targets is built from source instead: Debian's rustc-web / cargo-web / rust-web-src
# packages give a matching compiler and std source, and `-Zbuild-std` (allowed on a stable
# compiler by RUSTC_BOOTSTRAP=1) compiles std for each target. `cargo check` needs no linker or
# platform SDK. This is a type check only; CI builds, lints and tests each target natively.
#
# Usage: scripts/check-targets.sh [TARGET...]     (default: every target but the host's)
#   LEASELOCK_XCHECK_DIR  build directory, kept between runs (default: ~/.cache/leaselock-xcheck)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(
    x86_64-apple-darwin aarch64-apple-darwin
    x86_64-pc-windows-msvc aarch64-pc-windows-msvc
    x86_64-unknown-linux-musl aarch64-unknown-linux-musl aarch64-unknown-linux-gnu
  )
fi

# Debian's toolchain lives in /usr/bin; rustup's (first on PATH) stays the default elsewhere.
rustc=/usr/bin/rustc cargo=/usr/bin/cargo
if [ ! -x "$cargo" ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
  echo "check-targets: installing Debian's rustc-web, cargo-web and rust-web-src" >&2
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    rustc-web cargo-web rust-web-src >/dev/null
fi
echo "check-targets: $("$rustc" --version), std from source, for: ${targets[*]}"

target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done

CARGO_TARGET_DIR="${LEASELOCK_XCHECK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leaselock-xcheck}" \
  RUSTC="$rustc" RUSTC_BOOTSTRAP=1 \
  "$cargo" check --locked --lib -Zbuild-std=std,panic_abort "${target_args[@]}"
echo "check-targets: the crate type-checks for ${#targets[@]} targets"
