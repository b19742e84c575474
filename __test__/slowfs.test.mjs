// Slow, hung and odd filesystems (issue 13): on a FUSE mount the tests make themselves
// (scripts/slowfs.py), the event loop keeps ticking while a lock works on a slow mount, a hung
// mount stalls only its own locks and is reported, process exit does not hang on it, and locks
// stay correct where inode numbers are made up per name or rename(2) takes no flags.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { PidLock } from '../lib/index.mjs'
import { Child, tempDir, holder, exists, readLease, sleep, repoRoot, libCjs, libMjsUrl } from './helpers/util.mjs'
import { fuseSkipReason, mountSlowFs, entries } from './helpers/slowfs.mjs'

const skip = fuseSkipReason()
if (skip) console.log(`# FUSE tests skipped: ${skip}`)
const fuse = { skip: skip ?? false, timeout: 120_000 }

const cyclerScript = path.join(repoRoot, '__test__', 'helpers', 'cycler.mjs')

/** An ES module script run in a child with `PidLock` imported and stdin open for commands. */
function scriptWithStdin(t, code, args) {
  const prelude = `import { PidLock } from ${JSON.stringify(libMjsUrl)}; const args = process.argv.slice(1);\n`
  return new Child(['--input-type=module', '-e', prelude + code, '--', ...args], { t })
}

/**
 * Runs `work` while a 10 ms interval ticks; returns its result, how long it took and the share
 * of the expected ticks that came (1 = the event loop never waited).
 */
async function ticking(work, onTick = () => {}) {
  let ticks = 0
  const timer = setInterval(() => {
    ticks++
    onTick()
  }, 10)
  const start = performance.now()
  try {
    const value = await work()
    const ms = performance.now() - start
    return { value, ms, share: ticks / Math.floor(ms / 10) }
  } finally {
    clearInterval(timer)
  }
}

// ---------------------------------------------------------------------------------------------
// Which path a lock takes.

test('local disks keep the fast path: ext4 and tmpfs are local, and acquire writes without leaving the JS thread', async (t) => {
  const dirs = [tempDir(t)]
  if (fs.existsSync('/dev/shm')) dirs.push(fs.mkdtempSync('/dev/shm/leaselock-test-'))
  t.after(() => fs.rmSync(dirs[1] ?? dirs[0], { recursive: true, force: true }))
  for (const dir of dirs) {
    // The first lock in a directory learns its filesystem off the JS thread (asking can hang
    // on a hung mount); the process remembers the answer for that directory.
    const learner = new PidLock(path.join(dir, 'first.lock'))
    await learner.acquire()
    assert.equal(await learner.release(), true)
    const p = path.join(dir, 'x.lock')
    const lock = new PidLock(p)
    const first = lock.acquire()
    // The first attempt is made on the JS thread, inside the microtask that runs the call:
    // two turns later the file is there, with no event-loop turn in between.
    await null
    await null
    assert.ok(exists(p), `${dir}: the lock file was written on the JS thread`)
    await first
    const where = lock.filesystem
    assert.equal(where.kind, 'local', `${dir}: ${JSON.stringify(where)}`)
    assert.ok(['ext4', 'tmpfs', 'xfs', 'btrfs', 'overlay'].includes(where.type), where.type)
    assert.equal(where.stableInodes, true)
    assert.equal(await lock.release(), true)
  }
})

test('a FUSE mount is classified as such, and inode numbers made up per name are detected', fuse, async (t) => {
  for (const ino of ['pass', 'path']) {
    const mnt = await mountSlowFs(t, { ino })
    const lock = new PidLock(path.join(mnt.dir, 'x.lock'))
    assert.equal(lock.filesystem, null, 'not looked at before the first acquire')
    await lock.acquire()
    assert.deepEqual(lock.filesystem, { type: 'fuse', kind: 'fuse', stableInodes: ino === 'pass' })
    assert.equal(await lock.release(), true)
    await mnt.unmount()
  }
})

// ---------------------------------------------------------------------------------------------
// Point 0: correct where inode numbers are not stable across names, and where rename(2)
// takes no flags.

