// Hostile and failing filesystems (issue 5, section 3): every case ends in a clear error code or
// an onLeaseLost with a reason - never a crash, a hang, or a file left behind. Permission cases
// run the contender in a child that drops to `nobody` (the tests run as root, which no
// permission stops); mount cases (read-only and full filesystems) need root and are skipped
// with a message where mounting is not permitted.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { PidLock } from 'leaselock'
import { posixOnly, notOnWindows, SYMLINKS, lockDirEntries } from './helpers/util.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const entry = pathToFileURL(path.join(root, 'lib', 'index.mjs')).href
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
const NOBODY = 65534

function tempDir(t, prefix = 'leaselock-hostile-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.after(() => {
    try {
      fs.chmodSync(dir, 0o755)
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
    } catch (err) {
      // Never throw here: later after-hooks (killing children, unmounting) must still run.
      t.diagnostic(`could not remove ${dir}: ${err.message}`)
    }
  })
  return dir
}

/** Private names (`.<name>.*`) a lock operation may have left beside the lock (not its counter). */
function leftovers(dir, name) {
  let names
  try {
    names = lockDirEntries(dir)
  } catch {
    return []
  }
  return names.filter((n) => n.startsWith(`.${name}.`))
}

function lease(pid, ageMs) {
  const ns = BigInt(Date.now() - ageMs) * 1_000_000n
  return `{"version":1,"ownerID":"${pid}-${ns}-1","pid":${pid},"lastHeartbeatUnixNano":${ns}}\n`
}

const waitFor = (emitter, timeoutMs, what) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs)
    emitter((value) => {
      clearTimeout(timer)
      resolve(value)
    })
  })

/**
 * Runs `body` (the text of an async function taking (PidLock, args)) in a child Node process,
 * optionally as another user and with a lowered descriptor limit; resolves with the JSON it
 * returns. The child loads the addon first and drops privileges after, so the repository's
 * own permissions do not matter.
 */
function inChild(body, args, { uid, nofile, timeout = 30_000 } = {}) {
  const code = `
    const { PidLock } = await import(${JSON.stringify(entry)})
    const args = JSON.parse(process.env.HOSTILE_ARGS)
    if (args.__uid !== undefined) { process.setgid(args.__uid); process.setgroups([]); process.setuid(args.__uid) }
    try {
      const out = await (${body})(PidLock, args)
      process.stdout.write('RESULT ' + JSON.stringify(out) + '\\n')
    } catch (err) {
      process.stdout.write('RESULT ' + JSON.stringify({ thrown: { code: err.code ?? null, message: err.message, syscall: err.syscall ?? null } }) + '\\n')
    }
  `
  const env = { ...process.env, HOSTILE_ARGS: JSON.stringify({ ...args, __uid: uid }) }
  const argv = ['--input-type=module', '-e', code]
  const cmd = nofile
    ? ['bash', ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, process.execPath, ...argv]]
    : [process.execPath, argv]
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd[1], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`child hung:\n${out}\n${err}`))
    }, timeout)
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      const line = out.split('\n').find((l) => l.startsWith('RESULT '))
      if (code !== 0 || !line) {
        reject(new Error(`child ended with ${signal ?? code}:\n${out}\n${err}`))
        return
      }
      resolve(JSON.parse(line.slice(7)))
    })
  })
}

/** Tries to acquire once; returns the error code or 'ACQUIRED' (and releases). */
const tryAcquire = `async (PidLock, { path }) => {
  const lock = new PidLock(path)
  try {
    await lock.acquire()
  } catch (err) {
    return { code: err.code, syscall: err.syscall ?? null, message: err.message }
  }
  await lock.release()
  return { code: 'ACQUIRED' }
}`

