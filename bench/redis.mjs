// Section 8 of `npm run bench`: the Redis store against `redlock` (single instance, with
// ioredis) on the same redis-server in the same run: uncontended acquire+release, how soon a
// waiter in another process gets the lock after a release, and takeover after SIGKILL.
// The server is a private one on 127.0.0.1 (see __test__/helpers/redis-server.mjs).

import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import readline from 'node:readline'
import { summary } from './stats.mjs'
import { RedisServer, redisMissing } from '../__test__/helpers/redis-server.mjs'

const require = createRequire(import.meta.url)
const ENTRY = require.resolve('../lib/index.js')
const now = () => performance.timeOrigin + performance.now()

/** A node child running `code` (CommonJS) whose stdout lines can be awaited. */
function child(code, args) {
  const proc = spawn(process.execPath, ['-e', code, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = []
  const waiters = []
  readline.createInterface({ input: proc.stdout }).on('line', (l) => {
    lines.push(l)
    while (waiters.length && lines.length) waiters.shift()(lines.shift())
  })
  return {
    proc,
    next: () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((resolve) => waiters.push(resolve))),
    send: (s) => proc.stdin.write(`${s}\n`),
  }
}

async function roundTrips(url, pairs, warmup) {
  const { PidLock } = require(ENTRY)
  const Redis = require('ioredis')
  const Redlock = require('redlock')
  const client = new Redis(url)
  const redlock = new Redlock([client], { retryCount: 0 })
  const ours = new PidLock('bench-rt', { store: url })
  const variants = [
    ['ours: acquire+release (one PidLock reused)', async () => {
      await ours.acquire()
      await ours.release()
    }],
    ['redlock: lock+unlock (single instance)', async () => {
      const lock = await redlock.lock('bench-rt-redlock', 3000)
      await lock.unlock()
    }],
  ]
  // Pair by pair in turn (ABBA), not batch by batch: the server, the loopback path and this
  // machine's load drift over seconds, by as much as the two clients differ, and a drift that
  // falls on one variant's batch decides a batched comparison (batches of 300 here: ratios
  // 0.87-1.03 over four runs; pair by pair, the same code: 1.02-1.07 over ten).
  const times = new Map(variants.map(([n]) => [n, []]))
  for (let r = -warmup; r < pairs; r++) {
    for (const [name, fn] of r % 2 ? variants : [...variants].reverse()) {
      const t0 = performance.now()
      await fn()
      if (r >= 0) times.get(name).push(performance.now() - t0)
    }
  }
  client.disconnect()
  return times
}

const WAITER = {
  ours: `
    const { PidLock } = require(process.argv[1])
    const lock = new PidLock('bench-wake', { store: process.argv[2] })
    const rl = require('node:readline').createInterface({ input: process.stdin })
    rl.on('line', async (l) => {
      if (l === 'end') return process.exit(0)
      await lock.acquire({ timeout: Infinity })
      console.log('GOT ' + (performance.timeOrigin + performance.now()))
      await lock.release()
      console.log('RELEASED')
    })
    console.log('READY')`,
  redlock: `
    const Redis = require('ioredis'); const Redlock = require('redlock')
    const client = new Redis(process.argv[2])
    const redlock = new Redlock([client], { retryCount: -1 })
    const rl = require('node:readline').createInterface({ input: process.stdin })
    rl.on('line', async (l) => {
      if (l === 'end') return process.exit(0)
      const lock = await redlock.lock('bench-wake-redlock', 3000)
      console.log('GOT ' + (performance.timeOrigin + performance.now()))
      await lock.unlock()
      console.log('RELEASED')
    })
    console.log('READY')`,
}

/** Release-to-waiter latency: we hold, a waiter in another process waits, we release. */
async function wake(url, kind, reps) {
  const { PidLock } = require(ENTRY)
  const Redis = require('ioredis')
  const Redlock = require('redlock')
  const client = new Redis(url)
  const redlock = new Redlock([client], { retryCount: -1 })
  const ours = new PidLock('bench-wake', { store: url })
  const w = child(WAITER[kind], [ENTRY, url])
  await w.next()
  const out = []
  try {
    for (let i = 0; i < reps; i++) {
      const lock = kind === 'ours' ? await ours.acquire() : await redlock.lock('bench-wake-redlock', 3000)
      w.send('go')
      // Let the waiter find it held and start waiting.
      await new Promise((resolve) => setTimeout(resolve, 30))
      const t0 = now()
      if (kind === 'ours') await ours.release()
      else await lock.unlock()
      const got = await w.next()
      out.push(Number(got.split(' ')[1]) - t0)
      await w.next()
    }
  } finally {
    w.proc.kill('SIGKILL')
    client.disconnect()
  }
  return out
}

/** Takeover after SIGKILL of a holder on this host (proven dead, so no TTL wait). */
async function takeover(url, reps) {
  const { PidLock } = require(ENTRY)
  const out = []
  for (let i = 0; i < reps; i++) {
    const h = child(`
      const { PidLock } = require(process.argv[1])
      new PidLock('bench-kill', { store: process.argv[2], leaseStaleThreshold: 30000 }).acquire().then(() => console.log('HELD'))
      setInterval(() => {}, 1000)`, [ENTRY, url])
    await h.next()
    const exited = new Promise((resolve) => h.proc.once('exit', resolve))
    h.proc.kill('SIGKILL')
    await exited
    const t0 = performance.now()
    const lock = new PidLock('bench-kill', { store: url })
    await lock.acquire()
    out.push(performance.now() - t0)
    await lock.release()
  }
  return out
}

export async function benchRedis({ quick }) {
  const missing = redisMissing()
  if (missing) throw new Error(missing)
  const server = await new RedisServer(null).start()
  try {
    const url = server.url
    const rt = await roundTrips(url, quick ? 400 : 3600, quick ? 100 : 300)
    const ourRt = summary(rt.get('ours: acquire+release (one PidLock reused)'))
    const theirRt = summary(rt.get('redlock: lock+unlock (single instance)'))
    const wakeOurs = await wake(url, 'ours', quick ? 10 : 40)
    const wakeRedlock = await wake(url, 'redlock', quick ? 5 : 15)
    const kills = await takeover(url, quick ? 3 : 10)
    const wakeMedian = summary(wakeOurs).median
    const rows = [
      { variant: 'ours: acquire+release, one PidLock reused', unit: 'ms', stats: ourRt, note: `${(theirRt.median / ourRt.median).toFixed(2)}x redlock` },
      { variant: 'redlock 4: lock+unlock, single instance (ioredis)', unit: 'ms', stats: theirRt, note: '' },
      { variant: 'ours: release to waiter (other process) holding it', unit: 'ms', stats: summary(wakeOurs), note: 'woken by the release (pub/sub)' },
      { variant: 'redlock: release to waiter holding it', unit: 'ms', stats: summary(wakeRedlock), note: 'retries every 200 ms + jitter (its default)' },
      { variant: 'ours: takeover after SIGKILL (same host)', unit: 'ms', stats: summary(kills), note: 'proven dead: no TTL wait' },
    ]
    const met = ourRt.median <= theirRt.median && wakeMedian < 50
    return {
      title: 'Redis store vs redlock (same server)',
      rows,
      verdict: { met, text: `${met ? 'met' : 'MISSED'}: round trip <= redlock (${ourRt.median.toFixed(3)} vs ${theirRt.median.toFixed(3)} ms), waiter woken < 50 ms (${wakeMedian.toFixed(1)} ms)` },
    }
  } finally {
    await server.stop()
  }
}
