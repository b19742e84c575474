// Real processes (issues 2 and 3): mutual exclusion under load, killed, frozen and resumed
// holders, PID reuse, onLeaseLost, a blocked event loop, garbage collection.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { PidLock } from '../lib/index.mjs'
import {
  Child,
  tempDir,
  holder,
  script,
  goLease,
  ourLease,
  hostIdentity,
  procStart,
  readLease,
  exists,
  sleep,
  waitUntil,
  repoRoot,
  posixOnly,
  notUnderWine,
  RENAME_OVER_OPEN,
} from './helpers/util.mjs'

/** The tests that write an owner identity read it from /proc. */
const IDENTITY = posixOnly('identity fields read from /proc (windows.test.mjs has the Windows cases)')

const cyclerScript = path.join(repoRoot, '__test__', 'helpers', 'cycler.mjs')

async function rejection(promise) {
  return promise.then(
    () => assert.fail('expected a rejection'),
    (err) => err,
  )
}

/** Replaces the file at `p` atomically, as another process's lock would appear. */
function replaceWith(p, body) {
  fs.writeFileSync(p + '.replacing', body)
  fs.renameSync(p + '.replacing', p)
}

// ---------------------------------------------------------------------------------------------

test('8 processes x 200 acquire/release cycles: zero overlaps by an independent checker, tokens rising', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const journal = path.join(dir, 'journal')
  const n = 8
  const cycles = 200
  const kids = Array.from({ length: n }, (_, i) => new Child([cyclerScript, p, journal, String(i), String(cycles)], { t, stdin: 'ignore' }))
  const results = await Promise.all(kids.map((k) => k.line('DONE', 110_000)))
  for (const k of kids) assert.deepEqual(await k.exited, { code: 0, signal: null }, k.stderr)
  assert.deepEqual(results.map((r) => r.done), Array(n).fill(cycles))

  // The checker: the journal is in append order; within the lock, entries must strictly
  // alternate enter/leave of the same id, and the monotonic times must not interleave.
  const lines = fs.readFileSync(journal, 'utf8').trim().split('\n')
  assert.equal(lines.length, n * cycles * 2)
  let inside = null
  let lastLeave = 0n
  let overlaps = 0
  let lastToken = 0n
  const perId = new Map()
  for (const line of lines) {
    const [what, id, time, token] = line.split(' ')
    const at = BigInt(time)
    if (what === 'enter') {
      // Fencing tokens rise with every turn, in the order the lock was held.
      assert.ok(BigInt(token) > lastToken, `token ${token} after ${lastToken}`)
      lastToken = BigInt(token)
      if (inside !== null) overlaps++
      if (at < lastLeave) overlaps++
      inside = id
      perId.set(id, (perId.get(id) ?? 0) + 1)
    } else {
      if (inside !== id) overlaps++
      inside = null
      lastLeave = at
    }
  }
  assert.equal(overlaps, 0)
  assert.equal(perId.size, n)
  assert.equal(exists(p), false, 'the last release removed the file')
  const refused = results.reduce((s, r) => s + r.refused, 0)
  assert.ok(refused > 0, 'the processes really contended')
})

// ---------------------------------------------------------------------------------------------
// Killed holders.

test("SIGKILL'd holder: a contender started after the exit is observed acquires on its first try", async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = holder(t, { path: p })
  await h.line('ACQUIRED')
  const lease = readLease(p)
  h.signal('SIGKILL')
  await h.exited
  // The holder's heartbeat is at most one interval old: only a proof of death frees it now.
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire({ timeout: 0 })
  assert.equal(reclaimed.pid, h.pid)
  assert.equal(reclaimed.ownerId, lease.ownerID)
  assert.equal(reclaimed.alive, false)
  assert.equal(reclaimed.stale, false)
  assert.equal(readLease(p).pid, process.pid)
  await lock.release()
})

test("SIGKILL'd holder in another process's contender (spawned after the exit) gets it first try", async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = holder(t, { path: p })
  await h.line('ACQUIRED')
  h.signal('SIGKILL')
  await h.exited
  const c = holder(t, { path: p, acquireOptions: { timeout: 0 } })
  const got = await c.line('ACQUIRED')
  assert.equal(got.reclaimed.pid, h.pid)
  assert.equal(got.reclaimed.alive, false)
})

