// Parity with the Go package kit/lockfile: each of its own tests, the Go-written fixtures, and
// the shape of the leases we write (a Go reader must take them for its own).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { PidLock, HELD_TEXT } from '../lib/index.mjs'
import { tempDir, goLease, readLease, exists, age, waitUntil, sleep, fixturesDir, posixOnly, RENAME_OVER_OPEN } from './helpers/util.mjs'

const GO_SHAPE = /^\{"version":1,"ownerID":"(\d+)-(\d{19})-(\d+)","pid":(\d+),"lastHeartbeatUnixNano":(\d{19})\}\n$/

function heldError(err) {
  assert.ok(err instanceof Error, `expected an Error, got ${err}`)
  assert.equal(err.code, 'ELOCKHELD', err.message)
  return err
}

async function rejection(promise) {
  return promise.then(
    () => assert.fail('expected a rejection'),
    (err) => err,
  )
}

// ---------------------------------------------------------------------------------------------
// The Go package's own tests, one by one.

test('Go 1: acquire blocks a second acquire until release', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const first = new PidLock(p)
  const second = new PidLock(p)
  await first.acquire()
  const err = heldError(await rejection(second.acquire()))
  assert.ok(err.message.startsWith(`${HELD_TEXT} (pid ${process.pid})`), err.message)
  assert.equal(second.held, false)
  await first.release()
  await second.acquire()
  assert.equal(second.held, true)
  await second.release()
  assert.equal(exists(p), false)
})

test('Go 2: recovers a stale lease (live pid, heartbeat 10 s old)', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  fs.writeFileSync(p, goLease({ ownerID: 'stale-owner', pid: process.pid, hb: Date.now() - 10_000 }))
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire()
  const lease = readLease(p)
  assert.notEqual(lease.ownerID, 'stale-owner')
  assert.equal(lease.pid, process.pid)
  assert.equal(reclaimed.valid, true)
  assert.equal(reclaimed.ownerId, 'stale-owner')
  assert.equal(reclaimed.stale, true)
  await lock.release()
})

test('Go 3: recovers a fresh lease whose owner is dead per processAppearsAlive', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  fs.writeFileSync(p, goLease({ ownerID: 'dead-owner', pid: 42424, hb: Date.now() }))
  const asked = []
  const lock = new PidLock(p, {
    leaseStaleThreshold: 30_000,
    processAppearsAlive: (pid) => {
      asked.push(pid)
      return pid !== 42424
    },
  })
  const { reclaimed } = await lock.acquire()
  assert.deepEqual([...new Set(asked)], [42424])
  assert.equal(reclaimed.ownerId, 'dead-owner')
  assert.equal(reclaimed.stale, false)
  assert.equal(readLease(p).pid, process.pid)
  await lock.release()
})

test('Go 3b: processAppearsAlive has the last word the other way too (says alive: held)', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  // A lease of ours naming a pid that is certainly not running, but the user says alive.
  fs.writeFileSync(p, goLease({ ownerID: 'alive-by-decree', pid: 2 ** 22 + 17, hb: Date.now() }))
  const lock = new PidLock(p, { processAppearsAlive: () => true })
  heldError(await rejection(lock.acquire()))
})

// Tests 4 and 5 run with the Go package's rule for invalid content (`invalidContent: 'reclaim'`):
// by default `not-a-lease-json` is not a possible lease and is refused (ELOCKNOTLEASE).
const GO_RULE = { invalidContent: 'reclaim' }

test('Go 4: recovers invalid contents older than the threshold (mtime 2 s ago)', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  fs.writeFileSync(p, 'not-a-lease-json')
  age(p, 2000)
  const lock = new PidLock(p, GO_RULE)
  const { reclaimed } = await lock.acquire()
  assert.equal(reclaimed.valid, false)
  assert.equal(reclaimed.stale, true)
  assert.equal(reclaimed.size, 'not-a-lease-json'.length)
  assert.ok(reclaimed.modifiedAt instanceof Date)
  assert.equal(readLease(p).pid, process.pid)
  await lock.release()
})

