'use strict'
// The public JavaScript API. The lock engine is native (`../index.js` loads it); this file does
// what JavaScript does best and the generated binding cannot express: Node-style argument
// errors, Error objects with codes, Dates, AbortSignal, and the dispose symbols.

const { NativeLock, CancelToken } = require('./native.js').binding
const { listenForStopRequests } = require('./stop-requests.js')
const store = require('./store.js')
const { DEFAULTS, HELD_TEXT } = require('./constants.js')
const {
  typeError,
  rangeError,
  valueError,
  integerOption,
  modeOption,
  booleanOption,
  functionOption,
  lockPath,
  metadataJson,
  timeoutOption,
  invalidContentOption,
  objectArg,
  isAbortSignal,
} = require('./arguments.js')
const { tokenOf, holderFromRecord, nativeError, cancelledByRelease, abortReason } = require('./records.js')
const { onAbort } = require('./abort-listen.js')

const noop = () => {}
const kDispose = Symbol('dispose')

function warn(what, err) {
  process.emitWarning(`leaselock: ${what} threw: ${err && err.stack ? err.stack : String(err)}`, {
    code: 'LEASELOCK_CALLBACK_ERROR',
  })
}

// ---------------------------------------------------------------------------------------------

/**
 * A cross-process lock file with a lease heartbeat. See README.md for the full contract.
 */
class PidLock {
  #native
  #path
  #onLeaseLost
  #alive
  #metadata
  #heldError
  /** Counts releases: a notice for an acquisition released since is dropped. */
  #generation = 0
  /** The cancel tokens of acquires still running: release() cancels them. */
  #waits = new Set()
  /** Async calls on one instance run one after another, in call order. */
  #tail = Promise.resolve()
  #pending = 0
  /** Whether the lock lives on a store (Redis) rather than in a file. */
  #onStore = false
  /** The fencing token of the current acquisition, as its backend reported it (or `null`). */
  #token = null

  constructor(path, options) {
    options = objectArg(options, 'options')
    const url = options.store === undefined ? null : store.storeUrl(options.store)
    if (url instanceof Error) throw url
    const resolved = url === null ? lockPath(path) : store.storeKey(path)
    if (resolved instanceof Error) throw resolved
    const heartbeat = integerOption(options, 'leaseHeartbeatInterval', 1)
    const stale = integerOption(options, 'leaseStaleThreshold', 1)
    if (stale <= heartbeat) {
      throw rangeError(
        'options.leaseStaleThreshold',
        `greater than options.leaseHeartbeatInterval (${heartbeat})`,
        stale,
      )
    }
    const held = options.heldError
    if (held !== undefined && typeof held !== 'string' && !(held instanceof Error)) {
      throw typeError('options.heldError', 'of type string or an instance of Error', held)
    }
    if (typeof held === 'string' && held.length === 0) {
      throw valueError('options.heldError', 'must be a non-empty string', held)
    }
    const retryLimit = integerOption(options, 'acquireRetryLimit', 1, 1e6)
    const retryDelay = integerOption(options, 'acquireRetryDelay', 0)
    const invalidStale = integerOption(options, 'invalidPidLockStaleThreshold', 1)
    const fileMode = modeOption(options, 'fileWriteMode')
    const dirMode = modeOption(options, 'directoryWriteMode')
    const reclaimInvalid = invalidContentOption(options) === 'reclaim'
    const allowUntrustedParents = booleanOption(options, 'allowUntrustedParents')
    this.#onLeaseLost = functionOption(options, 'onLeaseLost')
    this.#alive = functionOption(options, 'processAppearsAlive')
    this.#metadata = metadataJson(options.metadata, 'options.metadata')
    this.#path = resolved
    // A lock on a store is not a file: its default refusal says so.
    this.#heldError = held ?? (url === null ? undefined : store.HELD_TEXT)
    this.#onStore = url !== null
    // Positional: the engine would read an options object one native call per property.
    this.#native = this.#onStore
      ? new store.StoreBackend(url, resolved, heartbeat, stale)
      : new NativeLock(resolved, retryLimit, retryDelay, invalidStale, fileMode, dirMode, heartbeat, stale, reclaimInvalid, allowUntrustedParents)
  }

  /** The absolute path of the lock file; for a lock on a store, its key. */
  get path() {
    return this.#path
  }

  /** The fencing token of the current acquisition while held; `null` when not held or none was given. */
  get token() {
    return this.#native.held ? this.#token : null
  }

  /**
   * The result of an acquisition that succeeded: what it took over, and its token. `out` is
   * the backend's answer: plain success is the token alone (decimal text, or `null` where none
   * was issued), anything more an outcome object `{ reclaimed, token }`.
   */
  #acquired(out) {
    listenForStopRequests()
    if (out === null || typeof out === 'string') {
      this.#token = tokenOf(out)
      return { reclaimed: null, token: this.#token }
    }
    this.#token = tokenOf(out.token)
    return { reclaimed: holderFromRecord(out.reclaimed), token: this.#token }
  }

  /** Whether a backend's answer to an acquire is success (see `#acquired`). */
  static #succeeded(out) {
    return out === null || typeof out === 'string' || !out.failure
  }

