// Windows behaviour that the POSIX tests stand for elsewhere: a holder ended by TerminateProcess,
// a pid that Windows gave to another process, the sharing and delete semantics of an open lock
// file, the refusal text, proving and stopping a holder (src/sys/holder_windows.rs), the bytes
// of a lease file and paths longer than MAX_PATH. Skipped on
// other platforms with the reason printed; CI runs them under Wine (scripts/windows-lane.sh).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { PidLock } from 'leaselock'
import { execFile, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { tempDir, holder, script, readLease, exists, ourLease, windowsOnly, sleep, repoRoot } from './helpers/util.mjs'

const require = createRequire(import.meta.url)
const { proveHolder } = require('../lib/proof.js')
const { binding } = require('../lib/native.js')
const bin = path.join(repoRoot, 'bin', 'leaselock.js')

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
  assert.match(lease.bootId, /^boot-\d{17,}$/, "the kernel's boot time, in the same units")
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

test('every process of this boot records the same boot token, so any of them can prove a holder dead', WIN, async (t) => {
  // A token computed from two clock readings (wall clock minus uptime) differs by a tick from
  // process to process, and a rounded one splits pairs across its boundaries: then a live
  // holder reads as 'unknown' and a dead one is not taken over at once.
  const dir = tempDir(t)
  const mine = new PidLock(path.join(dir, 'mine.lock'))
  await mine.acquire()
  const ours = readLease(path.join(dir, 'mine.lock')).bootId
  const children = await Promise.all(Array.from({ length: 6 }, (_, i) => heldByChild(t, path.join(dir, `${i}.lock`))))
  assert.deepEqual(children.map(({ lease }) => lease.bootId), children.map(() => ours))
  for (const [i, { h }] of children.entries()) assert.equal((await PidLock.inspect(path.join(dir, `${i}.lock`))).alive, true, `child ${h.pid}`)
  await mine.release()
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
test('the ELOCKHELD text offers a stop command only for a holder it proves to hold the file', WIN, async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const { h } = await heldByChild(t, p)
  const err = await new PidLock(p).acquire({ timeout: 0 }).then(() => null, (e) => e)
  assert.equal(err?.code, 'ELOCKHELD')
  assert.ok(err.message.includes(`pid ${h.pid}`), err.message)
  const proof = proveHolder(p, await PidLock.inspect(p))
  if (proof.ok) assert.ok(err.message.includes(`taskkill /PID ${h.pid} /F`), err.message)
  else {
    t.diagnostic(`not proven here: ${proof.reason}`)
    assert.doesNotMatch(err.message, /stop it|taskkill/)
  }
})

/** `leaselock ARGS` to its end: { code, out }. */
function leaselock(args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], (err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: stdout + stderr }))
  })
}

/** A holder child whose lock is at `p`, and which answers `held` while it runs. */
async function stillRunning(h) {
  h.send('held')
  await h.line('HELD')
  assert.equal(h.exitInfo, undefined)
}

test('a forged lease naming a live process of ours is never asked to exit, nor ended with --force', WIN, async (t) => {
  const dir = tempDir(t)
  // A leaselock holder (it listens for stop requests) and a plain process (it does not).
  const real = path.join(dir, 'real.lock')
  const { h } = await heldByChild(t, real)
  const forged = path.join(dir, 'forged.lock')
  fs.writeFileSync(forged, fs.readFileSync(real))
  for (const args of [['stop', forged], ['stop', '--force', '--timeout', '1s', forged]]) {
    const r = await leaselock(args)
    assert.equal(r.code, 77, r.out)
    assert.match(r.out, new RegExp(`not signalling pid ${h.pid}: .*does not have the lock file open`))
  }
  await stillRunning(h)
  const plain = script(t, `console.log('UP'); setInterval(() => {}, 1000)`)
  await plain.line('UP')
  const handle = binding.openProcessHandle(plain.pid)
  const lease = JSON.parse(fs.readFileSync(real, 'utf8'))
  fs.writeFileSync(forged, ourLease({ pid: plain.pid, identity: { hostname: lease.hostname, bootId: lease.bootId, pidNamespace: '', timeNamespace: '', processStart: handle.start } }))
  handle.close()
  assert.equal((await PidLock.inspect(forged)).alive, true, 'the forged lease names a live process, start time and all')
  const r = await leaselock(['stop', '--force', '--timeout', '1s', forged])
  assert.equal(r.code, 77, r.out)
  assert.match(r.out, new RegExp(`not signalling pid ${plain.pid}: .*does not have the lock file open`))
  await sleep(300)
  assert.equal(plain.exitInfo, undefined, 'the plain process was not ended')
})

