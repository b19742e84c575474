#!/usr/bin/env bash
# The Node test suite against a binary that is already in place (the CI test jobs download it
# instead of building), on whatever `node` is first on PATH. The glob is expanded by bash, so
# this also works on Windows, where npm scripts run in cmd.exe and Node before 21 expands no
# globs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "Node $(node --version) on $(node -p 'process.platform + "-" + process.arch')"
ls leaselock.*.node
node --test --test-concurrency=1 __test__/*.test.mjs
