// Safety where the Go package has gaps (issue 2, section 4): no half-written lock ever visible,
// hostile lock paths left untouched, hostile contents read by the Go "invalid content" rule
// without reading them whole or hanging.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { PidLock } from '../lib/index.mjs'
import { tempDir, script, goLease, age, exists, sleep, posixOnly, notOnWindows, SYMLINKS, lockDirEntries } from './helpers/util.mjs'

// A reader in its own process: reads the lock path as fast as it can and counts what it sees.
// Absent is fine (between a release and the next acquire); present must always be a complete
// record: non-empty, one trailing newline, parseable JSON.
const READER = `
import fs from 'node:fs'
const p = args[0]
const stopFile = args[1]
let reads = 0, absent = 0, bad = 0, complete = 0
const samples = []
console.log('READING')
for (;;) {
  if ((reads & 1023) === 0 && fs.existsSync(stopFile)) break
  reads++
  let text
  let ok
  if (process.platform === 'win32') {
    // Windows: the package's own reader, which waits out a rewrite's byte-range lock (other
    // readers get a lock violation during a rewrite there; Wine does not enforce that).
    const holder = PidLock.inspectSync(p)
    if (!holder) { absent++; continue }
    text = JSON.stringify(holder)
    ok = holder.valid
  } else {
    try {
      text = fs.readFileSync(p, 'utf8')
    } catch (err) {
      if (err.code === 'ENOENT') { absent++; continue }
      throw err
    }
    ok = text.length > 0 && text.endsWith('\\n') && text.indexOf('\\n') === text.length - 1
    if (ok) { try { JSON.parse(text) } catch { ok = false } }
  }
  if (ok) complete++
  else { bad++; if (samples.length < 5) samples.push(text) }
}
console.log('DONE ' + JSON.stringify({ reads, absent, complete, bad, samples }))
`

async function withReader(t, p, work) {
  const stop = path.join(path.dirname(p), 'stop-reader')
  const reader = script(t, READER, { args: [p, stop] })
  await reader.line('READING')
  await work()
  fs.writeFileSync(stop, '')
  const result = await reader.line('DONE', 30_000)
  return result
}

test('a concurrent reader never sees an empty or partial lock file (acquire, heartbeat, update, takeover, release)', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  let cycles = 0
  let takeovers = 0
  let updates = 0
  // Windows (in CI: Wine, on a shared machine) does a cycle several times slower.
  const windows = process.platform === 'win32'
  const result = await withReader(t, p, async () => {
    const until = Date.now() + (windows ? 8000 : 2500)
    while (Date.now() < until) {
      cycles++
      if (cycles % 3 === 0) {
        // A stale lease to take over, put in place atomically (as another process would).
        fs.writeFileSync(p + '.tmp', goLease({ ownerID: `stale-${cycles}`, pid: process.pid, hb: Date.now() - 60_000 }))
        fs.renameSync(p + '.tmp', p)
      }
      const lock = new PidLock(p, { leaseHeartbeatInterval: 1, leaseStaleThreshold: 2000, metadata: { cycle: cycles } })
      const { reclaimed } = await lock.acquire()
      if (reclaimed) takeovers++
      for (let i = 0; i < 5; i++) {
        await lock.update(i % 2 ? { cycle: cycles, url: 'http://localhost:' + (3000 + i) + '/'.repeat(i * 7) } : null)
        updates++
      }
      await sleep(3) // heartbeats every millisecond meanwhile
      await lock.release()
    }
  })
  assert.ok(cycles > 20, `only ${cycles} cycles`)
  assert.ok(takeovers > 5)
  // The Windows reader goes through the addon (and, in CI, Wine): fewer reads in the time.
  const enough = windows ? 100 : 1000
  assert.ok(result.complete > enough, `the reader saw only ${result.complete} complete records`)
  assert.equal(result.bad, 0, `broken reads: ${JSON.stringify(result.samples)}`)
})

// ---------------------------------------------------------------------------------------------
// Hostile things at the lock path.

function fingerprint(p) {
  const st = fs.lstatSync(p)
  const out = { ino: st.ino, mode: st.mode, size: st.size, mtimeMs: st.mtimeMs }
  if (st.isSymbolicLink()) out.target = fs.readlinkSync(p)
  return out
}