test('the stop request: a holder answers it as SIGTERM; a process without leaselock does not take it', WIN, async (t) => {
  const dir = tempDir(t)
  // With a SIGTERM listener: it runs (here it exits with 3).
  const graceful = script(t, `process.on('SIGTERM', () => { console.log('GOT SIGTERM'); process.exit(3) }); await new PidLock(args[0]).acquire(); setInterval(() => {}, 1000); console.log('HELD')`, { args: [path.join(dir, 'a.lock')] })
  await graceful.line('HELD')
  const a = binding.openProcessHandle(graceful.pid)
  assert.equal(a.requestExit(), 'asked')
  assert.deepEqual(await graceful.exited, { code: 3, signal: null })
  assert.match(graceful.stdout, /GOT SIGTERM/)
  assert.equal(a.requestExit(), 'ended')
  a.close()
  // Without one: it ends, as SIGTERM's default action would end it.
  const { h } = await heldByChild(t, path.join(dir, 'b.lock'))
  const b = binding.openProcessHandle(h.pid)
  assert.equal(b.requestExit(), 'asked')
  assert.notEqual((await h.exited).code, 0)
  b.close()
  // A process that never acquired a lock does not listen: nothing is sent, it runs on.
  const plain = script(t, `console.log('UP'); setInterval(() => {}, 1000)`)
  await plain.line('UP')
  const c = binding.openProcessHandle(plain.pid)
  assert.equal(c.requestExit(), 'not-listening')
  await sleep(300)
  assert.equal(plain.exitInfo, undefined)
  // TerminateProcess through the handle (what --force does) ends it.
  assert.equal(c.signal(9), true)
  await plain.exited
  assert.equal(c.signal(9), false)
  c.close()
})

test('stop and run --replace end a real holder: the stop request, then the lock is free', WIN, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  // A program that closes down on SIGTERM, as a dev server does: it releases and exits with 3.
  const app = script(t, `const lock = new PidLock(args[0]); await lock.acquire(); process.on('SIGTERM', async () => { await lock.release(); console.log('RELEASED'); process.exit(3) }); setInterval(() => {}, 1000); console.log('HELD')`, { args: [p] })
  await app.line('HELD')
  const proof = proveHolder(p, await PidLock.inspect(p))
  if (!proof.ok) {
    // Tried, not assumed: this is what the platform answered for a real holder.
    t.skip(`the holder cannot be proven here: ${proof.reason}`)
    return
  }
  const r = await leaselock(['stop', '--timeout', '5s', p])
  assert.equal(r.code, 0, r.out)
  assert.match(r.out, new RegExp(`asking pid ${app.pid} to exit \\(a stop request\\)`))
  assert.match(r.out, /has let go of the lock/)
  assert.deepEqual(await app.exited, { code: 3, signal: null })
  assert.equal(exists(p), false)
  // `leaselock run` as the holder: the request reaches it, it ends its command and lets go.
  const running = spawn(process.execPath, [bin, 'run', p, '--', process.execPath, '-e', 'console.log("UP"); setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => running.kill())
  await new Promise((resolve) => running.stdout.on('data', (d) => String(d).includes('UP') && resolve()))
  const replaced = await leaselock(['run', '--replace', '--timeout', '10s', p, '--', process.execPath, '-e', 'console.log("REPLACED")'])
  assert.equal(replaced.code, 0, replaced.out)
  assert.match(replaced.out, /REPLACED/)
  await new Promise((resolve) => (running.exitCode !== null ? resolve() : running.once('exit', resolve)))
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
