// The public API and its options (issue 2, section 2): entry points, getters, the acquire and
// release contract on one instance, argument errors with Node-style codes, and error shapes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { PidLock, DEFAULTS, HELD_TEXT } from 'leaselock'
import { tempDir, holder, script, readLease, exists, goLease, repoRoot, sleep, waitUntil, posixOnly, assertStopHint, RENAME_OVER_OPEN } from './helpers/util.mjs'

const require = createRequire(import.meta.url)

test('defaults, the metadata limit and the held-lock text are the engine\'s, read through the binding', async (t) => {
  const native = require('../index.js').constants()
  assert.deepEqual({ ...DEFAULTS }, native.defaults)
  assert.ok(Object.isFrozen(DEFAULTS))
  assert.equal(HELD_TEXT, native.heldText)
  assert.equal(native.metadataLimit, 4096)
  // '{"s":""}' is 8 bytes: exactly at the limit is accepted, one byte over is refused.
  const sized = (n) => ({ s: 'x'.repeat(n - 8) })
  const lock = new PidLock(path.join(tempDir(t), 'm.lock'))
  await lock.acquire()
  await lock.update(sized(native.metadataLimit))
  await assert.rejects(lock.update(sized(native.metadataLimit + 1)), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
  // The nesting readers keep: what update() writes at the limit reads back whole.
  const deep = JSON.parse('['.repeat(native.metadataDepthLimit) + ']'.repeat(native.metadataDepthLimit))
  await lock.update(deep)
  assert.deepEqual((await PidLock.inspect(lock.path)).metadata, deep)
  const deeper = [deep]
  await assert.rejects(lock.update(deeper), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' })
  await lock.release()
})

test('require() and import give the same working PidLock', async (t) => {
  const cjs = require('leaselock')
  assert.equal(typeof cjs.PidLock, 'function')
  assert.equal(cjs.PidLock, PidLock, 'the ESM entry re-exports the CommonJS objects')
  assert.equal(HELD_TEXT, 'lock file is already held by another process')
  assert.deepEqual({ ...DEFAULTS }, {
    acquireRetryLimit: 12,
    acquireRetryDelay: 20,
    invalidPidLockStaleThreshold: 1200,
    fileWriteMode: 0o644,
    directoryWriteMode: 0o755,
    leaseHeartbeatInterval: 250,
    leaseStaleThreshold: 3000,
    invalidContent: 'refuse',
  })
  const dir = tempDir(t)
  const viaRequire = new cjs.PidLock(path.join(dir, 'a.lock'))
  await viaRequire.acquire()
  assert.ok(exists(viaRequire.path))
  await viaRequire.release()
  assert.ok(!exists(viaRequire.path))
})

test('path is absolute, resolved at construction; URLs are accepted', (t) => {
  const dir = tempDir(t)
  const cwd = process.cwd()
  let lock
  try {
    process.chdir(dir)
    lock = new PidLock('sub/dev.lock')
  } finally {
    process.chdir(cwd)
  }
  assert.ok(path.isAbsolute(lock.path))
  assert.ok(lock.path.endsWith(path.join('sub', 'dev.lock')))
  assert.equal(fs.realpathSync(path.dirname(path.dirname(lock.path))), fs.realpathSync(dir))
  // A later chdir does not move it.
  assert.equal(new PidLock(pathToFileURL(path.join(dir, 'u.lock'))).path, path.join(dir, 'u.lock'))
  assert.equal(lock.held, false)
})

test('acquire, held, release; parent directories are created', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'deep', 'er', 'x.lock')
  const lock = new PidLock(p)
  assert.equal(lock.held, false)
  const out = await lock.acquire()
  assert.deepEqual(out, { reclaimed: null, token: lock.token })
  assert.equal(typeof out.token, 'bigint')
  assert.equal(lock.held, true)
  const lease = readLease(p)
  assert.equal(lease.pid, process.pid)
  assert.equal(lease.version, 1)
  assert.equal(fs.statSync(path.dirname(p)).isDirectory(), true)
  await lock.release()
  assert.equal(lock.held, false)
  assert.equal(exists(p), false)
})

