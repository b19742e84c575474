// Dead only on proof (issue 12, section 2): a holder whose /proc entry is hidden, or that lives
// in another time namespace, or in a PID namespace without its own /proc, is not declared dead
// on what cannot be compared in the same frame; a stamp in the reader's future is not trusted.
// Root only: these run real processes under unshare, nsenter and setuid, and skip with the
// reason where the kernel refuses.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { PidLock } from '../lib/index.mjs'
import { tempDir, readLease, procStart, sleep, waitUntil, notOnWindows } from './helpers/util.mjs'
import { cannotRun, hidepid, wrappedScript } from './helpers/wrapped.mjs'

const HB = { leaseHeartbeatInterval: 100, leaseStaleThreshold: 1500 }
const HOLDER_UID = 65534
const READER_UID = 65533

/** A script that acquires `args[0]` and holds it, printing ACQUIRED. */
const HOLD = `
  const lock = new PidLock(args[0], JSON.parse(args[1]))
  await lock.acquire()
  console.log('ACQUIRED ' + JSON.stringify({ pid: process.pid }))
  setInterval(() => {}, 1000)
`

/** A script that tries `args[0]` once and prints the outcome. */
const TRY = `
  const lock = new PidLock(args[0], JSON.parse(args[1]))
  try {
    const { reclaimed } = await lock.acquire()
    console.log('RESULT ' + JSON.stringify({ acquired: true, reclaimed }))
    await lock.release()
  } catch (e) {
    console.log('RESULT ' + JSON.stringify({ acquired: false, code: e.code, holder: e.holder }))
  }
`

function sharedDir(t) {
  const dir = tempDir(t)
  fs.chmodSync(dir, 0o777)
  return dir
}

async function tryAcquire(t, wrapper, p, opts = HB, uid = null) {
  const r = wrappedScript(t, wrapper, TRY, { uid, args: [p, JSON.stringify(opts)] })
  return r.line('RESULT')
}

test("hidepid=2: another user's live holder is not declared dead; a gone one is", async (t) => {
  const why = cannotRun(hidepid)
  if (why) return t.skip(why)
  const p = path.join(sharedDir(t), 'x.lock')
  const h = wrappedScript(t, [], HOLD, { uid: HOLDER_UID, args: [p, JSON.stringify(HB)] })
  await h.line('ACQUIRED')
  const before = readLease(p)
  // The reader cannot see the holder's /proc entry, and kill(pid, 0) answers EPERM: alive.
  const seen = await tryAcquire(t, hidepid, p, HB, READER_UID)
  assert.equal(seen.acquired, false, 'a live holder hidden by hidepid was taken over')
  assert.equal(seen.code, 'ELOCKHELD')
  assert.notEqual(seen.holder.alive, false)
  assert.equal(readLease(p).ownerID, before.ownerID)
  // Gone for real: kill(pid, 0) answers ESRCH, which is proof.
  h.proc.kill('SIGKILL')
  await h.exited
  const after = await tryAcquire(t, hidepid, p, { ...HB, leaseStaleThreshold: 60_000 }, READER_UID)
  assert.equal(after.acquired, true, JSON.stringify(after))
  assert.equal(after.reclaimed.alive, false)
  assert.equal(after.reclaimed.stale, false)
})

test('hidepid=2: inspect of a hidden live holder does not call it dead', async (t) => {
  const why = cannotRun(hidepid)
  if (why) return t.skip(why)
  const p = path.join(sharedDir(t), 'x.lock')
  const h = wrappedScript(t, [], HOLD, { uid: HOLDER_UID, args: [p, JSON.stringify(HB)] })
  await h.line('ACQUIRED')
  const r = wrappedScript(t, hidepid, `console.log('SEEN ' + JSON.stringify(PidLock.inspectSync(args[0])))`, { uid: READER_UID, args: [p] })
  const seen = await r.line('SEEN')
  assert.notEqual(seen.alive, false)
})