test('a zombie holder (killed, not yet reaped) is gone too', { timeout: 30_000, ...posixOnly('zombies, sh and /proc') }, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const holderPath = path.join(repoRoot, '__test__', 'helpers', 'holder.mjs')
  // The holder's parent becomes `sleep` (through exec), which never reaps it. The holder reads
  // the open pipe on sh's stdin (a background job would get /dev/null and end on its own).
  const sh = spawn('sh', ['-c', `exec 3<&0; "$0" "$1" "$2" <&3 & exec sleep 60 3<&-`, process.execPath, holderPath, JSON.stringify({ path: p })], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  t.after(() => sh.kill('SIGKILL'))
  let out = ''
  sh.stdout.setEncoding('utf8')
  await new Promise((resolve) => {
    sh.stdout.on('data', (d) => {
      out += d
      if (out.includes('ACQUIRED')) resolve()
    })
  })
  const pid = JSON.parse(/READY (.*)/.exec(out)[1]).pid
  process.kill(pid, 'SIGKILL')
  await waitUntil(() => {
    try {
      return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].startsWith('Z')
    } catch {
      return false
    }
  }, { what: 'the zombie' })
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire()
  assert.equal(reclaimed.pid, pid)
  assert.equal(reclaimed.alive, false)
  assert.equal(reclaimed.stale, false)
  await lock.release()
})

// ---------------------------------------------------------------------------------------------
// Frozen holders.

const FAST = { leaseHeartbeatInterval: 50, leaseStaleThreshold: 400 }

test("SIGSTOP'd holder past the threshold is taken over; on SIGCONT it gets onLeaseLost once and its release leaves the new owner alone", { timeout: 30_000, ...posixOnly('SIGSTOP/SIGCONT') }, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = holder(t, { path: p, options: FAST })
  await h.line('ACQUIRED')
  h.signal('SIGSTOP')
  const lock = new PidLock(p, FAST)
  const { reclaimed } = await lock.acquire({ timeout: 10_000 })
  assert.equal(reclaimed.pid, h.pid)
  assert.equal(reclaimed.stale, true)
  assert.equal(reclaimed.alive, true, 'a stopped process is alive: taken by staleness')
  const mine = readLease(p).ownerID
  h.signal('SIGCONT')
  const lost = await h.line('LOST')
  assert.equal(lost.reason, 'owner-changed')
  assert.equal(lost.heldAtCallback, false)
  assert.equal(lost.newOwner.ownerId, mine)
  h.send('release')
  await h.line('RELEASED')
  assert.equal(readLease(p).ownerID, mine, "the resumed holder's release left the new owner's file")
  await sleep(300) // six heartbeat intervals of the resumed holder
  assert.equal(readLease(p).ownerID, mine)
  assert.equal(h.count('LOST'), 1)
  assert.equal(lock.held, true)
  await lock.release()
  assert.equal(exists(p), false)
})

test("SIGSTOP'd holder past the threshold that nobody took keeps its lock on SIGCONT: no onLeaseLost", { timeout: 30_000, ...posixOnly('SIGSTOP/SIGCONT') }, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = holder(t, { path: p, options: FAST })
  await h.line('ACQUIRED')
  const owner = readLease(p).ownerID
  h.signal('SIGSTOP')
  await sleep(1000) // 2.5 stale thresholds frozen
  assert.equal(PidLock.inspectSync(p, FAST).stale, true)
  h.signal('SIGCONT')
  // Wait until its heartbeat has rewritten the lease again, then a few more intervals.
  await waitUntil(() => PidLock.inspectSync(p, FAST)?.stale === false, { what: 'a heartbeat after SIGCONT' })
  await sleep(250)
  h.send('held')
  assert.equal(await h.line('HELD'), true)
  assert.equal(h.count('LOST'), 0)
  assert.equal(readLease(p).ownerID, owner)
  const err = await rejection(new PidLock(p, FAST).acquire())
  assert.equal(err.code, 'ELOCKHELD')
  assert.equal(err.holder.pid, h.pid)
})

// ---------------------------------------------------------------------------------------------
// PID reuse and identity.

function sleeper(t) {
  const s = spawn('sleep', ['60'], { stdio: 'ignore' })
  t.after(() => s.kill('SIGKILL'))
  return s
}

test('PID reuse: a lease naming a live unrelated process (right pid, wrong start time) is taken over at once', IDENTITY, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const s = sleeper(t)
  await waitUntil(() => fs.existsSync(`/proc/${s.pid}/stat`))
  const wrongStart = String(Number(procStart(s.pid)) - 1)
  fs.writeFileSync(p, ourLease({ pid: s.pid, identity: { ...hostIdentity(), processStart: wrongStart } }))
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire()
  assert.equal(reclaimed.pid, s.pid)
  assert.equal(reclaimed.alive, false)
  assert.equal(reclaimed.stale, false)
  await lock.release()
})