test('acquire when already held resolves at once with reclaimed null and keeps the lease', async (t) => {
  const dir = tempDir(t)
  const lock = new PidLock(path.join(dir, 'x.lock'))
  await lock.acquire()
  const before = readLease(lock.path).ownerID
  const token = lock.token
  assert.deepEqual(await lock.acquire(), { reclaimed: null, token })
  assert.deepEqual(lock.acquireSync(), { reclaimed: null, token })
  assert.equal(readLease(lock.path).ownerID, before)
  await lock.release()
})

test('concurrent acquire()/release() on one instance are serialised: one owner id, one heartbeat', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const lock = new PidLock(p, { leaseHeartbeatInterval: 20, leaseStaleThreshold: 400 })
  const results = await Promise.allSettled([lock.acquire(), lock.acquire(), lock.acquire(), lock.acquire()])
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'])
  assert.equal(lock.held, true)
  const owner = readLease(p).ownerID
  // Watch the file through many heartbeats: a second heartbeat or a second acquisition would
  // show up as a different owner id or as a lost lease.
  for (let i = 0; i < 30; i++) {
    await sleep(10)
    const l = readLease(p)
    assert.equal(l.ownerID, owner)
  }
  assert.equal(lock.held, true)
  await lock.release()
  assert.equal(exists(p), false)
  await sleep(80)
  assert.equal(exists(p), false, 'no heartbeat recreates the file after release')
})

test('calls on one instance take effect in call order: acquire(); await release() leaves it free', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  for (let i = 0; i < 300; i++) {
    const lock = new PidLock(p)
    const acquiring = lock.acquire()
    await lock.release()
    await acquiring
    const heldAfter = lock.held
    const fileAfter = exists(p)
    await lock.release()
    assert.equal(heldAfter, false, `round ${i}: release() resolved but the acquire() called before it won afterwards`)
    assert.equal(fileAfter, false, `round ${i}: lock file left behind`)
  }
  // And the other way round: release(); acquire() while held ends held, with a new owner.
  const lock = new PidLock(p)
  await lock.acquire()
  for (let i = 0; i < 300; i++) {
    const releasing = lock.release()
    await lock.acquire()
    await releasing
    assert.equal(lock.held, true, `round ${i}: acquire() resolved but the earlier release() ran after it`)
  }
  await lock.release()
})

test('release when never held, and twice, resolves and does nothing', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const foreign = goLease({ ownerID: 'someone-else' })
  fs.writeFileSync(p, foreign)
  const lock = new PidLock(p)
  await lock.release()
  lock.releaseSync()
  assert.equal(fs.readFileSync(p, 'utf8'), foreign, "another owner's file is left alone")
  // Released twice after a real acquisition: the second one is a no-op too.
  const q = path.join(dir, 'y.lock')
  const mine = new PidLock(q)
  await mine.acquire()
  await mine.release()
  fs.writeFileSync(q, foreign)
  await mine.release()
  mine.releaseSync()
  assert.equal(fs.readFileSync(q, 'utf8'), foreign)
})

test('release after a loss resolves and leaves the new owner alone', posixOnly(RENAME_OVER_OPEN), async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  let lost = 0
  const lock = new PidLock(p, { leaseHeartbeatInterval: 15, leaseStaleThreshold: 300, onLeaseLost: () => lost++ })
  await lock.acquire()
  const foreign = goLease({ ownerID: 'foreign-owner' })
  fs.writeFileSync(p + '.tmp', foreign)
  fs.renameSync(p + '.tmp', p)
  await waitUntil(() => lost === 1, { what: 'onLeaseLost' })
  assert.equal(lock.held, false)
  await lock.release()
  assert.equal(fs.readFileSync(p, 'utf8'), foreign)
})

// ---------------------------------------------------------------------------------------------
// Argument errors.

const integerOptions = [
  'acquireRetryLimit',
  'acquireRetryDelay',
  'invalidPidLockStaleThreshold',
  'fileWriteMode',
  'directoryWriteMode',
  'leaseHeartbeatInterval',
  'leaseStaleThreshold',
]

