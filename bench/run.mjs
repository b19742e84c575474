// `npm run bench`: leaselock side by side with proper-lockfile and lockfile, in one run.
//
//   node bench/run.mjs [--quick] [--only=1,3,7]
//   BENCH_IDLE_SECONDS=10 node bench/run.mjs --only=5
//
// Prints one markdown table (median, p10–p90 spread, sample count, target) and the machine it
// ran on, and writes the same as JSON to bench/results/latest.json. See bench/README.md.

import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import { summary, mean, stddev, formatValue, formatRange, formatMs, markdownTable } from './stats.mjs'
import { safePairs, renewalFloor, taskCount } from './floors.mjs'
import { benchRedis } from './redis.mjs'

const require = createRequire(import.meta.url)
const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const ENTRY = path.join(ROOT, 'lib', 'index.js')
const CHILD = path.join(HERE, 'child.mjs')
const RESULTS = path.join(HERE, 'results', 'latest.json')

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2)
const QUICK = argv.includes('--quick')
const onlyArg = argv.find((a) => a.startsWith('--only='))
const ONLY = onlyArg ? new Set(onlyArg.slice(7).split(',').map((s) => Number(s.trim()))) : null
for (const a of argv) {
  if (a !== '--quick' && !a.startsWith('--only=')) {
    console.error(`unknown argument ${a}\nusage: node bench/run.mjs [--quick] [--only=1,2,...]`)
    process.exit(2)
  }
}
const idleEnv = Number(process.env.BENCH_IDLE_SECONDS)
const IDLE_SECONDS = idleEnv > 0 ? idleEnv : QUICK ? 5 : 30

const P = QUICK
  ? { asyncRounds: 4, asyncBatch: 50, syncRounds: 4, syncBatch: 100, takeoverOurs: 5, takeoverSlow: 1, handover: 10, handoverPeers: 5, tpRuns: 1, tpSeconds: 1.5, loadRuns: 6 }
  : { asyncRounds: 15, asyncBatch: 200, syncRounds: 15, syncBatch: 400, takeoverOurs: 20, takeoverSlow: 3, handover: 40, handoverPeers: 20, tpRuns: 3, tpSeconds: 4, loadRuns: 20 }

const now = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const log = (s) => process.stderr.write(`${s}\n`)

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed on the way out, whatever the way out is.

const children = new Set()
let tmpRoot = null

function cleanup() {
  for (const c of children) {
    try {
      c.proc.kill('SIGKILL')
    } catch {}
  }
  children.clear()
  if (tmpRoot) {
    try {
      fs.rmSync(tmpRoot, { recursive: true, force: true })
    } catch {}
    tmpRoot = null
  }
}
process.on('exit', cleanup)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    cleanup()
    process.exit(128 + (os.constants.signals[sig] ?? 1))
  })
}

class Child {
  constructor(role, args = {}, nodeArgs = [], env = {}) {
    this.role = role
    this.lines = []
    this.waiter = null
    this.stderr = ''
    this.proc = spawn(process.execPath, [...nodeArgs, CHILD, role, JSON.stringify({ entry: ENTRY, ...args })], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    })
    children.add(this)
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exitAt = now()
        children.delete(this)
        this.exitInfo = { code, signal }
        resolve(this.exitInfo)
        this.#wake()
      })
    })
    this.proc.stdin.on('error', () => {}) // a killed child's pipe
    this.proc.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000)
    })
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      this.lines.push(line)
      this.#wake()
    })
  }

  #wake() {
    const w = this.waiter
    this.waiter = null
    if (w) w()
  }

  send(line) {
    this.proc.stdin.write(`${line}\n`)
  }

  /** The next line, which must start with `word`; returns the rest of it. */
  async expect(word, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (this.lines.length) {
        const line = this.lines.shift()
        if (line === word || line.startsWith(`${word} `)) return line.slice(word.length + 1)
        throw new Error(`${this.role} child said ${JSON.stringify(line.slice(0, 2000))} instead of ${word}${this.stderr ? `\nstderr: ${this.stderr}` : ''}`)
      }
      if (this.exitInfo) {
        throw new Error(`${this.role} child exited (${JSON.stringify(this.exitInfo)}) before ${word}\nstderr: ${this.stderr}`)
      }
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`${this.role} child: no ${word} within ${timeoutMs} ms\nstderr: ${this.stderr}`)
      let timer
      await new Promise((resolve) => {
        this.waiter = resolve
        timer = setTimeout(resolve, left)
      })
      clearTimeout(timer)
    }
  }

  async stop() {
    if (this.exitInfo) return
    this.proc.kill('SIGKILL')
    await this.exited
  }
}

