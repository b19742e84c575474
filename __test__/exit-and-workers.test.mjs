// Locks are released when the process (or a worker thread) ends, without changing how it ends
// (issue 3, section 2); instances and workers of one process exclude each other (section 4).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { PidLock } from '../lib/index.mjs'
import { tempDir, script, holder, exists, readLease, sleep, waitUntil, libCjs, posixOnly, RENAME_OVER_OPEN } from './helpers/util.mjs'

const HB = { leaseHeartbeatInterval: 50, leaseStaleThreshold: 1000 }

/** Watches `p` for `ms`: it must not exist at any look (no heartbeat or cleanup recreates it). */
async function staysGone(p, ms = 300) {
  const until = Date.now() + ms
  while (Date.now() < until) {
    assert.equal(exists(p), false, 'the lock file reappeared')
    await sleep(10)
  }
}

/**
 * A second name for the lock file's inode: heartbeats rewrite the inode in place, so they stay
 * visible through it after the lock path itself is gone.
 */
function peek(p) {
  const alias = p + '.peek'
  fs.linkSync(p, alias)
  return () => fs.readFileSync(alias, 'utf8')
}

/** Heartbeats seen through the alias for `ms`: none after the owner ended. */
async function noMoreHeartbeats(read, ms = 300) {
  const before = read()
  await sleep(ms)
  assert.equal(read(), before, 'a heartbeat rewrote the lease after its owner ended')
}

// ---------------------------------------------------------------------------------------------
// Process end.

test('natural end of the event loop: the lock file is gone, exit code 0', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const c = script(t, `
    const lock = new PidLock(args[0], ${JSON.stringify(HB)})
    await lock.acquire()
    console.log('ACQUIRED')
    await new Promise((r) => setTimeout(r, 200)) // a few heartbeats
    console.log('ENDING')
  `, { args: [p] })
  await c.line('ACQUIRED')
  assert.ok(exists(p))
  await c.line('ENDING')
  assert.deepEqual(await c.exited, { code: 0, signal: null })
  assert.equal(exists(p), false)
})

test('natural end with an unreferenced lock (no variable kept): released at exit', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const c = script(t, `
    await new PidLock(args[0], ${JSON.stringify(HB)}).acquire()
    console.log('ACQUIRED')
  `, { args: [p] })
  await c.line('ACQUIRED')
  assert.deepEqual(await c.exited, { code: 0, signal: null })
  assert.equal(exists(p), false)
})

test('process.exit(3): the lock file is gone and the exit code stays 3', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p, options: HB })
  await h.line('ACQUIRED')
  h.send('exit 3')
  assert.deepEqual(await h.exited, { code: 3, signal: null })
  assert.equal(exists(p), false)
})

test('process.exit() from an exit-code-setting script: exitCode is kept', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const c = script(t, `
    new PidLock(args[0]).acquireSync()
    process.exitCode = 7
  `, { args: [p] })
  assert.deepEqual(await c.exited, { code: 7, signal: null })
  assert.equal(exists(p), false)
})

test('an uncaught exception: the file is gone, exit code stays 1 and the error is printed', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p, options: HB })
  await h.line('ACQUIRED')
  h.send('throw')
  assert.deepEqual(await h.exited, { code: 1, signal: null })
  await h.closed
  assert.match(h.stderr, /uncaught on purpose/)
  assert.equal(exists(p), false)
})

test('an unhandled rejection: the file is gone, exit code stays 1', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const c = script(t, `
    await new PidLock(args[0]).acquire()
    Promise.reject(new Error('rejected on purpose'))
  `, { args: [p] })
  assert.deepEqual(await c.exited, { code: 1, signal: null })
  await c.closed
  assert.match(c.stderr, /rejected on purpose/)
  assert.equal(exists(p), false)
})

test('SIGTERM with no handler leaves the file behind (no signal handler is installed) and it is taken over at once', posixOnly('SIGTERM (the Windows kill, TerminateProcess, is in windows.test.mjs)'), async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const h = holder(t, { path: p, options: HB })
  await h.line('ACQUIRED')
  h.signal('SIGTERM')
  assert.deepEqual(await h.exited, { code: null, signal: 'SIGTERM' })
  assert.equal(readLease(p).pid, h.pid)
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire()
  assert.equal(reclaimed.alive, false)
  await lock.release()
})

