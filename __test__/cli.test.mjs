// The `leaselock` command, run as a real process with real child commands.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Proc, bin, repoRoot } from './integrations/helpers.mjs'
import { isWindows, posixOnly } from './helpers/util.mjs'

// Windows has no signals to pass on: a kill there is TerminateProcess, which ends `run` without
// reaching its command.
const SIGNALS = posixOnly('passes signals on to the command')

const signalChild = fileURLToPath(new URL('./integrations/signal-child.cjs', import.meta.url))

function tempDir(t) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-cli-')))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 }))
  return dir
}

/** A command that does nothing and succeeds, on every platform (`true` is not one on Windows). */
const nothing = [process.execPath, '-e', '']

function tryKill(pid) {
  try {
    process.kill(pid)
  } catch {}
}

const leaselock = (t, args, opts) => new Proc(t, process.execPath, [bin.leaselock, ...args], opts)

/** Runs the command to its end; resolves with { code, signal, out }. */
async function run(t, args, opts) {
  const p = leaselock(t, args, opts)
  const status = await p.exit()
  // The last output can still be in the pipe when 'exit' fires (often so on Windows).
  await p.closed
  return { ...status, out: p.out }
}

test('run: holds the lock while the command runs, refuses a second run (75), passes SIGTERM on, keeps the exit code, releases', SIGNALS, async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, '.cache', 'dev.lock')
  const first = leaselock(t, ['run', lock, '--record-command', '--metadata', '{"url":"http://localhost:3999/"}', '--', process.execPath, signalChild, '3'])
  const [, env] = await first.waitFor(/READY (.*)\n/)
  assert.equal(env, lock, 'the command gets LEASELOCK_LOCKFILE')
  const [, token] = first.out.match(/TOKEN (\S+)\n/)
  assert.equal(token, String(JSON.parse(fs.readFileSync(lock, 'utf8')).token), 'and LEASELOCK_TOKEN, the fencing token')

  const status = await run(t, ['status', lock])
  assert.equal(status.code, 1, status.out)
  assert.match(status.out, new RegExp(`held by pid ${first.pid}`))
  assert.ok(status.out.includes('signal-child.cjs 3'), status.out)
  const json = JSON.parse((await run(t, ['status', lock, '--json'])).out)
  assert.equal(json.state, 'held')
  assert.equal(json.path, lock)
  assert.equal(json.holder.pid, first.pid)
  assert.equal(json.holder.metadata.url, 'http://localhost:3999/')
  assert.equal('command' in json.holder.metadata, false, 'the argv array is not stored')
  assert.ok(json.holder.metadata.commandLine.endsWith('signal-child.cjs 3'))

  const marker = path.join(dir, 'second-ran')
  const second = await run(t, ['run', lock, '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, '')`])
  assert.equal(second.code, 75, second.out)
  assert.match(second.out, /not running `.*`: the lock is held by pid \d+/)
  assert.ok(second.out.includes(`kill ${first.pid}`), second.out)
  assert.ok(second.out.includes('http://localhost:3999/'), second.out)
  assert.match(second.out, /started:\s+\d+s ago/)
  assert.equal(fs.existsSync(marker), false, 'the refused command must not run')

  first.kill('SIGTERM')
  const end = await first.exit()
  assert.match(first.out, /GOT SIGTERM/)
  assert.deepEqual(end, { code: 3, signal: null })
  assert.equal(fs.existsSync(lock), false, 'released when the command ended')
  const free = await run(t, ['status', lock])
  assert.equal(free.code, 0)
  assert.match(free.out, /^free: /)
})

test('run: SIGINT and SIGHUP reach the command; a command killed by a signal gives 128 + its number', SIGNALS, async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  const p = leaselock(t, ['run', lock, '--', process.execPath, signalChild, '0'])
  await p.waitFor(/READY/)
  p.kill('SIGINT')
  await p.waitFor(/GOT SIGINT/)
  p.kill('SIGHUP')
  await p.waitFor(/GOT SIGHUP/)
  assert.equal(p.status, null, 'the command handles them and keeps running, and so does leaselock')
  p.kill('SIGTERM')
  assert.deepEqual(await p.exit(), { code: 0, signal: null })

  const bare = leaselock(t, ['run', lock, '--', process.execPath, signalChild, '0', '--no-handlers'])
  await bare.waitFor(/READY/)
  bare.kill('SIGTERM')
  assert.deepEqual(await bare.exit(), { code: 128 + os.constants.signals.SIGTERM, signal: null })
  assert.equal(fs.existsSync(lock), false)
  const killed = await run(t, ['run', lock, '--', 'sh', '-c', 'kill -KILL $$'])
  assert.equal(killed.code, 128 + 9)
})