async function stopAll(list) {
  await Promise.all(list.map((c) => c && c.stop()))
}

function tmpDir(name) {
  const d = path.join(tmpRoot, name)
  fs.mkdirSync(d, { recursive: true })
  return d
}

// ---------------------------------------------------------------------------------------------
// Results

/** Each section gives rows: { variant, unit, stats (from summary()), note } and a verdict. */
const sections = []

function row(variant, unit, values, note = '') {
  return { variant, unit, stats: summary(values), note }
}

function verdict(met, text) {
  return { met, text: `${met ? 'met' : 'MISSED'}: ${text}` }
}

/** Runs `variants` ([name, fn]) in interleaved rounds, each one `batch` times a round, timing each call. */
async function interleaved(variants, rounds, batch, isAsync) {
  const times = new Map(variants.map(([name]) => [name, []]))
  for (let r = -1; r < rounds; r++) {
    // Round -1 warms up (JIT, page cache, the libraries' first-call setup) and is dropped.
    const order = variants.map((_, i) => variants[(i + Math.max(r, 0)) % variants.length])
    for (const [name, fn] of order) {
      const out = times.get(name)
      for (let i = 0; i < batch; i++) {
        const t0 = performance.now()
        if (isAsync) await fn()
        else fn()
        const dt = performance.now() - t0
        if (r >= 0) out.push(dt)
      }
    }
  }
  return times
}

// ---------------------------------------------------------------------------------------------
// 1. Uncontended acquire + release, async

async function benchAsync() {
  const { PidLock } = require(ENTRY)
  const proper = require('proper-lockfile')
  const lockfile = require('lockfile')
  const dir = tmpDir('async')
  const fresh = path.join(dir, 'fresh.lock')
  const reused = new PidLock(path.join(dir, 'reused.lock'))
  const properFile = path.join(dir, 'proper')
  fs.writeFileSync(properFile, '')
  const lfFile = path.join(dir, 'lockfile.lock')
  const variants = [
    ['ours, new PidLock each time', async () => {
      const l = new PidLock(fresh)
      await l.acquire()
      await l.release()
    }],
    ['ours, one PidLock reused', async () => {
      await reused.acquire()
      await reused.release()
    }],
    ['proper-lockfile lock+release', async () => {
      const release = await proper.lock(properFile)
      await release()
    }],
    ['lockfile lock+unlock', () => new Promise((resolve, reject) => {
      lockfile.lock(lfFile, {}, (err) => {
        if (err) return reject(err)
        lockfile.unlock(lfFile, (err2) => (err2 ? reject(err2) : resolve()))
      })
    })],
  ]
  const times = await interleaved(variants, P.asyncRounds, P.asyncBatch, true)
  const properMedian = summary(times.get('proper-lockfile lock+release')).median
  const rows = variants.map(([name]) => {
    const s = summary(times.get(name))
    const note = name.startsWith('ours')
      ? `${(properMedian / s.median).toFixed(2)}x faster than proper-lockfile`
      : ''
    return { variant: name, unit: 'ms', stats: s, note }
  })
  const worst = Math.min(...rows.filter((r) => r.variant.startsWith('ours')).map((r) => properMedian / r.stats.median))
  return {
    title: 'Uncontended acquire+release, async',
    rows,
    verdict: verdict(worst >= 3, `>= 3x proper-lockfile (worst: ${worst.toFixed(2)}x)`),
  }
}