function throwsArg(fn, ctor, code, name) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof ctor, `expected ${ctor.name}, got ${err && err.constructor.name}: ${err && err.message}`)
    assert.equal(err.code, code)
    if (name) assert.match(err.message, new RegExp(name.replace('.', '\\.')))
    return true
  })
}

test('bad path: wrong type, empty, null byte', () => {
  throwsArg(() => new PidLock(), TypeError, 'ERR_INVALID_ARG_TYPE', 'path')
  throwsArg(() => new PidLock(42), TypeError, 'ERR_INVALID_ARG_TYPE', 'path')
  throwsArg(() => new PidLock(null), TypeError, 'ERR_INVALID_ARG_TYPE', 'path')
  throwsArg(() => new PidLock(''), TypeError, 'ERR_INVALID_ARG_VALUE', 'path')
  throwsArg(() => new PidLock('a\0b'), TypeError, 'ERR_INVALID_ARG_VALUE', 'path')
})

test('bad options object', () => {
  throwsArg(() => new PidLock('x.lock', 'nope'), TypeError, 'ERR_INVALID_ARG_TYPE', 'options')
  throwsArg(() => new PidLock('x.lock', null), TypeError, 'ERR_INVALID_ARG_TYPE', 'options')
})

for (const key of integerOptions) {
  test(`option ${key}: wrong type, negative, NaN, fractional, Infinity`, () => {
    const name = `options.${key}`
    for (const bad of ['10', true, {}, 10n, null]) {
      throwsArg(() => new PidLock('x.lock', { [key]: bad }), TypeError, 'ERR_INVALID_ARG_TYPE', name)
    }
    for (const bad of [-1, NaN, 1.5, Infinity, -Infinity]) {
      throwsArg(() => new PidLock('x.lock', { [key]: bad }), RangeError, 'ERR_OUT_OF_RANGE', name)
    }
    if (key !== 'acquireRetryDelay') {
      throwsArg(() => new PidLock('x.lock', { [key]: 0 }), RangeError, 'ERR_OUT_OF_RANGE', name)
    }
  })
}

test('acquireRetryDelay 0 is accepted and works', async (t) => {
  const dir = tempDir(t)
  const lock = new PidLock(path.join(dir, 'x.lock'), { acquireRetryDelay: 0 })
  await lock.acquire()
  await lock.release()
})

test('leaseStaleThreshold must be greater than leaseHeartbeatInterval', () => {
  throwsArg(() => new PidLock('x.lock', { leaseHeartbeatInterval: 500, leaseStaleThreshold: 500 }), RangeError, 'ERR_OUT_OF_RANGE', 'options.leaseStaleThreshold')
  throwsArg(() => new PidLock('x.lock', { leaseHeartbeatInterval: 500, leaseStaleThreshold: 499 }), RangeError, 'ERR_OUT_OF_RANGE', 'options.leaseStaleThreshold')
  // Against the defaults too: a heartbeat above the default stale threshold.
  throwsArg(() => new PidLock('x.lock', { leaseHeartbeatInterval: 3000 }), RangeError, 'ERR_OUT_OF_RANGE', 'options.leaseStaleThreshold')
  throwsArg(() => new PidLock('x.lock', { leaseStaleThreshold: 250 }), RangeError, 'ERR_OUT_OF_RANGE', 'options.leaseStaleThreshold')
  new PidLock('x.lock', { leaseHeartbeatInterval: 500, leaseStaleThreshold: 501 })
})