for (const ino of ['pass', 'path']) {
  for (const renameFlags of ['ok', 'refuse']) {
    const mode = `inode numbers ${ino === 'pass' ? 'passed through' : 'made up per name'}, rename flags ${renameFlags === 'ok' ? 'accepted' : 'refused'}`

    test(`${mode}: a held lease stays held past the stale threshold, update works, release leaves nothing`, fuse, async (t) => {
      const mnt = await mountSlowFs(t, { ino, renameFlags })
      const p = path.join(mnt.dir, 'x.lock')
      const lost = []
      const lock = new PidLock(p, {
        leaseHeartbeatInterval: 40,
        leaseStaleThreshold: 600,
        metadata: { n: 1 },
        onLeaseLost: (info) => lost.push(info),
      })
      await lock.acquire()
      const owner = readLease(p).ownerID
      // A new length: the record is replaced whole (an exchange, or its fallback).
      await lock.update({ url: 'http://127.0.0.1:5173/', note: 'x'.repeat(40) })
      assert.deepEqual(readLease(p).metadata, { url: 'http://127.0.0.1:5173/', note: 'x'.repeat(40) })
      lock.updateSync({ n: 2 })
      assert.deepEqual(readLease(p).metadata, { n: 2 })
      // Three stale thresholds of heartbeats, every one of which checks the path.
      await sleep(1800)
      assert.deepEqual(lost, [], 'no loss without a contender')
      assert.equal(lock.held, true)
      assert.equal(readLease(p).ownerID, owner)
      const other = new PidLock(p, { leaseStaleThreshold: 600 })
      await assert.rejects(other.acquire(), { code: 'ELOCKHELD' })
      assert.equal(await lock.release(), true)
      assert.deepEqual(entries(mnt.dir), [], 'nothing left at the mount')
      assert.deepEqual(entries(mnt.backing), [], 'nothing left in the backing directory')
      // The next process gets it at once.
      await other.acquire()
      assert.equal(other.releaseSync(), true)
      assert.deepEqual(lost, [])
    })

    test(`${mode}: a killed holder is taken over at once, a live one is not, and nothing is left behind`, fuse, async (t) => {
      const mnt = await mountSlowFs(t, { ino, renameFlags })
      const p = path.join(mnt.dir, 'x.lock')
      const opts = { leaseHeartbeatInterval: 50, leaseStaleThreshold: 800 }
      const live = holder(t, { path: p, options: opts })
      await live.line('ACQUIRED')
      const contender = new PidLock(p, opts)
      await assert.rejects(contender.acquire(), { code: 'ELOCKHELD' })
      await sleep(200)
      assert.equal(live.count('LOST'), 0, 'a failed contender does not disturb the holder')
      live.kill()
      await live.exited
      const { reclaimed } = await contender.acquire()
      assert.equal(reclaimed.pid, live.pid)
      assert.equal(readLease(p).pid, process.pid)
      await sleep(300)
      assert.equal(contender.held, true)
      assert.equal(await contender.release(), true)
      assert.deepEqual(entries(mnt.dir), [])
    })
  }
}

test('made-up inode numbers and refused rename flags: processes taking turns never overlap, tokens rising', fuse, async (t) => {
  const mnt = await mountSlowFs(t, { ino: 'path', renameFlags: 'refuse' })
  const p = path.join(mnt.dir, 'x.lock')
  const journal = path.join(tempDir(t), 'journal')
  const n = 3
  const cycles = 40
  const kids = Array.from({ length: n }, (_, i) => new Child([cyclerScript, p, journal, String(i), String(cycles)], { t, stdin: 'ignore' }))
  const results = await Promise.all(kids.map((k) => k.line('DONE', 100_000)))
  for (const k of kids) assert.deepEqual(await k.exited, { code: 0, signal: null }, k.stderr)
  assert.deepEqual(results.map((r) => r.done), Array(n).fill(cycles))
  let inside = null
  let overlaps = 0
  let lastToken = 0n
  for (const line of fs.readFileSync(journal, 'utf8').trim().split('\n')) {
    const [what, id, , token] = line.split(' ')
    if (what === 'enter') {
      // The counter's appends go through FUSE too: tokens still rise with every turn.
      assert.ok(BigInt(token) > lastToken, `token ${token} after ${lastToken}`)
      lastToken = BigInt(token)
      if (inside !== null) overlaps++
      inside = id
    } else {
      if (inside !== id) overlaps++
      inside = null
    }
  }
  assert.equal(overlaps, 0)
  assert.deepEqual(entries(mnt.dir), [])
})

