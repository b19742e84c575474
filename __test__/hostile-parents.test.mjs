// Issue 18, points 3 and 6: another local user must not redirect a lock through the
// directories above it. A symlink in the lock path is followed only when its owner is the
// caller or root; a parent directory that others can write, without the sticky bit, owned by
// neither the caller nor root, is refused too - unless the caller passes
// `allowUntrustedParents: true`. Refusals carry ELOCKUNSAFEPATH and touch nothing.
// The host's fs.protected_symlinks does not matter: the check is the package's own.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { PidLock } from 'leaselock'
import { ATTACKER, PLACES, VICTIM, age, asAttacker, asVictim, leaseText, plant, rootDir, skipReason } from './helpers/attacker.mjs'
import { repoRoot, lockDirEntries } from './helpers/util.mjs'

const PRECIOUS = 'root data that only looks like a broken lock\n'

const tryAcquire = `async ({ PidLock }, { file, options }) => {
  try {
    const lock = new PidLock(file, options)
    await lock.acquire()
    await lock.release()
    return { code: 'ACQUIRED' }
  } catch (err) {
    return { code: err.code, message: err.message, path: err.path ?? null }
  }
}`

function assertUnsafe(err, link) {
  assert.equal(err.code, 'ELOCKUNSAFEPATH', `${err.code}: ${err.message}`)
  assert.ok(err.message.includes(link), err.message)
  assert.match(err.message, /uid 65534|nobody/, err.message)
}

for (const [place, makeDir] of PLACES) {
  test(`${place} directory: a parent symlink planted by another user is refused for root, the target untouched`, { skip: skipReason }, async (t) => {
    const dir = makeDir(t)
    const target = rootDir(t)
    fs.writeFileSync(path.join(target, 'app.lock'), PRECIOUS)
    age(path.join(target, 'app.lock'), 120_000)
    const link = path.join(dir, 'project')
    asAttacker('ln -s "$1" "$2"', target, link)

    for (const file of [path.join(link, 'app.lock'), path.join(link, 'new', 'dir', 'app.lock')]) {
      const lock = new PidLock(file)
      assertUnsafe(await lock.acquire().then(() => ({ code: 'ACQUIRED' }), (e) => e), link)
      assertUnsafe((() => {
        try {
          lock.acquireSync()
          return { code: 'ACQUIRED' }
        } catch (e) {
          return e
        }
      })(), link)
      assertUnsafe(await PidLock.inspect(file).then(() => ({ code: 'READ' }), (e) => e), link)
    }
    assert.equal(fs.readFileSync(path.join(target, 'app.lock'), 'utf8'), PRECIOUS)
    assert.deepEqual(lockDirEntries(target), ['app.lock'])

    // A link in the middle of a longer path is found too.
    const deeper = path.join(dir, 'ws')
    fs.mkdirSync(deeper)
    fs.chmodSync(deeper, 0o777)
    asAttacker('ln -s "$1" "$2"', target, path.join(deeper, 'p'))
    const r = await new PidLock(path.join(deeper, 'p', 'app.lock')).acquire().then(() => ({ code: 'ACQUIRED' }), (e) => e)
    assert.ok(['ELOCKUNSAFEPATH'].includes(r.code), r.message)
    assert.equal(fs.readFileSync(path.join(target, 'app.lock'), 'utf8'), PRECIOUS)

    // Opting in follows it (the caller said it trusts whoever can write there).
    const opted = new PidLock(path.join(link, 'other.lock'), { allowUntrustedParents: true })
    await opted.acquire()
    assert.ok(fs.existsSync(path.join(target, 'other.lock')))
    await opted.release()
  })

  test(`${place} directory: the same planted symlink is refused for an unprivileged user`, { skip: skipReason }, async (t) => {
    const dir = makeDir(t)
    const target = path.join(rootDir(t), 'victim-home')
    fs.mkdirSync(target)
    fs.chownSync(target, VICTIM.uid, VICTIM.gid)
    const link = path.join(dir, 'project')
    asAttacker('ln -s "$1" "$2"', target, link)
    const r = await asVictim(tryAcquire, { file: path.join(link, 'a.lock') })
    assertUnsafe(r, link)
    assert.deepEqual(lockDirEntries(target), [])
  })

  test(`${place} directory: symlinks of the caller's own or root's keep working`, { skip: skipReason }, async (t) => {
    const dir = makeDir(t)
    // The victim's own link to its own directory (a project behind a link in /tmp).
    const home = path.join(rootDir(t), 'victim-home')
    fs.mkdirSync(home)
    fs.chownSync(home, VICTIM.uid, VICTIM.gid)
    const own = path.join(dir, 'mine')
    fs.symlinkSync(home, own)
    fs.lchownSync(own, VICTIM.uid, VICTIM.gid)
    assert.equal((await asVictim(tryAcquire, { file: path.join(own, 'a.lock') })).code, 'ACQUIRED')
    // Root's link (like macOS /tmp -> /private/tmp), followed by anyone.
    const rootLink = path.join(dir, 'by-root')
    fs.symlinkSync(home, rootLink)
    assert.equal((await asVictim(tryAcquire, { file: path.join(rootLink, 'b.lock') })).code, 'ACQUIRED')
    const lock = new PidLock(path.join(rootLink, 'c.lock'))
    await lock.acquire()
    await lock.release()
    // A relative link and `..` inside the path.
    fs.symlinkSync('by-root', path.join(dir, 'rel'))
    const viaRel = new PidLock(path.join(dir, 'rel', '..', 'rel', 'd.lock'))
    await viaRel.acquire()
    assert.ok(fs.existsSync(path.join(home, 'd.lock')))
    await viaRel.release()
  })
}

