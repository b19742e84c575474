'use strict'
// What the engine reports, shaped for JavaScript: holder records (Dates, parsed metadata, the
// fencing token as a bigint) and Error objects with codes.

const { formatRows, holderLines } = require('./holder.js')

function date(ms) {
  return ms === undefined || ms === null ? null : new Date(ms)
}

/**
 * The fencing token a backend reports (a record's, or an acquisition's outcome), as a bigint;
 * `null` where the backend keeps none. The one place tokens enter the JS surface.
 */
function tokenOf(value) {
  return value === undefined || value === null ? null : BigInt(value)
}

/**
 * A holder record as JSON: the token as decimal text, since JSON has no bigint and
 * `JSON.stringify` throws on one (a logger serialising an ELOCKHELD error's `holder`, say).
 */
function recordToJSON() {
  return { ...this, token: this.token === null ? null : String(this.token) }
}

function holderFromRecord(r) {
  if (!r) return null
  const holder = fileHolder(r)
  holder.token = tokenOf(r.token)
  Object.defineProperty(holder, 'toJSON', { value: recordToJSON })
  return holder
}

function fileHolder(r) {
  if (!r.valid) {
    return withTakeover({
      valid: false,
      pid: null,
      ownerId: null,
      hostname: null,
      startedAt: null,
      lastHeartbeat: null,
      metadata: null,
      alive: 'unknown',
      stale: r.stale,
      size: r.size ?? 0,
      modifiedAt: date(r.modifiedAt),
    }, r)
  }
  let metadata = null
  if (r.metadata !== undefined && r.metadata !== null) {
    try {
      metadata = JSON.parse(r.metadata)
    } catch {
      metadata = null
    }
  }
  const holder = {
    valid: true,
    pid: r.pid,
    ownerId: r.ownerId,
    hostname: r.hostname ?? null,
    startedAt: date(r.startedAt),
    lastHeartbeat: date(r.lastHeartbeat),
    metadata,
    alive: r.alive === 'alive' ? true : r.alive === 'dead' ? false : 'unknown',
    stale: r.stale,
  }
  if (r.metadataDropped) holder.metadataDropped = r.metadataDropped
  return withTakeover(holder, r)
}

/** From `inspect`: whether this process could take the lock over, and what stops it. */
function withTakeover(holder, r) {
  if (r.canTakeOver === undefined || r.canTakeOver === null) return holder
  holder.canTakeOver = r.canTakeOver
  holder.blockedBy = r.blocked ? { path: r.blocked.path, owner: r.blocked.owner ?? null, message: r.blocked.message } : null
  return holder
}

function heldError(failure, path, custom) {
  const holder = holderFromRecord(failure.holder)
  const base = custom instanceof Error ? custom.message : custom ?? failure.message
  const first = holder ? `${base} (pid ${holder.pid})` : `${base} (owner unavailable)`
  const message = `${first}\n${formatRows(holderLines(holder, path, null, { onStore: failure.onStore }))}`
  const err = custom instanceof Error ? new Error(message, { cause: custom }) : new Error(message)
  err.code = 'ELOCKHELD'
  err.path = path
  err.holder = holder
  return err
}

/**
 * `ELOCKNOTLEASE`: the file at the lock path is not a lock, or the file at its fencing-token
 * counter's name is not a counter (then `path` names that file); it was left untouched.
 */
function notLeaseError(failure, path) {
  const e = new Error(failure.message)
  e.code = failure.code
  e.path = failure.path ?? path
  // The size of the lock file's content; none for the token counter (its message says why).
  e.size = failure.size ?? null
  return e
}

function cancelledByRelease() {
  const e = new Error('The acquire was cancelled by release()')
  e.name = 'AbortError'
  e.code = 'ABORT_ERR'
  return e
}

function nativeError(failure, path, custom) {
  switch (failure.code) {
    case 'ELOCKHELD':
      return heldError(failure, path, custom)
    case 'ELOCKNOTLEASE':
      return notLeaseError(failure, path)
    case 'ERR_OUT_OF_RANGE': {
      const e = new RangeError(failure.message)
      e.code = failure.code
      return e
    }
    case 'ERR_INVALID_ARG_VALUE': {
      const e = new TypeError(failure.message)
      e.code = failure.code
      return e
    }
    default: {
      const e = new Error(failure.message)
      e.code = failure.code
      if (failure.errno !== undefined && failure.errno !== null) e.errno = -failure.errno
      if (failure.syscall) e.syscall = failure.syscall
      if (failure.attempts !== undefined) e.attempts = failure.attempts
      // ELOCKNOTMOVABLE and ELOCKUNSAFEPATH name the file in the way, and its owner's uid.
      e.path = failure.path ?? path
      if (failure.owner !== undefined && failure.owner !== null) e.owner = failure.owner
      return e
    }
  }
}

function abortReason(signal) {
  if (signal.reason !== undefined) return signal.reason
  const e = new Error('The operation was aborted')
  e.name = 'AbortError'
  e.code = 'ABORT_ERR'
  return e
}

module.exports = { tokenOf, holderFromRecord, nativeError, cancelledByRelease, abortReason }
