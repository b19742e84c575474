// The `leaselock` command's conventions (issue: dev servers in 2026): per-command help,
// durations, the command's own options, long command lines, visible waiting, --reuse,
// --replace and `stop` (which never signal a process not proven to hold the lock), `list`.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Proc, bin, repoRoot } from './integrations/helpers.mjs'
import { PidLock } from '../lib/index.mjs'
import { waitUntil } from './helpers/util.mjs'

// Stopping a holder needs its proof (/proc) and signals: Linux only.
const LINUX = { skip: process.platform !== 'linux' && 'holder proof needs /proc (Linux)' }
const signalChild = fileURLToPath(new URL('./integrations/signal-child.cjs', import.meta.url))

function tempDir(t) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-cli2-')))
  fs.chmodSync(dir, 0o700)
  t.after(() => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 }))
  return dir
}

/** Each test has its own registry for `list`. */
const envFor = (dir) => ({ XDG_RUNTIME_DIR: dir })
const leaselock = (t, args, opts) => new Proc(t, process.execPath, [bin.leaselock, ...args], opts)
async function run(t, args, opts) {
  const p = leaselock(t, args, opts)
  const status = await p.exit()
  return { ...status, out: p.out }
}

/**
 * The command a test's `leaselock run` started dies with the test: a `leaselock` killed with
 * SIGKILL (the tests' cleanup, `stop --force`) cannot pass that on, and a command left running
 * would keep the test file's pipes open.
 */
function reap(t, pid) {
  t.after(() => {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  })
}

/** A `leaselock run` holder whose command waits for SIGTERM (and exits with 3 on it). */
async function holder(t, lock, metadata = null, env = {}) {
  const args = ['run', ...(metadata ? ['--metadata', JSON.stringify(metadata)] : []), lock, '--', process.execPath, signalChild, '3']
  const p = leaselock(t, args, { env })
  const [, pid] = await p.waitFor(/PID (\d+)\n/)
  reap(t, Number(pid))
  await p.waitFor(/READY/)
  return p
}

test('options after the lock file and its command belong to the command; each command has --help', async (t) => {
  const dir = tempDir(t)
  const app = path.join(dir, 'app.js')
  fs.writeFileSync(app, 'console.log("ARGS " + process.argv.slice(2).join(" ")); process.exit(4)\n')
  const lock = path.join(dir, 'x.lock')
  const r = await run(t, ['run', lock, process.execPath, app, '--help', '--wait', '5s'])
  assert.equal(r.code, 4, r.out)
  assert.match(r.out, /ARGS --help --wait 5s/)
  const afterDashes = await run(t, ['run', '--wait', '1s', lock, '--', process.execPath, app, '-q'])
  assert.equal(afterDashes.code, 4)
  assert.match(afterDashes.out, /ARGS -q/)
  for (const command of ['run', 'status', 'list', 'stop']) {
    const help = await run(t, [command, '--help'])
    assert.equal(help.code, 0, help.out)
    assert.ok(help.out.startsWith(`Usage: leaselock ${command}`), help.out)
    assert.deepEqual(await run(t, ['help', command]), help)
  }
  const bad = await run(t, ['run', '--wait', '2 minutes', lock, '--', 'true'])
  assert.equal(bad.code, 64)
  assert.match(bad.out, /--wait must be a duration such as 500ms, 30s or 2m/)
  assert.match(bad.out, /leaselock run --help/)
  assert.equal((await run(t, ['stop', '--nope', lock])).code, 64)
})

test('a long command line is shortened in the lease, and the command runs in full', async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  const long = 'x'.repeat(20_000)
  const script = `const { PidLock } = require(${JSON.stringify(path.join(repoRoot, 'lib', 'index.js'))});
PidLock.inspect(process.env.LEASELOCK_LOCKFILE).then((h) => { console.log('LEN ' + process.argv[1].length + ' ' + h.metadata.commandLine.length + ' ' + ('command' in h.metadata)); })`
  const r = await run(t, ['run', '--record-command', lock, '--', process.execPath, '-e', script, long])
  assert.equal(r.code, 0, r.out)
  const [, full, stored, hasArgv] = r.out.match(/LEN (\d+) (\d+) (\w+)/)
  assert.equal(Number(full), 20_000)
  assert.ok(Number(stored) <= 1000, stored)
  assert.equal(hasArgv, 'false', 'the argv array is never stored')
})