test('run: exit codes of the command, a missing command (127) and bad usage (64)', async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  assert.equal((await run(t, ['run', lock, '--', process.execPath, '-e', 'process.exit(7)'])).code, 7)
  assert.equal((await run(t, ['run', lock, '--', process.execPath, '-e', ''])).code, 0)
  // Without `--`, the command starts after the lock file.
  assert.equal((await run(t, ['run', lock, process.execPath, '-e', 'process.exit(5)'])).code, 5)
  const missing = await run(t, ['run', lock, '--', 'leaselock-no-such-command-here'])
  assert.equal(missing.code, 127)
  assert.match(missing.out, /command not found/)
  assert.equal(fs.existsSync(lock), false)
  for (const args of [['run'], ['run', lock], ['run', lock, '--'], ['run', lock, '--wait', 'soon', '--', 'true'], ['run', lock, '--metadata', '[1]', '--', 'true'], ['status'], ['nope'], []]) {
    const r = await run(t, args)
    assert.equal(r.code, 64, `${JSON.stringify(args)}: ${r.out}`)
  }
  const help = await run(t, ['--help'])
  assert.equal(help.code, 0)
  assert.match(help.out, /Exit codes:/)
  assert.match(help.out, /75 the lock is held/)
})

test('run --wait: starts as soon as the holder ends', async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  const holder = leaselock(t, ['run', lock, '--', process.execPath, signalChild, '0'])
  const [, commandPid] = await holder.waitFor(/PID (\d+)\n/)
  await holder.waitFor(/READY/)
  // On Windows the kill below is TerminateProcess of `leaselock` alone: its command lives on.
  if (isWindows) t.after(() => void tryKill(Number(commandPid)))
  const waiting = leaselock(t, ['run', lock, '--wait', '20000', '--', process.execPath, '-e', 'console.log("RAN")'])
  // It is waiting, not refused: give it a moment to show that it does not give up.
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(waiting.status, null, waiting.out)
  holder.kill('SIGTERM')
  await holder.exit()
  assert.deepEqual(await waiting.exit(), { code: 0, signal: null })
  assert.match(waiting.out, /RAN/)
})

test('status: a lock left by a SIGKILLed holder is free (0); content that is not a lease is 2', async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  const script = `const { PidLock } = require(${JSON.stringify(path.join(repoRoot, 'lib', 'index.js'))});
new PidLock(${JSON.stringify(lock)}).acquire().then(() => console.log('ACQUIRED'));
setInterval(() => {}, 1000)`
  const holder = new Proc(t, process.execPath, ['-e', script])
  await holder.waitFor(/ACQUIRED/)
  assert.equal((await run(t, ['status', lock])).code, 1)
  holder.kill('SIGKILL')
  await holder.exit()
  const dead = await run(t, ['status', lock, '--json'])
  assert.equal(dead.code, 0)
  assert.equal(JSON.parse(dead.out).state, 'dead')
  assert.equal((await run(t, ['run', lock, '--', ...nothing])).code, 0, 'run takes over a dead holder at once')

  // A record cut off mid-write: not a lease, but possibly one (a file that cannot be a lease is
  // refused instead: see edges-content.test.mjs).
  fs.writeFileSync(lock, '{"version":1,"ownerID":"cut-off')
  const invalid = await run(t, ['status', lock, '--json'])
  assert.equal(invalid.code, 2, invalid.out)
  assert.equal(JSON.parse(invalid.out).state, 'invalid')
  // Young for the whole run, however slowly `leaselock` starts (a node.exe under Wine takes a
  // good part of invalidPidLockStaleThreshold): its mtime is set ahead.
  const ahead = new Date(Date.now() + 60_000)
  fs.utimesSync(lock, ahead, ahead)
  const refused = await run(t, ['run', lock, '--', ...nothing])
  assert.equal(refused.code, 75)
  assert.match(refused.out, /does not hold a lease yet/)
})