for (const [shift, label] of [['-100', 'behind'], ['100', 'ahead']]) {
  const timens = ['unshare', '--time', '--fork', '--kill-child', '--boottime', shift, '--monotonic', shift]

  test(`time namespace with the boot clock ${label}: a live holder there is held, not taken over`, async (t) => {
    const why = cannotRun(timens)
    if (why) return t.skip(why)
    const p = path.join(tempDir(t), 'x.lock')
    const h = wrappedScript(t, timens, HOLD, { args: [p, JSON.stringify(HB)] })
    await h.line('ACQUIRED')
    const lease = readLease(p)
    const err = await new PidLock(p, HB).acquire().then(
      () => assert.fail('a live holder in another time namespace was taken over'),
      (e) => e,
    )
    assert.equal(err.code, 'ELOCKHELD')
    assert.notEqual(err.holder.alive, false)
    assert.equal(err.holder.stale, false)
    assert.equal(readLease(p).ownerID, lease.ownerID)
  })

  test(`time namespace with the boot clock ${label}: a frozen holder goes stale by the wall clock`, async (t) => {
    const why = cannotRun(timens)
    if (why) return t.skip(why)
    const p = path.join(tempDir(t), 'x.lock')
    const h = wrappedScript(t, timens, HOLD, { args: [p, JSON.stringify(HB)] })
    await h.line('ACQUIRED')
    const pid = h.nodePid()
    assert.ok(pid, 'found the holder process')
    process.kill(pid, 'SIGSTOP')
    t.after(() => {
      try {
        process.kill(pid, 'SIGCONT')
      } catch {}
    })
    const frozenAt = Date.now()
    await assert.rejects(new PidLock(p, HB).acquire(), { code: 'ELOCKHELD' })
    const lock = new PidLock(p, HB)
    const { reclaimed } = await waitUntil(
      () => lock.acquire().catch((e) => (e.code === 'ELOCKHELD' ? null : Promise.reject(e))),
      { timeout: 10_000, interval: 50, what: 'the frozen holder to go stale' },
    )
    assert.ok(Date.now() - frozenAt >= HB.leaseStaleThreshold - HB.leaseHeartbeatInterval - 50, 'not before the lease went stale')
    assert.equal(reclaimed.stale, true)
    await lock.release()
  })
}

test('a boot-clock stamp in the future of the reader is not trusted: the wall clock ages the lease', notOnWindows('leases written there carry no boot-clock stamp'), async (t) => {
  const dir = tempDir(t)
  // Our own identity fields, as this package writes them.
  const mine = new PidLock(path.join(dir, 'me.lock'))
  await mine.acquire()
  const me = readLease(path.join(dir, 'me.lock'))
  await mine.release()
  assert.ok(me.heartbeatBoot, 'our leases carry a boot-clock stamp')
  // A live process of ours as the owner, so only the lease's age can free it.
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' })
  t.after(() => sleeper.kill('SIGKILL'))
  await waitUntil(() => fs.existsSync(`/proc/${sleeper.pid}/stat`) && procStart(sleeper.pid))
  const future = (BigInt(me.heartbeatBoot) + 3600n * 1_000_000_000n).toString().padStart(20, '0')
  const planted = {
    ...me,
    ownerID: `${sleeper.pid}-1-1`,
    pid: sleeper.pid,
    processStart: procStart(sleeper.pid),
    lastHeartbeatUnixNano: 0,
    heartbeatBoot: future,
  }
  const p = path.join(dir, 'x.lock')
  const text = JSON.stringify(planted).replace('"lastHeartbeatUnixNano":0', `"lastHeartbeatUnixNano":${BigInt(Date.now() - 10_000) * 1_000_000n}`)
  fs.writeFileSync(p, text + '\n')
  const seen = PidLock.inspectSync(p)
  assert.equal(seen.alive, true, 'the owner is alive and comparable')
  assert.equal(seen.stale, true, 'ten seconds without a heartbeat by the wall clock')
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire()
  assert.equal(reclaimed.ownerId, planted.ownerID)
  await lock.release()
})

test('a PID namespace without its own /proc: pids read there are not compared, a live holder is held', async (t) => {
  const pidns = ['unshare', '--pid', '--fork', '--kill-child']
  const why = cannotRun(pidns) ?? cannotRun(['nsenter', '--target', String(process.pid), '--pid'])
  if (why) return t.skip(why)
  const p = path.join(tempDir(t), 'x.lock')
  const h = wrappedScript(t, pidns, HOLD, { args: [p, JSON.stringify(HB)] })
  const { pid: innerPid } = await h.line('ACQUIRED')
  const hostPid = h.nodePid()
  assert.ok(hostPid, 'found the holder process')
  assert.notEqual(innerPid, hostPid, 'the holder sees its own pid namespace')
  // A reader in the same PID namespace, but with the host's /proc: /proc/<pid> there is
  // another process entirely.
  const seen = await tryAcquire(t, ['nsenter', '--target', String(hostPid), '--pid'], p)
  assert.equal(seen.acquired, false, 'a live holder was declared dead through a /proc of another namespace')
  assert.equal(seen.code, 'ELOCKHELD')
  await sleep(0)
})
