// The lock on a Redis store: the same surface as a file lock, fencing tokens, waiting,
// inspect/update, and clear errors - against a real redis-server on the loopback interface.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PidLock } from '../lib/index.mjs'
import { startRedis, redisOrSkip, redisCommand } from './helpers/redis-server.mjs'
import { libMjsUrl, script, waitUntil } from './helpers/util.mjs'

const opts = redisOrSkip()

test('acquire resolves with a bigint token; a second instance is refused with the holder and its token', opts, async (t) => {
  const srv = await startRedis(t)
  const a = new PidLock('job', { store: srv.url, metadata: { role: 'migrator' } })
  const b = new PidLock('job', { store: srv.url })
  const got = await a.acquire()
  assert.equal(typeof got.token, 'bigint')
  assert.equal(got.reclaimed, null)
  assert.equal(a.held, true)
  assert.equal(a.token, got.token)
  assert.equal(a.path, 'job')
  const err = await b.acquire().then(() => null, (e) => e)
  assert.equal(err?.code, 'ELOCKHELD')
  assert.match(err.message, /^lock is already held by another process \(pid \d+\)/)
  assert.equal(err.holder.pid, process.pid)
  assert.equal(err.holder.token, got.token)
  assert.deepEqual(err.holder.metadata, { role: 'migrator' })
  assert.equal(b.held, false)
  assert.equal(b.token, null)

  const seen = await PidLock.inspect('job', { store: srv.url })
  assert.equal(seen.token, got.token)
  assert.equal(seen.alive, true)
  assert.equal(seen.ownerId, err.holder.ownerId)
  // The lease and its counter share one hash tag (one Redis Cluster slot).
  assert.equal(await redisCommand(srv, 'EXISTS', 'leaselock:{job}:lease'), ':1')
  assert.equal(await redisCommand(srv, 'GET', 'leaselock:{job}:token').then((r) => r.split('\r\n')[1]), String(got.token))

  assert.equal(await a.release(), true)
  assert.equal(a.held, false)
  assert.equal(a.token, null)
  assert.equal(await a.release(), false)
  assert.equal(await PidLock.inspect('job', { store: srv.url }), null)
})

test('tokens strictly increase across acquisitions, releases and instances', opts, async (t) => {
  const srv = await startRedis(t)
  const locks = [0, 1, 2].map(() => new PidLock('tokens', { store: srv.url }))
  let last = 0n
  for (let i = 0; i < 30; i++) {
    const lock = locks[i % 3]
    const { token } = await lock.acquire()
    assert.ok(token > last, `token ${token} after ${last}`)
    last = token
    await lock.release()
  }
})

test('a waiter is woken by the release; abort and timeout end a wait with nothing left behind', opts, async (t) => {
  const srv = await startRedis(t)
  const a = new PidLock('wait', { store: srv.url, leaseStaleThreshold: 30_000 })
  const b = new PidLock('wait', { store: srv.url })
  const first = await a.acquire()
  const waiting = b.acquire({ timeout: 20_000 })
  await new Promise((resolve) => setTimeout(resolve, 50))
  await a.release()
  const second = await waiting
  assert.ok(second.token > first.token)
  assert.equal(b.held, true)

  const ac = new AbortController()
  const aborted = a.acquire({ timeout: Infinity, signal: ac.signal })
  setTimeout(() => ac.abort(new Error('stop waiting')), 50)
  await assert.rejects(aborted, /stop waiting/)
  assert.equal(a.held, false)

  const started = Date.now()
  const timedOut = await a.acquire({ timeout: 200 }).then(() => null, (e) => e)
  assert.equal(timedOut?.code, 'ELOCKHELD')
  assert.ok(Date.now() - started >= 190)
  assert.equal(await b.release(), true)
})

test('update replaces the stored metadata; sync methods throw ERR_LOCK_STORE_SYNC', opts, async (t) => {
  const srv = await startRedis(t)
  const a = new PidLock('meta', { store: srv.url })
  await a.acquire()
  await a.update({ step: 2 })
  assert.deepEqual((await PidLock.inspect('meta', { store: srv.url })).metadata, { step: 2 })
  assert.throws(() => a.acquireSync(), { code: 'ERR_LOCK_STORE_SYNC' })
  assert.throws(() => a.releaseSync(), { code: 'ERR_LOCK_STORE_SYNC' })
  assert.throws(() => a.updateSync({}), { code: 'ERR_LOCK_STORE_SYNC' })
  assert.throws(() => PidLock.inspectSync('meta', { store: srv.url }), { code: 'ERR_LOCK_STORE_SYNC' })
  await a.release()
  await assert.rejects(a.update({ step: 3 }), { code: 'ELOCKNOTHELD' })
})

