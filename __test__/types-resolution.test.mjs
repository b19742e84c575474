// The published types in every resolution mode: `attw --pack` (node10, node16 from CJS and from
// ESM, bundler) finds no problem, and a node16 consumer with skipLibCheck off compiles against
// each Vite major (TS1541 was the failure there).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { VITES, repoRoot, tempProject } from './integrations/helpers.mjs'

test('attw --pack: no problems for ".", "./vite" and "./webpack" in any resolution mode', { timeout: 180_000 }, () => {
  const attw = path.join(repoRoot, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js')
  const r = spawnSync(process.execPath, [attw, '--pack', '.', '--format', 'json'], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  const report = JSON.parse(r.stdout)
  // attw reports problems as a list or a map by kind, depending on the version: either way empty.
  assert.equal(Object.keys(report.problems ?? {}).length, 0, JSON.stringify(report.problems, null, 2).slice(0, 4000))
  const entries = report.analysis.entrypoints
  for (const entry of ['.', './vite', './webpack']) {
    for (const mode of ['node10', 'node16-cjs', 'node16-esm', 'bundler']) {
      const resolution = entries[entry].resolutions[mode].resolution
      assert.ok(resolution && resolution.fileName, `${entry} under ${mode} resolves no types`)
    }
  }
  assert.equal(r.status, 0, r.stderr)
})

for (const vite of VITES) {
  test(`a node16 consumer (CJS and ESM, skipLibCheck off) compiles with Vite ${vite.version}`, { timeout: 180_000 }, (t) => {
    const dir = tempProject(t, 'vite', {
      'a.cts': `import singleInstance = require('leaselock/vite')
import SingleInstancePlugin = require('leaselock/webpack')
import leaselock = require('leaselock')
const p = singleInstance({ onConflict: 'replace', quiet: true })
const w = new SingleInstancePlugin({ onConflict: 'reuse' })
const n: number = leaselock.withLockSync('x.lock', () => 1)
void [p, w, n]
`,
      'b.mts': `import singleInstance, { type SingleInstanceOptions } from 'leaselock/vite'
import { SingleInstancePlugin } from 'leaselock/webpack'
import { withLock, PidLock } from 'leaselock'
const o: SingleInstanceOptions = { onConflict: 'reuse' }
const s: Promise<string> = withLock('x.lock', async (lock: PidLock) => lock.path)
void [singleInstance(o), new SingleInstancePlugin(), s]
`,
      'tsconfig.json': JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'node16', moduleResolution: 'node16', skipLibCheck: false, types: ['node'], typeRoots: [path.join(repoRoot, 'node_modules', '@types')] }, files: ['a.cts', 'b.mts'] }),
    }, { vite: vite.name })
    fs.symlinkSync(path.join(repoRoot, 'node_modules', 'webpack'), path.join(dir, 'node_modules', 'webpack'), process.platform === 'win32' ? 'junction' : 'dir')
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stdout + r.stderr)
  })
}
