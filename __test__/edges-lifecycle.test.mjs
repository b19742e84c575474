// Lifecycle holes (issue 12, section 3): a re-acquire while the lease is unconfirmed, waits of a
// worker that ends, a release that fails, long lock names, release while an acquire waits, a
// processAppearsAlive that calls back into its lock, and no busy loop on the JS thread.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { PidLock } from '../lib/index.mjs'
import { tempDir, holder, goLease, readLease, exists, sleep, waitUntil, libCjs, posixOnly, lockDirEntries } from './helpers/util.mjs'
import { cannotRun, wrappedScript } from './helpers/wrapped.mjs'

const HB = { leaseHeartbeatInterval: 100, leaseStaleThreshold: 600 }

async function settlesWithin(promise, ms, what) {
  let timer
  const stuck = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ stuck: true }), ms)
  })
  const out = await Promise.race([promise.then((value) => ({ value }), (error) => ({ error })), stuck])
  clearTimeout(timer)
  assert.ok(!out.stuck, `${what} did not settle within ${ms} ms`)
  return out
}

// ---------------------------------------------------------------------------------------------
// Re-acquire while the lease is unconfirmed.

for (const call of ['acquireSync', 'acquire']) {
  test(`${call}() after a freeze past the lease and a takeover: refused, and the loss is reported exactly once`, posixOnly('SIGSTOP'), async (t) => {
    const p = path.join(tempDir(t), 'x.lock')
    const h = holder(t, { path: p, options: HB })
    await h.line('ACQUIRED')
    h.signal('SIGSTOP')
    await sleep(HB.leaseStaleThreshold + 300)
    const b = new PidLock(p, HB)
    const { reclaimed } = await b.acquire()
    assert.equal(reclaimed.stale, true)
    const ours = readLease(p).ownerID
    // The command is waiting in the pipe when the holder wakes.
    h.send(call)
    h.signal('SIGCONT')
    const out = await Promise.race([h.line('ACQUIRED').then((v) => ({ acquired: v })), h.line('FAILED').then((v) => ({ failed: v }))])
    assert.ok(!out.acquired, `the old holder reported success while the new owner holds the lock: ${JSON.stringify(out)}`)
    assert.equal(out.failed.code, 'ELOCKHELD')
    await h.line('LOST', 5000)
    await sleep(400)
    assert.equal(h.count('LOST'), 1, 'the loss is reported exactly once')
    assert.equal(readLease(p).ownerID, ours, 'the new owner keeps the lock')
    assert.equal(b.held, true)
    await b.release()
  })
}

test('acquire() while unconfirmed but not taken over: verified through the file, still held, no loss', posixOnly('SIGSTOP'), async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p, options: HB })
  await h.line('ACQUIRED')
  const owner = readLease(p).ownerID
  h.signal('SIGSTOP')
  await sleep(HB.leaseStaleThreshold + 200)
  h.send('acquireSync')
  h.signal('SIGCONT')
  const out = await h.line('ACQUIRED')
  assert.equal(out.held, true)
  assert.equal(readLease(p).ownerID, owner)
  await sleep(300)
  assert.equal(h.count('LOST'), 0)
})

// ---------------------------------------------------------------------------------------------
// Workers.

test("a worker terminated while its acquire waits: the wait ends, nothing is acquired for it", async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p, options: HB })
  await h.line('ACQUIRED')
  const w = new Worker(
    `const { PidLock } = require(${JSON.stringify(libCjs)}); const { parentPort, workerData } = require('node:worker_threads');
     const lock = new PidLock(workerData.p, workerData.hb)
     lock.acquire({ timeout: Infinity }).then(() => parentPort.postMessage('acquired'), () => {})
     parentPort.postMessage('waiting')`,
    { eval: true, workerData: { p, hb: HB } },
  )
  await new Promise((resolve) => w.once('message', resolve))
  await sleep(150)
  await w.terminate()
  h.send('release')
  await h.line('RELEASED')
  // Long enough for a surviving wait (it polls every 20 ms) to take the free lock.
  await sleep(500)
  assert.equal(exists(p), false, "the terminated worker's wait acquired the lock")
  const mine = new PidLock(p)
  await mine.acquire()
  await mine.release()
})

