'use strict'
// `withLock(path, fn, options)`: acquire, run `fn`, release in `finally`, return what `fn`
// returned - the shape most callers want, with no way to forget the release.
// Made from the PidLock class it is given, so that this file and index.js do not import each other.

function fnError(fn) {
  const e = new TypeError(`The "fn" argument must be of type function. Received ${fn === null ? 'null' : typeof fn}`)
  e.code = 'ERR_INVALID_ARG_TYPE'
  return e
}

/** Splits the acquire options (`timeout`, `signal`) from the lock's own. */
function split(options) {
  if (options === undefined || options === null || typeof options !== 'object') return [options, {}]
  const { timeout, signal, ...lockOptions } = options
  const acquire = {}
  if (timeout !== undefined) acquire.timeout = timeout
  if (signal !== undefined) acquire.signal = signal
  return [lockOptions, acquire]
}

function makeWithLock(PidLock) {
  async function withLock(path, fn, options) {
    if (typeof fn !== 'function') throw fnError(fn)
    const [lockOptions, acquireOptions] = split(options)
    const lock = new PidLock(path, lockOptions)
    await lock.acquire(acquireOptions)
    let result
    try {
      result = await fn(lock)
    } catch (err) {
      // fn's error is the one the caller needs; a failed release must not hide it.
      await lock.release().catch(() => {})
      throw err
    }
    await lock.release()
    return result
  }

  function withLockSync(path, fn, options) {
    if (typeof fn !== 'function') throw fnError(fn)
    const [lockOptions, acquireOptions] = split(options)
    if (acquireOptions.signal !== undefined) {
      const e = new TypeError("The property 'options.signal' is not supported by withLockSync (use withLock)")
      e.code = 'ERR_INVALID_ARG_VALUE'
      throw e
    }
    const lock = new PidLock(path, lockOptions)
    lock.acquireSync(acquireOptions)
    let result
    try {
      result = fn(lock)
    } catch (err) {
      try {
        lock.releaseSync()
      } catch {
        // fn's error wins
      }
      throw err
    }
    lock.releaseSync()
    return result
  }

  return { withLock, withLockSync }
}

module.exports = { makeWithLock }
