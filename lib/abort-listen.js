'use strict'
// One 'abort' listener per AbortSignal, however many acquires wait on it. An AbortSignal warns
// (MaxListenersExceededWarning) past ten listeners, and one signal shared by a pool of waits -
// a server's shutdown signal, a request's - is normal use, not a leak.

/** @type {WeakMap<AbortSignal, Set<() => void>>} */
const waiting = new WeakMap()

/**
 * Calls `fn` once when `signal` aborts; returns the function that stops it. `signal` must not
 * be aborted yet.
 */
function onAbort(signal, fn) {
  let fns = waiting.get(signal)
  if (!fns) {
    fns = new Set()
    waiting.set(signal, fns)
    signal.addEventListener(
      'abort',
      () => {
        waiting.delete(signal)
        for (const f of fns) f()
      },
      { once: true },
    )
  }
  fns.add(fn)
  return () => fns.delete(fn)
}

module.exports = { onAbort }