/** A fresh tmpfs mounted on a temp dir (unmounted, then removed, at the end); or why not. */
function mountTmpfs(t, options) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-mnt-'))
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' })
  if (r.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true })
    return { why: `mount -t tmpfs -o ${options} is not permitted here: ${(r.stderr || r.error?.message || '').trim()}` }
  }
  t.after(() => {
    spawnSync('umount', [dir])
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return { mnt: dir }
}

test('parent directory not writable (0555): EACCES for another user, nothing left', { skip: !isRoot && 'needs root to drop privileges', ...posixOnly('mode bits and setuid') }, async (t) => {
  const dir = tempDir(t)
  const locks = path.join(dir, 'locks')
  fs.mkdirSync(locks)
  fs.chmodSync(locks, 0o555)
  const r = await inChild(tryAcquire, { path: path.join(locks, 'a.lock') }, { uid: NOBODY })
  assert.equal(r.code, 'EACCES', JSON.stringify(r))
  assert.deepEqual(lockDirEntries(locks), [])
  // A stale lock inside: taking it over needs to write there too.
  fs.chmodSync(locks, 0o755)
  const stale = lease(999_999, 60_000)
  fs.writeFileSync(path.join(locks, 'a.lock'), stale)
  fs.chmodSync(locks, 0o555)
  const r2 = await inChild(tryAcquire, { path: path.join(locks, 'a.lock') }, { uid: NOBODY })
  assert.equal(r2.code, 'EACCES', JSON.stringify(r2))
  assert.equal(fs.readFileSync(path.join(locks, 'a.lock'), 'utf8'), stale)
  assert.deepEqual(lockDirEntries(locks), ['a.lock'])
})

test('parent directory not searchable (0644): EACCES for another user', { skip: !isRoot && 'needs root to drop privileges', ...posixOnly('mode bits and setuid') }, async (t) => {
  const dir = tempDir(t)
  const locks = path.join(dir, 'locks')
  fs.mkdirSync(locks)
  fs.chmodSync(locks, 0o644)
  const r = await inChild(tryAcquire, { path: path.join(locks, 'a.lock') }, { uid: NOBODY })
  assert.equal(r.code, 'EACCES', JSON.stringify(r))
  const i = await inChild(`async (PidLock, { path }) => { try { return { holder: await PidLock.inspect(path) } } catch (e) { return { code: e.code } } }`, { path: path.join(locks, 'a.lock') }, { uid: NOBODY })
  assert.equal(i.code, 'EACCES', JSON.stringify(i))
  fs.chmodSync(locks, 0o755)
  assert.deepEqual(lockDirEntries(locks), [])
})

test('missing parent directories under a non-writable one: EACCES, none created', { skip: !isRoot && 'needs root to drop privileges', ...posixOnly('mode bits and setuid') }, async (t) => {
  const dir = tempDir(t)
  fs.chmodSync(dir, 0o555)
  const r = await inChild(tryAcquire, { path: path.join(dir, 'a', 'b', 'c.lock') }, { uid: NOBODY })
  assert.equal(r.code, 'EACCES', JSON.stringify(r))
  assert.deepEqual(lockDirEntries(dir), [])
})

test("another user's lock file (0600, not readable): a clear error, the file untouched", { skip: !isRoot && 'needs root to drop privileges', ...posixOnly('mode bits and setuid') }, async (t) => {
  const dir = tempDir(t)
  fs.chmodSync(dir, 0o777)
  const file = path.join(dir, 'a.lock')
  // A live root-owned holder.
  const holder = new PidLock(file)
  await holder.acquire()
  t.after(() => holder.releaseSync())
  fs.chmodSync(file, 0o600)
  const before = fs.statSync(file)
  const r = await inChild(tryAcquire, { path: file }, { uid: NOBODY })
  assert.ok(['EACCES', 'ELOCKHELD'].includes(r.code), JSON.stringify(r))
  assert.equal(r.code, 'EACCES', `unreadable content is an access error, not a guess: ${JSON.stringify(r)}`)
  const after = fs.statSync(file)
  assert.equal(after.ino, before.ino)
  assert.ok(holder.held)
  assert.deepEqual(leftovers(dir, 'a.lock'), [])
})

test('read-only filesystem (EROFS): a clear error, a stale lock on it untouched', posixOnly('mount'), async (t) => {
  const { mnt, why } = mountTmpfs(t, 'size=1m')
  if (why) return t.skip(why)
  const stale = lease(999_999, 60_000)
  fs.writeFileSync(path.join(mnt, 'stale.lock'), stale)
  const re = spawnSync('mount', ['-o', 'remount,ro', mnt], { encoding: 'utf8' })
  if (re.status !== 0) return t.skip(`remount read-only not permitted: ${re.stderr.trim()}`)
  const free = new PidLock(path.join(mnt, 'a.lock'))
  await assert.rejects(free.acquire(), (err) => err.code === 'EROFS')
  assert.throws(() => free.acquireSync(), (err) => err.code === 'EROFS')
  const sub = new PidLock(path.join(mnt, 'new', 'dir', 'a.lock'))
  await assert.rejects(sub.acquire(), (err) => err.code === 'EROFS')
  const takeover = new PidLock(path.join(mnt, 'stale.lock'))
  await assert.rejects(takeover.acquire(), (err) => err.code === 'EROFS')
  assert.equal(fs.readFileSync(path.join(mnt, 'stale.lock'), 'utf8'), stale)
  assert.deepEqual(lockDirEntries(mnt), ['stale.lock'])
  // Reading still works.
  const h = await PidLock.inspect(path.join(mnt, 'stale.lock'))
  assert.equal(h.pid, 999_999)
})

test('no space left (ENOSPC): a clear error, no temp files, a stale lock untouched', posixOnly('mount'), async (t) => {
  const { mnt, why } = mountTmpfs(t, 'size=64k')
  if (why) return t.skip(why)
  const stale = lease(999_999, 60_000)
  fs.writeFileSync(path.join(mnt, 'stale.lock'), stale)
  // Fill every block.
  const fd = fs.openSync(path.join(mnt, 'filler'), 'w')
  const chunk = Buffer.alloc(4096, 1)
  try {
    for (;;) fs.writeSync(fd, chunk)
  } catch (err) {
    assert.equal(err.code, 'ENOSPC')
  } finally {
    fs.closeSync(fd)
  }
  const lock = new PidLock(path.join(mnt, 'a.lock'))
  await assert.rejects(lock.acquire(), (err) => err.code === 'ENOSPC')
  assert.equal(lock.held, false)
  const takeover = new PidLock(path.join(mnt, 'stale.lock'))
  await assert.rejects(takeover.acquire(), (err) => err.code === 'ENOSPC')
  assert.equal(fs.readFileSync(path.join(mnt, 'stale.lock'), 'utf8'), stale)
  assert.deepEqual(lockDirEntries(mnt).sort(), ['filler', 'stale.lock'])
  // Room again: it works, and the stale lock is taken over.
  fs.truncateSync(path.join(mnt, 'filler'), 0)
  const r = await takeover.acquire()
  assert.equal(r.reclaimed.pid, 999_999)
  await takeover.release()
  assert.deepEqual(lockDirEntries(mnt), ['filler'])
})

test('held lock: its directory deleted => onLeaseLost "removed"', notOnWindows('a directory that holds an open file cannot be removed'), async (t) => {
  const dir = tempDir(t)
  const sub = path.join(dir, 'sub')
  const lost = []
  let told
  const toldP = waitFor((r) => (told = r), 10_000, 'onLeaseLost')
  const lock = new PidLock(path.join(sub, 'a.lock'), {
    leaseHeartbeatInterval: 20,
    leaseStaleThreshold: 500,
    onLeaseLost: (info) => {
      lost.push(info)
      told(info)
    },
  })
  await lock.acquire()
  fs.rmSync(sub, { recursive: true })
  const info = await toldP
  assert.equal(info.reason, 'removed')
  assert.equal(lock.held, false)
  await lock.release()
  assert.equal(fs.existsSync(sub), false, 'release does not recreate anything')
  assert.equal(lost.length, 1)
})

for (const kind of ['directory', 'symlink', 'fifo']) {
  test(`held lock replaced by a ${kind} => onLeaseLost, and release leaves the ${kind} alone`, notOnWindows('a held lock file cannot be replaced while the holder has it open'), async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, 'a.lock')
    const victim = path.join(dir, 'victim.txt')
    fs.writeFileSync(victim, 'do not touch\n')
    let told
    const toldP = waitFor((r) => (told = r), 10_000, 'onLeaseLost')
    const lock = new PidLock(file, {
      leaseHeartbeatInterval: 20,
      leaseStaleThreshold: 500,
      onLeaseLost: (info) => told(info),
    })
    await lock.acquire()
    fs.unlinkSync(file)
    if (kind === 'directory') fs.mkdirSync(file)
    if (kind === 'symlink') fs.symlinkSync(victim, file)
    if (kind === 'fifo') assert.equal(spawnSync('mkfifo', [file]).status, 0)
    const info = await toldP
    assert.equal(info.reason, 'removed')
    assert.equal(info.newOwner, null)
    assert.equal(lock.held, false)
    await lock.release()
    const st = fs.lstatSync(file)
    if (kind === 'directory') assert.ok(st.isDirectory())
    if (kind === 'symlink') assert.ok(st.isSymbolicLink())
    if (kind === 'fifo') assert.ok(st.isFIFO())
    assert.equal(fs.readFileSync(victim, 'utf8'), 'do not touch\n')
    // A new acquire refuses the thing at the path, without following or opening it.
    const again = new PidLock(file)
    await assert.rejects(again.acquire(), (err) => err.code === 'ELOCKNOTFILE')
    await assert.rejects(PidLock.inspect(file), (err) => err.code === 'ELOCKNOTFILE')
    assert.equal(fs.readFileSync(victim, 'utf8'), 'do not touch\n')
    assert.deepEqual(leftovers(dir, 'a.lock'), [])
  })
}

