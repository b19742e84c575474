// One chaos contender: takes the lock, records entering and leaving its critical section in an
// append-only journal, holds for a random time, releases, and goes again - until it is killed.
//
// Usage (started by chaos/run.mjs): node chaos/worker.mjs <lock> <journal> <worker-id> <heartbeat-ms>
//                                   <stale-ms> <hold-max-ms> <gap-max-ms>
//
// Timestamps are CLOCK_MONOTONIC milliseconds (process.hrtime), which every process on the
// machine shares, so the checker can compare records written by different processes.
import fs from 'node:fs'
import { PidLock } from 'leaselock'

const [lockPath, journal, wid, hb, stale, holdMax, gapMax] = process.argv.slice(2)
const w = Number(wid)
const heartbeat = Number(hb)
const staleMs = Number(stale)
const pid = process.pid
const sabotage = Number(process.env.CHAOS_SABOTAGE || 0)
// CHAOS_STORE=<redis URL>: the lock lives on that server under the key `chaos` instead.
const store = process.env.CHAOS_STORE || null
const name = store ? 'chaos' : lockPath
const where = store ? { store } : {}

const fd = fs.openSync(journal, 'a')
// One write(2) per line on an O_APPEND descriptor: lines from different processes never mix.
const rec = (o) => fs.writeSync(fd, JSON.stringify(o) + '\n')
const now = () => Number(process.hrtime.bigint()) / 1e6
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const rnd = (max) => Math.floor(Math.random() * (max + 1))

function reclaimedKind(r) {
  if (!r) return null
  if (!r.valid) return 'invalid'
  if (r.alive === false) return 'dead'
  if (r.stale) return 'stale'
  return 'other'
}

rec({ ev: 'start', w, pid, t: now() })

for (let c = 1; ; c++) {
  const lock = new PidLock(name, {
    ...where,
    leaseHeartbeatInterval: heartbeat,
    leaseStaleThreshold: staleMs,
    acquireRetryLimit: 1000,
    acquireRetryDelay: 2,
    onLeaseLost: (info) => {
      rec({
        ev: 'lost',
        w,
        pid,
        c,
        t: now(),
        reason: info.reason,
        by: info.newOwner && info.newOwner.valid ? info.newOwner.pid : null,
        error: info.error,
      })
    },
  })
  const a = now()
  // CHAOS_SABOTAGE=N: every Nth cycle skips the lock, to show that the checker sees overlaps.
  if (sabotage > 0 && c % sabotage === 0) {
    rec({ ev: 'enter', w, pid, c, t: now(), a, oid: null, rk: null })
    await sleep(rnd(Number(holdMax)))
    rec({ ev: 'leave', w, pid, c, t: now(), held: false })
    continue
  }
  let result
  try {
    result = await lock.acquire({ timeout: Infinity })
  } catch (err) {
    // Contention past the retry budget is an answer the API allows; anything else is a bug.
    rec({ ev: 'acquire-error', w, pid, c, t: now(), code: err.code ?? null, message: String(err.message) })
    if (err.code === 'ELOCKCONTENDED') continue
    process.exit(3)
  }
  let oid = null
  try {
    const h = store ? await PidLock.inspect(name, where) : PidLock.inspectSync(lockPath, { leaseStaleThreshold: staleMs })
    if (h && h.valid && h.pid === pid) oid = h.ownerId
  } catch {}
  // A careful holder checks `held` before each step of its critical work.
  if (!lock.held) {
    rec({ ev: 'skip', w, pid, c, t: now() })
    await lock.release()
    continue
  }
  const t = now()
  const tok = result.token === undefined ? null : String(result.token)
  rec({ ev: 'enter', w, pid, c, t, a, oid, rk: reclaimedKind(result.reclaimed), tok })
  const until = t + rnd(Number(holdMax))
  while (lock.held) {
    const left = until - now()
    if (left <= 0) break
    await sleep(Math.min(10, left))
  }
  rec({ ev: 'leave', w, pid, c, t: now(), held: lock.held })
  // `false`: there was no file of ours to remove - the lease had been lost (a late notice).
  const removed = await lock.release()
  if (removed === false) rec({ ev: 'release-found-lost', w, pid, c, t: now() })
  const gap = rnd(Number(gapMax))
  if (gap > 0) await sleep(gap)
}