test('a user SIGINT handler still works and the default exit path releases', posixOnly('SIGINT sent with kill()'), async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const c = script(t, `
    process.on('SIGINT', () => { console.log('GOT_SIGINT'); process.exit(130) })
    await new PidLock(args[0]).acquire()
    console.log('ACQUIRED')
    setInterval(() => {}, 1000)
  `, { args: [p] })
  await c.line('ACQUIRED')
  c.signal('SIGINT')
  await c.line('GOT_SIGINT')
  assert.deepEqual(await c.exited, { code: 130, signal: null })
  assert.equal(exists(p), false)
})

// ---------------------------------------------------------------------------------------------
// Worker threads.

function worker(code, data) {
  const w = new Worker(
    `const { PidLock } = require(${JSON.stringify(libCjs)}); const { parentPort, workerData } = require('node:worker_threads');\n(async () => {\n${code}\n})()`,
    { eval: true, workerData: data },
  )
  const messages = []
  const waiters = []
  w.on('message', (m) => {
    messages.push(m)
    for (const f of [...waiters]) f()
  })
  const exited = new Promise((resolve) => w.once('exit', resolve))
  const errors = []
  w.on('error', (e) => errors.push(e))
  return {
    w,
    exited,
    errors,
    message(type, timeout = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const i = messages.findIndex((m) => m.type === type)
          if (i >= 0) {
            const [m] = messages.splice(i, 1)
            waiters.splice(waiters.indexOf(check), 1)
            clearTimeout(timer)
            resolve(m)
          }
        }
        const timer = setTimeout(() => reject(new Error(`no ${type} message from the worker`)), timeout)
        waiters.push(check)
        check()
      })
    },
  }
}

test('a worker that ends releases its lock, and no heartbeat writes it afterwards', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const wk = worker(`
    const lock = new PidLock(workerData.p, workerData.hb)
    await lock.acquire()
    parentPort.postMessage({ type: 'acquired' })
    await new Promise((r) => setTimeout(r, 150))
  `, { p, hb: HB })
  await wk.message('acquired')
  const read = peek(p)
  const first = read()
  await waitUntil(() => read() !== first, { what: 'a heartbeat from the worker (seen through the alias)' })
  assert.equal(await wk.exited, 0)
  assert.equal(exists(p), false)
  await Promise.all([staysGone(p), noMoreHeartbeats(read)])
  assert.deepEqual(wk.errors, [])
})

test('a worker that calls process.exit() releases its lock; the main thread carries on', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const wk = worker(`
    const lock = new PidLock(workerData.p, workerData.hb)
    await lock.acquire()
    parentPort.postMessage({ type: 'acquired' })
    setInterval(() => {}, 1000)
    setTimeout(() => process.exit(5), 120)
  `, { p, hb: HB })
  await wk.message('acquired')
  const read = peek(p)
  assert.equal(await wk.exited, 5)
  assert.equal(exists(p), false)
  await Promise.all([staysGone(p), noMoreHeartbeats(read)])
  // The main thread's own lock on another path is unaffected.
  const mine = new PidLock(p + '.main')
  await mine.acquire()
  assert.equal(mine.held, true)
  await mine.release()
})

test('worker.terminate() releases its lock and stops its heartbeat', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const wk = worker(`
    const lock = new PidLock(workerData.p, workerData.hb)
    await lock.acquire()
    parentPort.postMessage({ type: 'acquired' })
    setInterval(() => {}, 1000)
  `, { p, hb: HB })
  await wk.message('acquired')
  const read = peek(p)
  const first = read()
  await waitUntil(() => read() !== first, { what: 'a heartbeat from the worker' })
  await wk.w.terminate()
  await wk.exited
  assert.equal(exists(p), false)
  await Promise.all([staysGone(p), noMoreHeartbeats(read)])
})

test('worker.terminate() while the worker is in a busy loop releases too', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const wk = worker(`
    const lock = new PidLock(workerData.p, workerData.hb)
    await lock.acquire()
    parentPort.postMessage({ type: 'acquired' })
    for (;;) {}
  `, { p, hb: HB })
  await wk.message('acquired')
  const read = peek(p)
  const first = read()
  await waitUntil(() => read() !== first, { what: 'a heartbeat while the worker spins' })
  await wk.w.terminate()
  await wk.exited
  assert.equal(exists(p), false)
  await Promise.all([staysGone(p), noMoreHeartbeats(read)])
})

