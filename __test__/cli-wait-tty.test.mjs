// `leaselock run --wait` as a person sees it: in a real pseudo-terminal (util-linux `script`)
// the waiting line is redrawn in place with a live elapsed counter; without a terminal it is one
// line per change of holder; `--quiet` prints nothing either way.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { bin } from './integrations/helpers.mjs'

const holderScript = fileURLToPath(new URL('./helpers/holder.mjs', import.meta.url))
const hasScript = process.platform === 'linux' && spawnSync('script', ['--version']).status === 0
const PTY = { skip: !hasScript && 'needs a pseudo-terminal through util-linux script (Linux)' }

function tempDir(t) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-tty-')))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A process whose raw output (stdout and stderr, bytes as they came) is kept. */
function start(t, command, args) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TERM: 'dumb' } })
  const p = { child, out: '', waiters: new Set(), status: null }
  const take = (chunk) => {
    p.out += chunk.toString()
    for (const w of p.waiters) w()
  }
  child.stdout.on('data', take)
  child.stderr.on('data', take)
  p.exited = new Promise((resolve) => child.once('close', (code, signal) => resolve((p.status = { code, signal }))))
  p.waitFor = (re, ms = 20_000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const m = p.out.match(re)
        if (m || p.status) {
          clearTimeout(timer)
          p.waiters.delete(check)
          if (m) resolve(m)
          else reject(new Error(`exited before ${re}; output:\n${JSON.stringify(p.out)}`))
        }
      }
      const timer = setTimeout(() => {
        p.waiters.delete(check)
        reject(new Error(`timed out waiting for ${re}; output:\n${JSON.stringify(p.out)}`))
      }, ms)
      p.waiters.add(check)
      check()
    })
  t.after(() => {
    if (p.status === null) child.kill('SIGKILL')
  })
  return p
}

/** A holder of `lock` in its own process, with `url` in its metadata; driven through stdin. */
async function holder(t, lock, url) {
  const h = start(t, process.execPath, [holderScript, JSON.stringify({ path: lock, options: { metadata: { url } } })])
  await h.waitFor(/ACQUIRED/)
  h.send = (line) => h.child.stdin.write(`${line}\n`)
  return h
}

/** `leaselock run --wait 60s ARGS lock -- node -e 'console.log("RAN")'`, in a pty when `tty`. */
function waiter(t, lock, { tty, extra = [] }) {
  const argv = [process.execPath, bin.leaselock, 'run', '--wait', '60s', ...extra, lock, '--', process.execPath, '-e', 'console.log("RAN")']
  if (!tty) return start(t, argv[0], argv.slice(1))
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  // -q: no start/end banners; -f: flush at once; -e: the command's exit code; -c: the command.
  return start(t, 'script', ['-qfec', quoted, '/dev/null'])
}

const FRAME = /\r\x1b\[2Kleaselock: waiting for pid (\d+) \((http:\/\/localhost:\d+\/), started \d+s ago\) to release [^\r\n]* - (\d+)s/g

test('on a terminal the waiting line is redrawn in place with a live elapsed counter', PTY, async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  const h = await holder(t, lock, 'http://localhost:4001/')
  const w = waiter(t, lock, { tty: true })
  // The counter has to reach 3 s while the holder lives: at least four frames, 0s to 3s.
  await w.waitFor(/ - 3s/, 30_000)
  h.send('update {"url":"http://localhost:4002/"}')
  await w.waitFor(/localhost:4002\/, started \d+s ago\) to release [^\r\n]* - \d+s/)
  h.send('release')
  assert.deepEqual(await w.exited, { code: 0, signal: null }, JSON.stringify(w.out))
  assert.match(w.out, /RAN/)
  const waiting = w.out.slice(0, w.out.indexOf('RAN'))
  const frames = [...waiting.matchAll(FRAME)]
  assert.ok(frames.length >= 4, JSON.stringify(waiting))
  for (const f of frames) assert.equal(Number(f[1]), h.child.pid)
  // The counter only goes up, through every second, and the holder's change shows in place.
  const secs = frames.map((f) => Number(f[3]))
  for (let i = 1; i < secs.length; i++) assert.ok(secs[i] >= secs[i - 1], `counter went back: ${secs}`)
  for (const s of [0, 1, 2, 3]) assert.ok(secs.includes(s), `no frame for ${s}s: ${secs}`)
  assert.deepEqual([...new Set(frames.map((f) => f[2]))], ['http://localhost:4001/', 'http://localhost:4002/'])
  // In place: from the first frame to the last, no line is ended - every frame starts with a
  // carriage return and erases the line it overwrites.
  const first = waiting.indexOf('\r\x1b[2K')
  const lastEnd = frames.at(-1).index + frames.at(-1)[0].length
  assert.equal(waiting.slice(first, lastEnd).includes('\n'), false, JSON.stringify(waiting))
})

test('without a terminal the waiting is one line per change of holder, and no counter', async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  const h = await holder(t, lock, 'http://localhost:4001/')
  const w = waiter(t, lock, { tty: false })
  await w.waitFor(/localhost:4001\/.* to release .*\n/)
  // Time passes without a change: nothing more is printed.
  await new Promise((r) => setTimeout(r, 2500))
  h.send('update {"url":"http://localhost:4002/"}')
  await w.waitFor(/localhost:4002\/.* to release .*\n/)
  h.send('release')
  assert.deepEqual(await w.exited, { code: 0, signal: null }, w.out)
  const lines = w.out.split('\n').filter((l) => l.includes('waiting for'))
  assert.equal(lines.length, 2, w.out)
  assert.match(lines[0], new RegExp(`^leaselock: waiting for pid ${h.child.pid} \\(http://localhost:4001/, started \\d+s ago\\) to release `))
  assert.match(lines[1], /localhost:4002/)
  assert.equal(/\r|\x1b| - \d+s$/m.test(w.out), false, JSON.stringify(w.out))
})

test('--quiet prints nothing while it waits, on a terminal too', PTY, async (t) => {
  const dir = tempDir(t)
  const lock = path.join(dir, 'x.lock')
  const h = await holder(t, lock, 'http://localhost:4001/')
  const w = waiter(t, lock, { tty: true, extra: ['--quiet'] })
  // The waiter is waiting once it has looked at the lock; give it two ticks of the counter.
  await new Promise((r) => setTimeout(r, 2500))
  assert.equal(w.status, null, w.out)
  h.send('release')
  assert.deepEqual(await w.exited, { code: 0, signal: null }, JSON.stringify(w.out))
  // Only the command's own output (the terminal turns its newline into CR LF).
  assert.equal(w.out, 'RAN\r\n')
})
