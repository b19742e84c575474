// withLock / withLockSync: acquire, run, release in finally, return fn's result.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { PidLock, withLock, withLockSync } from '../lib/index.mjs'
import { Proc, repoRoot } from './integrations/helpers.mjs'

function lockIn(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-with-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return path.join(dir, 'x.lock')
}

test('withLock returns what fn returns, holds the lock while fn runs and releases after, also on a throw', async (t) => {
  const lock = lockIn(t)
  const out = await withLock(lock, async (l) => {
    assert.equal(l.held, true)
    assert.equal((await PidLock.inspect(lock)).pid, process.pid)
    return 42
  }, { metadata: { job: 'x' } })
  assert.equal(out, 42)
  assert.equal(fs.existsSync(lock), false)
  await assert.rejects(withLock(lock, () => { throw new Error('boom') }), /boom/)
  assert.equal(fs.existsSync(lock), false)
  assert.equal(withLockSync(lock, (l) => l.held && 'sync'), 'sync')
  assert.throws(() => withLockSync(lock, () => { throw new RangeError('sync boom') }), RangeError)
  assert.equal(fs.existsSync(lock), false)
  await assert.rejects(withLock(lock, 'nope'), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => withLockSync(lock, () => 1, { signal: AbortSignal.timeout(10) }), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('withLock against another process: ELOCKHELD at once, or waits with timeout; fn never runs without the lock', async (t) => {
  const lock = lockIn(t)
  const script = `const { PidLock } = require(${JSON.stringify(path.join(repoRoot, 'lib', 'index.js'))});
const l = new PidLock(${JSON.stringify(lock)}); l.acquire().then(() => console.log('HELD'));
const keep = setInterval(() => {}, 1000);
process.on('SIGTERM', () => l.release().then(() => clearInterval(keep)))`
  const other = new Proc(t, process.execPath, ['-e', script])
  await other.waitFor(/HELD/)
  let ran = false
  await assert.rejects(withLock(lock, () => { ran = true }), { code: 'ELOCKHELD' })
  assert.throws(() => withLockSync(lock, () => { ran = true }), { code: 'ELOCKHELD' })
  assert.equal(ran, false)
  setTimeout(() => other.kill('SIGTERM'), 300)
  assert.equal(await withLock(lock, () => 'after', { timeout: 20_000 }), 'after')
})