// ---------------------------------------------------------------------------------------------
// Points 1 and 2: a slow filesystem never stalls the JS thread or another lock.

test('200 ms per operation: acquire, update and release leave the event loop ticking, and a local lock keeps renewing', fuse, async (t) => {
  const mnt = await mountSlowFs(t)
  const localPath = path.join(tempDir(t), 'local.lock')
  const local = new PidLock(localPath, { leaseHeartbeatInterval: 50, leaseStaleThreshold: 1000 })
  await local.acquire()
  // A lease on a mount this slow needs room: one update there takes a dozen operations.
  const slow = new PidLock(path.join(mnt.dir, 'x.lock'), { leaseHeartbeatInterval: 1000, leaseStaleThreshold: 10_000 })
  await mnt.command('delay 200')
  let localLapses = 0
  const watchLocal = () => {
    if (!local.held) localLapses++
  }
  const beatBefore = readLease(localPath).lastHeartbeatUnixNano
  for (const [what, work] of [
    ['acquire', () => slow.acquire()],
    ['update', () => slow.update({ url: 'http://127.0.0.1:5173/' })],
    ['release', () => slow.release()],
  ]) {
    const r = await ticking(work, watchLocal)
    t.diagnostic(`${what}: ${Math.round(r.ms)} ms, ${Math.round(r.share * 100)}% of the 10 ms ticks`)
    assert.ok(r.ms >= 200, `${what} did reach the slow mount (${r.ms} ms)`)
    assert.ok(r.share >= 0.8, `${what}: the event loop kept ${Math.round(r.share * 100)}% of its ticks`)
    if (what === 'release') assert.equal(r.value, true)
  }
  assert.equal(localLapses, 0, 'the local lock was held at every tick')
  assert.ok(readLease(localPath).lastHeartbeatUnixNano > beatBefore, 'the local lock renewed meanwhile')
  assert.equal(local.releaseSync(), true)
})

// ---------------------------------------------------------------------------------------------
// Points 2, 3 and 4: a hung filesystem.

test('hung mount: the holder is told within the stale threshold, its other lock is unaffected, exit returns at once, and the lock can be taken after', fuse, async (t) => {
  const mnt = await mountSlowFs(t)
  const p = path.join(mnt.dir, 'x.lock')
  const localPath = path.join(tempDir(t), 'local.lock')
  const STALE = 1500
  const c = scriptWithStdin(t, `
    const opts = { leaseHeartbeatInterval: 100, leaseStaleThreshold: ${STALE} }
    const say = (tag, v) => console.log(tag + ' ' + JSON.stringify(v ?? null))
    const hung = new PidLock(args[0], { ...opts, onLeaseLost: (info) => say('LOST', { reason: info.reason, path: info.path, held: hung.held, at: Date.now() }) })
    const local = new PidLock(args[1], { ...opts, onLeaseLost: (info) => say('LOCAL_LOST', info.reason) })
    await hung.acquire()
    await local.acquire()
    say('ACQUIRED')
    process.stdin.setEncoding('utf8')
    process.stdin.on('data', (d) => {
      for (const cmd of d.trim().split('\\n')) {
        if (cmd === 'held') say('HELD', { hung: hung.held, local: local.held })
        if (cmd === 'exit') { say('EXITING', Date.now()); process.exit(7) }
      }
    })
  `, [p, localPath])
  await c.line('ACQUIRED')
  await mnt.command('hang')
  const hungAt = Date.now()
  const lost = await c.line('LOST', 10_000)
  assert.equal(lost.reason, 'heartbeat-stalled')
  assert.equal(lost.path, p)
  assert.equal(lost.held, false, 'held is false by the time onLeaseLost runs')
  assert.ok(lost.at - hungAt <= STALE + 500, `told ${lost.at - hungAt} ms after the hang`)
  const beat = readLease(localPath).lastHeartbeatUnixNano
  await sleep(400)
  assert.ok(readLease(localPath).lastHeartbeatUnixNano > beat, 'the local lock kept renewing')
  c.send('held')
  assert.deepEqual(await c.line('HELD'), { hung: false, local: true })
  c.send('exit')
  const exitingAt = await c.line('EXITING')
  const { code } = await c.exited
  const took = Date.now() - exitingAt
  t.diagnostic(`process.exit() took ${took} ms with the mount hung`)
  assert.equal(code, 7, 'exit code unchanged')
  assert.ok(took < 1000, `exit took ${took} ms`)
  assert.equal(c.count('LOCAL_LOST'), 0)
  assert.equal(exists(localPath), false, 'the local lock was released at exit')
  await mnt.command('unhang')
  const next = new PidLock(p)
  const { reclaimed } = await next.acquire()
  assert.equal(reclaimed.pid, c.pid)
  assert.equal(await next.release(), true)
})

