// Issue 4: waiting with a deadline and an AbortSignal, the sync twins, holder metadata and
// update(), inspect(), the reclaim notice, and the dispose symbols.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { PidLock } from '../lib/index.mjs'
import { tempDir, holder, script, goLease, readLease, exists, age, sleep, waitUntil, posixOnly, lockDirEntries } from './helpers/util.mjs'

async function rejection(promise) {
  return promise.then(
    () => assert.fail('expected a rejection'),
    (err) => err,
  )
}

const FAST = { leaseHeartbeatInterval: 50, leaseStaleThreshold: 400 }

// ---------------------------------------------------------------------------------------------
// Waiting.

test('acquire({ timeout }) succeeds when the holder releases', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p })
  await h.line('ACQUIRED')
  const lock = new PidLock(p)
  let settled = false
  const waiting = lock.acquire({ timeout: 20_000 }).finally(() => {
    settled = true
  })
  await sleep(150)
  assert.equal(settled, false, 'still waiting while the holder holds')
  h.send('release')
  await h.line('RELEASED')
  const { reclaimed } = await waiting
  assert.equal(reclaimed, null, 'it was free when taken')
  assert.equal(lock.held, true)
  assert.equal(readLease(p).pid, process.pid)
  await lock.release()
})

test("acquire({ timeout }) succeeds when the holder is SIGKILL'd", async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p })
  await h.line('ACQUIRED')
  const lock = new PidLock(p)
  const waiting = lock.acquire({ timeout: 20_000 })
  await sleep(100)
  h.signal('SIGKILL')
  const { reclaimed } = await waiting
  assert.equal(reclaimed.pid, h.pid)
  assert.equal(reclaimed.alive, false)
  await lock.release()
})

test("acquire({ timeout: Infinity }) succeeds when the holder's lease goes stale (SIGSTOP)", posixOnly('SIGSTOP'), async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p, options: FAST })
  await h.line('ACQUIRED')
  const lock = new PidLock(p, FAST)
  const waiting = lock.acquire({ timeout: Infinity })
  await sleep(100)
  h.signal('SIGSTOP')
  const { reclaimed } = await waiting
  assert.equal(reclaimed.pid, h.pid)
  assert.equal(reclaimed.stale, true)
  await lock.release()
})

test('timeout: rejects with ELOCKHELD and the holder, after waiting', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = holder(t, { path: p, options: { metadata: { url: 'http://127.0.0.1:9/' } } })
  await h.line('ACQUIRED')
  const lock = new PidLock(p)
  const started = Date.now()
  const err = await rejection(lock.acquire({ timeout: 400 }))
  assert.ok(Date.now() - started >= 350, 'it waited for the timeout')
  assert.equal(err.code, 'ELOCKHELD')
  assert.equal(err.holder.pid, h.pid)
  assert.deepEqual(err.holder.metadata, { url: 'http://127.0.0.1:9/' })
  assert.equal(lock.held, false)
  assert.deepEqual(lockDirEntries(dir), ['x.lock'], 'nothing left behind')
})

test('abort: rejects with the signal reason (default AbortError, or a custom one), leaving nothing behind', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = holder(t, { path: p })
  await h.line('ACQUIRED')
  const lock = new PidLock(p)

  const ac = new AbortController()
  const waiting = lock.acquire({ timeout: Infinity, signal: ac.signal })
  await sleep(100)
  ac.abort()
  const err = await rejection(waiting)
  assert.equal(err, ac.signal.reason)
  assert.equal(err.name, 'AbortError')

  const custom = new Error('stop waiting')
  const ac2 = new AbortController()
  const waiting2 = lock.acquire({ timeout: 60_000, signal: ac2.signal })
  await sleep(50)
  ac2.abort(custom)
  assert.equal(await rejection(waiting2), custom)

  const already = AbortSignal.abort('gone')
  assert.equal(await rejection(lock.acquire({ signal: already })), 'gone')

  assert.equal(lock.held, false)
  assert.deepEqual(lockDirEntries(dir), ['x.lock'])
  assert.equal(readLease(p).pid, h.pid)
  // The instance still works afterwards.
  h.send('release')
  await h.line('RELEASED')
  await lock.acquire()
  await lock.release()
})

