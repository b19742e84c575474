'use strict'
// One lock per path per process, shared by the servers of that process. Vite restarts its dev
// server inside the same process (config change, `r` in the terminal): the new server is created
// while the old one still runs, so it must join the old one's lock instead of being refused by it.

const nodePath = require('node:path')
const { PidLock } = require('./index.js')
const { fitMetadata } = require('./command-line.js')
const { register, unregister } = require('./registry.js')

const held = new Map()

/**
 * A hold on the lock at `path`, for one server instance.
 * - `acquire()` takes the lock, or joins this process's lock while a restart hands it over;
 *   it rejects with the underlying `ELOCKHELD` error when another instance holds it.
 * - `release()` lets go; the lock is released when the last hold in this process goes.
 */
class Hold {
  #entry = null
  #released = false

  constructor(path, { lockOptions, metadata, onLost, tool }) {
    this.path = nodePath.resolve(path)
    this.tool = tool || null
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
        unregister(this.path)
        // The newest hold speaks for the server that runs now.
        const last = [...entry.holds].pop()
        entry.holds.clear()
        if (last && last.onLost) last.onLost(info)
      },
    })
    return entry
  }

  #took(entry) {
    held.set(this.path, entry)
    this.#join(entry)
    register(this.path, this.tool)
  }

  #join(entry) {
    entry.holds.add(this)
    this.#entry = entry
    this.#released = false
  }

  /** The entry a restart hands over, or null. A lock lost meanwhile is not handed over. */
  #handedOver() {
    const existing = held.get(this.path)
    return existing && existing.lock.held && existing.restarting > 0 ? existing : null
  }

  /**
   * Takes the lock (waiting up to `wait` ms). Resolves with what it took over (see
   * `PidLock#acquire`); `{ reclaimed: null }` when it joined this process's lock.
   */
  async acquire(wait = 0, signal = undefined) {
    const existing = this.#handedOver()
    if (existing) {
      this.#join(existing)
      return { reclaimed: null }
    }
    // Another hold of this process owns the lock and no restart is going on: this is a second
    // server in the same process, refused like one in another process.
    const entry = this.#newEntry()
    const out = await entry.lock.acquire(signal ? { timeout: wait, signal } : { timeout: wait })
    this.#took(entry)
    return out
  }

  acquireSync(wait = 0) {
    const existing = this.#handedOver()
    if (existing) {
      this.#join(existing)
      return { reclaimed: null }
    }
    const entry = this.#newEntry()
    const out = entry.lock.acquireSync({ timeout: wait })
    this.#took(entry)
    return out
  }

  /** After a lost lease: takes the lock again if it is free now. Resolves true when it did. */
  async retake() {
    if (this.#released) return false
    try {
      await this.acquire(0)
      return true
    } catch {
      return false
    }
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
    unregister(this.path)
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

module.exports = { Hold }
