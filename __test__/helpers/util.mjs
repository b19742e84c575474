// Shared helpers for the Node tests: temp directories, child processes that print event lines,
// hand-made lease files, facts about processes read from /proc, and which platform runs them.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
export const repoRoot = path.resolve(here, '..', '..')
export const libCjs = path.join(repoRoot, 'lib', 'index.js')
export const libMjs = path.join(repoRoot, 'lib', 'index.mjs')
export const libMjsUrl = pathToFileURL(libMjs).href
export const holderScript = path.join(here, 'holder.mjs')
export const fixturesDir = path.join(here, '..', 'fixtures', 'go-seed')

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export const isWindows = process.platform === 'win32'

/**
 * Test options for a test that is POSIX by nature (signals other than a kill, FIFOs, file
 * modes, `sh`, /proc): skipped on Windows with `reason` printed in the report. Spread into
 * other options: `{ timeout: 30_000, ...posixOnly('SIGSTOP') }`.
 */
export function posixOnly(reason) {
  return isWindows ? { skip: `POSIX only: ${reason}` } : {}
}

/** Test options for a test that does not apply on Windows, for `reason` (printed when skipped). */
export function notOnWindows(reason) {
  return isWindows ? { skip: `not on Windows: ${reason}` } : {}
}

/** Whether this is Wine (the CI's Windows lane, scripts/windows-lane.sh, exports WINEPREFIX). */
export const underWine = isWindows && process.env.WINEPREFIX !== undefined

/** Test options for Windows behaviour that Wine does not reproduce, skipped there with `reason`. */
export function notUnderWine(reason) {
  return underWine ? { skip: `not under Wine: ${reason}` } : {}
}

/** Why a test that creates symbolic links does not run on Windows. */
export const SYMLINKS = 'creating a symbolic link needs a privilege there (and Wine 8 has none)'

/** Why a test that replaces a held lock file by renaming over it is POSIX only. */
export const RENAME_OVER_OPEN = 'replaces the held file by renaming over it, which Windows refuses while the holder has it open'

/** Test options for a test of Windows behaviour, skipped elsewhere with the reason printed. */
export function windowsOnly(reason) {
  return isWindows ? {} : { skip: `Windows only: ${reason}` }
}

/**
 * The command the ELOCKHELD text offers to stop the holder `pid`: offered only for a holder
 * proven to hold the lock file (lib/proof.js): from /proc on Linux, through libproc on macOS,
 * from the kernel's lists of open files on Windows (under Wine too).
 */
export function stopCommand(pid) {
  if (process.platform === 'linux' || process.platform === 'darwin') return `kill ${pid}`
  return isWindows ? `taskkill /PID ${pid} /F` : null
}

export function assertStopHint(message, pid) {
  const hint = stopCommand(pid)
  if (hint === null) {
    if (/stop it:/.test(message)) throw new Error(`a stop hint for an unproven holder:\n${message}`)
  } else if (!message.includes(`stop it: ${hint}`)) {
    throw new Error(`no "stop it: ${hint}" in:\n${message}`)
  }
}

/**
 * Ends a child process for good. On POSIX that is SIGKILL, after SIGCONT in case the test
 * stopped it (a stopped process does not die until it runs). Windows has no signals: Node's
 * kill() there is TerminateProcess whatever the name, and SIGCONT would throw.
 */
export function killHard(proc) {
  try {
    if (!isWindows) proc.kill('SIGCONT')
    proc.kill('SIGKILL')
  } catch {}
}

/**
 * A fresh temp directory, removed when the test ends. `after` hooks run in the order they were
 * added, so this one runs before the hooks that kill the test's children; it ends them itself
 * first, because a child still writing can make the removal fail (and on Windows a file that a
 * live process holds open cannot be removed at all). A hook that throws would skip the later
 * hooks, so the removal retries, and never throws.
 */
export function tempDir(t, prefix = 'leaselock-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.after(async () => {
    await stopChildren()
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
    } catch (err) {
      t.diagnostic(`could not remove ${dir}: ${err.message}`)
    }
  })
  return dir
}

/** Polls `check` until it returns a truthy value (for state that has no event to await). */
export async function waitUntil(check, { timeout = 10_000, interval = 10, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
    await sleep(interval)
  }
}

const children = new Set()
process.on('exit', () => {
  for (const c of children) killHard(c.proc)
})

/** Kills every child still running and waits until each has exited. */
async function stopChildren() {
  const live = [...children]
  for (const c of live) c.kill()
  await Promise.all(live.map((c) => c.closed))
}

/**
 * A child process whose stdout lines can be awaited: `await child.line('ACQUIRED')` returns the
 * parsed JSON after the tag (or the raw rest) of the first not yet consumed line with that tag.
 */
