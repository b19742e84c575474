'use strict'
// Windows has no SIGTERM that one process can send another: Node's `process.kill(pid,
// 'SIGTERM')` there is TerminateProcess, which runs no handler. So when another process has
// proven that this one holds a lock and asks it to exit (`leaselock stop`, `run --replace`, the
// plugins' `onConflict: 'replace'`), the ask comes as a stop request that this process's
// leaselock listens for (src/sys/holder_windows.rs) from its first acquired lock on. It is
// answered as Node on Unix answers SIGTERM: the process's 'SIGTERM' listeners run (Vite's CLI
// closes its server on them; `leaselock run` passes them on to its command), and a process with
// none ends, as SIGTERM's default action would end it. Only the main thread listens; a lock
// held only by worker threads does not take stop requests (`--force` still ends it).

const { isMainThread } = require('node:worker_threads')
const { binding } = require('./native.js')

let started = false

function onStopRequest() {
  if (process.listenerCount('SIGTERM') > 0) process.emit('SIGTERM', 'SIGTERM')
  else process.kill(process.pid, 'SIGTERM')
}

/** Starts listening, once per process, on Windows' main thread; nothing elsewhere. */
function listenForStopRequests() {
  if (started || process.platform !== 'win32' || !isMainThread) return
  started = true
  try {
    binding.listenForStopRequests(onStopRequest)
  } catch {
    // Not listening: the process can still be ended with --force.
  }
}

module.exports = { listenForStopRequests }
