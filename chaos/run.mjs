#!/usr/bin/env node
// The chaos run: N worker processes compete for one lock while this driver kills, freezes and
// thaws them at random and restarts the killed ones. Every worker journals entering and leaving
// its critical section; the driver journals every signal it sends. At the end an independent
// checker (chaos/check.py, which shares no code with the lock) reads the journal, counts
// overlapping critical sections and classifies them.
//
//   node chaos/run.mjs [--duration 60 | --cycles N] [--workers 8] [--heartbeat 50] [--stale 400]
//                      [--hold-max 120] [--gap-max 20] [--seed N] [--dir D] [--keep] [--json]
//                      [--allow-untold]   (see chaos/check.py: frozen holders never told)
//                      [--redis]          (the lock on a private redis-server instead of a file)
//
// Every critical section journals its fencing token, and the checker checks their order.
//
// Exit status: the checker's (non-zero on any violation or crash). `--json` prints the
// checker's report as one JSON object on the last line of stdout.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))

function parseArgs(argv) {
  const o = {
    duration: 60,
    cycles: 0,
    workers: 8,
    heartbeat: 50,
    stale: 400,
    holdMax: 120,
    gapMax: 20,
    seed: Date.now() % 2 ** 31,
    dir: null,
    keep: false,
    json: false,
    allowUntold: false,
    redis: false,
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    switch (a) {
      case '--duration': o.duration = Number(val()); break
      case '--cycles': o.cycles = Number(val()); break
      case '--workers': o.workers = Number(val()); break
      case '--heartbeat': o.heartbeat = Number(val()); break
      case '--stale': o.stale = Number(val()); break
      case '--hold-max': o.holdMax = Number(val()); break
      case '--gap-max': o.gapMax = Number(val()); break
      case '--seed': o.seed = Number(val()); break
      case '--dir': o.dir = val(); break
      case '--keep': o.keep = true; break
      case '--json': o.json = true; break
      case '--allow-untold': o.allowUntold = true; break
      case '--redis': o.redis = true; break
      default: throw new Error(`unknown argument ${a}`)
    }
  }
  if (o.cycles > 0 && !argv.includes('--duration')) o.duration = Infinity
  return o
}

// A small seeded PRNG (mulberry32), so a run's decisions can be replayed with --seed.
function prng(seed) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const opts = parseArgs(process.argv.slice(2))
const random = prng(opts.seed)
const between = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1))
const now = () => Number(process.hrtime.bigint()) / 1e6
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const log = (...a) => { if (!opts.json) console.log(...a) }

const runDir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-chaos-'))
fs.mkdirSync(runDir, { recursive: true })
const lockDir = path.join(runDir, 'lockdir')
fs.mkdirSync(lockDir, { recursive: true })
const lockPath = path.join(lockDir, 'chaos.lock')
const journal = path.join(runDir, 'journal.ndjson')
const stderrPath = path.join(runDir, 'workers.stderr')
const jfd = fs.openSync(journal, 'a')
const errFd = fs.openSync(stderrPath, 'a')
const rec = (o) => fs.writeSync(jfd, JSON.stringify(o) + '\n')