test('run records no command in the lease unless asked, and then once, as a line', async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  // The command reads the lock file as another user could, while it runs under it.
  const script = `const fs = require('fs'); const { PidLock } = require(${JSON.stringify(path.join(repoRoot, 'lib', 'index.js'))});
const raw = fs.readFileSync(process.env.LEASELOCK_LOCKFILE, 'latin1');
const secret = process.argv.find((a) => a.startsWith('Authorization: Bearer ')).slice(22);
PidLock.inspect(process.env.LEASELOCK_LOCKFILE).then((h) => console.log('LEASE ' + JSON.stringify({ keys: Object.keys(h.metadata).sort(), token: raw.split(secret).length - 1, script: raw.includes('readFileSync') })))`
  const lease = async (options) => {
    const r = await run(t, ['run', ...options, lock, '--', process.execPath, '-e', script, '--', '-H', 'Authorization: Bearer s3cr3t-token-4f9a'])
    assert.equal(r.code, 0, r.out)
    return JSON.parse(r.out.match(/LEASE (.*)/)[1])
  }
  assert.deepEqual(await lease([]), { keys: ['cwd', 'tool'], token: 0, script: false })
  assert.deepEqual(await lease(['--metadata', '{"url":"http://localhost:3000/"}']), { keys: ['cwd', 'tool', 'url'], token: 0, script: false })
  // Asked: the command line once, no argv array beside it.
  assert.deepEqual(await lease(['--record-command']), { keys: ['commandLine', 'cwd', 'tool'], token: 1, script: true })
})

test('--wait says who it waits for (pid, URL, age), once per change; --quiet says nothing', async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  const first = await holder(t, lock, { url: 'http://localhost:4321/' })
  const waiting = leaselock(t, ['run', '--wait', '30s', lock, '--', process.execPath, '-e', 'console.log("RAN")'])
  await waiting.waitFor(new RegExp(`waiting for pid ${first.pid} \\(http://localhost:4321/, started \\d+s ago\\) to release ${lock.replace(/[.]/g, '\\.')}`))
  const quiet = leaselock(t, ['run', '--wait', '30s', '--quiet', lock, '--', process.execPath, '-e', ''])
  first.kill('SIGTERM')
  assert.deepEqual(await waiting.exit(), { code: 0, signal: null })
  assert.match(waiting.out, /RAN/)
  assert.equal((waiting.out.match(/waiting for/g) || []).length, 1, waiting.out)
  assert.deepEqual(await quiet.exit(), { code: 0, signal: null })
  assert.equal(quiet.out, '')
})