// ---------------------------------------------------------------------------------------------
// 2. The same, sync, against the physical floor

async function benchSync() {
  const { PidLock } = require(ENTRY)
  const proper = require('proper-lockfile')
  const lockfile = require('lockfile')
  const dir = tmpDir('sync')
  const fresh = path.join(dir, 'fresh.lock')
  const reused = new PidLock(path.join(dir, 'reused.lock'))
  const properFile = path.join(dir, 'proper')
  fs.writeFileSync(properFile, '')
  const lfFile = path.join(dir, 'lockfile.lock')
  const floorFile = path.join(dir, 'floor.lock')
  // As large as a Go-written lease.
  const lease = Buffer.from(`{"version":1,"ownerID":"${process.pid}-1740700000123456789-1","pid":${process.pid},"lastHeartbeatUnixNano":1740700000123456789}\n`)
  // A sync call that meets the heartbeat thread inside the lock's state can be refused with
  // ELOCKBUSY although no asynchronous call runs; such calls are retried, counted and reported.
  let busy = 0
  const retryBusy = (fn) => {
    for (;;) {
      try {
        return fn()
      } catch (err) {
        if (err.code !== 'ELOCKBUSY') throw err
        busy++
      }
    }
  }
  const variants = [
    ['ours, new PidLock each time', () => {
      const l = new PidLock(fresh)
      retryBusy(() => l.acquireSync())
      retryBusy(() => l.releaseSync())
    }],
    ['ours, one PidLock reused', () => {
      retryBusy(() => reused.acquireSync())
      retryBusy(() => reused.releaseSync())
    }],
    ['proper-lockfile lockSync+release', () => {
      const release = proper.lockSync(properFile)
      release()
    }],
    ['lockfile lockSync+unlockSync', () => {
      lockfile.lockSync(lfFile, {})
      lockfile.unlockSync(lfFile)
    }],
    [`floor: open(wx)+write ${lease.length} B+close+unlink`, () => {
      const fd = fs.openSync(floorFile, 'wx')
      fs.writeSync(fd, lease)
      fs.closeSync(fd)
      fs.unlinkSync(floorFile)
    }],
  ]
  // The safe floor, round by round between ours: the same system calls as our pair, from a
  // plain native loop (bench/floors.mjs).
  const times = new Map(variants.map(([name]) => [name, []]))
  // Once single-threaded (the target's floor), once with as many threads as this process has
  // (ours run here): see bench/README.md.
  const safe = []
  const safeThreaded = []
  const threads = taskCount(process.pid) - 1
  for (let r = 0; r < P.syncRounds; r++) {
    for (const [name, values] of await interleaved(variants, 1, P.syncBatch, false)) times.get(name).push(...values)
    safe.push(...safePairs(dir, P.syncBatch))
    safeThreaded.push(...safePairs(dir, P.syncBatch, threads))
  }
  const floorName = variants[variants.length - 1][0]
  const floor = summary(times.get(floorName)).median
  const safeFloor = safe.length ? summary(safe).median : NaN
  const threadedFloor = safeThreaded.length ? summary(safeThreaded).median : NaN
  const ratios = (median) =>
    `${(median / safeFloor).toFixed(2)}x safe floor (${(median / threadedFloor).toFixed(2)}x with threads), ${(median / floor).toFixed(2)}x open(wx) floor`
  const rows = variants.map(([name]) => {
    const s = summary(times.get(name))
    return { variant: name, unit: 'ms', stats: s, note: name === floorName ? '1.00x open(wx) floor (unsafe)' : ratios(s.median) }
  })
  if (safe.length) rows.push(row('safe floor: the same system calls, plain native loop', 'ms', safe, '1.00x safe floor'))
  if (safeThreaded.length) {
    rows.push(row(`safe floor with ${threads} idle threads, as many as this process has`, 'ms', safeThreaded, `${(threadedFloor / safeFloor).toFixed(2)}x safe floor`))
  }
  const worst = Math.max(...rows.filter((r) => r.variant.startsWith('ours')).map((r) => r.stats.median / safeFloor))
  if (busy) rows[0].note += `; ${busy} spurious ELOCKBUSY retried`
  return {
    title: 'Uncontended acquire+release, sync',
    spuriousBusy: busy,
    rows,
    verdict: verdict(worst <= 1.2, `<= 1.2x safe floor (worst: ${worst.toFixed(2)}x)`),
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Takeover after SIGKILL

/**
 * A holder is SIGKILL'd; a contender takes the lock over. `waiting`: the contender is already in
 * its waiting acquire when the holder dies (woken by the death itself), instead of starting its
 * acquire after the exit event.
 */
async function takeover(holderLib, contenderLib, lockPath, reps, contenderArgs = {}, { waiting = false, env = {} } = {}) {
  const fromExit = []
  const fromKill = []
  const contender = new Child('contend', { lib: contenderLib, path: lockPath, wait: 10_000, ...contenderArgs }, [], env)
  try {
    await contender.expect('READY')
    for (let i = 0; i < reps; i++) {
      const holder = new Child('hold', { lib: holderLib, path: lockPath, stale: contenderArgs.stale })
      try {
        await holder.expect('READY')
        // Let the holder live a random part of a heartbeat period (250 ms ours and Go's,
        // 1 s proper-lockfile's), so death falls anywhere in the cycle.
        if (waiting) {
          contender.send('go')
          await sleep(50) // (its first look and its watches: a few ms)
        }
        await sleep(Math.random() * (holderLib === 'proper' ? 1000 : 250))
        const killAt = now()
        holder.proc.kill('SIGKILL')
        await holder.exited
        const exitAt = holder.exitAt
        if (!waiting) contender.send('go')
        const at = Number(await contender.expect('ACQUIRED', 15_000))
        fromExit.push(at - exitAt)
        fromKill.push(at - killAt)
      } finally {
        await holder.stop()
      }
    }
  } finally {
    await contender.stop()
  }
  return { fromExit, fromKill }
}

async function benchTakeover() {
  const dir = tmpDir('takeover')
  const ours = await takeover('ours', 'ours', path.join(dir, 'ours.lock'), P.takeoverOurs)
  log('    ours done')
  const waiting = await takeover('ours', 'ours', path.join(dir, 'waiting.lock'), P.takeoverOurs, {}, { waiting: true })
  const polling = await takeover('ours', 'ours', path.join(dir, 'polling.lock'), P.takeoverOurs, {}, { waiting: true, env: { LEASELOCK_WATCH: 'off' } })
  log('    ours, waiting, done')
  const properFile = path.join(dir, 'proper')
  fs.writeFileSync(properFile, '')
  const proper = await takeover('proper', 'proper', properFile, P.takeoverSlow, { stale: 2000 })
  log('    proper-lockfile done')
  const go = await takeover('go', 'ours', path.join(dir, 'go.lock'), P.takeoverSlow)
  const m = summary(ours.fromExit).median
  const rows = [
    row('ours (holder death proven: pid + start time)', 'ms', ours.fromExit, `from kill(): ${formatMs(summary(ours.fromKill).median)}`),
    row('ours, contender already waiting (woken by the holder\'s exit: pidfd)', 'ms', waiting.fromExit, `from kill(): ${formatMs(summary(waiting.fromKill).median)}`),
    row('ours, already waiting, LEASELOCK_WATCH=off (20 ms poll)', 'ms', polling.fromExit, `from kill(): ${formatMs(summary(polling.fromKill).median)}`),
    row('proper-lockfile, stale: 2000 (its minimum)', 'ms', proper.fromExit, `from kill(): ${formatMs(summary(proper.fromKill).median)}; polls every 20 ms`),
    row('Go rule: Go-style lease, 3 s stale threshold', 'ms', go.fromExit, `from kill(): ${formatMs(summary(go.fromKill).median)}; our contender, lease without identity`),
  ]
  return {
    title: 'Takeover after SIGKILL (from the holder\'s exit event)',
    rows,
    verdict: verdict(m < 10, `< 10 ms`),
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Waiting acquire: holder's release to waiter's acquire, across processes

/**
 * Two processes hand one lock back and forth. Returns, per hand-over, the time from the
 * holder's release() returning to the waiter's acquire resolving (`fromReturn`; the waiter
 * may see the lock free before release() has finished returning, so a few are negative), and
 * from the holder calling release() (`fromCall`).
 */
async function handover(lib, lockPath, reps, env = {}) {
  const a = new Child('agent', { lib, path: lockPath }, [], env)
  const b = new Child('agent', { lib, path: lockPath }, [], env)
  const fromReturn = []
  const fromCall = []
  try {
    await Promise.all([a.expect('READY'), b.expect('READY')])
    a.send('take')
    await a.expect('TAKEN')
    let holder = a
    let waiter = b
    for (let i = 0; i < reps; i++) {
      waiter.send('wait')
      await waiter.expect('WAITING')
      // The waiter sleeps now (on its notification or its poll); release at a random point of
      // a poll cycle.
      await sleep(30 + Math.random() * 40)
      holder.send('release')
      const [returnedAt, calledAt] = (await holder.expect('RELEASED')).split(' ').map(Number)
      const acquiredAt = Number(await waiter.expect('ACQUIRED'))
      fromReturn.push(acquiredAt - returnedAt)
      fromCall.push(acquiredAt - calledAt)
      ;[holder, waiter] = [waiter, holder]
    }
    holder.send('release')
    await holder.expect('RELEASED')
  } finally {
    await stopAll([a, b])
  }
  return { fromReturn, fromCall }
}

function handoverRow(variant, { fromReturn, fromCall }) {
  const p90 = summary(fromReturn).p90
  const call = summary(fromCall).median
  return row(variant, 'ms', fromReturn, `p90 ${formatMs(p90)}; from the release() call: median ${formatMs(call)}`)
}

async function benchWaiting() {
  const dir = tmpDir('waiting')
  const ours = await handover('ours', path.join(dir, 'ours.lock'), P.handover)
  const polling = await handover('ours', path.join(dir, 'polling.lock'), P.handoverPeers, { LEASELOCK_WATCH: 'off' })
  const properFile = path.join(dir, 'proper')
  fs.writeFileSync(properFile, '')
  const proper = await handover('proper', properFile, P.handoverPeers)
  const lf = await handover('lockfile', path.join(dir, 'lockfile.lock'), P.handoverPeers)
  const m = summary(ours.fromReturn).median
  return {
    title: 'Waiting acquire: release to the waiter\'s acquire (other process)',
    rows: [
      handoverRow('ours, acquire({ timeout: Infinity }), woken by inotify', ours),
      handoverRow('ours, notifications off (LEASELOCK_WATCH=off): 20 ms poll', polling),
      handoverRow('proper-lockfile, retries every 20 ms', proper),
      handoverRow('lockfile, wait with pollPeriod 20 ms', lf),
    ],
    verdict: verdict(m < 1, `< 1 ms`),
  }
}

// ---------------------------------------------------------------------------------------------
// 5. Idle cost of holding N locks

/** CPU time of every thread of `pid` so far (ns, from schedstat) and its RSS (bytes), read from outside. */
function procSample(pid) {
  const taskDir = `/proc/${pid}/task`
  let cpuNs = 0
  for (const t of fs.readdirSync(taskDir)) {
    try {
      cpuNs += Number(fs.readFileSync(`${taskDir}/${t}/schedstat`, 'utf8').split(' ')[0])
    } catch {} // a thread that just ended
  }
  const rssKb = Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m)[1])
  return { at: now(), cpuNs, rss: rssKb * 1024 }
}

async function benchIdle() {
  const counts = [0, 1, 100, 1000]
  const dirs = counts.map((n) => tmpDir(`idle-${n}`))
  const kids = counts.map((n, i) => new Child('idle', { n, dir: dirs[i] }))
  const slices = 10
  const samples = counts.map(() => [])
  const held = []
  // The renewal floor: 1000 open files renewed like heartbeats by a plain native loop; once
  // single-threaded, once with as many threads as the child holding 1000 locks has.
  const floors = []
  let threads = 0
  try {
    await Promise.all(kids.map((k) => k.expect('READY', 60_000)))
    threads = taskCount(kids[kids.length - 1].proc.pid) - 1
    for (const t of [0, threads]) {
      const proc = await renewalFloor(tmpDir(`idle-floor-${t}`), 1000, 250, t)
      if (proc) floors.push({ threads: t, proc, samples: [] })
    }
    await sleep(1000) // past the acquisitions and the first heartbeats
    // Sampled from outside (/proc), so that measuring costs the children nothing.
    const sampleAll = () => {
      kids.forEach((k, i) => samples[i].push(procSample(k.proc.pid)))
      for (const f of floors) f.samples.push(procSample(f.proc.pid))
    }
    sampleAll()
    for (let s = 0; s < slices; s++) {
      await sleep((IDLE_SECONDS * 1000) / slices)
      sampleAll()
    }
    kids.forEach((k) => k.send('count'))
    for (const k of kids) held.push(Number(await k.expect('HELD')))
  } finally {
    await stopAll(kids)
    for (const f of floors) await f.proc.stop()
  }
  const rows = []
  const result = {}
  counts.forEach((n, i) => {
    const ss = samples[i]
    const cpu = []
    const rssAbove = []
    for (let s = 1; s < ss.length; s++) {
      cpu.push(((ss[s].cpuNs - ss[s - 1].cpuNs) / 1e6 / (ss[s].at - ss[s - 1].at)) * 100)
      rssAbove.push((ss[s].rss - samples[0][s].rss) / 2 ** 20)
    }
    const label = n === 0 ? 'baseline: addon loaded, no lock' : `${n} lock${n === 1 ? '' : 's'} held`
    rows.push(row(`${label}: CPU`, '%', cpu, n ? `still held at end: ${held[i]}/${n}` : ''))
    if (n === 0) {
      rows.push(row(`${label}: RSS`, 'MB', ss.slice(1).map((x) => x.rss / 2 ** 20), 'absolute'))
    } else {
      rows.push(row(`${label}: RSS above baseline`, 'MB', rssAbove))
    }
    result[n] = { cpu: summary(cpu).median, rss: summary(rssAbove).median, held: held[i] }
  })
  const k = result[1000]
  // Ours above the baseline process (Node and the addon doing nothing), against each floor.
  const ratios = floors.map((f) => {
    const cpu = []
    for (let s = 1; s < f.samples.length; s++) {
      const [a, b] = [f.samples[s - 1], f.samples[s]]
      cpu.push(((b.cpuNs - a.cpuNs) / 1e6 / (b.at - a.at)) * 100)
    }
    const r = (k.cpu - result[0].cpu) / summary(cpu).median
    const shape = f.threads ? `, with ${f.threads} idle threads as the holder has` : ''
    rows.push(row(`renewal floor: 1000 files, fstat+pwrite of each one's own record every 250 ms (fstatat of the name every 4th), plain native loop${shape}: CPU`, '%', cpu, `1000 locks above baseline: ${r.toFixed(2)}x this floor`))
    return r
  })
  const ratio = ratios.length ? ratios[0] : NaN
  return {
    title: `Idle cost of holding N locks (${IDLE_SECONDS} s in ${slices} slices; CPU in % of one core)`,
    rows,
    verdict: verdict(ratio <= 1.3 && k.rss < 20 && k.held === 1000, `N=1000: <= 1.3x the renewal floor (${ratio.toFixed(2)}x; ${k.cpu.toFixed(2)}% of a core), < 20 MB (${k.rss.toFixed(1)} MB)`),
  }
}

// ---------------------------------------------------------------------------------------------
// 6. Contended throughput, 4 processes

async function throughputRun(lib, lockPath, seconds) {
  const kids = [0, 1, 2, 3].map(() => new Child('throughput', { lib, path: lockPath }))
  try {
    await Promise.all(kids.map((k) => k.expect('READY')))
    const start = now() + 200
    const end = start + seconds * 1000
    kids.forEach((k) => k.send(`go ${start} ${end}`))
    const counts = (await Promise.all(kids.map((k) => k.expect('COUNT', seconds * 1000 + 60_000)))).map(Number)
    return counts
  } finally {
    await stopAll(kids)
  }
}

async function benchThroughput() {
  const dir = tmpDir('throughput')
  const properFile = path.join(dir, 'proper')
  fs.writeFileSync(properFile, '')
  const libs = [
    ['ours, acquire({ timeout: Infinity })', 'ours', path.join(dir, 'ours.lock')],
    ['proper-lockfile, retries every 20 ms', 'proper', properFile],
    ['lockfile, wait with pollPeriod 20 ms', 'lockfile', path.join(dir, 'lockfile.lock')],
  ]
  const runs = new Map(libs.map(([name]) => [name, []]))
  for (let r = 0; r < P.tpRuns; r++) {
    for (const [name, lib, p] of libs) runs.get(name).push(await throughputRun(lib, p, P.tpSeconds))
  }
  const rows = []
  for (const [name] of libs) {
    const list = runs.get(name)
    const rates = list.map((c) => c.reduce((a, b) => a + b, 0) / P.tpSeconds)
    const fairness = list.map((c) => (Math.max(...c) ? Math.min(...c) / Math.max(...c) : 0))
    const cv = list.map((c) => (mean(c) ? stddev(c) / mean(c) : 0))
    const shown = list.map((c) => c.join('/')).join(', ')
    rows.push(row(name, '/s', rates, `wins min/max ${summary(fairness).median.toFixed(2)}, CV ${summary(cv).median.toFixed(2)}; wins per process: ${shown}`))
  }
  return {
    title: `Contended throughput, 4 processes, ${P.tpSeconds} s × ${P.tpRuns} runs (cycles/s)`,
    rows,
    verdict: null,
  }
}

// ---------------------------------------------------------------------------------------------
// 7. Cost of loading

function timeNode(code) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    let out = ''
    const c = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
    c.stdout.on('data', (d) => (out += d))
    c.on('error', reject)
    c.on('close', (code) => {
      if (code !== 0) reject(new Error(`node -e exited with ${code}`))
      else resolve({ ms: performance.now() - t0, out })
    })
  })
}