test('await using releases; using stops holding at once and deletes the lease in the background', opts, async (t) => {
  const srv = await startRedis(t)
  {
    const lock = new PidLock('dispose', { store: srv.url })
    await lock.acquire()
    await lock[Symbol.asyncDispose]()
    assert.equal(lock.held, false)
  }
  const lock = new PidLock('dispose', { store: srv.url })
  await lock.acquire()
  lock[Symbol.dispose]()
  assert.equal(lock.held, false)
  const other = new PidLock('dispose', { store: srv.url })
  await other.acquire({ timeout: 5000 })
  await other.release()
  // `using` right after an acquire() that has not run yet: that acquire never takes the lock.
  const early = new PidLock('dispose', { store: srv.url })
  const queued = early.acquire().then((value) => ({ value }), (error) => ({ error }))
  early[Symbol.dispose]()
  assert.equal((await queued).error?.name, 'AbortError')
  assert.equal(early.held, false)
  assert.equal(await PidLock.inspect('dispose', { store: srv.url }), null)
  // ... nor one whose claim is already on the wire (granted after `using`): given up at once.
  for (const ticks of [1, 2, 3]) {
    const late = new PidLock('dispose', { store: srv.url })
    const claimed = late.acquire().then((value) => ({ value }), (error) => ({ error }))
    for (let i = 0; i < ticks; i++) await null
    late[Symbol.dispose]()
    assert.equal((await claimed).error?.name, 'AbortError', `after ${ticks} ticks`)
    assert.equal(late.held, false)
    const next = new PidLock('dispose', { store: srv.url })
    await next.acquire({ timeout: 5000 })
    await next.release()
  }
})

test('acquire() then release() in one go: the acquire makes its single try, in call order, as on a file', opts, async (t) => {
  const srv = await startRedis(t)
  const lock = new PidLock('order', { store: srv.url })
  const acquired = lock.acquire()
  const released = lock.release()
  assert.equal(typeof (await acquired).token, 'bigint')
  assert.equal(await released, true)
  assert.equal(lock.held, false)
  assert.equal(await PidLock.inspect('order', { store: srv.url }), null)
})

