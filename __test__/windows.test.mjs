// Windows behaviour that the POSIX tests stand for elsewhere: a holder ended by TerminateProcess,
// a pid that Windows gave to another process, the sharing and delete semantics of an open lock
// file, the refusal text, the bytes of a lease file and paths longer than MAX_PATH. Skipped on
// other platforms with the reason printed; CI runs them under Wine (scripts/windows-lane.sh).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { PidLock } from 'leaselock'
import { tempDir, holder, script, readLease, exists, ourLease, assertStopHint, windowsOnly } from './helpers/util.mjs'

const WIN = windowsOnly('Win32 process and file semantics')

/** A holder child that has acquired `p`; resolves with the child and its lease as written. */
async function heldByChild(t, p) {
  const h = holder(t, { path: p })
  const got = await h.line('ACQUIRED')
  assert.equal(got.held, true)
  return { h, lease: readLease(p) }
}

test('a holder ended by TerminateProcess is taken over at once, proven dead by pid and creation time', WIN, async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const { h, lease } = await heldByChild(t, p)
  // The creation time is recorded (a FILETIME, 100 ns units since 1601) with the DNS host name.
  assert.match(lease.processStart, /^\d{17,}$/)
  assert.equal(lease.hostname, os.hostname())
  h.proc.kill() // TerminateProcess: no exit handler runs, the file stays
  await h.exited
  assert.equal(exists(p), true)
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire({ timeout: 0 })
  assert.equal(reclaimed.pid, h.pid)
  assert.equal(reclaimed.alive, false)
  assert.equal(reclaimed.stale, false, 'taken at once, not after the lease went stale')
  assert.equal(readLease(p).pid, process.pid)
  assert.equal(await lock.release(), true)
})

test('a pid that now belongs to another process is not taken for the old owner', WIN, async (t) => {
  const dir = tempDir(t)
  // Two live processes: `other` stands for the process that got the old owner's pid; `ref`'s
  // lease gives this machine's identity fields as the package writes them.
  const other = script(t, `console.log('UP'); setInterval(() => {}, 1000)`)
  await other.line('UP')
  const { lease: ref } = await heldByChild(t, path.join(dir, 'ref.lock'))
  const identity = Object.fromEntries(['hostname', 'bootId', 'pidNamespace', 'timeNamespace'].filter((k) => k in ref).map((k) => [k, ref[k]]))
  const { lease: otherLease } = await heldByChild(t, path.join(dir, 'other.lock'))
  const p = path.join(dir, 'x.lock')

  // The owner's pid is alive but was created at another time: the owner is dead, taken at once.
  fs.writeFileSync(p, ourLease({ pid: other.pid, identity: { ...identity, processStart: '116444736000000000' } }))
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire({ timeout: 0 })
  assert.equal(reclaimed.pid, other.pid)
  assert.equal(reclaimed.alive, false)
  assert.equal(await lock.release(), true)

  // The same pid with its real creation time is the owner, alive: refused.
  const live = await heldByChild(t, path.join(dir, 'live.lock'))
  fs.writeFileSync(p, ourLease({ pid: live.h.pid, identity: { ...identity, processStart: live.lease.processStart } }))
  const err = await new PidLock(p).acquire({ timeout: 0 }).then(() => null, (e) => e)
  assert.equal(err?.code, 'ELOCKHELD')
  assert.equal(err.holder.pid, live.h.pid)
  assert.ok(otherLease.processStart !== live.lease.processStart, 'two processes, two creation times')
})

test('an open handle on the lock file (a reader, a scanner) neither blocks release nor the next acquire', WIN, async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const lock = new PidLock(p)
  await lock.acquire()
  // Node opens with read, write and delete sharing, as scanners and editors usually do.
  const fd = fs.openSync(p, 'r')
  t.after(() => fs.closeSync(fd))
  assert.match(fs.readFileSync(p, 'utf8'), /"ownerID"/, 'others can read a held lock file')
  assert.equal(await lock.release(), true)
  assert.equal(exists(p), false, 'the name is free although a handle is still open')
  const next = new PidLock(p)
  assert.deepEqual(await next.acquire({ timeout: 0 }), { reclaimed: null, token: next.token })
  assert.equal(await next.release(), true)
})