async function assertRefused(p) {
  const before = fingerprint(p)
  const lock = new PidLock(p)
  const err = await lock.acquire().then(() => null, (e) => e)
  assert.ok(err, 'acquire must reject')
  assert.equal(err.code, 'ELOCKNOTFILE', err.message)
  assert.equal(err.path, p)
  assert.throws(() => lock.acquireSync(), (e) => e.code === 'ELOCKNOTFILE')
  assert.throws(() => lock.acquireSync({ timeout: 200 }), (e) => e.code === 'ELOCKNOTFILE', 'no waiting on something that will never be a lock')
  assert.equal(lock.held, false)
  await assert.rejects(PidLock.inspect(p), (e) => e.code === 'ELOCKNOTFILE')
  await lock.release()
  assert.deepEqual(fingerprint(p), before, 'left untouched')
  // Nothing was created beside it either (no private temp names left behind).
  return err
}

function leftovers(dir, keep) {
  return lockDirEntries(dir).filter((n) => !keep.includes(n))
}

test('a symlink to a lock file is refused and neither followed nor removed', notOnWindows(SYMLINKS), async (t) => {
  const dir = tempDir(t)
  const target = path.join(dir, 'real.lock')
  const body = goLease({ ownerID: 'target', hb: Date.now() - 60_000 })
  fs.writeFileSync(target, body)
  age(target, 10_000)
  const p = path.join(dir, 'x.lock')
  fs.symlinkSync(target, p)
  await assertRefused(p)
  assert.equal(fs.readFileSync(target, 'utf8'), body, 'the target is not written')
  assert.deepEqual(leftovers(dir, ['real.lock', 'x.lock']), [])
})

test('a dangling symlink is refused and not created through', notOnWindows(SYMLINKS), async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  fs.symlinkSync(path.join(dir, 'nowhere'), p)
  await assertRefused(p)
  assert.equal(exists(path.join(dir, 'nowhere')), false)
  assert.deepEqual(leftovers(dir, ['x.lock']), [])
})

test('a symlink to a directory is refused', notOnWindows(SYMLINKS), async (t) => {
  const dir = tempDir(t)
  fs.mkdirSync(path.join(dir, 'sub'))
  const p = path.join(dir, 'x.lock')
  fs.symlinkSync(path.join(dir, 'sub'), p)
  await assertRefused(p)
  assert.deepEqual(lockDirEntries(path.join(dir, 'sub')), [])
})

test('a directory is refused and left alone', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  fs.mkdirSync(p)
  fs.writeFileSync(path.join(p, 'inside'), 'keep')
  await assertRefused(p)
  assert.deepEqual(fs.readdirSync(p), ['inside'])
})

test('a FIFO is refused without hanging (never opened)', { timeout: 20_000, ...posixOnly('FIFOs') }, async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  execFileSync('mkfifo', [p])
  await assertRefused(p)
  assert.ok(fs.lstatSync(p).isFIFO())
})

test('a unix socket is refused and left alone', posixOnly('unix sockets at a file path'), async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const server = net.createServer()
  await new Promise((resolve) => server.listen(p, resolve))
  t.after(() => server.close())
  await assertRefused(p)
  assert.ok(fs.lstatSync(p).isSocket())
  // Still usable.
  await new Promise((resolve, reject) => {
    const c = net.connect(p, () => {
      c.end()
      resolve()
    })
    c.on('error', reject)
  })
})

test('a character device is refused and left alone', posixOnly('device files'), async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  try {
    execFileSync('mknod', [p, 'c', '1', '3'], { stdio: 'ignore' })
  } catch {
    t.skip('mknod is not permitted here')
    return
  }
  await assertRefused(p)
  assert.ok(fs.lstatSync(p).isCharacterDevice())
})

// ---------------------------------------------------------------------------------------------
// Hostile regular files: the Go "invalid content" rule, with bounded reads.

/** Bytes read by this thread so far (the sync calls below do their I/O on it). */
function readBytes() {
  const io = fs.readFileSync('/proc/thread-self/io', 'utf8')
  return Number(/rchar: (\d+)/.exec(io)[1])
}

const hostileBodies = {
  'binary garbage': () => Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919 + 13) % 256)),
  'null': () => 'null',
  'a Go record with wrong types': () => `{"version":"1","ownerID":42,"pid":"${process.pid}","lastHeartbeatUnixNano":"${Date.now()}000000"}\n`,
  'deeply nested JSON': () => '['.repeat(200_000) + ']'.repeat(200_000),
  'an unterminated string': () => '{"version":1,"ownerID":"' + 'a'.repeat(10_000),
  'a NUL-filled file': () => Buffer.alloc(4096),
}