test('one signal shared by many waiting acquires: no MaxListeners warning, each ends with the reason', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p })
  await h.line('ACQUIRED')
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  const ac = new AbortController()
  const waits = Array.from({ length: 25 }, () => new PidLock(p).acquire({ timeout: Infinity, signal: ac.signal }))
  // And acquires that end before the abort, on the same signal.
  for (let i = 0; i < 15; i++) await rejection(new PidLock(p).acquire({ timeout: 0, signal: ac.signal }))
  ac.abort()
  for (const r of await Promise.allSettled(waits)) assert.deepEqual(r, { status: 'rejected', reason: ac.signal.reason })
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(warnings.map((w) => w.name), [])
  assert.equal(readLease(p).pid, h.pid)
})

test('an abort that comes after the lock became free: either held or aborted, never both', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  for (let i = 0; i < 20; i++) {
    const lock = new PidLock(p)
    const ac = new AbortController()
    const waiting = lock.acquire({ timeout: 1000, signal: ac.signal })
    ac.abort()
    const outcome = await waiting.then(() => 'held', () => 'aborted')
    assert.equal(lock.held, outcome === 'held')
    assert.equal(exists(p), outcome === 'held')
    await lock.release()
  }
})

test('after a timeout or an abort nothing keeps the process alive (the child exits by itself)', { timeout: 30_000 }, async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const mine = new PidLock(p)
  await mine.acquire()
  const c = script(t, `
    const lock = new PidLock(args[0], { onLeaseLost: () => {} })
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 200)
    try { await lock.acquire({ timeout: Infinity, signal: ac.signal }) } catch (e) { console.log('ABORTED ' + JSON.stringify(e.name)) }
    try { await lock.acquire({ timeout: 300 }) } catch (e) { console.log('TIMEOUT ' + JSON.stringify(e.code)) }
    try { await lock.acquire({ timeout: 60000, signal: AbortSignal.timeout(200) }) } catch (e) { console.log('SIGNAL_TIMEOUT ' + JSON.stringify(e.name)) }
  `, { args: [p] })
  assert.equal(await c.line('ABORTED'), 'AbortError')
  assert.equal(await c.line('TIMEOUT'), 'ELOCKHELD')
  assert.equal(await c.line('SIGNAL_TIMEOUT'), 'TimeoutError')
  const exit = await Promise.race([c.exited, sleep(10_000).then(() => 'still running')])
  assert.deepEqual(exit, { code: 0, signal: null })
  assert.equal(readLease(p).pid, process.pid)
  await mine.release()
})

// ---------------------------------------------------------------------------------------------
// Sync twins.

test('acquireSync / releaseSync', (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const lock = new PidLock(p)
  const out = lock.acquireSync()
  assert.equal(out.reclaimed, null)
  assert.equal(typeof out.token, 'bigint')
  assert.equal(lock.token, out.token)
  assert.equal(lock.held, true)
  assert.equal(readLease(p).pid, process.pid)
  const other = new PidLock(p)
  assert.throws(() => other.acquireSync(), (e) => e.code === 'ELOCKHELD')
  lock.releaseSync()
  assert.equal(lock.held, false)
  assert.equal(exists(p), false)
  assert.throws(() => lock.acquireSync({ signal: new AbortController().signal }), (e) => e.code === 'ERR_INVALID_ARG_VALUE')
})

test('acquireSync({ timeout }) waits (blocking) until the holder releases, or times out', { timeout: 30_000 }, async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const c = script(t, `
    const lock = new PidLock(args[0])
    await lock.acquire()
    console.log('ACQUIRED')
    setTimeout(async () => { await lock.release(); console.log('RELEASED') }, 1500)
  `, { args: [p] })
  await c.line('ACQUIRED')
  const lock = new PidLock(p)
  const started = Date.now()
  assert.throws(() => lock.acquireSync({ timeout: 300 }), (e) => e.code === 'ELOCKHELD' && e.holder.pid === c.pid)
  assert.ok(Date.now() - started >= 250)
  const { reclaimed } = lock.acquireSync({ timeout: 20_000 })
  assert.equal(reclaimed, null)
  assert.equal(lock.held, true)
  await c.line('RELEASED')
  lock.releaseSync()
})