test('Go 5: treats fresh invalid contents as held', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  fs.writeFileSync(p, 'not-a-lease-json')
  const err = heldError(await rejection(new PidLock(p, GO_RULE).acquire()))
  assert.equal(err.holder, null)
  assert.ok(err.message.startsWith(`${HELD_TEXT} (owner unavailable)`))
  assert.equal(fs.readFileSync(p, 'utf8'), 'not-a-lease-json')
})

test('Go 6: only one of 12 concurrent acquirers wins', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const locks = Array.from({ length: 12 }, () => new PidLock(p))
  const results = await Promise.allSettled(locks.map((l) => l.acquire()))
  const won = results.filter((r) => r.status === 'fulfilled')
  const lost = results.filter((r) => r.status === 'rejected')
  assert.equal(won.length, 1)
  assert.equal(lost.length, 11)
  for (const r of lost) heldError(r.reason)
  assert.equal(locks.filter((l) => l.held).length, 1)
  await Promise.all(locks.map((l) => l.release()))
  assert.equal(exists(p), false)
})

test('Go 7: custom held error', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const custom = new Error('custom held')
  const a = new PidLock(p, { heldError: custom })
  const b = new PidLock(p, { heldError: custom })
  await a.acquire()
  const err = heldError(await rejection(b.acquire()))
  assert.equal(err.cause, custom)
  assert.ok(err.message.startsWith('custom held (pid '), err.message)
  await a.release()
})

test("Go 8: release does not remove a foreign owner's file", async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const lock = new PidLock(p, { leaseHeartbeatInterval: 10_000, leaseStaleThreshold: 20_000 })
  await lock.acquire()
  const foreign = goLease({ ownerID: 'foreign-owner', pid: process.pid })
  // As the Go test does (os.WriteFile): the foreign record is written into the same file.
  fs.writeFileSync(p, foreign)
  await lock.release()
  assert.equal(fs.readFileSync(p, 'utf8'), foreign)
})

test("Go 8b: release does not remove a foreign owner's file that replaced ours (new inode)", posixOnly(RENAME_OVER_OPEN), async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const lock = new PidLock(p, { leaseHeartbeatInterval: 10_000, leaseStaleThreshold: 20_000 })
  await lock.acquire()
  const foreign = goLease({ ownerID: 'foreign-owner', pid: process.pid })
  fs.writeFileSync(p + '.new', foreign)
  fs.renameSync(p + '.new', p)
  await lock.release()
  assert.equal(fs.readFileSync(p, 'utf8'), foreign)
})

test('Go 9: onLeaseLost runs exactly once when ownership changes', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const calls = []
  const lock = new PidLock(p, {
    leaseHeartbeatInterval: 15,
    leaseStaleThreshold: 3000,
    onLeaseLost: (info) => calls.push({ info, held: lock.held }),
  })
  await lock.acquire()
  fs.writeFileSync(p, goLease({ ownerID: 'foreign-owner', pid: process.pid }))
  await waitUntil(() => calls.length > 0, { timeout: 2000, what: 'onLeaseLost' })
  await sleep(150) // ten more heartbeat intervals: no second call
  assert.equal(calls.length, 1)
  assert.equal(calls[0].held, false)
  assert.equal(lock.held, false)
  assert.equal(calls[0].info.reason, 'owner-changed')
  assert.equal(calls[0].info.path, p)
  assert.equal(calls[0].info.newOwner.ownerId, 'foreign-owner')
  assert.ok(calls[0].info.at instanceof Date)
  await lock.release()
  assert.ok(exists(p))
})

// ---------------------------------------------------------------------------------------------
// The Go-written fixtures.

function fixture(name) {
  return fs.readFileSync(path.join(fixturesDir, name), 'utf8')
}

function rewrite(text, { pid, hbNanos }) {
  let out = text
  if (pid !== undefined) out = out.replace(/"pid":\d+/, `"pid":${pid}`)
  if (hbNanos !== undefined) out = out.replace(/"lastHeartbeatUnixNano":\d+/, `"lastHeartbeatUnixNano":${hbNanos}`)
  return out
}

