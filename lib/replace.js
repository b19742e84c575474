'use strict'
// Stopping the running holder of a lock so that this process can take its place: `leaselock
// stop`, `leaselock run --replace` and the plugins' `onConflict: 'replace'`.
//
// The holder is asked to exit (SIGTERM; on Windows the stop request its own leaselock listens
// for, see src/sys/holder_windows.rs), its release is awaited up to a timeout, and it is killed
// (SIGKILL; TerminateProcess on Windows) only when asked (`force`). Nothing is signalled unless
// proof.js proves that the process holds that very lock file; the proof is made twice, and the
// signal goes through a handle opened between the two (a pidfd on Linux, a process handle on
// Windows, pid + start time on macOS), so a process that ends and whose pid is reused in
// between is never hit.

const { PidLock } = require('./index.js')
const { proveHolder } = require('./proof.js')
const { whoHolds } = require('./holder.js')
const { processHandle } = require('./native.js')

const POLL_MS = 100
const WINDOWS = process.platform === 'win32'
/** How the graceful ask and the kill are called in messages. */
const ASK = WINDOWS ? 'a stop request' : 'SIGTERM'
const KILL = WINDOWS ? 'TerminateProcess' : 'SIGKILL'
/** How long a holder is given to release after SIGTERM (and after SIGKILL). */
const STOP_TIMEOUT = 10_000

function stopError(code, message, path, holder) {
  const e = new Error(message)
  e.code = code
  e.path = path
  e.holder = holder
  return e
}

// The steps are written once, as a generator that yields what it needs ('inspect' the lock,
// 'sleep'); stopHolder runs them asynchronously, stopHolderSync (for webpack's synchronous
// apply()) on the calling thread.

const isGone = (now, ownerId) => !now || !now.valid || now.ownerId !== ownerId || now.alive === false || now.stale

function* waitGone(path, ownerId, ms) {
  const deadline = Date.now() + ms
  for (;;) {
    if (isGone(yield ['inspect', path], ownerId)) return true
    if (Date.now() >= deadline) return false
    yield ['sleep', POLL_MS]
  }
}

function* stopSteps(path, { timeout = STOP_TIMEOUT, force = false, allowOtherOwner = false, say = () => {} } = {}) {
  const holder = yield ['inspect', path]
  if (isGone(holder, holder && holder.ownerId)) return { stopped: null }
  const first = proveHolder(path, holder, { allowOtherOwner })
  if (!first.ok) {
    throw stopError('ELOCKUNPROVEN', `not signalling pid ${holder.pid}: it is not proven to hold ${path} (${first.reason})`, path, holder)
  }
  const handle = processHandle(holder.pid)
  try {
    // The final check, after the handle pins the process: the process the handle names is the
    // one that has the file open now.
    const again = yield ['inspect', path]
    const second = again && again.ownerId === holder.ownerId ? proveHolder(path, again, { allowOtherOwner }) : { ok: false, reason: 'the lock changed hands' }
    if (!second.ok) {
      if (isGone(again, holder.ownerId)) return { stopped: null }
      throw stopError('ELOCKUNPROVEN', `not signalling pid ${holder.pid}: it is no longer proven to hold ${path} (${second.reason})`, path, holder)
    }
    if (second.start !== null && handle.start !== second.start) {
      throw stopError('ELOCKUNPROVEN', `not signalling pid ${holder.pid}: its process changed while it was checked`, path, holder)
    }
    say(`leaselock: asking ${whoHolds(holder)} to exit (${ASK})...`)
    const asked = handle.requestExit()
    if (asked === 'ended') return { stopped: holder }
    if (asked === 'not-listening') {
      if (!force) throw stopError('ELOCKSTOPTIMEOUT', `pid ${holder.pid} holds ${path} but does not take stop requests (another program, or an older leaselock); --force ends it (${KILL})`, path, holder)
      say(`leaselock: pid ${holder.pid} does not take stop requests; ending it (${KILL}, --force).`)
    } else {
      if (yield* waitGone(path, holder.ownerId, timeout)) {
        say(`leaselock: pid ${holder.pid} has let go of the lock.`)
        return { stopped: holder }
      }
      const within = timeout < 1000 ? `${timeout}ms` : `${+(timeout / 1000).toFixed(1)}s`
      if (!force) throw stopError('ELOCKSTOPTIMEOUT', `pid ${holder.pid} still holds ${path} ${within} after ${ASK} (--force sends ${KILL})`, path, holder)
      say(`leaselock: pid ${holder.pid} did not exit within ${within}; sending ${KILL} (--force).`)
    }
    if (!handle.signal('SIGKILL')) return { stopped: holder }
    if (yield* waitGone(path, holder.ownerId, timeout)) return { stopped: holder }
    throw stopError('ELOCKSTOPTIMEOUT', `pid ${holder.pid} still holds ${path} after ${KILL}`, path, holder)
  } finally {
    handle.close()
  }
}

/**
 * Asks the proven holder of `path` to exit and waits until the lock is free to take.
 * Resolves with `{ stopped: holder | null }` (null: there was no live holder to stop). Rejects
 * with `ELOCKUNPROVEN` (nothing was signalled) or `ELOCKSTOPTIMEOUT` (still held after
 * `timeout` ms, and `force` was not given or SIGKILL did not free it either).
 * `say(text)` is told each step.
 */
async function stopHolder(path, options) {
  const steps = stopSteps(path, options)
  let next = steps.next()
  while (!next.done) {
    const [what, arg] = next.value
    let value
    try {
      value = what === 'inspect' ? await PidLock.inspect(arg) : await new Promise((r) => setTimeout(r, arg))
    } catch (err) {
      next = steps.throw(err)
      continue
    }
    next = steps.next(value)
  }
  return next.value
}

/** stopHolder on the calling thread (it blocks while it waits). */
function stopHolderSync(path, options) {
  const steps = stopSteps(path, options)
  const pause = new Int32Array(new SharedArrayBuffer(4))
  let next = steps.next()
  while (!next.done) {
    const [what, arg] = next.value
    let value
    try {
      value = what === 'inspect' ? PidLock.inspectSync(arg) : Atomics.wait(pause, 0, 0, arg)
    } catch (err) {
      next = steps.throw(err)
      continue
    }
    next = steps.next(value)
  }
  return next.value
}

module.exports = { stopHolder, stopHolderSync, STOP_TIMEOUT }