test("sync twins work inside process.on('exit')", async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const proof = path.join(dir, 'proof.json')
  const c = script(t, `
    import fs from 'node:fs'
    const [p, proof] = args
    process.on('exit', () => {
      const lock = new PidLock(p)
      const out = lock.acquireSync()
      const lease = JSON.parse(fs.readFileSync(p, 'utf8'))
      const heldThen = lock.held
      lock.releaseSync()
      const second = new PidLock(p + '.2')
      second.acquireSync({ timeout: 1000 })
      fs.writeFileSync(proof, JSON.stringify({ out: { reclaimed: out.reclaimed, token: typeof out.token }, pid: lease.pid, heldThen, heldAfter: lock.held, gone: !fs.existsSync(p) }))
    })
  `, { args: [p, proof] })
  assert.deepEqual(await c.exited, { code: 0, signal: null })
  const got = JSON.parse(fs.readFileSync(proof, 'utf8'))
  assert.deepEqual(got, { out: { reclaimed: null, token: 'bigint' }, pid: c.pid, heldThen: true, heldAfter: false, gone: true })
  assert.equal(exists(p + '.2'), false, 'a lock taken in an exit listener is still released at exit')
})

test('a sync call while an async one runs on the same instance: ELOCKBUSY (releaseSync cancels a waiting acquire)', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p })
  await h.line('ACQUIRED')
  const lock = new PidLock(p)
  const waiting = lock.acquire({ timeout: 500 }).catch((e) => e)
  await sleep(50)
  assert.throws(() => lock.acquireSync(), { code: 'ELOCKBUSY' }, 'documented: a sync call while an async call runs')
  assert.throws(() => lock.updateSync({ a: 1 }), { code: 'ELOCKBUSY' })
  assert.equal((await waiting).code, 'ELOCKHELD')
  // releaseSync() is the exception: it cancels a waiting acquire instead.
  const waitingAgain = lock.acquire({ timeout: 5000 }).catch((e) => e)
  await sleep(50)
  assert.equal(lock.releaseSync(), false)
  assert.equal((await waitingAgain).name, 'AbortError')
})

// ---------------------------------------------------------------------------------------------
// Metadata and inspection.

test('metadata is stored, read by inspect/inspectSync, survives heartbeats and update()', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const meta = { url: 'http://localhost:5173/', tool: 'vite', nested: { a: [1, 'two', null] } }
  const lock = new PidLock(p, { ...FAST, metadata: meta })
  const before = Date.now()
  await lock.acquire()
  const first = await PidLock.inspect(p)
  assert.deepEqual(first.metadata, meta)
  assert.equal(first.valid, true)
  assert.equal(first.pid, process.pid)
  assert.equal(first.ownerId, readLease(p).ownerID)
  assert.equal(first.hostname, os.hostname())
  assert.ok(first.startedAt instanceof Date)
  // The engine reads the system clock; V8's Date.now() on Windows is its own clock, synced to
  // the system's now and then, and may be off by tens of milliseconds: a generous bound.
  assert.ok(first.startedAt.getTime() >= before - 1000 && first.startedAt.getTime() <= Date.now() + 1000)
  assert.ok(first.lastHeartbeat instanceof Date)
  assert.equal(first.alive, true)
  assert.equal(first.stale, false)
  // The sync reader gives the same record; a heartbeat may have landed in between.
  const again = PidLock.inspectSync(p)
  assert.ok(again.lastHeartbeat >= first.lastHeartbeat)
  assert.deepEqual({ ...again, lastHeartbeat: null }, { ...first, lastHeartbeat: null })
  // Heartbeats keep it.
  await waitUntil(() => PidLock.inspectSync(p).lastHeartbeat > first.lastHeartbeat, { what: 'a heartbeat' })
  await sleep(200)
  const beaten = PidLock.inspectSync(p)
  assert.deepEqual(beaten.metadata, meta)
  assert.equal(beaten.ownerId, first.ownerId)
  assert.deepEqual(beaten.startedAt, first.startedAt)
  // update() replaces it; the owner and start time stay.
  await lock.update({ url: 'http://localhost:5174/', ready: true })
  const updated = await PidLock.inspect(p)
  assert.deepEqual(updated.metadata, { url: 'http://localhost:5174/', ready: true })
  assert.equal(updated.ownerId, first.ownerId)
  assert.deepEqual(updated.startedAt, first.startedAt)
  await sleep(200)
  assert.deepEqual(PidLock.inspectSync(p).metadata, { url: 'http://localhost:5174/', ready: true }, 'heartbeats keep the update')
  lock.updateSync(['an', 'array'])
  assert.deepEqual(PidLock.inspectSync(p).metadata, ['an', 'array'])
  await lock.update(null)
  assert.equal(PidLock.inspectSync(p).metadata, null)
  assert.equal(lock.held, true)
  await assert.rejects(lock.update({ big: 'x'.repeat(5000) }), (e) => e instanceof RangeError && e.code === 'ERR_OUT_OF_RANGE')
  assert.throws(() => lock.updateSync('text'), (e) => e.code === 'ERR_INVALID_ARG_TYPE')
  assert.equal(PidLock.inspectSync(p).metadata, null, 'a refused update changes nothing')
  // A later re-acquisition of the same instance keeps the last metadata.
  await lock.release()
  await lock.acquire()
  assert.equal(PidLock.inspectSync(p).metadata, null)
  await lock.release()
})