test("a directory others can write, without the sticky bit, owned by someone else: refused unless opted in", { skip: skipReason }, async (t) => {
  const dir = PLACES[1][1](t)
  const evil = path.join(dir, 'evil')
  asAttacker('mkdir "$1" && chmod 0777 "$1"', evil)
  const file = path.join(evil, 'a.lock')
  const err = await new PidLock(file).acquire().then(() => ({ code: 'ACQUIRED' }), (e) => e)
  assert.equal(err.code, 'ELOCKUNSAFEPATH', err.message)
  assert.ok(err.message.includes(evil), err.message)
  assert.deepEqual(lockDirEntries(evil), [])
  const r = await asVictim(tryAcquire, { file })
  assert.equal(r.code, 'ELOCKUNSAFEPATH', JSON.stringify(r))
  const ok = await asVictim(tryAcquire, { file, options: { allowUntrustedParents: true } })
  assert.equal(ok.code, 'ACQUIRED', JSON.stringify(ok))
  // With the sticky bit the same directory is fine (others cannot move our files there).
  fs.chmodSync(evil, 0o1777)
  assert.equal((await asVictim(tryAcquire, { file })).code, 'ACQUIRED')
  // A root-owned group-writable workspace is fine, and so is a directory of the caller's own.
  assert.equal((await asVictim(tryAcquire, { file: path.join(dir, 'b.lock') })).code, 'ACQUIRED')
  assert.equal(fs.lstatSync(evil).uid, ATTACKER.uid)
})

