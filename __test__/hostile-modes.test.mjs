// Issue 18, points 4 and 6: the modes a lock creates give nobody else a way in. fileWriteMode
// takes read/write bits only, without group or other write; directoryWriteMode takes no
// setuid/setgid and no other-write. Under umask 0 (a container's default), another user in a
// shared directory can neither rewrite root's lease nor plant files in the directories root
// created for it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { PidLock } from 'leaselock'
import { PLACES, attackerSh, asVictim, skipReason } from './helpers/attacker.mjs'

test('fileWriteMode: only read/write bits, without group or other write', () => {
  for (const bad of [0o666, 0o662, 0o646, 0o755, 0o700, 0o4600, 0o2600, 0o1600, 0o7777, 0o10000]) {
    assert.throws(() => new PidLock('/tmp/x.lock', { fileWriteMode: bad }), (err) => {
      assert.equal(err.name, 'RangeError', `${bad.toString(8)}: ${err.message}`)
      assert.equal(err.code, 'ERR_OUT_OF_RANGE')
      assert.match(err.message, /fileWriteMode/)
      return true
    })
  }
  for (const ok of [0o600, 0o640, 0o644, 0o400, 0o444, 0o604]) {
    assert.doesNotThrow(() => new PidLock('/tmp/x.lock', { fileWriteMode: ok }), ok.toString(8))
  }
})

test('directoryWriteMode: no setuid/setgid, no other-write', () => {
  for (const bad of [0o777, 0o1777, 0o4755, 0o2755, 0o2775, 0o757, 0o7777, 0o10000]) {
    assert.throws(() => new PidLock('/tmp/x.lock', { directoryWriteMode: bad }), (err) => {
      assert.equal(err.name, 'RangeError', `${bad.toString(8)}: ${err.message}`)
      assert.equal(err.code, 'ERR_OUT_OF_RANGE')
      assert.match(err.message, /directoryWriteMode/)
      return true
    })
  }
  for (const ok of [0o755, 0o700, 0o750, 0o775, 0o1775, 0o711]) {
    assert.doesNotThrow(() => new PidLock('/tmp/x.lock', { directoryWriteMode: ok }), ok.toString(8))
  }
})

const holdAndWait = `async ({ PidLock }, { file, options }) => {
  const lock = new PidLock(file, options)
  await lock.acquire()
  const fs = await import('node:fs')
  const st = fs.statSync(file)
  const dirs = []
  for (let d = (await import('node:path')).dirname(file); d.length > args.base.length; d = (await import('node:path')).dirname(d)) dirs.push(fs.statSync(d).mode & 0o7777)
  await new Promise((r) => setTimeout(r, 50))
  lock.releaseSync()
  return { mode: st.mode & 0o7777, dirs }
}`

for (const [place, makeDir] of PLACES) {
  test(`${place} directory, umask 0: root's lock and the directories made for it are not writable by another user`, { skip: skipReason }, async (t) => {
    const base = makeDir(t)
    const file = path.join(base, 'cache', 'dev', 'a.lock')
    const r = await asVictim(holdAndWait.replace('args.base', JSON.stringify(base)), { file }, { user: null, umask: 0 })
    assert.equal(r.mode & 0o022, 0, `lock file mode ${r.mode.toString(8)}`)
    for (const m of r.dirs) assert.equal(m & 0o6002, 0, `directory mode ${m.toString(8)}`)
    // And while held, the attacker cannot rewrite it.
    const lock = new PidLock(path.join(base, 'b.lock'))
    const old = process.umask(0)
    try {
      await lock.acquire()
    } finally {
      process.umask(old)
    }
    t.after(() => lock.releaseSync())
    const before = fs.readFileSync(path.join(base, 'b.lock'), 'utf8')
    const w = attackerSh('printf forged > "$1"', path.join(base, 'b.lock'))
    assert.notEqual(w.status, 0, 'the attacker could write root\'s lease')
    assert.equal(fs.readFileSync(path.join(base, 'b.lock'), 'utf8'), before)
    // A mode that would let them is refused up front.
    assert.throws(() => new PidLock(path.join(base, 'c.lock'), { fileWriteMode: 0o666 }), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => new PidLock(path.join(base, 'c', 'c.lock'), { directoryWriteMode: 0o777 }), { code: 'ERR_OUT_OF_RANGE' })
  })
}