const nowNanos = (offsetMs = 0) => BigInt(Date.now() + offsetMs) * 1_000_000n

test('fixtures are the Go shape, byte for byte', () => {
  for (const name of ['held-live.lock', 'after-heartbeat.lock']) {
    const text = fixture(name)
    assert.equal(Buffer.byteLength(text), 110)
    assert.match(text, GO_SHAPE)
  }
})

test('Go fixture with a fresh heartbeat and a live pid is held', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  for (const name of ['held-live.lock', 'after-heartbeat.lock']) {
    const body = rewrite(fixture(name), { pid: process.pid, hbNanos: nowNanos() })
    fs.writeFileSync(p, body)
    const err = heldError(await rejection(new PidLock(p).acquire()))
    assert.equal(err.holder.pid, process.pid)
    assert.equal(err.holder.ownerId, '24866-1795664371031210457-1')
    assert.equal(err.holder.hostname, null)
    assert.equal(err.holder.startedAt, null)
    assert.equal(err.holder.metadata, null)
    assert.equal(err.holder.alive, 'unknown')
    assert.equal(fs.readFileSync(p, 'utf8'), body, 'left untouched')
  }
})

test("Go fixture with a fresh heartbeat and the writer's own pid (unknown namespace) is held", async (t) => {
  // A pid from a lease without identity proves nothing, whether or not such a pid runs here.
  const p = path.join(tempDir(t), 'x.lock')
  fs.writeFileSync(p, rewrite(fixture('held-live.lock'), { hbNanos: nowNanos() }))
  const err = heldError(await rejection(new PidLock(p).acquire()))
  assert.equal(err.holder.pid, 24866)
})

test('Go fixture with an old heartbeat is taken over', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  fs.writeFileSync(p, rewrite(fixture('after-heartbeat.lock'), { pid: process.pid, hbNanos: nowNanos(-10_000) }))
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire()
  assert.equal(reclaimed.ownerId, '24866-1795664371031210457-1')
  assert.equal(reclaimed.stale, true)
  assert.notEqual(readLease(p).ownerID, reclaimed.ownerId)
  await lock.release()
})

test('Go fixture just inside the stale threshold is held, just past it taken over', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const opts = { leaseHeartbeatInterval: 100, leaseStaleThreshold: 5000 }
  fs.writeFileSync(p, rewrite(fixture('held-live.lock'), { hbNanos: nowNanos(-3000) }))
  heldError(await rejection(new PidLock(p, opts).acquire()))
  fs.writeFileSync(p, rewrite(fixture('held-live.lock'), { hbNanos: nowNanos(-5200) }))
  const lock = new PidLock(p, opts)
  await lock.acquire()
  await lock.release()
})