// ---------------------------------------------------------------------------------------------
// A release that fails.

test('a release that fails (the directory refuses the rename) keeps the lock held and renewed', async (t) => {
  const why = cannotRun(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'])
  if (why) return t.skip(why)
  const dir = tempDir(t)
  fs.chmodSync(dir, 0o755)
  const sub = path.join(dir, 'locks')
  fs.mkdirSync(sub)
  fs.chownSync(sub, 65534, 65534)
  const p = path.join(sub, 'x.lock')
  const c = wrappedScript(t, [], `
    const lost = []
    const lock = new PidLock(args[0], { ...JSON.parse(args[1]), onLeaseLost: (i) => console.log('LOST ' + JSON.stringify(i.reason)) })
    await lock.acquire()
    console.log('ACQUIRED')
    const rl = (await import('node:readline')).createInterface({ input: process.stdin })
    rl.on('line', async (cmd) => {
      if (cmd === 'release') {
        try { console.log('RELEASED ' + JSON.stringify(await lock.release())) }
        catch (e) { console.log('RELEASEFAILED ' + JSON.stringify({ code: e.code, held: lock.held })) }
      } else if (cmd === 'held') console.log('HELD ' + JSON.stringify(lock.held))
      else if (cmd === 'end') rl.close()
    })
  `, { uid: 65534, args: [p, JSON.stringify(HB)] })
  await c.line('ACQUIRED')
  fs.chmodSync(sub, 0o555)
  t.after(() => {
    try {
      fs.chmodSync(sub, 0o755)
    } catch {}
  })
  c.send('release')
  const failed = await c.line('RELEASEFAILED')
  assert.equal(failed.code, 'EACCES')
  assert.equal(failed.held, true)
  // Several stale thresholds later the lease is still renewed and still held.
  await sleep(HB.leaseStaleThreshold * 2)
  c.send('held')
  assert.equal(await c.line('HELD'), true)
  const lease = readLease(p)
  const ageMs = Date.now() - Number(BigInt(lease.lastHeartbeatUnixNano) / 1_000_000n)
  assert.ok(ageMs < HB.leaseStaleThreshold, `the heartbeat stopped: last one ${ageMs} ms ago`)
  await assert.rejects(new PidLock(p, HB).acquire(), { code: 'ELOCKHELD' })
  fs.chmodSync(sub, 0o755)
  c.send('release')
  assert.equal(await c.line('RELEASED'), true)
  assert.equal(exists(p), false)
  c.send('end')
})

// ---------------------------------------------------------------------------------------------
// Long names.

test('a lock name of 255 bytes works: acquire, release, and takeover of a dead owner', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'n'.repeat(250) + '.lock')
  const a = new PidLock(p)
  await a.acquire()
  await assert.rejects(new PidLock(p).acquire(), { code: 'ELOCKHELD' })
  assert.equal(await a.release(), true)
  assert.equal(exists(p), false)
  // A stale lease of a dead owner is taken over.
  fs.writeFileSync(p, goLease({ ownerID: 'gone', pid: process.pid, hb: Date.now() - 60_000 }))
  const b = new PidLock(p)
  const { reclaimed } = await b.acquire()
  assert.equal(reclaimed.ownerId, 'gone')
  assert.equal(await b.release(), true)
  assert.deepEqual(lockDirEntries(dir), [], 'no helper file left behind')
  // Helper names are bounded whatever the lock name.
  const names = []
  const watcher = fs.watch(dir, (_, name) => name && names.push(name))
  fs.writeFileSync(p, goLease({ ownerID: 'gone2', pid: process.pid, hb: Date.now() - 60_000 }))
  const c = new PidLock(p)
  await c.acquire()
  await c.release()
  await sleep(50)
  watcher.close()
  for (const n of names) assert.ok(Buffer.byteLength(n) <= 255, n)
})

// ---------------------------------------------------------------------------------------------
// API traps.