async function benchLoad() {
  const req = (m) => `require(${JSON.stringify(m)})`
  const variants = [
    ["node -e ''", ''],
    ['ours: require(leaselock)', req(ENTRY)],
    ['proper-lockfile', req(require.resolve('proper-lockfile'))],
    ['lockfile', req(require.resolve('lockfile'))],
  ]
  const times = variants.map(() => [])
  const inside = []
  for (let r = -2; r < P.loadRuns; r++) {
    for (let i = 0; i < variants.length; i++) {
      const { ms } = await timeNode(variants[i][1])
      if (r >= 0) times[i].push(ms)
    }
    const { out } = await timeNode(`const t=performance.now();${req(ENTRY)};process.stdout.write(String(performance.now()-t))`)
    if (r >= 0) inside.push(Number(out))
  }
  const extra = times[1].map((t, i) => t - times[0][i])
  const rows = variants.map(([name], i) => {
    const s = summary(times[i])
    const diff = times[i].map((t, j) => t - times[0][j])
    return { variant: name, unit: 'ms', stats: s, note: i === 0 ? 'process start + exit' : `+${formatMs(summary(diff).median)} over bare node` }
  })
  rows.push(row('ours: require() time inside the process', 'ms', inside))
  const m = summary(extra).median
  return {
    title: 'Cost of loading, fresh process (spawn to exit)',
    rows,
    verdict: verdict(m < 10, `< 10 ms extra (paired: ${formatMs(m)})`),
  }
}