test('our lease, with its extra fields dropped, is exactly the Go shape', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  const lock = new PidLock(p, { leaseHeartbeatInterval: 20, leaseStaleThreshold: 1000, metadata: { url: 'http://x/', n: [1, 2] } })
  const before = Date.now()
  await lock.acquire()
  const check = (text) => {
    assert.equal(text.indexOf('\n'), text.length - 1, 'exactly one newline, at the end')
    const m = /^(\{"version":1,"ownerID":"[^"]+","pid":\d+,"lastHeartbeatUnixNano":\d+)(,"[^]*)?\}\n$/.exec(text)
    assert.ok(m, `the four Go fields first, in Go's order: ${text}`)
    const goPart = m[1] + '}\n'
    const g = GO_SHAPE.exec(goPart)
    assert.ok(g, `Go shape: ${goPart}`)
    assert.equal(Number(g[1]), process.pid, 'ownerID starts with our pid')
    assert.equal(Number(g[4]), process.pid)
    const parsed = JSON.parse(text)
    assert.deepEqual(Object.keys(parsed).slice(0, 4), ['version', 'ownerID', 'pid', 'lastHeartbeatUnixNano'])
    const outsideStrings = text.slice(0, -1).replace(/"(?:[^"\\]|\\.)*"/g, '""')
    assert.doesNotMatch(outsideStrings, /\s/, 'compact JSON')
    const hbMs = Number(BigInt(g[5]) / 1_000_000n)
    // Generous: V8's Date.now() on Windows is its own clock, synced to the system's now and then.
    assert.ok(hbMs >= before - 1000 && hbMs <= Date.now() + 1000, 'a wall-clock heartbeat in Unix nanoseconds')
    return g
  }
  const first = check(fs.readFileSync(p, 'utf8'))
  const firstText = fs.readFileSync(p, 'utf8')
  // After heartbeats: same owner, same length, a newer heartbeat.
  await waitUntil(() => readLease(p) && fs.readFileSync(p, 'utf8') !== firstText, { what: 'a heartbeat' })
  const later = check(fs.readFileSync(p, 'utf8'))
  assert.equal(later[0].length, first[0].length)
  assert.equal(fs.readFileSync(p, 'utf8').length, firstText.length, 'heartbeats keep the length')
  assert.equal(`${later[1]}-${later[2]}-${later[3]}`, `${first[1]}-${first[2]}-${first[3]}`)
  assert.ok(BigInt(later[5]) > BigInt(first[5]))
  await lock.release()
})

