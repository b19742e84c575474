'use strict'
// Locks on a lease store (Redis/Valkey) instead of a lock file: `new PidLock(key, { store })`.
// This file adapts the native store lock to the shape `PidLock` drives for file locks (the
// same outcomes, records and notices), so `PidLock` keeps one code path. Every store call is a
// promise settled from the native runtime, or, for an uncontended acquire and a release, from
// this environment's own connection (store-direct.js); nothing here blocks the JS thread on
// the network.

const { NativeStoreLock, StoreCancelToken } = require('./native.js').binding
const direct = require('./store-direct.js')

const SCHEMES = ['redis:', 'rediss:', 'valkey:', 'valkeys:', 'unix:', 'redis+unix:', 'valkey+unix:']
const KEY_LIMIT = 512
/** The default `ELOCKHELD` text of a lock on a store (a file lock's is the Go text). */
const HELD_TEXT = 'lock is already held by another process'

function argError(Ctor, code, message) {
  const e = new Ctor(message)
  e.code = code
  return e
}

/** Checks `options.store`; returns the URL. */
function storeUrl(value) {
  if (typeof value !== 'string') {
    return argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "options.store" property must be of type string (a redis:// URL). Received ${value === null ? 'null' : typeof value}`)
  }
  const scheme = value.slice(0, value.indexOf(':') + 1).toLowerCase()
  if (!SCHEMES.includes(scheme)) {
    return argError(TypeError, 'ERR_INVALID_ARG_VALUE', `The property 'options.store' must be a URL with one of the schemes ${SCHEMES.join(' ')}. Received a string starting with ${JSON.stringify(value.slice(0, 12))}`)
  }
  return value
}

/** Checks a store lock's key (the `path` argument of a file lock). */
function storeKey(key) {
  if (typeof key !== 'string') {
    return argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "key" argument must be of type string for a lock on a store. Received ${key === null ? 'null' : typeof key}`)
  }
  // A lone surrogate has no UTF-8 form: two such keys would name one lock.
  if (key.length === 0 || Buffer.byteLength(key) > KEY_LIMIT || /[{}\0]|\p{Cs}/u.test(key)) {
    return argError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'key' must be 1 to ${KEY_LIMIT} bytes of well-formed text without '{', '}' or null bytes (the braces mark the Redis Cluster hash tag). Received ${JSON.stringify(key.slice(0, 28))}`)
  }
  return key
}

function syncError(method) {
  return argError(Error, 'ERR_LOCK_STORE_SYNC', `${method}() cannot be used with a lock on a store: it would block the thread on the network. Use the promise method instead.`)
}

/** A native URL refusal (bad URL, TLS not built in) as a Node-style argument error. */
function openError(err) {
  return argError(TypeError, 'ERR_INVALID_ARG_VALUE', `The property 'options.store' is invalid: ${err.message}`)
}

// Each native store call starts its work on the store thread and returns at once; its outcome
// comes back through `settle` with the call's id. While calls are in flight a timer that never
// fires keeps Node alive, as the pending promise of any I/O would; none is left when idle.
const inFlight = new Map()
let lastId = 0
let keepAlive = null

function settle(outcome) {
  const resolve = inFlight.get(outcome.id)
  if (resolve === undefined) return
  inFlight.delete(outcome.id)
  if (inFlight.size === 0) {
    clearInterval(keepAlive)
    keepAlive = null
  }
  resolve(outcome)
}

/** A promise of the outcome of `start(id)`, a native store call. */
function call(start) {
  return new Promise((resolve, reject) => {
    lastId = lastId >= 0x7fffffff ? 1 : lastId + 1
    const id = lastId
    try {
      start(id)
    } catch (err) {
      reject(err)
      return
    }
    inFlight.set(id, resolve)
    if (keepAlive === null) keepAlive = setInterval(noop, 0x7fffffff)
  })
}

function noop() {}

/** A stored holder as the record `holderFromRecord` reads, with the token added. */
function record(h) {
  if (!h) return null
  return { ...h.record, token: h.token ?? null, ttlLeft: h.ttlLeft ?? null }
}