test('fencing tokens rise across acquisitions and processes; the counter stays beside the lock', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const lock = new PidLock(p)
  const { token: first } = await lock.acquire()
  assert.equal(typeof first, 'bigint')
  assert.equal(lock.token, first)
  assert.equal((await PidLock.inspect(p)).token, first)
  await lock.release()
  assert.deepEqual(fs.readdirSync(path.dirname(p)), ['.x.lock.token'])
  // Another process, then this one again: each token above the last. Appends from several
  // processes at once land one after another (the counter's range lock), never on one offset.
  const c = holder(t, { path: p })
  const theirs = BigInt((await c.line('ACQUIRED')).token)
  assert.ok(theirs > first, `${theirs} after ${first}`)
  c.send('release')
  await c.line('RELEASED')
  const { token: again } = await lock.acquire({ timeout: 5_000 })
  assert.ok(again > theirs, `${again} after ${theirs}`)
  await lock.release()
})

test('the holder keeps the lock file open with delete sharing: others can rename it away', WIN, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const { h } = await heldByChild(t, p)
  // A holder that denied delete sharing would make its lock impossible to take over or clean up.
  fs.renameSync(p, path.join(dir, 'moved.lock'))
  assert.equal(exists(p), false)
  const lost = await h.line('LOST')
  assert.equal(lost.heldAtCallback, false)
})

// A stop hint is offered only for a holder proven to hold the very lock file (lib/proof.js,
// Linux /proc); on Windows that proof cannot be made, so no hint invites killing a pid that a
// planted lease may name.
test('the ELOCKHELD text offers no stop command for a holder it cannot prove', WIN, async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const { h } = await heldByChild(t, p)
  const err = await new PidLock(p).acquire({ timeout: 0 }).then(() => null, (e) => e)
  assert.equal(err?.code, 'ELOCKHELD')
  assert.ok(err.message.includes(`pid ${h.pid}`), err.message)
  assertStopHint(err.message, h.pid)
  assert.doesNotMatch(err.message, /taskkill/)
})

test('lease files have no CR: acquire, heartbeat and update() write LF only', WIN, async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const lock = new PidLock(p, { leaseHeartbeatInterval: 20, leaseStaleThreshold: 2000, metadata: { a: 'line\r\nbreak' } })
  await lock.acquire()
  const check = (what) => {
    const bytes = fs.readFileSync(p)
    assert.equal(bytes.includes(0x0d), false, `${what}: a CR byte in ${JSON.stringify(bytes.toString())}`)
    assert.equal(bytes.at(-1), 0x0a, `${what}: ends with LF`)
    assert.equal(bytes.at(-2), 0x7d, `${what}: one record, then LF`)
  }
  check('acquire')
  const first = readLease(p).lastHeartbeatUnixNano
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.notEqual(readLease(p).lastHeartbeatUnixNano, first, 'a heartbeat was written')
  check('heartbeat')
  await lock.update({ b: 'x'.repeat(200) })
  check('update (longer)')
  await lock.update(null)
  check('update (shorter)')
  assert.equal(await lock.release(), true)
})

test('paths longer than MAX_PATH (260) work: acquire, inspect, contend, release', WIN, async (t) => {
  const dir = tempDir(t)
  const deep = path.join(dir, ...Array.from({ length: 6 }, (_, i) => `${i}-${'d'.repeat(50)}`))
  const p = path.join(deep, 'x.lock')
  assert.ok(p.length > 300, `${p.length} characters`)
  const lock = new PidLock(p)
  await lock.acquire()
  assert.equal((await PidLock.inspect(p)).pid, process.pid)
  const err = await new PidLock(p).acquire({ timeout: 0 }).then(() => null, (e) => e)
  assert.equal(err?.code, 'ELOCKHELD')
  await lock.update({ long: true })
  assert.deepEqual(PidLock.inspectSync(p).metadata, { long: true })
  assert.equal(await lock.release(), true)
  assert.equal(exists(p), false)
})