test('a symlink at the lock path to a lease file is refused, never followed', notOnWindows(SYMLINKS), async (t) => {
  const dir = tempDir(t)
  const target = path.join(dir, 'elsewhere.lock')
  const stale = lease(999_999, 60_000)
  fs.writeFileSync(target, stale)
  fs.symlinkSync(target, path.join(dir, 'a.lock'))
  const lock = new PidLock(path.join(dir, 'a.lock'))
  await assert.rejects(lock.acquire(), (err) => err.code === 'ELOCKNOTFILE')
  assert.equal(fs.readFileSync(target, 'utf8'), stale)
  assert.ok(fs.lstatSync(path.join(dir, 'a.lock')).isSymbolicLink())
})

test('out of file descriptors (EMFILE): acquire fails cleanly; a held lease survives', posixOnly('ulimit -n in bash'), async (t) => {
  const body = `async (PidLock, { dir }) => {
    const fs = await import('node:fs')
    const path = await import('node:path')
    const lost = []
    const held = new PidLock(path.join(dir, 'held.lock'), {
      leaseHeartbeatInterval: 20, leaseStaleThreshold: 300, onLeaseLost: (i) => lost.push(i.reason),
    })
    await held.acquire()
    const fds = []
    let limitCode = null
    try {
      for (;;) fds.push(fs.openSync('/dev/null', 'r'))
    } catch (err) {
      limitCode = err.code
    }
    const other = new PidLock(path.join(dir, 'other.lock'))
    let syncCode = null
    try { other.acquireSync() } catch (err) { syncCode = err.code }
    let asyncCode = null
    try { await other.acquire() } catch (err) { asyncCode = err.code }
    let inspectCode = null
    try { await PidLock.inspect(path.join(dir, 'held.lock')) } catch (err) { inspectCode = err.code }
    // Out of descriptors for three stale thresholds: heartbeats need none, the lease lives.
    await new Promise((r) => setTimeout(r, 900))
    const stillHeld = held.held
    for (const fd of fds) fs.closeSync(fd)
    const inspected = await PidLock.inspect(path.join(dir, 'held.lock'), { leaseStaleThreshold: 300 })
    await other.acquire()
    await other.release()
    await held.release()
    return { limitCode, syncCode, asyncCode, inspectCode, stillHeld, lost, stale: inspected.stale, files: fs.readdirSync(dir).filter((n) => !n.endsWith('.token')) }
  }`
  const dir = tempDir(t)
  const r = await inChild(body, { dir }, { nofile: 64 })
  assert.equal(r.limitCode, 'EMFILE', JSON.stringify(r))
  assert.equal(r.syncCode, 'EMFILE', JSON.stringify(r))
  assert.equal(r.asyncCode, 'EMFILE', JSON.stringify(r))
  assert.equal(r.inspectCode, 'EMFILE', JSON.stringify(r))
  assert.equal(r.stillHeld, true, JSON.stringify(r))
  assert.deepEqual(r.lost, [])
  assert.equal(r.stale, false)
  assert.deepEqual(r.files, [])
})

test('a lock path with spaces and non-ASCII characters works across processes', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'dir with spaces', 'ünïcødé ✓ 日本', 'my lock (1).lock')
  const lock = new PidLock(file, { metadata: { note: 'ünïcødé ✓' } })
  await lock.acquire()
  assert.ok(fs.existsSync(file))
  const r = await inChild(tryAcquire, { path: file })
  assert.equal(r.code, 'ELOCKHELD', JSON.stringify(r))
  assert.ok(r.message.includes(file), r.message)
  const h = await PidLock.inspect(file)
  assert.equal(h.pid, process.pid)
  assert.deepEqual(h.metadata, { note: 'ünïcødé ✓' })
  await lock.release()
  assert.equal(fs.existsSync(file), false)
  const r2 = await inChild(tryAcquire, { path: file })
  assert.equal(r2.code, 'ACQUIRED')
  assert.deepEqual(lockDirEntries(path.dirname(file)), [])
})
