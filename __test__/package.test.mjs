// The package as a user installs it: `npm pack`, the tarball's exact contents, an offline install
// into a fresh project with the host's per-platform binary package, then require, import, one
// acquire/release cycle each, the subpath exports, the command and the published types.
// The checks themselves live in scripts/pack-smoke.mjs (also runnable on its own).

import { test } from 'node:test'
import { packSmoke } from '../scripts/pack-smoke.mjs'

test('npm pack: exact contents, installs and works in a fresh project', { timeout: 180_000 }, async (t) => {
  await packSmoke({ log: (line) => t.diagnostic(line) })
})
