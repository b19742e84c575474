// The fast path of the Redis store (lib/store-direct.js): an uncontended acquire and a release
// go on the JS environment's own connection. That it is taken is seen in its counters; that it
// changes nothing else is seen against a real redis-server: losses, tokens, a paused or
// restarted server, renewals racing releases, and a process that ends by itself.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { PidLock } from '../lib/index.mjs'
import { script, waitUntil } from './helpers/util.mjs'
import { startRedis, redisOrSkip, redisCommand } from './helpers/redis-server.mjs'

const require = createRequire(import.meta.url)
const direct = require('../lib/store-direct.js')
const opts = redisOrSkip()

const snapshot = () => ({ ...direct.counts })

/** Acquires and releases until the fast path has answered one of each (it connects on first use). */
async function warm(lock) {
  await waitUntil(async () => {
    const before = snapshot()
    await lock.acquire()
    await lock.release()
    return direct.counts.claims > before.claims && direct.counts.releases > before.releases
  }, { what: 'the fast path to be taken' })
}

test('replies are split whole, however the bytes arrive', () => {
  const claim = Buffer.from('*2\r\n:1\r\n$16\r\n1796080962824726\r\n')
  assert.equal(direct.replyEnd(claim, 0), claim.length)
  for (let cut = 0; cut < claim.length; cut++) assert.equal(direct.replyEnd(claim.subarray(0, cut), 0), -1)
  const two = Buffer.from(':1\r\n-NOSCRIPT No matching script\r\n$-1\r\n*-1\r\n')
  assert.equal(direct.replyEnd(two, 0), 4)
  assert.equal(direct.replyEnd(two, 4), 34)
  assert.equal(direct.replyEnd(two, 34), 39)
  assert.equal(direct.replyEnd(two, 39), two.length)
  assert.throws(() => direct.replyEnd(Buffer.from('?1\r\n'), 0))
})

test('an uncontended acquire and release take the fast path; tokens, held, inspect and the lease are as before', opts, async (t) => {
  const srv = await startRedis(t)
  const lock = new PidLock('fast', { store: srv.url, metadata: { n: 1 } })
  await warm(lock)
  const before = snapshot()
  const first = await lock.acquire()
  assert.equal(direct.counts.claims, before.claims + 1)
  assert.equal(first.reclaimed, null)
  assert.equal(typeof first.token, 'bigint')
  assert.equal(lock.held, true)
  assert.equal(lock.token, first.token)
  const seen = await PidLock.inspect('fast', { store: srv.url })
  assert.equal(seen.pid, process.pid)
  assert.equal(seen.token, first.token)
  assert.deepEqual(seen.metadata, { n: 1 })
  await lock.update({ n: 2 })
  assert.deepEqual((await PidLock.inspect('fast', { store: srv.url })).metadata, { n: 2 })
  assert.equal(await lock.release(), true)
  assert.equal(direct.counts.releases, before.releases + 1)
  assert.equal(lock.held, false)
  assert.equal(await PidLock.inspect('fast', { store: srv.url }), null)
  const second = await lock.acquire()
  assert.ok(second.token > first.token)
  // Held elsewhere: the fast claim is refused and the store thread's path reports the holder.
  const other = new PidLock('fast', { store: srv.url })
  const fallbacks = direct.counts.fallbacks
  await assert.rejects(other.acquire(), (err) => err.code === 'ELOCKHELD' && err.holder.token === second.token)
  assert.equal(direct.counts.fallbacks, fallbacks + 1)
  assert.equal(await lock.release(), true)
  assert.equal(await lock.release(), false)
})

test('over a unix socket and with a password, too', opts, async (t) => {
  const srv = await startRedis(t, { password: 's3cret' })
  for (const url of [srv.url, `unix://${srv.socket}?pass=s3cret`]) {
    const lock = new PidLock('fast-auth', { store: url })
    await warm(lock)
    const got = await lock.acquire()
    assert.equal((await PidLock.inspect('fast-auth', { store: url })).token, got.token)
    await lock.release()
  }
})

test('a fast-acquired lease is renewed and its loss reported as before', opts, async (t) => {
  const srv = await startRedis(t)
  const lost = []
  const lock = new PidLock('fast-lost', {
    store: srv.url,
    leaseStaleThreshold: 1000,
    leaseHeartbeatInterval: 100,
    onLeaseLost: (n) => lost.push(n),
  })
  await warm(lock)
  const claims = direct.counts.claims
  await lock.acquire()
  assert.equal(direct.counts.claims, claims + 1)
  // Outlives its TTL only if renewed.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  assert.equal(lock.held, true)
  assert.equal(lost.length, 0)
  assert.equal(await redisCommand(srv, 'DEL', 'leaselock:{fast-lost}:lease'), ':1')
  await waitUntil(() => lost.length === 1, { what: 'onLeaseLost' })
  assert.equal(lost[0].reason, 'removed')
  assert.equal(lock.held, false)
})

