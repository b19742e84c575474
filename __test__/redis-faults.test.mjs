// Real faults against the Redis store: holders killed and frozen, the server frozen, restarted
// without its data, and a connection cut - with real processes and a real redis-server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { PidLock } from '../lib/index.mjs'
import { Child, sleep, waitUntil } from './helpers/util.mjs'
import { startRedis, redisOrSkip, redisCommand } from './helpers/redis-server.mjs'

const opts = redisOrSkip()
const holderScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'redis-holder.mjs')

function holder(t, config) {
  return new Child([holderScript, JSON.stringify(config)], { t })
}

/** The pids of the children of `pid`. */
function childrenOf(pid) {
  const out = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout
  return out.split('\n').filter(Boolean).map(Number)
}

/** A holder in a new PID namespace (through `unshare`), so no other process can judge its pid. */
function holderInOtherNamespace(t, config) {
  const node = process.execPath
  const c = new Child(['-e', `
    const { spawn } = require('node:child_process')
    const p = spawn('unshare', ['--pid', '--fork', '--mount-proc', ${JSON.stringify(node)}, ${JSON.stringify(holderScript)}, ${JSON.stringify(JSON.stringify(config))}], { stdio: 'inherit' })
    p.on('exit', (code) => process.exit(code ?? 1))
  `], { t })
  return c
}

const canUnshare = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0

test('SIGKILL of a holder on this host: a contender proves it dead and takes over at once', opts, async (t) => {
  const srv = await startRedis(t)
  const a = holder(t, { url: srv.url, key: 'k', options: { leaseStaleThreshold: 60_000 } })
  const first = await a.line('ACQUIRED')
  a.signal('SIGKILL')
  await a.exited
  const lock = new PidLock('k', { store: srv.url, leaseStaleThreshold: 60_000 })
  const got = await lock.acquire()
  assert.equal(got.reclaimed?.pid, a.pid)
  assert.equal(got.reclaimed.token, BigInt(first.token))
  assert.ok(got.token > BigInt(first.token))
  await lock.release()
})

test('SIGKILL of a holder that cannot be judged (another PID namespace): taken over after its TTL', { ...opts, skip: opts.skip ?? (!canUnshare && 'unshare --pid is refused here') }, async (t) => {
  const srv = await startRedis(t)
  const ttl = 1500
  const a = holderInOtherNamespace(t, { url: srv.url, key: 'k', options: { leaseStaleThreshold: ttl, leaseHeartbeatInterval: 200 } })
  const first = await a.line('ACQUIRED')
  const lock = new PidLock('k', { store: srv.url })
  await assert.rejects(lock.acquire(), { code: 'ELOCKHELD' })
  // SIGKILL the holder itself: the child of `unshare`, which is the child of the wrapper.
  const holders = childrenOf(a.pid).flatMap(childrenOf)
  assert.equal(holders.length, 1)
  process.kill(holders[0], 'SIGKILL')
  const killedAt = Date.now()
  const got = await lock.acquire({ timeout: 20_000 })
  assert.equal(got.reclaimed, null, 'not proven dead: it expired instead')
  assert.ok(Date.now() - killedAt > ttl / 3, 'taken only once the TTL ran out')
  assert.ok(got.token > BigInt(first.token))
  await lock.release()
})

test('SIGSTOP of a holder past its TTL: another takes over; the frozen one is told on waking; tokens show the order', opts, async (t) => {
  const srv = await startRedis(t)
  const ttl = 1000
  const a = holder(t, { url: srv.url, key: 'k', options: { leaseStaleThreshold: ttl, leaseHeartbeatInterval: 100 } })
  const first = await a.line('ACQUIRED')
  const b = holder(t, { url: srv.url, key: 'k', acquireOptions: { timeout: 20_000 } })
  await b.line('READY')
  a.signal('SIGSTOP')
  const second = await b.line('ACQUIRED')
  assert.ok(BigInt(second.token) > BigInt(first.token))
  a.signal('SIGCONT')
  const lost = await a.line('LOST')
  assert.equal(lost.reason, 'owner-changed')
  assert.equal(lost.heldAtCallback, false)
  assert.equal(lost.newOwner.pid, b.pid)
  assert.equal(lost.newOwner.token, second.token)
  a.send('held')
  assert.deepEqual(await a.line('HELD'), { held: false, token: null })
  // The late holder cannot delete the new owner's lease.
  a.send('release')
  assert.deepEqual(await a.line('RELEASED'), { removed: false })
  b.send('held')
  assert.equal((await b.line('HELD')).held, true)
})

