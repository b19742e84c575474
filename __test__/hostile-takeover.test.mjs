// Issue 18, points 2 and 6: a file planted once by another local user must not block a lock
// forever with the wrong words. A stale lease the caller may not move (sticky directory), and
// anything at the takeover-claim name (`.<name>.takeover`), end in ELOCKNOTMOVABLE naming the
// file and its owner - at once, also when waiting forever - and `status` says this caller cannot
// take it over. Where moving is permitted (a group-writable directory, or root), the lock is
// taken over and a non-regular claim is moved aside, never deleted.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { ATTACKER, PLACES, VICTIM, age, asAttacker, asVictim, leaseText, plant, skipReason } from './helpers/attacker.mjs'
import { lockDirEntries } from './helpers/util.mjs'

const STALE = leaseText({ pid: 999_999, ageMs: 120_000 })

const tryAcquire = `async ({ PidLock }, { file, timeout }) => {
  const lock = new PidLock(file)
  const started = Date.now()
  try {
    const r = await lock.acquire({ timeout })
    await lock.release()
    return { code: 'ACQUIRED', reclaimed: r.reclaimed && r.reclaimed.pid }
  } catch (err) {
    return { code: err.code, message: err.message, path: err.path ?? null, owner: err.owner ?? null, ms: Date.now() - started }
  }
}`

const statusOf = `async ({ PidLock, cli }, { file }) => {
  const holder = await PidLock.inspect(file)
  return { canTakeOver: holder && holder.canTakeOver, text: await cli(['status', file]), json: await cli(['status', file, '--json']) }
}`

function assertNotMovable(r, file) {
  assert.equal(r.code, 'ELOCKNOTMOVABLE', JSON.stringify(r))
  assert.equal(r.path, file, JSON.stringify(r))
  assert.equal(r.owner, ATTACKER.uid, JSON.stringify(r))
  assert.ok(r.message.includes(file), r.message)
  assert.match(r.message, /uid 65534|nobody/, r.message)
  assert.doesNotMatch(r.message, /contention|retry budget/i, r.message)
}

test("sticky directory: another user's stale lease is reported as not movable, at once and when waiting forever", { skip: skipReason }, async (t) => {
  const dir = PLACES[0][1](t)
  const file = path.join(dir, 'a.lock')
  plant(file, STALE)
  assertNotMovable(await asVictim(tryAcquire, { file }), file)
  const forever = await asVictim(tryAcquire, { file, timeout: 1e9 }, { timeout: 20_000 })
  assertNotMovable(forever, file)
  assert.ok(forever.ms < 10_000, `took ${forever.ms} ms`)
  const s = await asVictim(statusOf, { file })
  assert.equal(s.canTakeOver, false, JSON.stringify(s))
  assert.doesNotMatch(s.text.out, /the next acquire takes it over/, s.text.out)
  assert.match(s.text.out, /but this user cannot take the lock over: /, s.text.out)
  assert.equal(s.text.out.split('cannot take').length, 2, `said once: ${s.text.out}`)
  assert.match(s.text.out, /uid 65534|nobody/, s.text.out)
  assert.equal(JSON.parse(s.json.out).holder.canTakeOver, false)
  assert.equal(fs.readFileSync(file, 'utf8'), STALE, 'the planted file is untouched')
  assert.deepEqual(lockDirEntries(dir), ['a.lock'])
})

test("group-writable directory: another user's stale lease is taken over, and status says it can be", { skip: skipReason }, async (t) => {
  const dir = PLACES[1][1](t)
  const file = path.join(dir, 'a.lock')
  plant(file, STALE)
  const s = await asVictim(statusOf, { file })
  assert.equal(s.canTakeOver, true, JSON.stringify(s))
  assert.match(s.text.out, /the next acquire takes it over/, s.text.out)
  const r = await asVictim(tryAcquire, { file })
  assert.equal(r.code, 'ACQUIRED', JSON.stringify(r))
  assert.equal(r.reclaimed, 999_999)
  assert.deepEqual(lockDirEntries(dir), [])
})

const CLAIMS = {
  directory: (p) => asAttacker('mkdir "$1"', p),
  fifo: (p) => asAttacker('mkfifo "$1"', p),
  'old regular file': (p) => {
    plant(p, 'not a lease')
    age(p, 120_000)
  },
}

for (const [kind, make] of Object.entries(CLAIMS)) {
  test(`sticky directory: a ${kind} at the claim name is reported as not movable, never as contention`, { skip: skipReason }, async (t) => {
    const dir = PLACES[0][1](t)
    const file = path.join(dir, 'a.lock')
    // The stale lease is the victim's own (it could move it); only the claim blocks.
    fs.writeFileSync(file, STALE)
    fs.chownSync(file, VICTIM.uid, VICTIM.gid)
    const claim = path.join(dir, '.a.lock.takeover')
    make(claim)
    assertNotMovable(await asVictim(tryAcquire, { file }), claim)
    assertNotMovable(await asVictim(tryAcquire, { file, timeout: 1e9 }, { timeout: 20_000 }), claim)
    assert.equal(fs.lstatSync(claim).uid, ATTACKER.uid, 'the claim is left where it was')
    assert.equal(fs.readFileSync(file, 'utf8'), STALE)
  })
}

for (const kind of ['directory', 'fifo']) {
  for (const [place, makeDir, user] of [
    ['group-writable', PLACES[1][1], VICTIM],
    ['sticky (as root)', PLACES[0][1], null],
  ]) {
    test(`${place} directory: a ${kind} at the claim name is moved aside and the stale lock taken over`, { skip: skipReason }, async (t) => {
      const dir = makeDir(t)
      const file = path.join(dir, 'a.lock')
      plant(file, STALE)
      const claim = path.join(dir, '.a.lock.takeover')
      CLAIMS[kind](claim)
      const r = await asVictim(tryAcquire, { file }, { user, timeout: 20_000 })
      assert.equal(r.code, 'ACQUIRED', JSON.stringify(r))
      assert.equal(r.reclaimed, 999_999)
      // Nothing lost: the thing is still there, under a private name beside the lock.
      const aside = lockDirEntries(dir).filter((n) => n.startsWith('.a.lock.'))
      assert.equal(aside.length, 1, JSON.stringify(lockDirEntries(dir)))
      const st = fs.lstatSync(path.join(dir, aside[0]))
      assert.ok(kind === 'directory' ? st.isDirectory() : st.isFIFO())
      assert.equal(st.uid, ATTACKER.uid)
    })
  }
}