/**
 * A store failure in the shape of a file lock failure (the holder, with its token, inside; none
 * for a value that is not a lease, as for a lock file's content).
 */
function failure(out) {
  if (!out.failure) return null
  const holder = record(out.holder)
  return { ...out.failure, holder: holder?.valid ? holder : null, onStore: true }
}

/**
 * Cancels a waiting acquisition. The native token is made only for the store thread's path (an
 * acquisition answered on the fast path never needs it, and making one costs more than the rest
 * of the call).
 */
class Cancel {
  #native = null
  cancelled = false

  cancel() {
    this.cancelled = true
    this.#native?.cancel()
  }

  native() {
    if (this.#native === null) {
      this.#native = new StoreCancelToken()
      if (this.cancelled) this.#native.cancel()
    }
    return this.#native
  }
}

/** What `StoreBackend#acquire` answers when this instance already holds the lock. */
const ALREADY_HELD = Object.freeze({ reclaimed: null })

/** The native store lock, driven by `PidLock` exactly like the native file lock. */
class StoreBackend {
  #native
  #url

  constructor(url, key, heartbeatInterval, staleThreshold) {
    this.#url = url
    try {
      this.#native = new NativeStoreLock(url, key, { heartbeatInterval, staleThreshold }, settle)
    } catch (err) {
      throw openError(err)
    }
  }

  get held() {
    return this.#native.held
  }

  newCancelToken() {
    return new Cancel()
  }

  /** Answers as the file engine does: an outcome `{ reclaimed, token, failure }`. */
  acquire(timeout, metadata, cancel, onLost) {
    // The first claim goes on this environment's own connection when it can (store-direct.js);
    // none is made while this instance holds the lock.
    const conn = direct.connection(this.#url)
    const request = conn === null || cancel?.cancelled ? null : this.#native.directClaim(metadata)
    if (request === null && this.#native.held) return ALREADY_HELD
    const lost = onLost
      ? (info) => onLost({ reason: info.reason, newOwner: record(info.newOwner), error: info.error ?? null, at: info.at })
      : null
    if (request === null) return this.#acquire(timeout, metadata, cancel, lost)
    return conn.request(request).then((reply) => {
      const token = this.#native.directClaimed(reply, lost)
      if (token === null) {
        direct.counts.fallbacks++
        return this.#acquire(timeout, metadata, cancel, lost)
      }
      direct.counts.claims++
      return { reclaimed: null, token, failure: null }
    })
  }

  #acquire(timeout, metadata, cancel, lost) {
    return call((id) => this.#native.acquire(id, timeout, metadata, cancel?.native() ?? null, lost)).then((out) => ({ reclaimed: out.failure ? null : record(out.holder), token: out.token, failure: failure(out) }))
  }

  /** Answers as the file engine does: whether our lease was removed, or the failure. */
  release() {
    const conn = direct.connection(this.#url)
    const request = conn === null ? null : this.#native.directRelease()
    if (request === null) return this.#release()
    return conn.request(request).then((reply) => {
      const removed = this.#native.directReleased(reply)
      if (removed === null) {
        direct.counts.fallbacks++
        return this.#release()
      }
      direct.counts.releases++
      return removed
    })
  }

  #release() {
    return call((id) => this.#native.release(id)).then((out) => failure(out) ?? out.removed)
  }

  /** Stops holding now; the lease is deleted in the background (or expires by its TTL). */
  abandon() {
    this.#native.abandon()
  }

  update(metadata) {
    return call((id) => this.#native.update(id, metadata)).then(failure)
  }
}

function inspectStore(url, key) {
  return call((id) => {
    try {
      NativeStoreLock.inspect(id, url, key, settle)
    } catch (err) {
      throw openError(err)
    }
  }).then((out) => ({ holder: out.failure ? null : record(out.holder), failure: failure(out) }))
}

module.exports = { ALREADY_HELD, StoreBackend, storeUrl, storeKey, syncError, inspectStore, HELD_TEXT }