// --redis: a private server on 127.0.0.1 (no persistence), and who holds the lock read from it.
let redis = null
let storeHolderPid = null
if (opts.redis) {
  const { RedisServer, redisMissing } = await import('../__test__/helpers/redis-server.mjs')
  const why = redisMissing()
  if (why) throw new Error(why)
  redis = await new RedisServer(null, {}).start()
  const { PidLock } = await import('leaselock')
  const poll = async () => {
    while (redis) {
      try {
        const h = await PidLock.inspect('chaos', { store: redis.url })
        storeHolderPid = h && h.valid ? h.pid : null
      } catch {}
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  poll()
}

rec({
  ev: 'config',
  t: now(),
  workers: opts.workers,
  heartbeat: opts.heartbeat,
  stale: opts.stale,
  holdMax: opts.holdMax,
  seed: opts.seed,
})
log(`chaos: ${opts.workers} workers${opts.redis ? ' on a Redis store' : ''}, heartbeat ${opts.heartbeat} ms, stale ${opts.stale} ms, ` +
  (opts.cycles > 0 ? `${opts.cycles} cycles` : `${opts.duration} s`) + `, seed ${opts.seed}`)
log(`chaos: journal ${journal}`)

/** worker id -> { child, pid, stopped: bool, killed: bool } */
const workers = new Map()
let ending = false
const stats = { kill: 0, shortFreeze: 0, longFreeze: 0, restarts: 0, crashes: 0 }

function startWorker(w) {
  const child = spawn(process.execPath, [
    path.join(here, 'worker.mjs'),
    lockPath,
    journal,
    String(w),
    String(opts.heartbeat),
    String(opts.stale),
    String(opts.holdMax),
    String(opts.gapMax),
  ], { stdio: ['ignore', 'ignore', errFd], env: redis ? { ...process.env, CHAOS_STORE: redis.url } : process.env })
  const entry = { child, pid: child.pid, stopped: false, killed: false }
  workers.set(w, entry)
  child.on('exit', (code, signal) => {
    rec({ ev: 'exit', w, pid: entry.pid, t: now(), code, signal })
    if (!entry.killed) {
      stats.crashes++
      rec({ ev: 'crash', w, pid: entry.pid, t: now(), code, signal })
    }
    if (ending) return
    setTimeout(() => {
      if (ending) return
      stats.restarts++
      startWorker(w)
    }, between(20, 200))
  })
}

function signal(entry, sig, extra = {}) {
  // Journal first: the record's time is never later than the signal's effect.
  rec({ ev: sig === 'SIGKILL' ? 'kill' : sig === 'SIGSTOP' ? 'stop' : 'cont', pid: entry.pid, t: now(), ...extra })
  try {
    process.kill(entry.pid, sig)
  } catch {}
}

function holderPid() {
  if (redis) return storeHolderPid
  try {
    const text = fs.readFileSync(lockPath, 'utf8')
    const pid = JSON.parse(text).pid
    return typeof pid === 'number' ? pid : null
  } catch {
    return null
  }
}

function pickTarget() {
  const live = [...workers.values()].filter((e) => !e.killed)
  if (live.length === 0) return null
  if (random() < 0.7) {
    const pid = holderPid()
    const holder = live.find((e) => e.pid === pid)
    if (holder) return holder
  }
  return live[Math.floor(random() * live.length)]
}

async function freeze(entry, ms, kind) {
  entry.stopped = true
  signal(entry, 'SIGSTOP', { ms, kind })
  await sleep(ms)
  entry.stopped = false
  if (!entry.killed) signal(entry, 'SIGCONT')
}

function countEnters() {
  // Cheap enough at the end of each round: the journal is a few MB at most.
  const text = fs.readFileSync(journal, 'utf8')
  let n = 0
  let i = -1
  while ((i = text.indexOf('"ev":"enter"', i + 1)) !== -1) n++
  return n
}

for (let w = 1; w <= opts.workers; w++) startWorker(w)

const started = Date.now()
const deadline = started + opts.duration * 1000
let lastReport = started
const pending = new Set()
while (Date.now() < deadline) {
  await sleep(between(40, 250))
  if (opts.cycles > 0 && countEnters() >= opts.cycles) break
  const target = pickTarget()
  if (!target || target.stopped) continue
  const roll = random()
  if (roll < 0.35) {
    target.killed = true
    stats.kill++
    signal(target, 'SIGKILL')
  } else if (roll < 0.7) {
    // Short: well inside the lease (the last heartbeat may be one interval old).
    stats.shortFreeze++
    const p = freeze(target, between(10, Math.max(10, Math.floor((opts.stale - opts.heartbeat) / 2))), 'short')
    pending.add(p)
    p.finally(() => pending.delete(p))
  } else {
    // Long: past the stale threshold, so the lease can be taken over.
    stats.longFreeze++
    const p = freeze(target, between(opts.stale + 100, opts.stale * 3), 'long')
    pending.add(p)
    p.finally(() => pending.delete(p))
  }
  if (!opts.json && Date.now() - lastReport >= 10000) {
    lastReport = Date.now()
    log(`chaos: ${Math.round((Date.now() - started) / 1000)} s, ${countEnters()} cycles, ` +
      `${stats.kill} kills, ${stats.shortFreeze}+${stats.longFreeze} freezes`)
  }
}

ending = true
await Promise.all(pending)
// Let frozen-and-thawed holders notice what happened to them before the end.
await sleep(opts.stale + 200)
const exits = []
for (const entry of workers.values()) {
  if (entry.child.exitCode !== null || entry.child.signalCode !== null) continue
  entry.killed = true
  exits.push(new Promise((r) => entry.child.once('exit', r)))
  signal(entry, 'SIGKILL', { final: true })
}
await Promise.all(exits)
rec({ ev: 'end', t: now(), driver: stats })
if (redis) {
  const server = redis
  redis = null
  await server.stop()
}
fs.closeSync(jfd)
fs.closeSync(errFd)

// Whatever a killed process left in the lock directory (a process killed between writing its
// private file and renaming it cannot clean up after itself). The fencing-token counter stays
// by design.
const leftovers = fs.readdirSync(lockDir).filter((n) => n !== 'chaos.lock' && n !== '.chaos.lock.token')

const args = [path.join(here, 'check.py'), journal, '--leftovers', String(leftovers.length)]
if (opts.json) args.push('--json')
if (opts.allowUntold) args.push('--allow-untold')
const check = spawnSync('python3', args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })
process.stdout.write(check.stdout)
const workerErr = fs.readFileSync(stderrPath, 'utf8').trim()
if (workerErr && !opts.json) console.log(`chaos: worker stderr:\n${workerErr.slice(0, 4000)}`)
const status = check.status ?? 2
if (status === 0 && !opts.keep) {
  fs.rmSync(runDir, { recursive: true, force: true })
} else if (!opts.json) {
  console.log(`chaos: run directory kept: ${runDir}`)
}
process.exitCode = status