test('function options and heldError and metadata: wrong types', () => {
  throwsArg(() => new PidLock('x.lock', { onLeaseLost: 'no' }), TypeError, 'ERR_INVALID_ARG_TYPE', 'options.onLeaseLost')
  throwsArg(() => new PidLock('x.lock', { processAppearsAlive: true }), TypeError, 'ERR_INVALID_ARG_TYPE', 'options.processAppearsAlive')
  throwsArg(() => new PidLock('x.lock', { heldError: 5 }), TypeError, 'ERR_INVALID_ARG_TYPE', 'options.heldError')
  throwsArg(() => new PidLock('x.lock', { heldError: { message: 'x' } }), TypeError, 'ERR_INVALID_ARG_TYPE', 'options.heldError')
  throwsArg(() => new PidLock('x.lock', { heldError: '' }), TypeError, 'ERR_INVALID_ARG_VALUE', 'options.heldError')
  throwsArg(() => new PidLock('x.lock', { metadata: 'text' }), TypeError, 'ERR_INVALID_ARG_TYPE', 'options.metadata')
  const cyclic = {}
  cyclic.self = cyclic
  throwsArg(() => new PidLock('x.lock', { metadata: cyclic }), TypeError, 'ERR_INVALID_ARG_VALUE', 'options.metadata')
  throwsArg(() => new PidLock('x.lock', { metadata: { big: 'x'.repeat(5000) } }), RangeError, 'ERR_OUT_OF_RANGE', 'options.metadata')
  new PidLock('x.lock', { metadata: { fits: 'x'.repeat(4000) } })
  // What a toJSON() turns into something other than an object or array (a Date into a string),
  // or into nothing, is not metadata.
  throwsArg(() => new PidLock('x.lock', { metadata: new Date(0) }), TypeError, 'ERR_INVALID_ARG_VALUE', 'options.metadata')
  throwsArg(() => new PidLock('x.lock', { metadata: { toJSON() {} } }), TypeError, 'ERR_INVALID_ARG_VALUE', 'options.metadata')
  // Readers keep 32 levels of nesting: deeper is refused when set, not dropped when read.
  const nested = (n) => JSON.parse('['.repeat(n) + ']'.repeat(n))
  throwsArg(() => new PidLock('x.lock', { metadata: nested(33) }), RangeError, 'ERR_OUT_OF_RANGE', 'options.metadata')
  new PidLock('x.lock', { metadata: nested(32) })
})

test('acquire options: wrong types reject (not throw)', async (t) => {
  const lock = new PidLock(path.join(tempDir(t), 'x.lock'))
  for (const [opts, ctor, code] of [
    ['no', TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ timeout: '5' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ timeout: -1 }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ timeout: NaN }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ signal: {} }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ]) {
    let p
    assert.doesNotThrow(() => {
      p = lock.acquire(opts)
    })
    await assert.rejects(p, (err) => err instanceof ctor && err.code === code)
  }
  assert.equal(lock.held, false)
  assert.throws(() => lock.acquireSync({ timeout: -5 }), (err) => err instanceof RangeError && err.code === 'ERR_OUT_OF_RANGE')
  await assert.rejects(PidLock.inspect(''), (err) => err.code === 'ERR_INVALID_ARG_VALUE')
  assert.throws(() => PidLock.inspectSync(7), (err) => err.code === 'ERR_INVALID_ARG_TYPE')
})

// ---------------------------------------------------------------------------------------------
// Held errors.

async function heldByChild(t, p, options = {}) {
  const h = holder(t, { path: p, options })
  const got = await h.line('ACQUIRED')
  assert.equal(got.held, true)
  return h
}

test('held by another instance of this very process: the refusal says so and offers no kill', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const first = new PidLock(p)
  first.acquireSync()
  t.after(() => first.releaseSync())
  const err = await new PidLock(p).acquire().then(() => null, (e) => e)
  assert.equal(err?.code, 'ELOCKHELD')
  assert.equal(err.holder.pid, process.pid)
  assert.match(err.message, /that is this process: another PidLock instance or worker here holds it/)
  assert.doesNotMatch(err.message, /stop it:/)
})

test('ELOCKHELD shape: code, path, holder {pid, ownerId, lastHeartbeat Date}, message names the pid', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = await heldByChild(t, p, { metadata: { url: 'http://localhost:5173/' } })
  const lock = new PidLock(p)
  const err = await lock.acquire().then(() => null, (e) => e)
  assert.ok(err instanceof Error)
  assert.equal(err.code, 'ELOCKHELD')
  assert.equal(err.path, p)
  assert.ok(err.message.startsWith(`${HELD_TEXT} (pid ${h.pid})`), err.message)
  assertStopHint(err.message, h.pid)
  assert.match(err.message, /http:\/\/localhost:5173\//)
  assert.equal(err.holder.pid, h.pid)
  assert.equal(err.holder.ownerId, readLease(p).ownerID)
  assert.ok(err.holder.lastHeartbeat instanceof Date)
  assert.ok(Math.abs(err.holder.lastHeartbeat.getTime() - Date.now()) < 60_000)
  assert.deepEqual(err.holder.metadata, { url: 'http://localhost:5173/' })
  assert.equal(err.holder.alive, true)
  assert.equal(lock.held, false)
  // The sync twin gives the same error.
  assert.throws(() => lock.acquireSync(), (e) => e.code === 'ELOCKHELD' && e.holder.pid === h.pid)
})