test('--reuse prints the running holder URL and exits 0 without running anything', async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  const marker = path.join(dir, 'ran')
  const touch = [process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, '')`]
  const first = await holder(t, lock, { url: 'http://localhost:4321/' })
  const r = await run(t, ['run', '--reuse', lock, '--', ...touch])
  assert.equal(r.code, 0, r.out)
  assert.ok(r.out.startsWith('http://localhost:4321/\n'), r.out)
  assert.equal(fs.existsSync(marker), false)
  first.kill('SIGTERM')
  await first.exit()
  // Without a URL there is nothing to reuse: refused as usual.
  const plain = await holder(t, lock)
  assert.equal((await run(t, ['run', '--reuse', lock, '--', ...touch])).code, 75)
  plain.kill('SIGTERM')
  await plain.exit()
  // Free: it runs.
  assert.equal((await run(t, ['run', '--reuse', lock, '--', ...touch])).code, 0)
  assert.equal(fs.existsSync(marker), true)
})

test('stop and run --replace: SIGTERM to the proven holder, then the lock is free / taken', LINUX, async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  const first = await holder(t, lock)
  const stopped = await run(t, ['stop', '--timeout', '5s', lock])
  assert.equal(stopped.code, 0, stopped.out)
  assert.match(stopped.out, new RegExp(`asking pid ${first.pid} to exit \\(SIGTERM\\)`))
  assert.deepEqual(await first.exit(), { code: 3, signal: null })
  assert.match(first.out, /GOT SIGTERM/)
  assert.equal(fs.existsSync(lock), false)
  assert.equal((await run(t, ['stop', lock])).code, 0, 'nothing to stop is fine')

  const second = await holder(t, lock)
  const replacing = await run(t, ['run', '--replace', lock, '--', process.execPath, '-e', 'console.log("REPLACED")'])
  assert.equal(replacing.code, 0, replacing.out)
  assert.match(replacing.out, /REPLACED/)
  assert.deepEqual(await second.exit(), { code: 3, signal: null })

  // A holder that ignores SIGTERM: refused after --timeout (75), stopped with --force.
  const stubborn = leaselock(t, ['run', lock, '--', process.execPath, '-e', 'process.on("SIGTERM", () => {}); console.log("READY " + process.pid); setInterval(() => {}, 1000)'])
  const [, stubbornPid] = await stubborn.waitFor(/READY (\d+)\n/)
  reap(t, Number(stubbornPid))
  // `leaselock run` itself passes SIGTERM on and keeps the lock while its command runs.
  const timedOut = await run(t, ['stop', '--timeout', '500ms', lock])
  assert.equal(timedOut.code, 75, timedOut.out)
  assert.match(timedOut.out, /still holds .* 500ms after SIGTERM \(--force sends SIGKILL\)/)
  const forced = await run(t, ['stop', '--timeout', '1500ms', '--force', lock])
  assert.equal(forced.code, 0, forced.out)
  assert.match(forced.out, /did not exit within 1\.5s; sending SIGKILL/)
  assert.equal((await stubborn.exit()).signal, 'SIGKILL')
  // SIGKILL reaches the holder, `leaselock run`, which cannot pass it on: its command is left
  // running without the lock (as after any SIGKILL of `run`; documented).
  assert.equal(fs.existsSync(`/proc/${stubbornPid}`), true)
})

test('a forged lease naming a live process of ours is never signalled, and gets no "kill" hint', LINUX, async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'real.lock')
  const victim = await holder(t, lock)
  // Everything a reader can copy: the victim's own lease, with its pid and start time, planted
  // at another path the victim does not hold.
  const forged = path.join(dir, 'forged.lock')
  const planted = () => fs.writeFileSync(forged, fs.readFileSync(lock), { mode: 0o600 })
  planted()
  const status = await run(t, ['status', forged])
  assert.equal(status.code, 1, status.out)
  assert.doesNotMatch(status.out, /stop it|kill/)
  const refused = await run(t, ['stop', forged])
  assert.equal(refused.code, 77, refused.out)
  assert.match(refused.out, new RegExp(`not signalling pid ${victim.pid}: .*does not have the lock file open`))
  planted()
  const replace = await run(t, ['run', '--replace', forged, '--', 'true'])
  assert.equal(replace.code, 77, replace.out)

  // The real lock, made writable by others or reached through a symlink: not proven either.
  fs.chmodSync(lock, 0o666)
  assert.match((await run(t, ['stop', lock])).out, /may be written by group or others/)
  fs.chmodSync(lock, 0o644)
  const link = path.join(dir, 'link.lock')
  fs.symlinkSync(lock, link)
  // A symlink at the lock path is not a lock file at all (ELOCKNOTFILE, 73): never followed.
  const viaLink = await run(t, ['stop', link])
  assert.equal(viaLink.code, 73, viaLink.out)
  assert.doesNotMatch(viaLink.out, /asking/)
  if (process.geteuid?.() === 0) {
    // Root signals only a root-owned lock: the same lease, owned by another user.
    planted()
    fs.chownSync(forged, 65534, 65534)
    assert.match((await run(t, ['stop', forged])).out, /belongs to uid 65534, not to this user/)
  }
  assert.equal(victim.status, null, 'the victim was never signalled')
  assert.doesNotMatch(victim.out, /GOT/)
})

test('list shows run locks of this user; --json is the documented shape', async (t) => {
  const dir = tempDir(t)
  const env = envFor(dir)
  const lock = path.join(dir, 'x.lock')
  const first = await holder(t, lock, { url: 'http://localhost:4321/' }, env)
  const text = await run(t, ['list'], { env })
  assert.equal(text.code, 0)
  // The lease records no command by default (see --record-command), so none is shown.
  assert.match(text.out, new RegExp(`^leaselock run: pid ${first.pid}, http://localhost:4321/\n`))
  assert.match(text.out, /lock: +.*x\.lock/)
  const { locks } = JSON.parse((await run(t, ['list', '--json'], { env })).out)
  assert.equal(locks.length, 1)
  assert.equal(locks[0].tool, 'leaselock run')
  assert.equal(locks[0].command, null)
  assert.equal(locks[0].pid, first.pid)
  assert.equal(locks[0].url, 'http://localhost:4321/')
  assert.equal(locks[0].lock, lock)
  if (process.platform !== 'win32') {
    // Frozen past its lease (a debugger, SIGSTOP, a suspended laptop): still its lock, still
    // listed, and not forgotten once it runs again.
    const pids = async () => JSON.parse((await run(t, ['list', '--json'], { env })).out).locks.map((l) => l.pid)
    process.kill(first.pid, 'SIGSTOP')
    t.after(() => { try { process.kill(first.pid, 'SIGCONT') } catch {} })
    await waitUntil(async () => (await PidLock.inspect(lock))?.stale === true, { what: 'the frozen lease to go stale' })
    assert.deepEqual(await pids(), [first.pid])
    process.kill(first.pid, 'SIGCONT')
    await waitUntil(async () => (await PidLock.inspect(lock))?.stale === false, { what: 'the lease to be renewed' })
    assert.deepEqual(await pids(), [first.pid])
  }
  first.kill('SIGTERM')
  await first.exit()
  assert.deepEqual(JSON.parse((await run(t, ['list', '--json'], { env })).out), { version: 1, locks: [] })
})

test('a lock file that cannot be created exits 73, whichever error the OS gives', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'plain')
  fs.writeFileSync(file, '')
  // A file where a directory is needed, directly and one level further down (ENOTDIR both);
  // then a directory that cannot be made (ENOENT).
  for (const lock of [path.join(file, 'x.lock'), path.join(file, 'sub', 'x.lock')]) {
    const out = await run(t, ['run', lock, '--', process.execPath, '-e', '0'])
    assert.equal(out.code, 73, out.out)
  }
  if (process.platform === 'linux') {
    const out = await run(t, ['run', '/proc/leaselock-none/x.lock', '--', process.execPath, '-e', '0'])
    assert.equal(out.code, 73, out.out)
    assert.match(out.out, /ENOENT/)
  }
})
