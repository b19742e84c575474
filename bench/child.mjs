// A benchmark helper process, driven by `run.mjs` through stdin lines; it answers on stdout.
// Usage: node child.mjs <role> <json arguments>
//
// Every child exits when its stdin closes, so a crashed or interrupted parent leaves no
// process behind. Times are printed on the clock all processes share:
// performance.timeOrigin + performance.now() (milliseconds since the Unix epoch).

import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'

const require = createRequire(import.meta.url)
const [role, rawArgs] = process.argv.slice(2)
const args = rawArgs ? JSON.parse(rawArgs) : {}

const now = () => performance.timeOrigin + performance.now()
const say = (line) => process.stdout.write(`${line}\n`)

const commands = []
let waiting = null
const input = readline.createInterface({ input: process.stdin })
input.on('line', (line) => {
  if (waiting) {
    const w = waiting
    waiting = null
    w(line)
  } else commands.push(line)
})
input.on('close', () => process.exit(0))

function nextCommand() {
  if (commands.length) return Promise.resolve(commands.shift())
  return new Promise((resolve) => (waiting = resolve))
}

// The three libraries behind one small interface: lock with waiting or not, and unlock.
const POLL_MS = 20 // the peers look again as often as ours does where it cannot watch (WAIT_POLL)
const PEER_WAIT_CAP = 600_000 // the peers take no Infinity; ten minutes is as good here

function makeLib(name, file) {
  switch (name) {
    case 'ours': {
      const { PidLock } = require(args.entry)
      const lock = new PidLock(file)
      return {
        async lock(wait) {
          await lock.acquire(wait ? { timeout: wait } : undefined)
        },
        lockSync() {
          lock.acquireSync()
        },
        async unlock() {
          await lock.release()
        },
        unlockSync() {
          lock.releaseSync()
        },
      }
    }
    case 'proper': {
      const proper = require('proper-lockfile')
      let release = null
      const stale = args.stale ?? 10_000
      return {
        async lock(wait) {
          const retries = wait
            ? { retries: Math.ceil(Math.min(wait, PEER_WAIT_CAP) / POLL_MS), factor: 1, minTimeout: POLL_MS, maxTimeout: POLL_MS }
            : 0
          release = await proper.lock(file, { stale, retries, realpath: false })
        },
        lockSync() {
          release = proper.lockSync(file, { stale, realpath: false })
        },
        async unlock() {
          const r = release
          release = null
          await r()
        },
        unlockSync() {
          const r = release
          release = null
          r()
        },
      }
    }
    case 'lockfile': {
      const lockfile = require('lockfile')
      return {
        lock(wait) {
          const opts = wait ? { wait: Math.min(wait, PEER_WAIT_CAP), pollPeriod: POLL_MS } : {}
          return new Promise((resolve, reject) =>
            lockfile.lock(file, opts, (err) => (err ? reject(err) : resolve())),
          )
        },
        lockSync() {
          lockfile.lockSync(file, {})
        },
        unlock() {
          return new Promise((resolve, reject) =>
            lockfile.unlock(file, (err) => (err ? reject(err) : resolve())),
          )
        },
        unlockSync() {
          lockfile.unlockSync(file)
        },
      }
    }
    case 'go': {
      // What a holder using the Go package leaves: a lease with only the four Go fields,
      // rewritten in place every 250 ms (Go's default heartbeat) for as long as it lives.
      let fd = null
      let timer = null
      const ownerId = `${process.pid}-${nanos()}-1`
      const record = () =>
        Buffer.from(
          `${JSON.stringify({ version: 1, ownerID: ownerId, pid: process.pid })
            .slice(0, -1)},"lastHeartbeatUnixNano":${nanos()}}\n`,
        )
      return {
        lockSync() {
          fd = fs.openSync(file, 'wx', 0o644)
          fs.writeSync(fd, record(), 0, undefined, 0)
          timer = setInterval(() => {
            const b = record()
            fs.writeSync(fd, b, 0, b.length, 0)
          }, 250)
        },
        async lock() {
          this.lockSync()
        },
        unlockSync() {
          clearInterval(timer)
          fs.closeSync(fd)
          fs.unlinkSync(file)
        },
        async unlock() {
          this.unlockSync()
        },
      }
    }
    default:
      throw new Error(`unknown library ${name}`)
  }
}

function nanos() {
  return BigInt(Math.round(now() * 1000)) * 1000n
}

async function main() {
  switch (role) {
    // Takes the lock and keeps it until told `release` (or killed).
    case 'hold': {
      const lib = makeLib(args.lib, args.path)
      await lib.lock()
      say(`READY ${now()}`)
      for (;;) {
        const cmd = await nextCommand()
        if (cmd === 'release') {
          lib.unlockSync()
          say(`RELEASED ${now()}`)
        }
      }
    }

    // Takes the lock (waiting up to `wait` ms) on each `go`, reports when, then lets it go.
    case 'contend': {
      const lib = makeLib(args.lib, args.path)
      say('READY')
      for (;;) {
        const cmd = await nextCommand()
        if (cmd !== 'go') continue
        try {
          await lib.lock(args.wait)
          const at = now()
          await lib.unlock()
          say(`ACQUIRED ${at}`)
        } catch (err) {
          say(`FAILED ${JSON.stringify(String(err && err.message))}`)
        }
      }
    }

    // Either side of a hand-over: `take` (once), `wait` (until free), `release`.
    case 'agent': {
      const lib = makeLib(args.lib, args.path)
      say('READY')
      for (;;) {
        const cmd = await nextCommand()
        if (cmd === 'take') {
          await lib.lock()
          say('TAKEN')
        } else if (cmd === 'wait') {
          const p = lib.lock(Infinity)
          say('WAITING')
          await p
          say(`ACQUIRED ${now()}`)
        } else if (cmd === 'release') {
          const calledAt = now()
          lib.unlockSync()
          say(`RELEASED ${now()} ${calledAt}`)
        }
      }
    }

    // Holds `n` locks (one file each in `dir`); `count` asks how many it still holds. The
    // parent reads its CPU time and memory from /proc, so that measuring costs nothing here.
    case 'idle': {
      const { PidLock } = require(args.entry)
      const locks = []
      for (let i = 0; i < args.n; i++) {
        const l = new PidLock(path.join(args.dir, `idle-${i}.lock`))
        l.acquireSync()
        locks.push(l)
      }
      say('READY')
      for (;;) {
        const cmd = await nextCommand()
        if (cmd === 'count') say(`HELD ${locks.filter((l) => l.held).length}`)
      }
    }

    // Acquires and releases as fast as it can from `go <start> <end>` until `end`.
    case 'throughput': {
      const lib = makeLib(args.lib, args.path)
      say('READY')
      let cmd
      do cmd = await nextCommand()
      while (!cmd.startsWith('go '))
      const [, start, end] = cmd.split(' ').map(Number)
      while (now() < start);
      let count = 0
      while (now() < end) {
        await lib.lock(Infinity)
        const inTime = now() < end
        await lib.unlock()
        if (inTime) count++
      }
      say(`COUNT ${count}`)
      for (;;) await nextCommand()
    }

    default:
      throw new Error(`unknown role ${role}`)
  }
}

main().catch((err) => {
  say(`ERROR ${JSON.stringify(String(err && err.stack))}`)
  process.exit(1)
})
