'use strict'
// Waiting you can see: while an acquire waits for another holder, say who it waits for (pid,
// URL, age) - on a terminal as one line with a live elapsed counter, otherwise one line each
// time the holder changes.

const { PidLock } = require('./index.js')
const { ago, holderUrl, mdString, shown } = require('./holder.js')

const TICK_MS = 1000
const POLL_MS = 500

function describe(holder, path) {
  if (!holder) return `waiting for ${path} (its file does not hold a lease yet)`
  if (!holder.valid) return `waiting for ${path} (its content is not a lease)`
  const url = holderUrl(holder)
  const parts = [url, holder.startedAt && `started ${ago(holder.startedAt)}`].filter(Boolean)
  return `waiting for pid ${shown(holder.pid)}${parts.length ? ` (${parts.join(', ')})` : ''} to release ${path}`
}

const identity = (h) => (h ? `${h.ownerId}|${mdString(h.metadata, 'url')}` : 'none')

/**
 * Runs `acquire(timeoutMs)` (a promise) for up to `timeout` ms, first without waiting; while it
 * waits, reports the holder of `path` (read by `inspect`, by default the lock file's) through `stream` (a writable; `stream.isTTY` picks the live
 * line). `quiet` reports nothing. Resolves or rejects as `acquire` does.
 */
async function acquireVisibly(acquire, { path, inspect = () => PidLock.inspect(path), timeout, stream, quiet = false, prefix = 'leaselock: ' }) {
  if (!timeout) return acquire(0)
  try {
    return await acquire(0)
  } catch (err) {
    if (!err || err.code !== 'ELOCKHELD') throw err
    if (quiet) return acquire(timeout)
  }
  const tty = Boolean(stream.isTTY)
  const start = Date.now()
  let seen = null
  let text = ''
  let done = false
  const render = () => {
    const secs = Math.round((Date.now() - start) / 1000)
    stream.write(`\r\x1b[2K${prefix}${text} - ${secs}s`)
  }
  const poll = async () => {
    const holder = await inspect().catch(() => null)
    if (done || identity(holder) === seen) return
    seen = identity(holder)
    text = describe(holder, path)
    if (tty) render()
    else stream.write(`${prefix}${text}\n`)
  }
  await poll()
  const timers = [setInterval(() => void poll(), POLL_MS)]
  if (tty) timers.push(setInterval(render, TICK_MS))
  for (const t of timers) t.unref()
  try {
    return await acquire(timeout === Infinity ? Infinity : Math.max(1, timeout - (Date.now() - start)))
  } finally {
    done = true
    for (const t of timers) clearInterval(t)
    if (tty) stream.write('\n')
  }
}

module.exports = { acquireVisibly, describe }
