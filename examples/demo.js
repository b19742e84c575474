'use strict'
// `npm run demo`: a narrated run of leaselock with real processes in a temporary directory.
//
// Each holder is a separate Node process (examples/holder.js) that takes orders on stdin and
// reports on stdout; this script drives them, shows what happens and checks every step, so it
// doubles as a smoke test: it exits 0 only when every step behaved as described.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { PidLock } = require('../lib/index.js')

const HOLDER = path.join(__dirname, 'holder.js')
/** Bound on any single wait for a child's report; generous, for busy machines. */
const REPORT_TIMEOUT = 20_000

const tty = process.stdout.isTTY
const bold = (s) => (tty ? `\x1b[1m${s}\x1b[22m` : s)
const dim = (s) => (tty ? `\x1b[2m${s}\x1b[22m` : s)

let tempDir = null
const holders = new Set()

function say(text = '') {
  process.stdout.write(`${text}\n`)
}

function step(n, total, title) {
  say()
  say(bold(`[${n}/${total}] ${title}`))
}

function why(text) {
  say(dim(`  ${text}`))
}

function indent(text, by = '    ') {
  return text
    .split('\n')
    .map((line) => by + line)
    .join('\n')
}

class StepFailed extends Error {}

function check(ok, what) {
  if (!ok) throw new StepFailed(`expected: ${what}`)
  say(`  ok: ${what}`)
}

/** A holder process and the reports it sent that nobody has read yet. */
class Holder {
  constructor(name, lockPath, options = {}) {
    this.name = name
    this.queue = []
    this.waiting = null
    this.stderr = ''
    this.closed = null
    this.child = spawn(process.execPath, [HOLDER, JSON.stringify({ path: lockPath, options })], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    this.pid = this.child.pid
    holders.add(this)
    this.child.stdin.on('error', () => {}) // a killed child's closed pipe is not our failure
    this.child.stderr.on('data', (d) => {
      this.stderr += d
    })
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => {
      let report
      try {
        report = JSON.parse(line)
      } catch {
        report = { event: 'garbage', line }
      }
      this.deliver(report)
    })
    // 'close', not 'exit': by then every line the child wrote has been read.
    this.child.on('close', (code, signal) => {
      this.closed = { code, signal, at: Date.now() }
      this.deliver({ event: 'exit', code, signal, at: this.closed.at })
    })
  }

  get label() {
    return `${this.name} (pid ${this.pid})`
  }

  deliver(report) {
    this.queue.push(report)
    if (this.waiting) this.waiting()
  }

  send(order) {
    this.child.stdin.write(`${order}\n`)
  }

  /** The next report, which must be one of `events`; waits at most REPORT_TIMEOUT. */
  next(...events) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null
        reject(new StepFailed(`${this.label} sent no ${events.join('/')} report within ${REPORT_TIMEOUT} ms${this.stderrNote()}`))
      }, REPORT_TIMEOUT)
      const take = () => {
        if (this.queue.length === 0) return
        clearTimeout(timer)
        this.waiting = null
        const report = this.queue.shift()
        if (events.includes(report.event)) resolve(report)
        else reject(new StepFailed(`${this.label} reported ${JSON.stringify(report)} where ${events.join('/')} was expected${this.stderrNote()}`))
      }
      this.waiting = take
      take()
    })
  }

  stderrNote() {
    return this.stderr ? `\n  its stderr:\n${indent(this.stderr.trimEnd())}` : ''
  }

  kill(signal) {
    process.kill(this.pid, signal)
  }
}

function ms(n) {
  n = Math.max(0, n) // times from two processes' clocks can cross by a fraction of a millisecond
  return `${n < 10 ? n.toFixed(1) : Math.round(n)} ms`
}