test('SIGSTOP of a holder past its TTL that calls acquire() the moment it wakes: the loss is still told, once', opts, async (t) => {
  const srv = await startRedis(t)
  const options = { leaseStaleThreshold: 1000, leaseHeartbeatInterval: 100 }
  // Taken over meanwhile: told owner-changed, and the new acquire is refused.
  const a = holder(t, { url: srv.url, key: 'k', options })
  await a.line('ACQUIRED')
  const b = holder(t, { url: srv.url, key: 'k', acquireOptions: { timeout: 20_000 } })
  await b.line('READY')
  a.signal('SIGSTOP')
  const second = await b.line('ACQUIRED')
  // Waiting in its stdin: read as soon as it runs again, racing its renewal's timer.
  a.send('acquire')
  a.signal('SIGCONT')
  const lost = await a.line('LOST')
  assert.equal(lost.reason, 'owner-changed')
  assert.equal(lost.newOwner.token, second.token)
  assert.equal((await a.line('FAILED')).code, 'ELOCKHELD')
  b.send('release')
  await b.line('RELEASED')
  // Expired with nobody else: told removed, and the new acquire gets a higher token.
  a.send('acquire')
  const again = await a.line('ACQUIRED')
  assert.ok(BigInt(again.token) > BigInt(second.token))
  a.signal('SIGSTOP')
  t.after(() => a.signal('SIGCONT'))
  const lease = () => redisCommand(srv, 'EXISTS', 'leaselock:{k}:lease')
  await waitUntil(async () => (await lease()) === ':0', { what: 'the frozen holder\'s lease to expire' })
  a.send('acquire')
  a.signal('SIGCONT')
  assert.equal((await a.line('LOST')).reason, 'removed')
  assert.ok(BigInt((await a.line('ACQUIRED')).token) > BigInt(again.token))
  await sleep(300)
  a.send('held')
  assert.equal((await a.line('HELD')).held, true)
})

test('SIGSTOP of a holder while a renewal awaits its reply: on waking it is told owner-changed, not store-unreachable', opts, async (t) => {
  const srv = await startRedis(t)
  const a = holder(t, { url: srv.url, key: 'k', options: { leaseStaleThreshold: 1000, leaseHeartbeatInterval: 100 } })
  const first = await a.line('ACQUIRED')
  const b = holder(t, { url: srv.url, key: 'k', acquireOptions: { timeout: 20_000 } })
  await b.line('READY')
  // The server frozen for longer than a renewal interval: a renewal is sent and waits. The
  // holder is frozen with it; the server then answers into the frozen holder's socket. On
  // waking, the renewal's timer (long due) is seen before that reply.
  srv.pause()
  t.after(() => srv.resume())
  await sleep(300)
  a.signal('SIGSTOP')
  srv.resume()
  const second = await b.line('ACQUIRED')
  a.signal('SIGCONT')
  const lost = await a.line('LOST')
  assert.equal(lost.reason, 'owner-changed', `told ${lost.reason}: ${lost.error}`)
  assert.equal(lost.heldAtCallback, false)
  assert.equal(lost.newOwner.token, second.token)
  assert.ok(BigInt(second.token) > BigInt(first.token))
})

test('SIGSTOP of the server: the holder is told before its lease could expire', opts, async (t) => {
  const srv = await startRedis(t)
  const ttl = 3000
  const a = holder(t, { url: srv.url, key: 'k', options: { leaseStaleThreshold: ttl, leaseHeartbeatInterval: 100 } })
  await a.line('ACQUIRED')
  await sleep(300)
  const frozenAt = Date.now()
  srv.pause()
  t.after(() => srv.resume())
  const lost = await a.line('LOST', 10_000)
  assert.equal(lost.reason, 'store-unreachable')
  assert.equal(lost.heldAtCallback, false)
  // Its last confirmed renewal was sent before the freeze, so the lease could not expire
  // before frozenAt + ttl; the holder must have given it up by then.
  assert.ok(new Date(lost.at).getTime() < frozenAt + ttl, `told at +${new Date(lost.at).getTime() - frozenAt} ms`)
  srv.resume()
})

test('server restart without persistence: the vanished lease is reported and tokens still increase', opts, async (t) => {
  const srv = await startRedis(t)
  const a = holder(t, { url: srv.url, key: 'k', options: { leaseStaleThreshold: 8000, leaseHeartbeatInterval: 100 } })
  const first = await a.line('ACQUIRED')
  await srv.restart()
  assert.equal(await redisCommand(srv, 'EXISTS', 'leaselock:{k}:token'), ':0', 'the counter is gone too')
  const lost = await a.line('LOST', 15_000)
  assert.equal(lost.reason, 'removed')
  const lock = new PidLock('k', { store: srv.url })
  const got = await lock.acquire()
  assert.ok(got.token > BigInt(first.token), `${got.token} after ${first.token}`)
  await lock.release()
})

test('a connection cut mid-holding is reopened; the lease stays held', opts, async (t) => {
  const srv = await startRedis(t)
  const a = holder(t, { url: srv.url, key: 'k', options: { leaseStaleThreshold: 2000, leaseHeartbeatInterval: 100 } })
  await a.line('ACQUIRED')
  for (let i = 0; i < 3; i++) {
    await redisCommand(srv, 'CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    await sleep(300)
  }
  await sleep(2000)
  a.send('held')
  assert.equal((await a.line('HELD')).held, true)
  assert.equal(a.count('LOST'), 0)
  a.send('release')
  assert.deepEqual(await a.line('RELEASED'), { removed: true })
})