test('heldError as a string: message prefix', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = await heldByChild(t, p)
  const lock = new PidLock(p, { heldError: 'dev server already running' })
  const err = await lock.acquire().then(() => null, (e) => e)
  assert.equal(err.code, 'ELOCKHELD')
  assert.ok(err.message.startsWith(`dev server already running (pid ${h.pid})`), err.message)
  assert.equal(err.cause, undefined)
})

test('heldError as an Error: new Error with code, its message as prefix, it as cause', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = await heldByChild(t, p)
  const mine = new Error('my custom held error')
  const lock = new PidLock(p, { heldError: mine })
  const err = await lock.acquire().then(() => null, (e) => e)
  assert.notEqual(err, mine)
  assert.equal(err.code, 'ELOCKHELD')
  assert.equal(err.cause, mine)
  assert.ok(err.message.startsWith(`my custom held error (pid ${h.pid})`), err.message)
  assert.equal(mine.code, undefined, "the user's Error is not modified")
})

test('invalid content held: holder null and "(owner unavailable)"', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  // A record cut off mid-write: not a lease, but possibly one being written.
  const cut = '{"version":1,"ownerID":"cut-off'
  fs.writeFileSync(p, cut)
  const err = await new PidLock(p).acquire().then(() => null, (e) => e)
  assert.equal(err.code, 'ELOCKHELD')
  assert.equal(err.holder, null)
  assert.ok(err.message.startsWith(`${HELD_TEXT} (owner unavailable)`), err.message)
  assert.equal(fs.readFileSync(p, 'utf8'), cut)
})

test('ELOCKCONTENDED when the retry budget runs out on a lock that keeps changing', posixOnly(RENAME_OVER_OPEN), (t) => {
  // The holder is judged dead by processAppearsAlive, which rewrites the lock (a new holder's
  // record) while it answers: every takeover then finds the file it judged replaced, and with a
  // retry limit of 1 the budget runs out. Deterministic: the change happens inside each judgement.
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  let n = 0
  const write = () => {
    const hb = BigInt(Date.now()) * 1000000n + BigInt(n)
    fs.writeFileSync(p + '.t', `{"version":1,"ownerID":"churn-${n++}","pid":1,"lastHeartbeatUnixNano":${hb}}\n`)
    fs.renameSync(p + '.t', p)
  }
  write()
  const lock = new PidLock(p, {
    acquireRetryLimit: 1,
    acquireRetryDelay: 0,
    processAppearsAlive: () => {
      write()
      return false
    },
  })
  const err = (() => {
    try {
      lock.acquireSync()
      return null
    } catch (e) {
      return e
    }
  })()
  assert.ok(err, 'acquireSync must not succeed while every judged file is replaced')
  assert.equal(err.code, 'ELOCKCONTENDED', err.message)
  assert.equal(err.path, p)
  assert.match(err.message, /retry budget|contention/i)
  assert.ok(n >= 2, `the holder was judged ${n - 1} time(s)`)
  assert.equal(lock.held, false)
  assert.match(fs.readFileSync(p, 'utf8'), /churn-/, 'the last writer\'s lock is left in place')
})

test('OS errors carry the code and the path: a parent that is a regular file', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'plain')
  fs.writeFileSync(file, 'x')
  const p = path.join(file, 'sub', 'x.lock')
  const lock = new PidLock(p)
  const err = await lock.acquire().then(() => null, (e) => e)
  assert.ok(err instanceof Error)
  assert.ok(['ENOTDIR', 'EEXIST'].includes(err.code), `code ${err.code}`)
  assert.equal(err.path, p)
  assert.equal(typeof err.message, 'string')
  assert.equal(lock.held, false)
  assert.throws(() => lock.acquireSync(), (e) => e.code === err.code && e.path === p)
})