test('metadata reaches the ELOCKHELD error of another process, and update() is seen there', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p, options: { metadata: { url: 'http://a/' } } })
  await h.line('ACQUIRED')
  const err = await rejection(new PidLock(p).acquire())
  assert.deepEqual(err.holder.metadata, { url: 'http://a/' })
  assert.match(err.message, /http:\/\/a\//)
  h.send('update {"url":"http://b/"}')
  await h.line('UPDATED')
  const err2 = await rejection(new PidLock(p).acquire())
  assert.deepEqual(err2.holder.metadata, { url: 'http://b/' })
  assert.match(err2.message, /http:\/\/b\//)
})

test('a concurrent reader never sees a broken record during 10,000 update() calls', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const stop = path.join(dir, 'stop')
  const short = { s: 1 }
  const long = { url: 'http://localhost:3000/' + 'x'.repeat(300), list: Array.from({ length: 30 }, (_, i) => i) }
  const reader = script(t, `
    import fs from 'node:fs'
    const [p, stop, shortText, longText] = args
    let reads = 0, bad = 0, shorts = 0, longs = 0
    const samples = []
    console.log('READING')
    for (;;) {
      if ((reads & 255) === 0 && fs.existsSync(stop)) break
      reads++
      let text
      let m
      if (process.platform === 'win32') {
        // Windows: the package's own reader, which waits out a rewrite's byte-range lock.
        // (Other readers get a lock violation during a rewrite there; Wine does not enforce it.)
        const holder = PidLock.inspectSync(p)
        if (!holder) continue
        text = JSON.stringify(holder)
        if (!holder.valid) { bad++; if (samples.length < 3) samples.push(text); continue }
        m = JSON.stringify(holder.metadata)
      } else {
        try { text = fs.readFileSync(p, 'utf8') } catch (e) { if (e.code === 'ENOENT') continue; throw e }
        try {
          if (!text.endsWith('}\\n')) throw new Error('no end')
          m = JSON.stringify(JSON.parse(text).metadata)
        } catch { bad++; if (samples.length < 3) samples.push(text); continue }
      }
      if (m === shortText) shorts++
      else if (m === longText) longs++
      else { bad++; if (samples.length < 3) samples.push(text) }
    }
    console.log('DONE ' + JSON.stringify({ reads, bad, shorts, longs, samples }))
  `, { args: [p, stop, JSON.stringify(short), JSON.stringify(long)] })
  const lock = new PidLock(p, { leaseHeartbeatInterval: 5, leaseStaleThreshold: 5000, metadata: short })
  await lock.acquire()
  await reader.line('READING')
  for (let i = 0; i < 10_000; i++) {
    await lock.update(i % 2 ? short : long)
  }
  fs.writeFileSync(stop, '')
  const result = await reader.line('DONE', 60_000)
  assert.equal(lock.held, true)
  await lock.release()
  assert.equal(result.bad, 0, JSON.stringify(result.samples))
  assert.ok(result.shorts > 0 && result.longs > 0, `the reader saw both records: ${JSON.stringify(result)}`)
})

