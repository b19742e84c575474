'use strict'
// What the Vite plugin, the webpack plugin and the `leaselock` command share: the override
// switch, the refusal message a person reads, the lost-lease policy, and one lock per path per
// process (so a dev server that restarts inside the same process keeps its own lock).

const nodePath = require('node:path')
const fs = require('node:fs')
const { PidLock } = require('./index.js')
const { ago, formatRows, holderLines, holderUrl } = require('./holder.js')
const { safeText } = require('./sanitize.js')

const ALLOW_ENV = 'LEASELOCK_ALLOW_MULTIPLE'
const METADATA_LIMIT = 4096
const inspectCustom = Symbol.for('nodejs.util.inspect.custom')

/** The override: the option wins; otherwise `LEASELOCK_ALLOW_MULTIPLE=1` (or `true`/`yes`). */
function allowMultiple(option) {
  if (option === true || option === false) return option
  const env = process.env[ALLOW_ENV]
  return env !== undefined && /^(1|true|yes|on)$/i.test(env.trim())
}

/**
 * The message printed when a second instance is refused.
 * `what`: "Vite dev server", "webpack dev server", ...; `override`: how to start one anyway.
 */
function refusalMessage({ what, holder, lockPath, projectDir, override }) {
  const head = holder
    ? `Another ${what} is already running for this project (pid ${safeText(holder.pid)}${holderUrl(holder) ? `, ${holderUrl(holder)}` : ''}).`
    : `Another ${what} is starting for this project: its lock file is being written.`
  const advice = holder
    ? holderUrl(holder)
      ? 'Use the running one (open its URL), or stop it first.'
      : 'Use the running one, or stop it first.'
    : 'Try again in a moment.'
  const lines = [head, formatRows(holderLines(holder, lockPath, projectDir)), advice]
  if (override) lines.push(`To start a second one on purpose: ${override}.`)
  return lines.join('\n')
}

/**
 * An `ELOCKHELD` error whose message is the refusal text. Printed with `util.inspect` (as the
 * Vite and webpack CLIs do), it shows only that text: a refusal is not a crash, a stack trace
 * would only bury the line a person needs.
 */
function refusalError(cause, context) {
  const message = refusalMessage({ ...context, holder: cause.holder ?? null, lockPath: cause.path })
  const err = new Error(message, { cause })
  err.code = 'ELOCKHELD'
  err.path = cause.path
  err.holder = cause.holder ?? null
  Object.defineProperty(err, inspectCustom, { value: () => message, enumerable: false })
  return err
}

function isHeld(err) {
  return Boolean(err && err.code === 'ELOCKHELD')
}

const REASONS = {
  'owner-changed': 'another process took it over',
  removed: 'the lock file was removed or replaced',
  'heartbeat-failed': 'its heartbeat kept failing',
}

/** The warning for a lost lease: what happened, who has it now, what to do. */
function leaseLostMessage(what, info) {
  const reason = REASONS[info.reason] || info.reason
  let now = ''
  const owner = info.newOwner
  if (owner && owner.valid) {
    const url = holderUrl(owner)
    now = ` It now belongs to pid ${safeText(owner.pid)}${url ? ` (${url})` : ''}.`
  }
  const err = info.error ? ` (${safeText(info.error, 1000)})` : ''
  return `leaselock: this ${what} lost its lock ${safeText(info.path, 4096)}: ${safeText(reason)}${err}.${now} Another instance may start for this project now; restart this one to guard it again.`
}

/** Keeps metadata under the lease's size cap by dropping the least useful fields first. */
function fitMetadata(md) {
  const out = { ...md }
  const droppable = ['argv', 'urls', 'cwd', 'commandLine']
  for (;;) {
    if (Buffer.byteLength(JSON.stringify(out)) <= METADATA_LIMIT) return out
    const key = droppable.find((k) => k in out)
    if (!key) return { pid: process.pid }
    delete out[key]
  }
}

/** The directory of the nearest package.json at or above `dir`, or `dir` itself. */
function packageRoot(dir) {
  let cur = nodePath.resolve(dir)
  for (;;) {
    if (fs.existsSync(nodePath.join(cur, 'package.json'))) return cur
    const up = nodePath.dirname(cur)
    if (up === cur) return nodePath.resolve(dir)
    cur = up
  }
}