/** Polls `probe` every 20 ms until it returns a truthy value; fails after `bound` ms. */
async function until(probe, what, bound = REPORT_TIMEOUT) {
  const deadline = Date.now() + bound
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() > deadline) throw new StepFailed(`${what} (not seen within ${bound} ms)`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * On a terminal, a short pause between steps so a person can follow along (it plays no part in
 * synchronisation; LEASELOCK_DEMO_PAUSE=0 turns it off).
 */
const PAUSE = Number(process.env.LEASELOCK_DEMO_PAUSE ?? (tty ? 1500 : 0)) || 0
function pause() {
  return PAUSE > 0 ? new Promise((r) => setTimeout(r, PAUSE)) : null
}

/** A holder record (from a report, so its dates are ISO strings) on one line. */
function showHolder(h, relativeTo = Date.now()) {
  if (!h) return 'null'
  if (h.valid === false) return `{ valid: false, size: ${h.size}, stale: ${h.stale} }`
  const age = (iso) => (iso ? `${ms(relativeTo - Date.parse(iso))} before` : 'null')
  return (
    `{ pid: ${h.pid}, ownerId: '${h.ownerId}', alive: ${JSON.stringify(h.alive)}, stale: ${h.stale}, ` +
    `lastHeartbeat: ${age(h.lastHeartbeat)}, startedAt: ${age(h.startedAt)}, metadata: ${JSON.stringify(h.metadata)} }`
  )
}

async function main() {
  tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-demo-'))
  // The parent directories do not exist yet: acquire() creates them.
  const lockPath = path.join(tempDir, 'project', '.cache', 'dev.lock')
  const TOTAL = 6

  say(bold('leaselock demo: real processes, one lock file'))
  say(`  lock file: ${lockPath}`)
  why('(a temporary directory, removed at the end; each holder below is its own Node process)')

  // Start every process now, so no step waits for a Node start-up.
  const fast = { leaseHeartbeatInterval: 100, leaseStaleThreshold: 1000 }
  const a = new Holder('A', lockPath, { metadata: { url: 'http://localhost:5173/', command: 'vite' } })
  const b = new Holder('B', lockPath)
  const c = new Holder('C', lockPath)
  const d = new Holder('D', lockPath, fast)
  const e = new Holder('E', lockPath, fast)
  const f = new Holder('F', lockPath)
  for (const h of [a, b, c, d, e, f]) await h.next('ready')

  // -------------------------------------------------------------------------------------------
  step(1, TOTAL, 'A acquires the lock')
  why('A passes metadata (a dev-server URL) that is stored in the lease for others to read.')
  a.send('acquire')
  const aGot = await a.next('acquired')
  say(`  ${a.label}: acquire() resolved in ${ms(aGot.tookMs)}, reclaimed: ${aGot.reclaimed}`)
  check(aGot.reclaimed === null, 'nothing was reclaimed: the lock was free (and its directories were created)')
  say('  the lease file on disk (Go-compatible fields first, then ours):')
  say(indent(fs.readFileSync(lockPath, 'utf8').trimEnd()))
  const seen = await PidLock.inspect(lockPath)
  say('  PidLock.inspect(path), run by this demo process, which does not take the lock:')
  say(indent(showHolder(JSON.parse(JSON.stringify(seen)))))
  check(seen.pid === a.pid && seen.alive === true && seen.stale === false, `inspect() sees pid ${a.pid}, alive, not stale`)

  // -------------------------------------------------------------------------------------------
  await pause()
  step(2, TOTAL, 'B tries to acquire while A holds it, and is refused')
  why('acquire() without a timeout tries once, as the Go package does. The rejection says who holds')
  why('the lock, since when, where it runs, and how to stop it - ready to print for a person:')
  b.send('acquire')
  const refused = await b.next('refused')
  say(indent(`err.code: ${refused.code}`))
  say(indent(`err.message:\n${indent(refused.message, '  ')}`))
  check(refused.code === 'ELOCKHELD', "err.code is 'ELOCKHELD'")
  check(refused.holder && refused.holder.pid === a.pid, `err.holder.pid is A's pid (${a.pid})`)
  check(
    refused.message.includes('http://localhost:5173/') && refused.message.includes(`kill ${a.pid}`),
    "the message names A's URL (from its metadata) and `kill <pid>`",
  )

  // -------------------------------------------------------------------------------------------
  await pause()
  step(3, TOTAL, 'A releases; B, now waiting for it, gets the lock')
  why('B asks again with acquire({ timeout: 10000 }): it waits (polling, no busy loop) instead of failing.')
  b.send('acquire 10000')
  a.send('release')
  const aReleased = await a.next('released')
  const bGot = await b.next('acquired')
  say(`  ${a.label}: release() resolved; its file was removed (fenced: only because it was still A's)`)
  say(`  ${b.label}: acquired ${ms(bGot.at - aReleased.at)} after A's release resolved`)
  check(aReleased.held === false && bGot.reclaimed === null, 'A no longer holds it, and B took over nothing (A cleaned up)')
  check((await PidLock.inspect(lockPath)).pid === b.pid, `the lock file now names B (pid ${b.pid})`)

  // -------------------------------------------------------------------------------------------
  await pause()
  step(4, TOTAL, 'B is killed with SIGKILL; C takes the lock over at once')
  why('SIGKILL runs no code at all, so B leaves its lease file behind, and the lease is still fresh.')
  why('The Go rule would make C wait for the 3 s stale threshold. Here C proves B dead instead:')
  why('same host, boot and PID namespace, and pid + process start time no longer match a live process.')
  b.kill('SIGKILL')
  const bExit = await b.next('exit')
  check(bExit.signal === 'SIGKILL', `B died of SIGKILL and was reaped`)
  const left = await PidLock.inspect(lockPath)
  say(`  left behind: ${showHolder(JSON.parse(JSON.stringify(left)))}`)
  check(left && left.pid === b.pid && left.alive === false && left.stale === false, "B's file is still there, its lease is fresh, and inspect() knows its owner is dead")
  c.send('acquire') // try once, no waiting
  const cGot = await c.next('acquired')
  say(`  ${c.label}: acquire() (try once) resolved in ${ms(cGot.tookMs)}; it held the lock ${ms(cGot.at - bExit.at)}`)
  say('    after B was reaped, counting the order sent to C through a pipe')
  say(`  reclaimed: ${showHolder(cGot.reclaimed, cGot.at)}`)
  check(
    cGot.reclaimed && cGot.reclaimed.pid === b.pid && cGot.reclaimed.alive === false && cGot.reclaimed.stale === false,
    `reclaimed names dead pid ${b.pid}, alive: false, stale: false (taken because dead, not because old)`,
  )
  c.send('release')
  await c.next('released')

  // -------------------------------------------------------------------------------------------
  await pause()
  step(5, TOTAL, 'D is frozen with SIGSTOP; E takes its lease once stale; D is told when it wakes')
  why('Short lease timings for this step only: D and E use leaseHeartbeatInterval 100 ms and')
  why('leaseStaleThreshold 1000 ms (the defaults are 250 ms and 3000 ms).')
  d.send('acquire')
  const dGot = await d.next('acquired')
  check(dGot.reclaimed === null, `${d.label} acquired the free lock`)
  const renewed = await until(async () => {
    const h = await PidLock.inspect(lockPath)
    return h && h.pid === d.pid && h.lastHeartbeat > h.startedAt && h
  }, "D's heartbeat renews its lease")
  say(`  D's heartbeat thread renews the lease (first renewal seen ${ms(renewed.lastHeartbeat - renewed.startedAt)} after acquiring)`)
  d.kill('SIGSTOP')
  const frozenAt = Date.now()
  say(`  ${d.label} frozen with SIGSTOP: alive, but its heartbeat thread cannot run any more`)
  e.send('acquire 10000')
  const eGot = await e.next('acquired')
  say(`  ${e.label}: acquired ${ms(eGot.at - frozenAt)} after D was frozen (its wait call took ${ms(eGot.tookMs)})`)
  say(`  reclaimed: ${showHolder(eGot.reclaimed, eGot.at)}`)
  check(
    eGot.reclaimed && eGot.reclaimed.pid === d.pid && eGot.reclaimed.alive === true && eGot.reclaimed.stale === true,
    `reclaimed names pid ${d.pid}, alive: true, stale: true (a live owner loses only a stale lease)`,
  )
  const eLease = await PidLock.inspect(lockPath)
  check(eLease.pid === e.pid, `the lock file now names E (pid ${e.pid})`)
  why('Until D runs again it still believes it holds the lock: the one overlap the design allows,')
  why('and the reason onLeaseLost exists. D cannot act while frozen; once resumed, its overdue')
  why('heartbeat runs at once and finds that its file is no longer the lock.')
  d.kill('SIGCONT')
  const resumedAt = Date.now()
  const lost = await d.next('lost')
  say(`  ${d.label} resumed with SIGCONT; onLeaseLost was called ${ms(lost.at - resumedAt)} later with:`)
  say(indent(`reason: '${lost.info.reason}', newOwner.pid: ${lost.info.newOwner && lost.info.newOwner.pid}, error: ${lost.info.error}, lock.held: ${lost.held}`))
  check(lost.info.reason === 'owner-changed' && lost.info.newOwner && lost.info.newOwner.pid === e.pid, `reason 'owner-changed', new owner E (pid ${e.pid})`)
  check(lost.held === false, 'lock.held was already false inside the callback')
  d.send('release')
  const dReleased = await d.next('released')
  const after = await PidLock.inspect(lockPath)
  check(dReleased.held === false && after && after.ownerId === eLease.ownerId, "D's release() resolved and left E's lock file alone (same owner id)")
  e.send('release')
  await e.next('released')
  check(!fs.existsSync(lockPath), "E's release removed the file")

  // -------------------------------------------------------------------------------------------
  await pause()
  step(6, TOTAL, 'F acquires, then calls process.exit(3) without releasing')
  why('Locks still held when a process ends are released natively (drained event loop,')
  why('process.exit(), uncaught exception), with no signal handler and the exit code unchanged.')
  f.send('acquire')
  await f.next('acquired')
  check(fs.existsSync(lockPath), `${f.label} holds the lock`)
  f.send('exit 3')
  const fExit = await f.next('exit')
  check(fExit.code === 3, 'F exited with its own exit code 3')
  check(!fs.existsSync(lockPath), 'the lock file is gone')

  // The remaining children (A, C, D, E) end when their stdin closes.
  for (const h of [a, c, d, e]) h.child.stdin.end()
  for (const h of [a, c, d, e]) await h.next('exit')
  say()
  say(bold('All steps behaved as described.'))
}

async function cleanUp() {
  const open = [...holders].filter((h) => h.closed === null)
  for (const h of open) {
    try {
      h.kill('SIGKILL') // also ends a process stopped with SIGSTOP
    } catch {}
  }
  await Promise.all(open.map((h) => (h.closed ? null : new Promise((r) => h.child.once('close', r)))))
  if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true, maxRetries: 5 })
  tempDir = null
}

// Last resort if the demo is interrupted: no child left running (or frozen), no temp dir left.
process.on('exit', () => {
  for (const h of holders) {
    if (h.closed === null) {
      try {
        h.kill('SIGKILL')
      } catch {}
    }
  }
  if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true, maxRetries: 5 })
})
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    say(`\ninterrupted (${signal}); cleaning up`)
    process.exit(130)
  })
}

main().then(
  async () => {
    await cleanUp()
    process.exitCode = 0
  },
  async (err) => {
    say()
    say(bold(`FAILED: ${err instanceof StepFailed ? err.message : err.stack}`))
    await cleanUp()
    process.exitCode = 1
  },
).finally(() => {
  // Nothing should be left to keep the loop alive; if something is, do not hang.
  setTimeout(() => process.exit(process.exitCode), 2000).unref()
})