test('inspect: null when free, fields null for a Go-written lease, valid:false for invalid content', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  assert.equal(await PidLock.inspect(p), null)
  assert.equal(PidLock.inspectSync(p), null)
  assert.equal(PidLock.inspectSync(path.join(p, 'missing-dir', 'y.lock')), null)
  fs.writeFileSync(p, goLease({ ownerID: 'go-owner', pid: 4242 }))
  const go = await PidLock.inspect(p)
  assert.equal(go.valid, true)
  assert.equal(go.pid, 4242)
  assert.equal(go.ownerId, 'go-owner')
  assert.equal(go.hostname, null)
  assert.equal(go.startedAt, null)
  assert.equal(go.metadata, null)
  assert.equal(go.alive, 'unknown')
  assert.equal(go.stale, false)
  assert.ok(go.lastHeartbeat instanceof Date)
  fs.writeFileSync(p, goLease({ ownerID: 'go-owner', pid: 4242, hb: Date.now() - 2000 }))
  assert.equal(PidLock.inspectSync(p).stale, false)
  assert.equal(PidLock.inspectSync(p, { leaseStaleThreshold: 1000 }).stale, true)
  fs.writeFileSync(p, '{"versio')
  const bad = PidLock.inspectSync(p)
  assert.equal(bad.valid, false)
  assert.equal(bad.size, 8)
  assert.equal(bad.stale, false)
  assert.ok(bad.modifiedAt instanceof Date)
  for (const k of ['pid', 'ownerId', 'hostname', 'startedAt', 'lastHeartbeat', 'metadata']) assert.equal(bad[k], null, k)
  age(p, 3000)
  assert.equal(PidLock.inspectSync(p).stale, true)
  assert.equal(PidLock.inspectSync(p, { invalidPidLockStaleThreshold: 5000 }).stale, false)
  assert.equal(fs.readFileSync(p, 'utf8'), '{"versio', 'inspect never changes anything')
})

test('inspect reports a dead holder as alive: false', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p })
  await h.line('ACQUIRED')
  assert.equal((await PidLock.inspect(p)).alive, true)
  h.signal('SIGKILL')
  await h.exited
  const seen = await PidLock.inspect(p)
  assert.equal(seen.alive, false)
  assert.equal(seen.pid, h.pid)
  assert.ok(exists(p), 'inspect does not take over')
})

test('{ reclaimed }: null when free, the holder for stale/dead, { valid: false } for invalid content', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const lock = new PidLock(p)
  const first = await lock.acquire()
  assert.equal(first.reclaimed, null)
  assert.equal(typeof first.token, 'bigint')
  assert.deepEqual(await lock.acquire(), { reclaimed: null, token: first.token }, 'already held')
  await lock.release()

  fs.writeFileSync(p, goLease({ ownerID: 'stale-one', pid: 4242, hb: Date.now() - 10_000 }))
  const stale = (await lock.acquire()).reclaimed
  assert.equal(stale.valid, true)
  assert.equal(stale.ownerId, 'stale-one')
  assert.equal(stale.pid, 4242)
  assert.equal(stale.stale, true)
  assert.ok(stale.lastHeartbeat instanceof Date)
  await lock.release()

  const h = holder(t, { path: p, options: { metadata: { outDir: 'dist' } } })
  await h.line('ACQUIRED')
  h.signal('SIGKILL')
  await h.exited
  const dead = lock.acquireSync().reclaimed
  assert.equal(dead.pid, h.pid)
  assert.equal(dead.alive, false)
  assert.deepEqual(dead.metadata, { outDir: 'dist' }, 'the dead holder left its metadata for cleanup')
  assert.ok(dead.startedAt instanceof Date)
  lock.releaseSync()

  fs.writeFileSync(p, '')
  age(p, 5000)
  const invalid = lock.acquireSync().reclaimed
  assert.equal(invalid.valid, false)
  assert.equal(invalid.size, 0)
  assert.equal(invalid.stale, true)
  await lock.release()
})

test('Symbol.asyncDispose and Symbol.dispose release the lock', { skip: typeof Symbol.asyncDispose !== 'symbol' || typeof Symbol.dispose !== 'symbol' ? 'no dispose symbols on this Node' : false }, async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const a = new PidLock(p)
  await a.acquire()
  await a[Symbol.asyncDispose]()
  assert.equal(a.held, false)
  assert.equal(exists(p), false)
  const b = new PidLock(p)
  b.acquireSync()
  assert.equal(b[Symbol.dispose](), undefined)
  assert.equal(b.held, false)
  assert.equal(exists(p), false)
  // Disposing a lock that is not held is harmless.
  b[Symbol.dispose]()
  await b[Symbol.asyncDispose]()
})