test('a lease naming a live process with the right start time is held', IDENTITY, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const s = sleeper(t)
  await waitUntil(() => fs.existsSync(`/proc/${s.pid}/stat`))
  const body = ourLease({ pid: s.pid, identity: { ...hostIdentity(), processStart: procStart(s.pid) } })
  fs.writeFileSync(p, body)
  const err = await rejection(new PidLock(p).acquire())
  assert.equal(err.code, 'ELOCKHELD')
  assert.equal(err.holder.pid, s.pid)
  assert.equal(err.holder.alive, true)
  assert.equal(err.holder.hostname, hostIdentity().hostname)
  assert.equal(fs.readFileSync(p, 'utf8'), body)
  // Once that process is gone, the same lease is taken over at once.
  s.kill('SIGKILL')
  await new Promise((resolve) => s.once('exit', resolve))
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire()
  assert.equal(reclaimed.alive, false)
  await lock.release()
})

test('a lease naming a pid that does not exist (same host, boot, namespace) is taken over at once', IDENTITY, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const s = spawn('true')
  await new Promise((resolve) => s.once('exit', resolve))
  assert.equal(fs.existsSync(`/proc/${s.pid}`), false)
  fs.writeFileSync(p, ourLease({ pid: s.pid, identity: { ...hostIdentity(), processStart: '12345' } }))
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire()
  assert.equal(reclaimed.alive, false)
  await lock.release()
})

for (const [what, change] of [
  ['a foreign boot id', { bootId: '00000000-1111-2222-3333-444444444444' }],
  ['a foreign PID namespace', { pidNamespace: '4026599999' }],
  ['a foreign host', { hostname: 'some-other-host' }],
  ['a foreign time namespace', { timeNamespace: '4026599998' }],
  ['no recorded time namespace', { timeNamespace: undefined }],
]) {
  test(`a lease with ${what} falls back to staleness: held while fresh, taken when stale`, IDENTITY, async (t) => {
    const dir = tempDir(t)
    const p = path.join(dir, 'x.lock')
    // A pid that certainly does not run here: only the lease's age may free it.
    const s = spawn('true')
    await new Promise((resolve) => s.once('exit', resolve))
    const identity = { ...hostIdentity(), processStart: '1', ...change }
    fs.writeFileSync(p, ourLease({ pid: s.pid, identity, hb: Date.now() }))
    const err = await rejection(new PidLock(p).acquire())
    assert.equal(err.code, 'ELOCKHELD')
    assert.equal(err.holder.alive, 'unknown')
    fs.writeFileSync(p, ourLease({ pid: s.pid, identity, hb: Date.now() - 3500 }))
    const lock = new PidLock(p)
    const { reclaimed } = await lock.acquire()
    assert.equal(reclaimed.stale, true)
    assert.equal(reclaimed.alive, 'unknown')
    await lock.release()
  })
}

test('processAppearsAlive overrides a proof of death', IDENTITY, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const s = spawn('true')
  await new Promise((resolve) => s.once('exit', resolve))
  fs.writeFileSync(p, ourLease({ pid: s.pid, identity: { ...hostIdentity(), processStart: '1' } }))
  const err = await rejection(new PidLock(p, { processAppearsAlive: () => true }).acquire())
  assert.equal(err.code, 'ELOCKHELD')
  // A throwing callback counts as alive, and is reported as a warning.
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  const err2 = await rejection(
    new PidLock(p, {
      processAppearsAlive: () => {
        throw new Error('probe exploded')
      },
    }).acquire(),
  )
  assert.equal(err2.code, 'ELOCKHELD')
  await waitUntil(() => warnings.length > 0, { what: 'a warning' })
  assert.equal(warnings[0].code, 'LEASELOCK_CALLBACK_ERROR')
})

// ---------------------------------------------------------------------------------------------
// onLeaseLost.

test('onLeaseLost fires exactly once, on the JS thread, with held already false, when a foreign lease overwrites the file', posixOnly(RENAME_OVER_OPEN), async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = holder(t, { path: p, options: FAST })
  await h.line('ACQUIRED')
  replaceWith(p, goLease({ ownerID: 'foreign-owner', pid: process.pid }))
  const lost = await h.line('LOST')
  assert.equal(lost.reason, 'owner-changed')
  assert.equal(lost.heldAtCallback, false)
  assert.equal(lost.newOwner.ownerId, 'foreign-owner')
  assert.equal(lost.path, p)
  await sleep(300)
  assert.equal(h.count('LOST'), 1)
  h.send('release')
  await h.line('RELEASED')
  assert.match(fs.readFileSync(p, 'utf8'), /foreign-owner/)
})

test("onLeaseLost reports 'removed' when the lock file is deleted", notUnderWine('Wine keeps the name of a deleted file until its last handle closes, and reports no DeletePending; Windows 10 (1903+) on NTFS frees it at once'), async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = holder(t, { path: p, options: FAST })
  await h.line('ACQUIRED')
  fs.unlinkSync(p)
  const lost = await h.line('LOST')
  assert.equal(lost.reason, 'removed')
  assert.equal(lost.heldAtCallback, false)
  await sleep(200)
  assert.equal(h.count('LOST'), 1)
  assert.equal(exists(p), false, 'a lost lease is never written back')
})