test('releases racing renewals never report a loss', opts, async (t) => {
  const srv = await startRedis(t)
  const lost = []
  const lock = new PidLock('fast-race', {
    store: srv.url,
    leaseStaleThreshold: 500,
    leaseHeartbeatInterval: 5,
    onLeaseLost: (n) => lost.push(n),
  })
  await warm(lock)
  const before = snapshot()
  for (let i = 0; i < 200; i++) {
    await lock.acquire()
    await new Promise((resolve) => setTimeout(resolve, i % 7))
    assert.equal(await lock.release(), true)
  }
  assert.ok(direct.counts.releases - before.releases > 150, 'most releases went the fast way')
  // Any renewal still in flight has answered by now.
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.deepEqual(lost, [])
  assert.equal(await PidLock.inspect('fast-race', { store: srv.url }), null)
})

test('a paused server (SIGSTOP): the event loop keeps running, and the acquire completes once it resumes', opts, async (t) => {
  const srv = await startRedis(t)
  const lock = new PidLock('fast-paused', { store: srv.url })
  await warm(lock)
  const claims = direct.counts.claims
  srv.pause()
  let ticks = 0
  const timer = setInterval(() => ticks++, 10)
  const acquiring = lock.acquire()
  await new Promise((resolve) => setTimeout(resolve, 300))
  clearInterval(timer)
  assert.ok(ticks >= 5, `the event loop ran (${ticks} ticks)`)
  srv.resume()
  const got = await acquiring
  assert.equal(direct.counts.claims, claims + 1)
  assert.equal((await PidLock.inspect('fast-paused', { store: srv.url })).token, got.token)
  assert.equal(await lock.release(), true)
})

test('a server paused past the reply timeout: reported unreachable, and a claim granted late is cleared by the next acquire', opts, async (t) => {
  const srv = await startRedis(t)
  const lock = new PidLock('fast-late', { store: srv.url })
  await warm(lock)
  srv.pause()
  const fallbacks = direct.counts.fallbacks
  await assert.rejects(lock.acquire(), { code: 'ELOCKSTOREUNREACHABLE' })
  assert.equal(direct.counts.fallbacks, fallbacks + 1)
  // The claim written before the pause is still in the server's buffer, and runs now.
  srv.resume()
  const got = await lock.acquire()
  assert.equal((await PidLock.inspect('fast-late', { store: srv.url })).token, got.token)
  assert.equal(await lock.release(), true)
  assert.equal(await PidLock.inspect('fast-late', { store: srv.url }), null)
})

test('a release while the server is paused: holding ends at once, no loss is reported, and the lease is deleted once it resumes', opts, async (t) => {
  const srv = await startRedis(t)
  const lost = []
  const lock = new PidLock('fast-release-paused', { store: srv.url, onLeaseLost: (n) => lost.push(n) })
  await warm(lock)
  await lock.acquire()
  srv.pause()
  const releasing = lock.release().catch((err) => err.code)
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(lock.held, false)
  // The remove got no answer in time: the store thread's path tries again and reports.
  const fallbacks = direct.counts.fallbacks
  assert.equal(await releasing, 'ELOCKSTOREUNREACHABLE')
  assert.equal(direct.counts.fallbacks, fallbacks + 1)
  srv.resume()
  await waitUntil(async () => (await PidLock.inspect('fast-release-paused', { store: srv.url })) === null, { what: 'the lease deleted' })
  assert.deepEqual(lost, [])
})

test('a server restarted between operations: answered by the other path, then the fast path again', opts, async (t) => {
  const srv = await startRedis(t)
  const lock = new PidLock('fast-restart', { store: srv.url })
  await warm(lock)
  const a = await lock.acquire()
  await srv.restart()
  // The lease died with the server's data: the release finds nothing of ours, or reports the
  // store thread's connection broken by the restart (as it always did).
  const released = await lock.release().catch((err) => err.code)
  assert.ok(released === false || released === 'ELOCKSTOREUNREACHABLE', String(released))
  const b = await lock.acquire()
  assert.ok(b.token > a.token, 'the token still rises (the server clock floor)')
  assert.equal(await lock.release(), true)
  await warm(lock)
})

test('no handle keeps the process alive: it ends by itself once released, or while holding (and the lease is deleted then)', opts, async (t) => {
  const srv = await startRedis(t)
  for (const mode of ['release', 'hold']) {
    const child = script(t, `
    import { createRequire } from 'node:module'
    const direct = createRequire(import.meta.url)(${JSON.stringify(require.resolve('../lib/store-direct.js'))})
    const lock = new PidLock('fast-exit', { store: args[0] })
    for (let i = 0; i < 50 && direct.counts.claims < 3; i++) {
      await lock.acquire()
      await lock.release()
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    if (args[1] === 'hold') await lock.acquire()
    console.log('DONE ' + JSON.stringify(direct.counts))
  `, { args: [srv.url, mode] })
    const counts = await child.line('DONE')
    assert.ok(counts.claims >= 3 && counts.releases >= 3, JSON.stringify(counts))
    const ended = await Promise.race([child.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))])
    assert.deepEqual(ended, { code: 0, signal: null })
    assert.equal(await PidLock.inspect('fast-exit', { store: srv.url }), null, mode)
  }
})