/** The command line of this process, as a person would type it (`vite --port 3000`). */
function commandLine() {
  const script = process.argv[1] ? nodePath.basename(process.argv[1]).replace(/\.(c|m)?js$/, '') : 'node'
  return [script, ...process.argv.slice(2)].map(quoteArg).join(' ')
}

function quoteArg(a) {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${String(a).replace(/'/g, `'\\''`)}'`
}

// ---------------------------------------------------------------------------------------------
// One lock per path per process. Vite restarts its dev server inside the same process (config
// change, `r` in the terminal): the new server is created while the old one still runs, so it
// must join the old one's lock instead of being refused by it.

const held = new Map()

/**
 * A hold on the lock at `path`, for one server instance.
 * - `acquire()` takes the lock, or joins this process's lock when `share()` says so;
 *   it rejects with the underlying `ELOCKHELD` error when another instance holds it.
 * - `release()` lets go; the lock is released when the last hold in this process goes.
 */
class Hold {
  #entry = null
  #released = false

  constructor(path, { lockOptions, metadata, onLost }) {
    this.path = nodePath.resolve(path)
    this.lockOptions = lockOptions || {}
    this.metadata = fitMetadata(metadata || {})
    this.onLost = onLost
  }

  /** Marks the lock at `path` as handed over by a restart while `fn` runs. */
  static async restarting(path, fn) {
    const e = held.get(nodePath.resolve(path))
    if (e) e.restarting++
    try {
      return await fn()
    } finally {
      if (e) e.restarting--
    }
  }

  #newEntry() {
    const entry = { lock: null, holds: new Set(), restarting: 0 }
    entry.lock = new PidLock(this.path, {
      ...this.lockOptions,
      metadata: this.metadata,
      onLeaseLost: (info) => {
        if (held.get(this.path) === entry) held.delete(this.path)
        // The newest hold speaks for the server that runs now.
        const last = [...entry.holds].pop()
        entry.holds.clear()
        if (last && last.onLost) last.onLost(info)
      },
    })
    return entry
  }

  #join(entry) {
    entry.holds.add(this)
    this.#entry = entry
  }

  /** Takes the lock (waiting up to `wait` ms). */
  async acquire(wait = 0) {
    const existing = held.get(this.path)
    if (existing && existing.lock.held && existing.restarting > 0) {
      this.#join(existing)
      return
    }
    const entry = this.#newEntry()
    // Another hold of this process owns the lock and no restart is going on: this is a second
    // server in the same process, refused like one in another process.
    await entry.lock.acquire({ timeout: wait })
    held.set(this.path, entry)
    this.#join(entry)
  }

  acquireSync(wait = 0) {
    const existing = held.get(this.path)
    if (existing && existing.lock.held && existing.restarting > 0) {
      this.#join(existing)
      return
    }
    const entry = this.#newEntry()
    entry.lock.acquireSync({ timeout: wait })
    held.set(this.path, entry)
    this.#join(entry)
  }

  get held() {
    return Boolean(this.#entry && this.#entry.lock.held && !this.#released)
  }

  /** Merges `patch` into the metadata; quietly does nothing once the lock is gone. */
  async update(patch) {
    this.metadata = fitMetadata({ ...this.metadata, ...patch })
    const e = this.#entry
    if (!e || !e.lock.held || this.#released) return
    try {
      await e.lock.update(this.metadata)
    } catch (err) {
      if (err.code !== 'ELOCKNOTHELD') throw err
    }
  }

  updateSync(patch) {
    this.metadata = fitMetadata({ ...this.metadata, ...patch })
    const e = this.#entry
    if (!e || !e.lock.held || this.#released) return
    try {
      e.lock.updateSync(this.metadata)
    } catch (err) {
      if (err.code !== 'ELOCKNOTHELD') throw err
    }
  }

  #leave() {
    const e = this.#entry
    if (!e || this.#released) return null
    this.#released = true
    e.holds.delete(this)
    if (e.holds.size > 0) return null
    if (held.get(this.path) === e) held.delete(this.path)
    return e.lock
  }

  async release() {
    const lock = this.#leave()
    if (lock) await lock.release()
  }

  releaseSync() {
    const lock = this.#leave()
    if (lock) lock.releaseSync()
  }
}

module.exports = {
  ALLOW_ENV,
  allowMultiple,
  ago,
  commandLine,
  fitMetadata,
  holderLines,
  formatRows,
  isHeld,
  leaseLostMessage,
  packageRoot,
  quoteArg,
  refusalError,
  refusalMessage,
  Hold,
}