// Content a lease writer can leave (a Go record with wrong types has an ownerID; an unterminated
// record starts like one) is a possible lease; the rest is refused by default and only the Go
// rule (`invalidContent: 'reclaim'`) reclaims it.
const possibleLeases = new Set(['a Go record with wrong types', 'an unterminated string'])
const GO_RULE = { invalidContent: 'reclaim' }

for (const [name, make] of Object.entries(hostileBodies)) {
  test(`hostile content (${name}): held while fresh, reclaimed once older than the threshold`, async (t) => {
    const dir = tempDir(t)
    const p = path.join(dir, 'x.lock')
    const body = make()
    fs.writeFileSync(p, body)
    const byDefault = await new PidLock(p).acquire().then(() => null, (e) => e)
    assert.equal(byDefault?.code, possibleLeases.has(name) ? 'ELOCKHELD' : 'ELOCKNOTLEASE')
    const err = await new PidLock(p, GO_RULE).acquire().then(() => null, (e) => e)
    assert.equal(err?.code, 'ELOCKHELD')
    assert.equal(err.holder, null)
    assert.equal(Buffer.compare(fs.readFileSync(p), Buffer.from(body)), 0, 'left as it was')
    const seen = PidLock.inspectSync(p, GO_RULE)
    assert.equal(seen.valid, false)
    assert.equal(seen.stale, false)
    age(p, 2000)
    if (!possibleLeases.has(name)) {
      await assert.rejects(new PidLock(p).acquire(), { code: 'ELOCKNOTLEASE' })
      assert.equal(Buffer.compare(fs.readFileSync(p), Buffer.from(body)), 0, 'refused: left as it was')
    }
    const lock = new PidLock(p, possibleLeases.has(name) ? {} : GO_RULE)
    const { reclaimed } = await lock.acquire()
    assert.equal(reclaimed.valid, false)
    assert.equal(reclaimed.stale, true)
    await lock.release()
    assert.equal(exists(p), false)
  })
}

test('a 100 MB lock file: invalid content, never read whole', posixOnly('counts the bytes read through /proc/thread-self/io'), async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  // A valid lease at the start, then 100 MB: trailing garbage makes it invalid by Go's rules.
  fs.writeFileSync(p, goLease({ ownerID: 'big', pid: process.pid }))
  execFileSync('truncate', ['-s', '100M', p])
  assert.equal(fs.statSync(p).size, 100 * 1024 * 1024)
  const before = readBytes()
  // Too long to be a lease: refused by default, held (then reclaimed) under the Go rule.
  assert.throws(() => new PidLock(p).acquireSync(), (e) => e.code === 'ELOCKNOTLEASE' && e.size === 100 * 1024 * 1024)
  const lock = new PidLock(p, { invalidContent: 'reclaim' })
  assert.throws(() => lock.acquireSync(), (e) => e.code === 'ELOCKHELD' && e.holder === null)
  const seen = PidLock.inspectSync(p, { invalidContent: 'reclaim' })
  const read = readBytes() - before
  assert.ok(read < 256 * 1024, `read ${read} bytes of a 100 MB file`)
  assert.equal(seen.valid, false)
  assert.equal(seen.size, 0)
  assert.equal(fs.statSync(p).size, 100 * 1024 * 1024, 'not truncated')
  age(p, 5000)
  const { reclaimed } = lock.acquireSync()
  assert.equal(reclaimed.valid, false)
  assert.ok(fs.statSync(p).size < 4096, 'replaced by a lease')
  lock.releaseSync()
})

test('a huge valid-looking lease (metadata far past the limit) is invalid content and bounded', async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'x.lock')
  const body = `{"version":1,"ownerID":"x","pid":${process.pid},"lastHeartbeatUnixNano":${Date.now()}000000,"pad":"${'x'.repeat(2 * 1024 * 1024)}"}\n`
  fs.writeFileSync(p, body)
  const before = readBytes()
  assert.throws(() => PidLock.inspectSync(p), { code: 'ELOCKNOTLEASE' })
  const seen = PidLock.inspectSync(p, { invalidContent: 'reclaim' })
  const read = readBytes() - before
  assert.ok(read < 256 * 1024, `read ${read} bytes`)
  // Too big to be read is invalid content (held while fresh, as Go would for a file it cannot parse).
  assert.equal(seen.valid, false)
})