test('a lease we write is honoured when read back as a Go-only record', async (t) => {
  // Drop our fields from a live lease of ours: what a Go writer would have produced. It must
  // still be held (Go rules: pid alive by the unknown-identity rule and heartbeat fresh).
  const p = path.join(tempDir(t), 'x.lock')
  const lock = new PidLock(p)
  await lock.acquire()
  const text = fs.readFileSync(p, 'utf8')
  await lock.release()
  const goOnly = /^(\{"version":1,"ownerID":"[^"]+","pid":\d+,"lastHeartbeatUnixNano":\d+)/.exec(text)[1] + '}\n'
  fs.writeFileSync(p, goOnly)
  heldError(await rejection(new PidLock(p).acquire()))
})

// ---------------------------------------------------------------------------------------------
// Invalid content: held by mtime until invalidPidLockStaleThreshold, then reclaimable.

// A record cut off mid-write: content that is not a lease but may be one, so it follows the
// invalid-content rules by default.
const CUT_OFF = '{"version":1,"ownerID":"cut-off'

test('invalid content is held before invalidPidLockStaleThreshold (by mtime) and reclaimed after', async (t) => {
  const p = path.join(tempDir(t), 'x.lock')
  fs.writeFileSync(p, CUT_OFF)
  age(p, 600)
  heldError(await rejection(new PidLock(p).acquire()))
  heldError(await rejection(new PidLock(p, { invalidPidLockStaleThreshold: 5000 }).acquire()))
  age(p, 1500)
  heldError(await rejection(new PidLock(p, { invalidPidLockStaleThreshold: 5000 }).acquire()))
  const lock = new PidLock(p)
  const { reclaimed } = await lock.acquire()
  assert.equal(reclaimed.valid, false)
  await lock.release()
  // A custom threshold, just past.
  fs.writeFileSync(p, CUT_OFF)
  age(p, 5200)
  const lock2 = new PidLock(p, { invalidPidLockStaleThreshold: 5000 })
  await lock2.acquire()
  await lock2.release()
})

// ---------------------------------------------------------------------------------------------
// The Go reader's rules on what a valid lease is (checked through inspectSync).

const hb = () => String(nowNanos())

const validVariants = {
  'pretty-printed': () => `{\n  "version": 1,\n  "ownerID": "a-1-1",\n  "pid": ${process.pid},\n  "lastHeartbeatUnixNano": ${hb()}\n}\n`,
  'no trailing newline': () => `{"version":1,"ownerID":"a-1-1","pid":${process.pid},"lastHeartbeatUnixNano":${hb()}}`,
  'keys in another order and case': () => `{"PID":${process.pid},"lastheartbeatunixnano":${hb()},"OwnerId":"a-1-1","VERSION":1}`,
  'extra fields of any type': () => `{"version":1,"ownerID":"a-1-1","pid":${process.pid},"lastHeartbeatUnixNano":${hb()},"x":[1,{"y":null}],"z":"w"}`,
  'duplicate key: the last wins': () => `{"version":1,"ownerID":"a-1-1","pid":-5,"pid":${process.pid},"lastHeartbeatUnixNano":${hb()}}`,
  'null leaves a field as it was': () => `{"version":1,"ownerID":"a-1-1","pid":${process.pid},"pid":null,"lastHeartbeatUnixNano":${hb()}}`,
}

const invalidVariants = {
  empty: '',
  'null': 'null',
  'bare pid': '12345\n',
  'an array': '[1,2]',
  'pid as a string': `{"version":1,"ownerID":"a-1-1","pid":"1","lastHeartbeatUnixNano":1}`,
  'pid as 1.0': `{"version":1,"ownerID":"a-1-1","pid":1.0,"lastHeartbeatUnixNano":1}`,
  'pid as 1e3': `{"version":1,"ownerID":"a-1-1","pid":1e3,"lastHeartbeatUnixNano":1}`,
  'version 2': `{"version":2,"ownerID":"a-1-1","pid":1,"lastHeartbeatUnixNano":1}`,
  'blank ownerID': `{"version":1,"ownerID":"   ","pid":1,"lastHeartbeatUnixNano":1}`,
  'pid 0': `{"version":1,"ownerID":"a","pid":0,"lastHeartbeatUnixNano":1}`,
  'heartbeat 0': `{"version":1,"ownerID":"a","pid":1,"lastHeartbeatUnixNano":0}`,
  'trailing garbage': `{"version":1,"ownerID":"a","pid":1,"lastHeartbeatUnixNano":1}x`,
  'two objects': `{"version":1,"ownerID":"a","pid":1,"lastHeartbeatUnixNano":1}{}`,
  'ownerID as a number': `{"version":1,"ownerID":7,"pid":1,"lastHeartbeatUnixNano":1}`,
  'pid overflowing 64 bits': `{"version":1,"ownerID":"a","pid":99999999999999999999,"lastHeartbeatUnixNano":1}`,
  'truncated': `{"version":1,"ownerID":"a","pid":1,"lastHeart`,
}

for (const [name, make] of Object.entries(validVariants)) {
  test(`Go reader rule: ${name} is a valid lease`, (t) => {
    const p = path.join(tempDir(t), 'x.lock')
    fs.writeFileSync(p, make())
    const h = PidLock.inspectSync(p)
    assert.equal(h.valid, true)
    assert.equal(h.pid, process.pid)
    assert.equal(h.ownerId, 'a-1-1')
    assert.equal(h.stale, false)
  })
}

// Invalid content that no lease writer can leave (not a possible lease): refused by default.
const notPossibleLeases = new Set(['null', 'bare pid', 'an array', 'trailing garbage', 'two objects'])

for (const [name, body] of Object.entries(invalidVariants)) {
  test(`Go reader rule: ${name} is invalid content`, async (t) => {
    const p = path.join(tempDir(t), 'x.lock')
    fs.writeFileSync(p, body)
    const h = PidLock.inspectSync(p, GO_RULE)
    assert.equal(h.valid, false)
    assert.equal(h.stale, false)
    const err = heldError(await rejection(new PidLock(p, GO_RULE).acquire()))
    assert.equal(err.holder, null)
    if (notPossibleLeases.has(name)) {
      assert.throws(() => PidLock.inspectSync(p), { code: 'ELOCKNOTLEASE' })
      await assert.rejects(new PidLock(p).acquire(), { code: 'ELOCKNOTLEASE' })
    } else {
      assert.equal(PidLock.inspectSync(p).valid, false)
      heldError(await rejection(new PidLock(p).acquire()))
    }
    assert.equal(fs.readFileSync(p, 'utf8'), body)
  })
}