test('OS errors: a read-only directory gives EACCES (skipped as root)', { skip: process.getuid && process.getuid() === 0 ? 'root ignores permissions' : false, ...posixOnly('directory mode bits') }, async (t) => {
  const dir = tempDir(t)
  const ro = path.join(dir, 'ro')
  fs.mkdirSync(ro, 0o555)
  const err = await new PidLock(path.join(ro, 'x.lock')).acquire().then(() => null, (e) => e)
  assert.equal(err.code, 'EACCES')
  assert.equal(err.path, path.join(ro, 'x.lock'))
})

test('update() when not held rejects with ELOCKNOTHELD', async (t) => {
  const lock = new PidLock(path.join(tempDir(t), 'x.lock'))
  await assert.rejects(lock.update({ a: 1 }), (e) => e.code === 'ELOCKNOTHELD')
  assert.throws(() => lock.updateSync({ a: 1 }), (e) => e.code === 'ELOCKNOTHELD')
})

test('the package resolves from the repository by name', () => {
  assert.equal(require.resolve('leaselock'), path.join(repoRoot, 'lib', 'index.js'))
})

test('fileWriteMode and directoryWriteMode apply to what acquire creates (umask applies)', posixOnly('file mode bits and umask'), async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'made', 'x.lock')
  const umask = process.umask()
  const lock = new PidLock(p, { fileWriteMode: 0o600, directoryWriteMode: 0o700 })
  await lock.acquire()
  assert.equal(fs.statSync(p).mode & 0o777, 0o600 & ~umask)
  assert.equal(fs.statSync(path.dirname(p)).mode & 0o777, 0o700 & ~umask)
  await lock.release()
  const q = path.join(dir, 'made2', 'x.lock')
  const dflt = new PidLock(q)
  await dflt.acquire()
  assert.equal(fs.statSync(q).mode & 0o777, 0o644 & ~umask)
  assert.equal(fs.statSync(path.dirname(q)).mode & 0o777, 0o755 & ~umask)
  await dflt.release()
})

test('after release() has been called, onLeaseLost is not called for that acquisition any more', posixOnly(RENAME_OVER_OPEN), async (t) => {
  // The loss is detected by the native heartbeat while the JS thread is blocked, so its notice
  // is still queued when release() is called in the same tick.
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const calls = []
  const lock = new PidLock(p, { leaseHeartbeatInterval: 5, leaseStaleThreshold: 1000, onLeaseLost: (info) => calls.push(info) })
  await lock.acquire()
  fs.writeFileSync(p + '.n', goLease({ ownerID: 'foreign-owner' }))
  fs.renameSync(p + '.n', p)
  const until = Date.now() + 300
  while (Date.now() < until) {
    // keep the JS thread busy while heartbeats notice the loss
  }
  const heldBefore = lock.held
  lock.releaseSync()
  await sleep(200)
  assert.equal(heldBefore, false, 'the loss was detected during the busy wait')
  assert.equal(calls.length, 0, 'onLeaseLost ran after release() had been called')
  assert.match(fs.readFileSync(p, 'utf8'), /foreign-owner/)
})

test('the ELOCKHELD message says how long ago the holder started and how to stop it', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = holder(t, { path: p })
  await h.line('ACQUIRED')
  const err = await new PidLock(p).acquire().then(() => null, (e) => e)
  assert.match(err.message, /started: \d+s ago/)
  assertStopHint(err.message, h.pid)
  assert.match(err.message, new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
})

test('a timeout too large to represent means no deadline, not a crash', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const a = new PidLock(p)
  await a.acquire()
  const b = new PidLock(p)
  const waiting = b.acquire({ timeout: Number.MAX_VALUE })
  const waitingToo = new PidLock(p).acquire({ timeout: 1e300, signal: AbortSignal.timeout(50) })
  await assert.rejects(waitingToo, { name: 'TimeoutError' })
  await a.release()
  assert.deepEqual(await waiting, { reclaimed: null, token: b.token })
  assert.equal(b.held, true)
  assert.equal(await b.release(), true)
})