// ---------------------------------------------------------------------------------------------

function machine() {
  let cpu = 'unknown'
  try {
    const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)
    if (m) cpu = m[1].trim()
  } catch {}
  return {
    cores: os.cpus().length,
    cpu,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))),
  }
}

const ALL = [
  [1, benchAsync],
  [2, benchSync],
  [3, benchTakeover],
  [4, benchWaiting],
  [5, benchIdle],
  [6, benchThroughput],
  [7, benchLoad],
  [8, function benchRedisStore() {
    return benchRedis({ quick: QUICK })
  }],
]

async function main() {
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-bench-'))
  const started = Date.now()
  const m = machine()
  log(`leaselock bench${QUICK ? ' (quick)' : ''}: ${m.cores} cores, ${m.cpu}, Node ${m.node}, ${m.kernel}`)
  let failed = false
  for (const [id, fn] of ALL) {
    if (ONLY && !ONLY.has(id)) continue
    log(`[${id}] ${fn.name.replace(/^bench/, '')}...`)
    const t0 = Date.now()
    try {
      const s = await fn()
      sections.push({ id, ...s, seconds: (Date.now() - t0) / 1000 })
      log(`    ${((Date.now() - t0) / 1000).toFixed(1)} s${s.verdict ? `; ${s.verdict.text}` : ''}`)
    } catch (err) {
      failed = true
      log(`    failed: ${err && err.stack ? err.stack : err}`)
      sections.push({ id, title: fn.name, error: String(err && err.message), rows: [], verdict: null })
    }
  }

  const header = ['#', 'Measurement', 'Variant', 'Median', 'Spread (p10–p90)', 'n', 'Note', 'Target']
  const rows = []
  for (const s of sections) {
    if (s.error) {
      rows.push([s.id, s.title, 'ERROR', '', '', '', s.error.split('\n')[0], ''])
      continue
    }
    s.rows.forEach((r, i) => {
      rows.push([
        i === 0 ? s.id : '',
        i === 0 ? s.title : '',
        r.variant,
        formatValue(r.stats.median, r.unit),
        formatRange(r.stats.p10, r.stats.p90, r.unit),
        r.stats.n,
        r.note,
        i === 0 && s.verdict ? s.verdict.text : '',
      ])
    })
  }
  const line = `Machine: ${m.cores} cores, ${m.cpu}, Node ${m.node}, ${m.kernel}; load average at start ${m.loadAverage.join(' ')}`
  console.log()
  console.log(markdownTable(header, rows))
  console.log()
  console.log(line)
  const flags = [QUICK && '--quick', ONLY && `--only=${[...ONLY].join(',')}`].filter(Boolean)
  const idle = process.env.BENCH_IDLE_SECONDS ? `BENCH_IDLE_SECONDS=${process.env.BENCH_IDLE_SECONDS} ` : ''
  console.log(`Command: ${idle}npm run bench${flags.length ? ` -- ${flags.join(' ')}` : ''} (took ${((Date.now() - started) / 1000).toFixed(0)} s)`)

  fs.mkdirSync(path.dirname(RESULTS), { recursive: true })
  fs.writeFileSync(
    RESULTS,
    `${JSON.stringify({ date: new Date().toISOString(), quick: QUICK, only: ONLY ? [...ONLY] : null, idleSeconds: IDLE_SECONDS, machine: m, sections }, null, 2)}\n`,
  )
  console.log(`JSON: ${path.relative(process.cwd(), RESULTS)}`)
  if (failed) process.exitCode = 1
}

main()
  .catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
  .finally(cleanup)