test('hung mount: exit while the lock there is still held (the release itself hangs) returns within a second', fuse, async (t) => {
  const mnt = await mountSlowFs(t)
  const p = path.join(mnt.dir, 'x.lock')
  const c = scriptWithStdin(t, `
    const lock = new PidLock(args[0], { leaseHeartbeatInterval: 1000, leaseStaleThreshold: 30000 })
    await lock.acquire()
    console.log('ACQUIRED')
    process.stdin.setEncoding('utf8')
    process.stdin.on('data', () => { console.log('EXITING ' + Date.now()); process.exit(3) })
  `, [p])
  await c.line('ACQUIRED')
  await mnt.command('hang')
  c.send('exit')
  const exitingAt = await c.line('EXITING')
  const { code } = await c.exited
  const took = Date.now() - exitingAt
  t.diagnostic(`process.exit() with a held lock on the hung mount took ${took} ms`)
  assert.equal(code, 3, 'exit code unchanged')
  assert.ok(took < 1000, `exit took ${took} ms`)
  await mnt.command('unhang')
  // The lease was left to go stale; its owner is gone, so it is taken over at once.
  const next = new PidLock(p)
  const { reclaimed } = await next.acquire()
  assert.equal(reclaimed.pid, c.pid)
  assert.equal(await next.release(), true)
})

test('hung mount: a stalled renewal is reported once and never un-lost when the mount comes back', fuse, async (t) => {
  const mnt = await mountSlowFs(t)
  const p = path.join(mnt.dir, 'x.lock')
  const lost = []
  const lock = new PidLock(p, { leaseHeartbeatInterval: 50, leaseStaleThreshold: 600, onLeaseLost: (i) => lost.push(i.reason) })
  await lock.acquire()
  await mnt.command('hang')
  const start = Date.now()
  while (lost.length === 0 && Date.now() - start < 5000) await sleep(10)
  assert.deepEqual(lost, ['heartbeat-stalled'])
  assert.equal(lock.held, false)
  await mnt.command('unhang')
  await sleep(300) // the stuck renewal completes now
  assert.equal(lock.held, false, 'not un-lost')
  assert.deepEqual(lost, ['heartbeat-stalled'], 'reported once')
  // Release after a loss never touches another owner's file; this one is still ours, so it goes.
  assert.equal(await lock.release(), true)
  await lock.acquire()
  assert.equal(lock.held, true)
  assert.equal(await lock.release(), true)
})

test('hung mount: a worker holding a lock there is terminated within a second', fuse, async (t) => {
  const mnt = await mountSlowFs(t)
  const p = path.join(mnt.dir, 'x.lock')
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads')
     const { PidLock } = require(workerData.lib)
     const lock = new PidLock(workerData.p)
     lock.acquire().then(() => parentPort.postMessage('acquired'))`,
    { eval: true, workerData: { lib: libCjs, p } },
  )
  await new Promise((resolve, reject) => {
    w.once('message', resolve)
    w.once('error', reject)
  })
  await mnt.command('hang')
  await sleep(100)
  const start = Date.now()
  await w.terminate()
  const took = Date.now() - start
  t.diagnostic(`worker.terminate() took ${took} ms with the mount hung`)
  assert.ok(took < 1000, `terminate took ${took} ms`)
  await mnt.command('unhang')
})