export class Child {
  constructor(args, { env, cwd, t, stdin = 'pipe' } = {}) {
    this.proc = spawn(process.execPath, args, {
      cwd: cwd ?? repoRoot,
      env: { ...process.env, ...env },
      stdio: [stdin, 'pipe', 'pipe'],
    })
    this.pid = this.proc.pid
    this.lines = []
    this.consumed = new Set()
    this.waiters = []
    this.stderr = ''
    this.stdout = ''
    children.add(this)
    let buf = ''
    this.proc.stdout.setEncoding('utf8')
    this.proc.stdout.on('data', (chunk) => {
      this.stdout += chunk
      buf += chunk
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        this.lines.push(line)
        this.#wake()
      }
    })
    this.proc.stderr.setEncoding('utf8')
    this.proc.stderr.on('data', (chunk) => {
      this.stderr += chunk
    })
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exitInfo = { code, signal }
        resolve({ code, signal })
      })
    })
    this.closed = new Promise((resolve) => {
      this.proc.on('close', (code, signal) => {
        children.delete(this)
        this.#wake()
        resolve({ code, signal })
      })
    })
    if (this.proc.stdin) this.proc.stdin.on('error', () => {})
    if (t) t.after(() => this.kill())
  }

  #wake() {
    for (const w of [...this.waiters]) w()
  }

  #find(tag) {
    for (let i = 0; i < this.lines.length; i++) {
      if (this.consumed.has(i)) continue
      const line = this.lines[i]
      if (line === tag || line.startsWith(tag + ' ')) {
        this.consumed.add(i)
        const rest = line.slice(tag.length + 1)
        try {
          return { value: rest ? JSON.parse(rest) : null }
        } catch {
          return { value: rest }
        }
      }
    }
    return null
  }

  /** The tag's lines seen so far (not consuming them). */
  count(tag) {
    return this.lines.filter((l) => l === tag || l.startsWith(tag + ' ')).length
  }

  line(tag, timeout = 15_000) {
    const found = this.#find(tag)
    if (found) return Promise.resolve(found.value)
    return new Promise((resolve, reject) => {
      const waiter = () => {
        const hit = this.#find(tag)
        if (hit) {
          done()
          resolve(hit.value)
        } else if (!children.has(this)) {
          done()
          reject(new Error(`child ${this.pid} ended without a ${tag} line (exit ${JSON.stringify(this.exitInfo)}); stdout:\n${this.stdout}\nstderr:\n${this.stderr}`))
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`timed out waiting for ${tag} from child ${this.pid}; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`))
      }, timeout)
      const done = () => {
        clearTimeout(timer)
        this.waiters = this.waiters.filter((w) => w !== waiter)
      }
      this.waiters.push(waiter)
      if (!children.has(this)) waiter()
    })
  }

  send(cmd) {
    this.proc.stdin.write(cmd + '\n')
  }

  signal(sig) {
    process.kill(this.pid, sig)
  }

  kill() {
    if (this.exitInfo) return
    killHard(this.proc)
  }
}

/** Starts `holder.mjs` with a config (see that file for the protocol). */
export function holder(t, config, { execArgv = [], env } = {}) {
  return new Child([...execArgv, holderScript, JSON.stringify(config)], { t, env })
}

/**
 * Runs an ES module script given as text in a child; `PidLock` (and `lib`, the whole module) are
 * already imported. Returns the Child.
 */
export function script(t, code, { execArgv = [], env, args = [] } = {}) {
  const prelude = `import * as lib from ${JSON.stringify(libMjsUrl)}; const { PidLock } = lib; const args = process.argv.slice(1);\n`
  return new Child([...execArgv, '--input-type=module', '-e', prelude + code, '--', ...args], {
    t,
    env,
    stdin: 'ignore',
  })
}

/** Go's record, byte for byte as Go's json.Marshal writes it. */
export function goLease({ ownerID = 'go-owner-1', pid = process.pid, hb = Date.now() } = {}) {
  const nanos = typeof hb === 'bigint' ? hb : BigInt(Math.round(hb)) * 1_000_000n
  return `{"version":1,"ownerID":${JSON.stringify(ownerID)},"pid":${pid},"lastHeartbeatUnixNano":${nanos}}\n`
}

/** A record with our identity fields; `identity` is { hostname, bootId, pidNamespace, processStart }. */
export function ourLease({ ownerID = 'our-owner-1', pid, hb = Date.now(), identity, extra = {} }) {
  const nanos = BigInt(Math.round(hb)) * 1_000_000n
  const fields = [
    `"version":1`,
    `"ownerID":${JSON.stringify(ownerID)}`,
    `"pid":${pid}`,
    `"lastHeartbeatUnixNano":${nanos}`,
  ]
  for (const [k, v] of Object.entries({ ...identity, ...extra })) if (v !== undefined) fields.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`)
  return `{${fields.join(',')}}\n`
}

/** Field 22 of /proc/<pid>/stat: the process start time in clock ticks since boot. */
export function procStart(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const afterComm = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // afterComm[0] is field 3 (state), so field 22 is afterComm[19].
  return afterComm[19]
}

/** This host's identity as the package records it: hostname, boot id, PID and time namespaces. */
export function hostIdentity() {
  let timeNamespace = ''
  try {
    timeNamespace = String(fs.statSync('/proc/self/ns/time').ino)
  } catch {}
  return {
    hostname: os.hostname(),
    bootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    pidNamespace: String(fs.statSync('/proc/self/ns/pid').ino),
    timeNamespace,
  }
}

/** Parses the lock file at `p`, or returns null when it is missing. */
/**
 * The names in a lock's directory, without the fencing-token counters (`.<lock name>.token`),
 * which stay beside their locks for good: what the "nothing left behind" checks compare.
 */
export function lockDirEntries(dir) {
  return fs.readdirSync(dir).filter((n) => !/^\..+\.token$/.test(n))
}

export function readLease(p) {
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8'))
  } catch (err) {
    if (err.code === 'ENOENT') return null
    throw err
  }
}

export function exists(p) {
  try {
    fs.lstatSync(p)
    return true
  } catch {
    return false
  }
}

/** Sets a file's mtime `ms` milliseconds into the past. */
export function age(p, ms) {
  const when = new Date(Date.now() - ms)
  fs.utimesSync(p, when, when)
}