test("a terminated worker's lock that was taken over meanwhile is left to the new owner", posixOnly(RENAME_OVER_OPEN), async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const wk = worker(`
    const lock = new PidLock(workerData.p, workerData.hb)
    await lock.acquire()
    parentPort.postMessage({ type: 'acquired' })
    setInterval(() => {}, 1000)
  `, { p, hb: HB })
  await wk.message('acquired')
  const foreign = '{"version":1,"ownerID":"foreign","pid":1,"lastHeartbeatUnixNano":' + Date.now() + '000000}\n'
  fs.writeFileSync(p + '.n', foreign)
  fs.renameSync(p + '.n', p)
  await wk.w.terminate()
  assert.equal(fs.readFileSync(p, 'utf8'), foreign)
})

// ---------------------------------------------------------------------------------------------
// One process, many holders.

test('two PidLock instances in one process exclude each other', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const a = new PidLock(p)
  const b = new PidLock(p)
  await a.acquire()
  await assert.rejects(b.acquire(), (e) => e.code === 'ELOCKHELD' && e.holder.pid === process.pid)
  assert.throws(() => b.acquireSync(), (e) => e.code === 'ELOCKHELD')
  assert.equal(b.held, false)
  // Waiting works within one process too.
  const waiting = b.acquire({ timeout: 5000 })
  await sleep(100)
  await a.release()
  await waiting
  assert.equal(b.held, true)
  await assert.rejects(a.acquire(), (e) => e.code === 'ELOCKHELD')
  await b.release()
})

test('two worker threads of one process exclude each other', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const code = `
    const lock = new PidLock(workerData.p)
    parentPort.on('message', async (cmd) => {
      if (cmd === 'acquire') {
        try { await lock.acquire(); parentPort.postMessage({ type: 'acquired' }) }
        catch (e) { parentPort.postMessage({ type: 'failed', code: e.code, pid: e.holder && e.holder.pid }) }
      } else if (cmd === 'release') {
        await lock.release(); parentPort.postMessage({ type: 'released' })
      } else if (cmd === 'quit') { process.exit(0) }
    })
    parentPort.postMessage({ type: 'ready' })
  `
  const one = worker(code, { p })
  const two = worker(code, { p })
  t.after(() => Promise.all([one.w.terminate(), two.w.terminate()]))
  await Promise.all([one.message('ready'), two.message('ready')])
  one.w.postMessage('acquire')
  await one.message('acquired')
  two.w.postMessage('acquire')
  const refused = await two.message('failed')
  assert.equal(refused.code, 'ELOCKHELD')
  assert.equal(refused.pid, process.pid)
  // The main thread is excluded too.
  await assert.rejects(new PidLock(p).acquire(), (e) => e.code === 'ELOCKHELD')
  one.w.postMessage('release')
  await one.message('released')
  two.w.postMessage('acquire')
  await two.message('acquired')
  one.w.postMessage('acquire')
  assert.equal((await one.message('failed')).code, 'ELOCKHELD')
  two.w.postMessage('quit')
  await two.exited
  assert.equal(exists(p), false, "the quitting worker's exit released it")
  one.w.postMessage('acquire')
  await one.message('acquired')
  one.w.postMessage('quit')
  await one.exited
  assert.equal(exists(p), false)
})

test("process.exit() in the main thread also releases a worker's lock", async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const c = script(t, `
    import { Worker } from 'node:worker_threads'
    const w = new Worker(
      'const { PidLock } = require(' + JSON.stringify(process.env.LIB) + '); const { parentPort, workerData } = require("node:worker_threads");' +
      '(async () => { await new PidLock(workerData).acquire(); parentPort.postMessage("acquired"); setInterval(() => {}, 1000) })()',
      { eval: true, workerData: args[0], execArgv: [] },
    )
    w.once('message', () => { console.log('ACQUIRED'); process.exit(4) })
  `, { args: [p], env: { LIB: libCjs } })
  await c.line('ACQUIRED')
  assert.deepEqual(await c.exited, { code: 4, signal: null })
  assert.equal(exists(p), false)
})
