// A short chaos run against the Redis store: real worker processes compete for one lock on a
// private redis-server while the driver SIGKILLs, SIGSTOPs and SIGCONTs them; the independent
// checker (chaos/check.py) must find no overlap the design does not allow and no fencing token
// out of order - and the run must have exercised takeovers of dead and frozen holders.
// The long run: `node chaos/run.mjs --redis --duration 600`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { redisOrSkip } from './helpers/redis-server.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const runner = path.join(root, 'chaos', 'run.mjs')
const checker = path.join(root, 'chaos', 'check.py')

function runChaos(t, args) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-chaos-test-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [runner, ...args, '--dir', dir, '--json'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.on('error', reject)
    child.on('exit', (code) => {
      try {
        resolve({ code, report: JSON.parse(out.trim().split('\n').pop()) })
      } catch {
        reject(new Error(`no report from the chaos run (exit ${code}):\n${out}`))
      }
    })
  })
}

test('chaos on the Redis store: no overlap beyond frozen-and-told holders, tokens in order', redisOrSkip(), async (t) => {
  const { code, report } = await runChaos(t, ['--redis', '--duration', '25', '--workers', '6', '--seed', '20261130'])
  assert.equal(report.violations, 0, JSON.stringify(report.violation_details))
  assert.deepEqual(report.tokens.inversions, [])
  assert.deepEqual(report.tokens.duplicates, [])
  assert.deepEqual(report.crashes, [])
  assert.ok(report.cycles >= 50, `only ${report.cycles} critical sections`)
  assert.ok(report.tokens.checked >= 50)
  assert.ok(report.takeovers.dead > 0, 'no holder was taken over as proven dead')
  assert.ok(report.allowed_overlaps.count + report.acquired_but_lost_before_enter > 0 || report.freezes.past_stale === 0, 'frozen holders were never overtaken')
  assert.equal(code, 0)
})

test('the checker calls fencing tokens out of order a violation unless the late one was frozen', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-check-'))
  try {
    const journal = path.join(dir, 'journal.ndjson')
    const lines = [
      { ev: 'config', t: 0, workers: 2, heartbeat: 50, stale: 400 },
      { ev: 'enter', w: 1, pid: 11, c: 1, t: 10, a: 5, oid: 'a', rk: null, tok: '7' },
      { ev: 'leave', w: 1, pid: 11, c: 1, t: 20, held: true },
      { ev: 'enter', w: 2, pid: 12, c: 1, t: 30, a: 1, oid: 'b', rk: null, tok: '6' },
      { ev: 'leave', w: 2, pid: 12, c: 1, t: 40, held: true },
      { ev: 'end', t: 50 },
    ]
    fs.writeFileSync(journal, lines.map((l) => JSON.stringify(l)).join('\n') + '\n')
    const r = spawnSync('python3', [checker, journal, '--json'], { encoding: 'utf8' })
    assert.equal(r.status, 1)
    assert.equal(JSON.parse(r.stdout).tokens.inversions.length, 1)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