test('allowUntrustedParents is checked like every option', () => {
  assert.throws(() => new PidLock('/tmp/x.lock', { allowUntrustedParents: 'yes' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
})

test('group-writable directory: a parent swapped for a symlink after acquire redirects nothing (the directory is held open)', { skip: skipReason }, async (t) => {
  const ws = PLACES[1][1](t)
  const proj = path.join(ws, 'proj')
  fs.mkdirSync(proj)
  const target = rootDir(t)
  const lost = []
  const lock = new PidLock(path.join(proj, 'a.lock'), { leaseHeartbeatInterval: 20, leaseStaleThreshold: 1000, onLeaseLost: (i) => lost.push(i.reason) })
  await lock.acquire()
  // The attacker moves root's directory away and puts a link to a place of theirs instead,
  // with a lease of their own there.
  asAttacker('mv "$1" "$2" && ln -s "$3" "$1"', proj, path.join(ws, 'moved'), target)
  fs.writeFileSync(path.join(target, 'a.lock'), `{"version":1,"ownerID":"x","pid":1,"lastHeartbeatUnixNano":${Date.now()}000000}\n`)
  const planted = fs.readFileSync(path.join(target, 'a.lock'), 'utf8')
  await new Promise((r) => setTimeout(r, 300))
  assert.deepEqual(lost, [], 'heartbeats still reach our own file, in the directory we opened')
  assert.equal(lock.held, true)
  assert.equal(await lock.release(), true)
  assert.deepEqual(lockDirEntries(path.join(ws, 'moved')), [], 'our file, where it really is, was removed')
  assert.equal(fs.readFileSync(path.join(target, 'a.lock'), 'utf8'), planted, 'nothing reached through the link')
})

// Where /proc is missing, the opened directory is reached by its checked physical path. An
// acquire that waits keeps that directory between tries, so the path must still lead to it at
// each try: a parent swapped for a link meanwhile (atomically, with renameat2's exchange, while
// the attacker's lease keeps the victim waiting) is resolved again and refused, instead of the
// next try publishing root's lock wherever the link points.
const RENAMEAT2 = { x64: 316, arm64: 276 }[process.arch]
const noProcSkip = skipReason || (RENAMEAT2 === undefined ? `renameat2 number unknown on ${process.arch}` : false) ||
  (spawnSync('unshare', ['--mount', 'sh', '-c', 'umount -l /proc && ! test -e /proc/self']).status !== 0 ? 'cannot unmount /proc in a mount namespace' : false) ||
  (spawnSync('perl', ['-e', '1']).status !== 0 ? 'perl is not installed' : false)

test('without /proc: a parent swapped for a link while acquire waits is found at the next try and refused', { skip: noProcSkip, timeout: 60_000 }, async (t) => {
  const ws = PLACES[1][1](t)
  const target = rootDir(t)
  asAttacker('mkdir "$1"', path.join(ws, 'sub'))
  plant(path.join(ws, 'sub', 'app.lock'), leaseText({ pid: process.pid }))
  const victim = `
    const { PidLock } = await import(${JSON.stringify(pathToFileURL(path.join(repoRoot, 'lib', 'index.mjs')).href)})
    const fs = await import('node:fs')
    const lock = new PidLock(process.argv[1], { leaseStaleThreshold: 60_000 })
    const done = lock.acquire({ timeout: 20_000 }).then(
      () => ({ code: 'ACQUIRED', inTarget: fs.readdirSync(process.argv[2]) }),
      (err) => ({ code: err.code, message: err.message }))
    setTimeout(() => process.stdout.write('WAITING\\n'))
    const out = await done
    process.stdout.write('RESULT ' + JSON.stringify(out) + '\\n')
    if (out.code === 'ACQUIRED') await lock.release()
  `
  const child = spawn('unshare', ['--mount', 'sh', '-c', 'umount -l /proc && exec "$0" "$@"', process.execPath, '--input-type=module', '-e', victim, path.join(ws, 'sub', 'app.lock'), target], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  const exited = new Promise((resolve) => child.on('exit', resolve))
  await new Promise((resolve) => child.stdout.on('data', (d) => { out += d; if (out.includes('WAITING')) resolve() }))
  asAttacker('ln -s "$1" "$2" && perl -e \'syscall($ARGV[0], -100, $ARGV[1], -100, $ARGV[2], 2) == 0 or die "renameat2: $!\\n"\' "$3" "$2" "$4"',
    target, path.join(ws, 'link'), String(RENAMEAT2), path.join(ws, 'sub'))
  assert.equal(fs.lstatSync(path.join(ws, 'sub')).isSymbolicLink(), true, 'the parent is now the attacker\'s link')
  await exited
  const line = out.split('\n').find((l) => l.startsWith('RESULT '))
  assert.ok(line, out)
  const result = JSON.parse(line.slice(7))
  assertUnsafe(result, path.join(ws, 'sub'))
  assert.deepEqual(lockDirEntries(target), [], 'nothing published through the link')
})