test('a unix socket URL works; bad URLs and keys are argument errors', opts, async (t) => {
  const srv = await startRedis(t)
  const lock = new PidLock('sock', { store: `unix://${srv.socket}` })
  assert.equal(typeof (await lock.acquire()).token, 'bigint')
  assert.equal(await lock.release(), true)
  assert.throws(() => new PidLock('k', { store: 'http://127.0.0.1' }), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => new PidLock('k', { store: 42 }), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => new PidLock('a{b}', { store: srv.url }), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => new PidLock('', { store: srv.url }), { code: 'ERR_INVALID_ARG_VALUE' })
  // Lone surrogates have no UTF-8 form (two such keys would be one lock); a pair is fine.
  assert.throws(() => new PidLock('\uD800', { store: srv.url }), { code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => new PidLock('a\uDFFF', { store: srv.url }), { code: 'ERR_INVALID_ARG_VALUE' })
  new PidLock('\uD83D\uDE00', { store: srv.url })
  assert.throws(() => new PidLock('k', { store: 'redis://127.0.0.1:notaport' }), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('a value some other program stored under the lease key is never overwritten', opts, async (t) => {
  const srv = await startRedis(t)
  await redisCommand(srv, 'SET', 'leaselock:{foreign}:lease', 'not ours')
  const lock = new PidLock('foreign', { store: srv.url })
  const err = await lock.acquire().then(() => null, (e) => e)
  assert.equal(err?.code, 'ELOCKHELD')
  // As for a lock file's content that is not a lease: no holder to show.
  assert.equal(err.holder, null)
  assert.match(err.message, /\(owner unavailable\)/)
  assert.match(err.message, /never overwrites or deletes it/)
  assert.doesNotMatch(err.message, /threshold|reclaimed/)
  assert.equal((await PidLock.inspect('foreign', { store: srv.url })).valid, false)
  assert.equal(await redisCommand(srv, 'GET', 'leaselock:{foreign}:lease'), '$8\r\nnot ours')
  // Put there while we hold the lock: the loss is 'removed' (not another owner's lease), and
  // release reports it not removed and leaves it.
  await redisCommand(srv, 'DEL', 'leaselock:{foreign}:lease')
  const lost = []
  const held = new PidLock('foreign', { store: srv.url, leaseHeartbeatInterval: 100, onLeaseLost: (info) => lost.push(info) })
  await held.acquire()
  await redisCommand(srv, 'SET', 'leaselock:{foreign}:lease', 'replaced')
  await waitUntil(() => lost.length > 0, { what: 'the loss to be told' })
  assert.equal(lost[0].reason, 'removed')
  assert.equal(lost[0].newOwner, null)
  assert.equal(await held.release(), false)
  // The same when an update() is the first to find it (no renewal due for a long while).
  await redisCommand(srv, 'DEL', 'leaselock:{foreign}:lease')
  const updating = []
  const slow = new PidLock('foreign', { store: srv.url, leaseHeartbeatInterval: 20_000, leaseStaleThreshold: 60_000, onLeaseLost: (info) => updating.push(info) })
  await slow.acquire()
  await redisCommand(srv, 'SET', 'leaselock:{foreign}:lease', 'replaced')
  await assert.rejects(slow.update({ n: 1 }), { code: 'ELOCKNOTHELD' })
  await waitUntil(() => updating.length > 0, { what: 'the loss found by update() to be told' })
  assert.equal(updating[0].reason, 'removed')
  assert.equal(updating[0].newOwner, null)
  assert.equal(await redisCommand(srv, 'GET', 'leaselock:{foreign}:lease'), '$8\r\nreplaced')
})

test('wrong password, no password and an unreachable server fail fast with clear codes', opts, async (t) => {
  const srv = await startRedis(t, { password: 's3cret' })
  const ok = new PidLock('auth', { store: srv.url })
  await ok.acquire()
  await ok.release()
  for (const url of [srv.urlWith('wrong'), `redis://127.0.0.1:${srv.port}/0`]) {
    const started = Date.now()
    const err = await new PidLock('auth', { store: url }).acquire().then(() => null, (e) => e)
    assert.equal(err?.code, 'ELOCKSTOREAUTH', String(err))
    assert.doesNotMatch(err.message, /wrong|s3cret/, 'the message must not show a password')
    assert.ok(Date.now() - started < 5000)
  }
  const down = await startRedis(t)
  const url = down.url
  await down.stop()
  const started = Date.now()
  const err = await new PidLock('auth', { store: url }).acquire({ timeout: 60_000 }).then(() => null, (e) => e)
  assert.equal(err?.code, 'ELOCKSTOREUNREACHABLE')
  assert.match(err.message, /127\.0\.0\.1/)
  assert.ok(Date.now() - started < 5000)
  await assert.rejects(PidLock.inspect('auth', { store: url }), { code: 'ELOCKSTOREUNREACHABLE' })
})

test('a holder that ends without releasing (loop drained, process.exit, worker terminated) deletes its lease on the way out', opts, async (t) => {
  const srv = await startRedis(t)
  const lease = () => redisCommand(srv, 'EXISTS', 'leaselock:{bye}:lease')
  for (const end of ['', 'process.exit(3)']) {
    const child = script(t, `const l = new PidLock('bye', { store: args[0], leaseStaleThreshold: 60000 }); await l.acquire(); console.log('HELD'); ${end}`, { args: [srv.url] })
    await child.line('HELD')
    await child.exited
    assert.equal(await lease(), ':0', `after "${end || 'a drained loop'}"`)
  }
  const child = script(t, `
    const { Worker } = await import('node:worker_threads')
    const w = new Worker(\`
      Promise.all([import(\${JSON.stringify(process.env.LIB)}), import('node:worker_threads')]).then(([{ PidLock }, { parentPort }]) =>
        new PidLock('bye', { store: \${JSON.stringify(args[0])}, leaseStaleThreshold: 60000 }).acquire().then(() => parentPort.postMessage('held')))
    \`, { eval: true })
    await new Promise((resolve) => w.once('message', resolve))
    console.log('WORKER_HELD')
    await w.terminate()
    console.log('TERMINATED')
    setTimeout(() => {}, 60000)
  `, { args: [srv.url], env: { LIB: libMjsUrl } })
  await child.line('WORKER_HELD')
  await child.line('TERMINATED')
  await waitUntil(async () => (await lease()) === ':0', { what: 'the worker lease to be deleted' })
  child.kill()
})

test('rediss:// (TLS) works against a server whose certificate the system trusts, and fails clearly otherwise', redisOrSkip({ tls: true }), async (t) => {
  const srv = await startRedis(t, { tls: true })
  const code = `const l = new PidLock('tls', { store: args[0] })
    try { const { token } = await l.acquire(); console.log('TOKEN ' + token); await l.release() }
    catch (err) { console.log('FAILED ' + JSON.stringify({ code: err.code, message: err.message })) }`
  const trusted = script(t, code, { args: [srv.url], env: { SSL_CERT_FILE: srv.ca } })
  assert.match(String(await trusted.line('TOKEN')), /^\d+$/)
  // Trusting only the server's own certificate, not the CA that issued it.
  const untrusted = script(t, code, { args: [srv.url], env: { SSL_CERT_FILE: srv.ca.replace('ca.pem', 'server.pem') } })
  const failed = await untrusted.line('FAILED')
  assert.equal(failed.code, 'ELOCKSTOREUNREACHABLE', failed.message)
  assert.match(failed.message, /certificate|issuer/i)
})
