// The package as a user installs it: `npm pack`, the tarball's exact contents, an offline install
// into a fresh project with the host's per-platform binary package, then require, import, one
// acquire/release cycle each, the subpath exports, the command and the published types.
// The checks themselves live in scripts/pack-smoke.mjs (also runnable on its own).

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { packSmoke } from '../scripts/pack-smoke.mjs'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

test('npm pack: the user documents are published, the contributor documents are not', () => {
  // The contributor text must exist, or its absence from the tarball proves nothing.
  for (const f of ['CONTRIBUTING.md', 'docs/design.md', 'docs/proof.md', 'docs/performance.md']) {
    assert.ok(fs.existsSync(path.join(REPO, f)), `${f} is missing from the repository`)
  }
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: REPO,
    encoding: 'utf8',
    shell: process.platform === 'win32',
    env: { ...process.env, npm_config_loglevel: 'error' },
  })
  assert.equal(r.status, 0, r.stderr)
  const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')))
  const files = info.files.map((f) => f.path)
  for (const f of ['README.md', 'LICENSE']) assert.ok(files.includes(f), `${f} is not in the package`)
  const contributor = files.filter((f) => f === 'CONTRIBUTING.md' || f.startsWith('docs/'))
  assert.deepEqual(contributor, [], 'contributor documents in the package')
})

test('npm pack: exact contents, installs and works in a fresh project', { timeout: 180_000 }, async (t) => {
  await packSmoke({ log: (line) => t.diagnostic(line) })
})