  /**
   * Runs `run` after the calls queued before it. The count goes down in the first reaction to
   * the result, so that it is down before any caller's continuation runs (and without the two
   * extra promise jobs a `finally` would add to every call).
   */
  #enqueue(run) {
    this.#pending++
    const settled = () => {
      this.#pending--
    }
    const result = this.#tail.then(run)
    this.#tail = result.then(settled, settled)
    return result
  }

  /** A sync call must not overtake (or wait for) async calls still queued on this instance. */
  #checkIdle(method) {
    if (this.#onStore) throw store.syncError(method)
    if (this.#pending > 0) {
      const e = new Error('another acquire, release or update is still running on this instance')
      e.code = 'ELOCKBUSY'
      e.path = this.#path
      throw e
    }
  }

  /** Whether this instance holds the lock with a lease it can vouch for (no I/O; see index.d.ts). */
  get held() {
    return this.#native.held
  }

  /** The filesystem the lock lives on, once an acquisition looked at it (see index.d.ts). */
  get filesystem() {
    const f = this.#native.filesystem
    return f ? { type: f.type, kind: f.kind, stableInodes: f.stableInodes ?? null } : null
  }

  #callbacks() {
    // Not bumped here: a loss of an earlier acquisition that is still on its way is reported,
    // never swallowed by a later acquire.
    const generation = this.#generation
    const user = this.#onLeaseLost
    // A fresh closure per acquisition: the native side drops it on release or loss, so a
    // callback that refers to this lock does not keep the lock alive after that.
    const onLost = user
      ? (info) => {
          if (generation !== this.#generation) return
          const notice = {
            reason: info.reason,
            path: this.#path,
            newOwner: holderFromRecord(info.newOwner),
            error: info.error ?? null,
            at: new Date(info.at),
          }
          try {
            user.call(undefined, notice)
          } catch (err) {
            warn('onLeaseLost', err)
          }
        }
      : null
    const fn = this.#alive
    const alive = fn
      ? (pid) => {
          try {
            return Boolean(fn(pid))
          } catch (err) {
            warn('processAppearsAlive', err)
            return true
          }
        }
      : null
    return { onLost, alive }
  }

  /**
   * Acquires the lock. Resolves with `{ reclaimed, token }` once held; rejects with `ELOCKHELD` when a
   * live process holds it (after waiting up to `timeout` ms).
   */
  acquire(options) {
    let timeout
    let signal
    try {
      options = objectArg(options, 'options')
      timeout = timeoutOption(options, 'options')
      signal = options.signal
      if (signal !== undefined && !isAbortSignal(signal)) {
        throw typeError('options.signal', 'an instance of AbortSignal', signal)
      }
    } catch (err) {
      return Promise.reject(err)
    }
    if (signal && signal.aborted) return Promise.reject(abortReason(signal))
    // Cancelled by the signal, or by release() on this instance.
    const token = this.#onStore ? this.#native.newCancelToken() : new CancelToken()
    // byRelease: a release() or releaseSync() came after this call; bySync: releaseSync(), which
    // cannot wait its turn, so this acquire ends without trying (one already trying is
    // cancelled natively: a lease it takes meanwhile is given back at once).
    const waitState = { token, byRelease: false, bySync: false }
    this.#waits.add(waitState)
    const stopListening = signal ? onAbort(signal, () => token.cancel()) : null
    const settle = () => {
      this.#waits.delete(waitState)
      if (stopListening) stopListening()
    }
    return this.#enqueue(() => {
      if (signal && signal.aborted) throw abortReason(signal)
      if (waitState.bySync) throw cancelledByRelease()
      const { onLost, alive } = this.#callbacks()
      // A release() called after this acquire() but before it ran cancels its wait: it still
      // takes effect in call order, as a single try (which nothing cancels).
      if (waitState.byRelease) return this.#native.acquire(null, this.#metadata, null, onLost, alive)
      return this.#native.acquire(timeout, this.#metadata, token, onLost, alive)
    }).then(
      (out) => {
        settle()
        // Ended by releaseSync() or `using` while it ran: whatever its try found, the caller
        // has released. A file lock that took the lease first was released by that call; a
        // store's claim can be granted after it (it was on the wire), and is given up now.
        if (waitState.bySync) {
          if (this.#onStore && PidLock.#succeeded(out)) this.#native.abandon()
          throw cancelledByRelease()
        }
        // Already held by this instance: both engines answer at once, and the current
        // acquisition keeps its onLeaseLost; the store backend says so without a token.
        if (out === store.ALREADY_HELD) return { reclaimed: null, token: this.token }
        if (PidLock.#succeeded(out)) return this.#acquired(out)
        if (out.failure.code === 'ABORT_ERR' && waitState.byRelease) throw cancelledByRelease()
        if (out.failure.code === 'ABORT_ERR' && signal) throw abortReason(signal)
        throw nativeError(out.failure, this.#path, this.#heldError)
      },
      (err) => {
        settle()
        throw err
      },
    )
  }

  /** `acquire()` on the JS thread; with a `timeout` it waits natively, blocking the thread. */
  acquireSync(options) {
    options = objectArg(options, 'options')
    const timeout = timeoutOption(options, 'options')
    if (options.signal !== undefined) {
      throw valueError('options.signal', 'is not supported by acquireSync (use acquire)', options.signal)
    }
    this.#checkIdle('acquireSync')
    const { onLost, alive } = this.#callbacks()
    // Busy while native code runs: a processAppearsAlive that calls back into this lock gets
    // ELOCKBUSY rather than waiting on the call that is waiting on it.
    this.#pending++
    let out
    try {
      // The token alone (or null): acquired (or already held by this instance), nothing taken over.
      out = this.#native.acquireSync(timeout, this.#metadata, onLost, alive)
    } finally {
      this.#pending--
    }
    if (!PidLock.#succeeded(out)) throw nativeError(out.failure, this.#path, this.#heldError)
    return this.#acquired(out)
  }

  /**
   * Releases the lock if this instance holds it; never removes another owner's file. Resolves
   * `true` when it removed our lock file, `false` when nothing of ours was there.
   */
  release() {
    // From here on, no notice for the current acquisition reaches onLeaseLost.
    this.#generation++
    this.#cancelWaits()
    return this.#enqueue(() => this.#native.release()).then((out) => {
      if (typeof out === 'boolean') return out
      throw nativeError(out, this.#path, this.#heldError)
    })
  }

  releaseSync() {
    if (this.#onStore) throw store.syncError('releaseSync')
    // Waiting acquires are cancelled; any other call still queued makes this ELOCKBUSY.
    if (this.#pending > this.#waits.size) this.#checkIdle()
    this.#generation++
    this.#cancelWaits(true)
    const out = this.#native.releaseSync()
    if (typeof out === 'boolean') return out
    throw nativeError(out, this.#path, this.#heldError)
  }

  /**
   * `using`: a file lock is released now; a lock on a store stops renewing now and its lease
   * is deleted in the background (a sync call cannot wait for the network).
   */
  [kDispose]() {
    if (!this.#onStore) {
      this.releaseSync()
      return
    }
    this.#generation++
    this.#cancelWaits(true)
    this.#native.abandon()
  }

  /** Cancels every acquire of this instance that has not finished yet. */
  #cancelWaits(bySync = false) {
    for (const wait of this.#waits) {
      wait.byRelease = true
      wait.bySync ||= bySync
      wait.token.cancel()
    }
  }

  /** Replaces the holder metadata in the lease while held (readers see old or new, never a mix). */
  update(metadata) {
    let json
    try {
      json = metadataJson(metadata, 'metadata')
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#enqueue(() => this.#native.update(json)).then((failure) => {
      if (failure) throw nativeError(failure, this.#path, this.#heldError)
      this.#metadata = json
    })
  }

  updateSync(metadata) {
    const json = metadataJson(metadata, 'metadata')
    this.#checkIdle('updateSync')
    const failure = this.#native.updateSync(json)
    if (failure) throw nativeError(failure, this.#path, this.#heldError)
    this.#metadata = json
  }

  /** Who holds the lock at `path`, without taking it; `null` when it is free. */
  static inspect(path, options) {
    let args
    try {
      args = inspectArgs(path, options)
    } catch (err) {
      return Promise.reject(err)
    }
    if (args.url !== null) return store.inspectStore(args.url, args.key).then((out) => inspected(out, args.key))
    return NativeLock.inspect(...args).then((out) => inspected(out, args[0]))
  }

  static inspectSync(path, options) {
    const args = inspectArgs(path, options)
    if (args.url !== null) throw store.syncError('inspectSync')
    return inspected(NativeLock.inspectSync(...args), args[0])
  }
}

function inspectArgs(path, options) {
  options = objectArg(options, 'options')
  if (options.store !== undefined) {
    const url = store.storeUrl(options.store)
    if (url instanceof Error) throw url
    const key = store.storeKey(path)
    if (key instanceof Error) throw key
    return Object.assign([], { url, key })
  }
  const args = [
    lockPath(path),
    integerOption(options, 'leaseStaleThreshold', 1),
    integerOption(options, 'invalidPidLockStaleThreshold', 1),
    invalidContentOption(options) === 'reclaim',
    booleanOption(options, 'allowUntrustedParents'),
  ]
  args.url = null
  return args
}

function inspected(out, path) {
  if (out.failure) throw nativeError(out.failure, path, null)
  return holderFromRecord(out.holder)
}

if (typeof Symbol.asyncDispose === 'symbol') {
  Object.defineProperty(PidLock.prototype, Symbol.asyncDispose, {
    value: function asyncDispose() {
      return this.release().then(noop)
    },
    writable: true,
    configurable: true,
  })
}
if (typeof Symbol.dispose === 'symbol') {
  Object.defineProperty(PidLock.prototype, Symbol.dispose, {
    value: function dispose() {
      this[kDispose]()
    },
    writable: true,
    configurable: true,
  })
}

module.exports = { PidLock, DEFAULTS, HELD_TEXT, ...require('./with-lock.js').makeWithLock(PidLock) }