test('release() while an acquire() of the same instance waits cancels the wait and resolves', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const a = new PidLock(p)
  await a.acquire()
  const b = new PidLock(p)
  const waiting = b.acquire({ timeout: Infinity })
  await sleep(100)
  const released = await settlesWithin(b.release(), 3000, 'release()')
  assert.equal(released.value, false)
  const acquired = await settlesWithin(waiting, 3000, 'the waiting acquire()')
  assert.equal(acquired.error?.name, 'AbortError', String(acquired.error))
  assert.equal(b.held, false)
  // The instance is usable afterwards.
  await a.release()
  await b.acquire()
  assert.equal(await b.release(), true)
})

test('releaseSync() while an acquire() of the same instance waits cancels the wait too', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const a = new PidLock(p)
  await a.acquire()
  const b = new PidLock(p)
  const waiting = b.acquire({ timeout: 60_000 })
  await sleep(100)
  assert.equal(b.releaseSync(), false)
  const acquired = await settlesWithin(waiting, 3000, 'the waiting acquire()')
  assert.equal(acquired.error?.name, 'AbortError', String(acquired.error))
  await a.release()
})

test('releaseSync() (and `using`) right after acquire() leaves the lock free: the queued acquire never takes it', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const a = new PidLock(p)
  const queued = a.acquire()
  assert.equal(a.releaseSync(), false)
  const acquired = await settlesWithin(queued, 3000, 'the queued acquire()')
  assert.equal(acquired.error?.name, 'AbortError', String(acquired.error))
  assert.equal(a.held, false)
  assert.equal(exists(p), false, 'no lock file left behind')
  if (typeof Symbol.dispose === 'symbol') {
    const b = new PidLock(p)
    const pending = b.acquire().then((value) => ({ value }), (error) => ({ error }))
    b[Symbol.dispose]()
    assert.equal((await pending).error?.name, 'AbortError')
    assert.equal(b.held, false)
    assert.equal(exists(p), false)
  }
  // Usable afterwards.
  await a.acquire()
  assert.equal(a.releaseSync(), true)
})

test('a processAppearsAlive that calls release() on its own lock does not deadlock it', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const a = new PidLock(p)
  await a.acquire()
  let calls = 0
  let releasing = null
  const b = new PidLock(p, {
    processAppearsAlive: () => {
      calls++
      if (calls === 2) releasing = b.release()
      return true
    },
  })
  // Settled-state promise: the rejection is expected, and must not count as unhandled.
  const waiting = b.acquire({ timeout: Infinity }).then((value) => ({ value }), (error) => ({ error }))
  await waitUntil(() => releasing !== null, { what: 'the second liveness question' })
  const released = await settlesWithin(releasing, 3000, 'release() called from processAppearsAlive')
  assert.equal(released.value, false)
  const acquired = (await settlesWithin(waiting, 3000, 'the waiting acquire()')).value
  assert.equal(acquired.error?.name, 'AbortError')
  await a.release()
})

test('a takeover blocked by another contender does not spin on the JS thread', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  fs.writeFileSync(p, goLease({ ownerID: 'stale', pid: process.pid, hb: Date.now() - 60_000 }))
  // Another contender's fresh takeover claim: ours must wait for it to finish or go stale.
  fs.writeFileSync(path.join(dir, '.x.lock.takeover'), goLease({ ownerID: 'taker', pid: process.pid }))
  const lock = new PidLock(p, { acquireRetryDelay: 0 })
  // The first try runs on the JS thread (in a microtask of acquire()): a timer due in 1 ms
  // shows how long it kept the thread.
  const started = process.hrtime.bigint()
  const timerLate = new Promise((resolve) => setTimeout(() => resolve(Number(process.hrtime.bigint() - started) / 1e6), 1))
  const pending = lock.acquire({ timeout: 10_000 })
  const blockedMs = await timerLate
  await pending
  assert.ok(blockedMs < 250, `acquire() kept the JS thread for ${blockedMs.toFixed(0)} ms`)
  await lock.release()
})