test('a throwing onLeaseLost does not crash the process: a LEASELOCK_CALLBACK_ERROR warning', posixOnly(RENAME_OVER_OPEN), async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const h = holder(t, { path: p, options: FAST, lostThrows: true })
  await h.line('ACQUIRED')
  replaceWith(p, goLease({ ownerID: 'foreign-owner' }))
  await h.line('LOST')
  const w = await h.line('WARNING')
  assert.equal(w.code, 'LEASELOCK_CALLBACK_ERROR')
  assert.match(w.message, /callback exploded on purpose/)
  h.send('held')
  assert.equal(await h.line('HELD'), false)
  assert.equal(h.exitInfo, undefined, 'still running')
  h.send('exit 0')
  assert.deepEqual(await h.exited, { code: 0, signal: null })
})

test('a blocked event loop (5 s busy loop) does not lose the lease', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const opts = { leaseHeartbeatInterval: 100, leaseStaleThreshold: 800 }
  const h = holder(t, { path: p, options: opts })
  await h.line('ACQUIRED')
  const owner = readLease(p).ownerID
  h.send('busy 5000')
  await h.line('BUSY_START')
  let refusals = 0
  while (!h.count('BUSY_END')) {
    const err = await rejection(new PidLock(p, opts).acquire())
    assert.equal(err.code, 'ELOCKHELD', err.message)
    assert.equal(err.holder.ownerId, owner)
    refusals++
    await sleep(200)
  }
  assert.ok(refusals >= 10, `only ${refusals} tries during the busy loop`)
  const end = await h.line('BUSY_END')
  assert.equal(end.held, true)
  await sleep(200)
  assert.equal(h.count('LOST'), 0)
})

// ---------------------------------------------------------------------------------------------
// Garbage collection.

test('an unreferenced acquired lock is never released by garbage collection', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const c = script(t, `
    const p = args[0]
    await new PidLock(p, { leaseHeartbeatInterval: 50, leaseStaleThreshold: 300 }).acquire()
    console.log('ACQUIRED')
    const until = Date.now() + 1500
    while (Date.now() < until) {
      globalThis.gc()
      await new Promise((r) => setTimeout(r, 20))
    }
    console.log('COLLECTED')
    setInterval(() => globalThis.gc(), 20)
  `, { execArgv: ['--expose-gc'], args: [p] })
  await c.line('ACQUIRED')
  const owner = readLease(p).ownerID
  await c.line('COLLECTED')
  const seen = PidLock.inspectSync(p, { leaseStaleThreshold: 300 })
  assert.equal(seen.ownerId, owner)
  assert.equal(seen.stale, false, 'still heartbeating after five stale thresholds of gc()')
  const err = await rejection(new PidLock(p, { leaseHeartbeatInterval: 50, leaseStaleThreshold: 300 }).acquire())
  assert.equal(err.code, 'ELOCKHELD')
  await sleep(400)
  assert.equal(PidLock.inspectSync(p, { leaseStaleThreshold: 300 }).stale, false)
})

test('a lock whose onLeaseLost closes over the lock is garbage-collected after release', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t)
  const c = script(t, `
    const dir = args[0]
    let collected = 0
    const registry = new FinalizationRegistry(() => { collected++ })
    const N = 20
    for (let i = 0; i < N; i++) {
      const lock = new PidLock(dir + '/l' + i + '.lock', { onLeaseLost: () => console.log('lost', lock.path) })
      await lock.acquire()
      await lock.release()
      registry.register(lock, i)
    }
    for (let k = 0; k < 100 && collected < N; k++) {
      globalThis.gc()
      await new Promise((r) => setTimeout(r, 10))
    }
    console.log('COLLECTED ' + collected)
  `, { execArgv: ['--expose-gc'], args: [dir] })
  const n = await c.line('COLLECTED')
  assert.ok(n >= 19, `only ${n} of 20 released locks were collected`)
  assert.deepEqual(await c.exited, { code: 0, signal: null })
})

test('the lost-lease callback does not keep Node alive: a child that acquires and releases exits by itself', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t)
  const c = script(t, `
    const lock = new PidLock(args[0], { onLeaseLost: () => console.log('LOST'), processAppearsAlive: () => true })
    await lock.acquire()
    await lock.release()
    const other = new PidLock(args[0] + '2', { onLeaseLost: () => console.log('LOST') })
    other.acquireSync()
    other.releaseSync()
    console.log('IDLE')
  `, { args: [path.join(dir, 'x.lock')] })
  await c.line('IDLE')
  const exit = await Promise.race([c.exited, sleep(10_000).then(() => 'still running')])
  assert.deepEqual(exit, { code: 0, signal: null })
})
