'use strict'
// The fast path of locks on a store: the uncontended claim and the release's remove are
// written on a connection of this JS environment's own and answered here, as a Redis client
// library would, instead of going to the store thread and back (two thread wake-ups less per
// operation). The request bytes and the reading of replies are native
// (src/binding/store_direct.rs); this module only keeps the socket and splits its bytes into
// replies. Anything not plain - not connected yet, bytes still queued, an error reply, a held
// lock, no reply in time, a closed connection - sends the operation down the store thread's
// path, which stays the one that waits, retries and reports. TLS URLs have no fast path.
//
// The socket never keeps Node alive by itself: it is unref'd while no request is in flight.

const { NativeStoreLock } = require('./native.js').binding

/** How long a connection that failed is left alone before the next attempt. */
const RETRY_AFTER = 1000

/** How often each path was taken in this environment (read by the tests). */
const counts = { claims: 0, releases: 0, fallbacks: 0 }

const PLUS = 0x2b
const MINUS = 0x2d
const COLON = 0x3a
const DOLLAR = 0x24
const STAR = 0x2a

const CR = 0x0d
const LF = 0x0a
const ZERO = 0x30

/** The index of the CR of the first CRLF at or after `pos`, -1 when there is none yet. */
function lineEnd(buf, pos) {
  const last = buf.length - 1
  for (let i = pos; i < last; i++) if (buf[i] === CR && buf[i + 1] === LF) return i
  return -1
}

/** The end of the RESP2 reply starting at `pos` in `buf`, -1 when it is not all there yet.
 * Read byte by byte: the replies are a few bytes, and the Buffer methods that search and
 * decode cost more per call than the whole loop. */
function replyEnd(buf, pos) {
  const eol = lineEnd(buf, pos + 1)
  if (eol < 0) return -1
  const type = buf[pos]
  if (type === PLUS || type === MINUS || type === COLON) return eol + 2
  if (type !== DOLLAR && type !== STAR) throw new Error('not a RESP2 reply')
  let i = pos + 1
  const negative = buf[i] === MINUS
  if (negative) i++
  if (i === eol || eol - i > 15) throw new Error('not a RESP2 reply')
  let n = 0
  for (; i < eol; i++) {
    const digit = buf[i] - ZERO
    if (digit < 0 || digit > 9) throw new Error('not a RESP2 reply')
    n = n * 10 + digit
  }
  if (negative) n = -n
  if (type === DOLLAR) {
    const end = n < 0 ? eol + 2 : eol + 4 + n
    return end <= buf.length ? end : -1
  }
  let at = eol + 2
  for (let k = 0; k < n && at >= 0; k++) at = replyEnd(buf, at)
  return at
}

class Connection {
  #route
  #socket = null
  #ready = false
  #retryAt = 0
  /** The callbacks of the replies still to come, in order: `{ done, user }`. */
  #queue = []
  #inFlight = 0
  #rest = null

  constructor(route) {
    this.#route = route
  }

  /** Whether a request can be written now without queueing behind unsent bytes. */
  usable() {
    if (this.#ready && this.#socket.writableLength === 0) return true
    this.#open()
    return false
  }

  /** Writes `request`; resolves with its reply, or with `null` when none came. */
  request(request) {
    return new Promise((done) => {
      if (this.#inFlight++ === 0) this.#socket.ref()
      this.#queue.push({ done, user: true })
      this.#socket.write(request)
    })
  }

  #open() {
    if (this.#socket !== null || Date.now() < this.#retryAt) return
    const r = this.#route
    // Loaded here, not with the package: `node:net` alone costs a few ms of every require().
    const net = require('node:net')
    const socket = r.path != null ? net.connect({ path: r.path }) : net.connect({ host: r.host, port: r.port })
    this.#socket = socket
    socket.setNoDelay(true)
    socket.setTimeout(r.timeout)
    socket.unref()
    socket.on('connect', () => {
      if (r.replies === 0) {
        this.#ready = true
        return
      }
      for (let i = 0; i < r.replies; i++) {
        const last = i === r.replies - 1
        this.#queue.push({
          user: false,
          done: (reply) => {
            if (reply === null || reply[0] !== PLUS) socket.destroy()
            else if (last) this.#ready = true
          },
        })
      }
      socket.write(r.hello)
    })
    socket.on('data', (chunk) => this.#data(socket, chunk))
    // A silent server (paused, or a dropped route): what is in flight goes the other way.
    socket.on('timeout', () => {
      if (this.#queue.length > 0 || !this.#ready) socket.destroy()
    })
    socket.on('error', () => {})
    socket.on('close', () => this.#closed(socket))
  }

  #data(socket, chunk) {
    if (this.#socket !== socket) return
    const buf = this.#rest === null ? chunk : Buffer.concat([this.#rest, chunk])
    let pos = 0
    while (pos < buf.length) {
      let end
      try {
        end = replyEnd(buf, pos)
      } catch {
        end = -2
      }
      if (end === -1) break
      const next = this.#queue.shift()
      if (end === -2 || next === undefined) {
        // Not a reply of ours: nothing after it can be trusted.
        if (next !== undefined) this.#queue.unshift(next)
        socket.destroy()
        return
      }
      if (next.user && --this.#inFlight === 0) socket.unref()
      next.done(buf.subarray(pos, end))
      if (socket.destroyed) return
      pos = end
    }
    this.#rest = pos === buf.length ? null : buf.subarray(pos)
  }

  #closed(socket) {
    if (this.#socket !== socket) return
    this.#socket = null
    this.#ready = false
    this.#rest = null
    this.#inFlight = 0
    this.#retryAt = Date.now() + RETRY_AFTER
    const queue = this.#queue
    this.#queue = []
    for (const { done } of queue) done(null)
  }
}

/** url -> its Connection, or null when it has no fast path. */
const connections = new Map()

/** The connection for `url` when a request can go on it now; otherwise starts one, `null`. */
function connection(url) {
  let c = connections.get(url)
  if (c === undefined) {
    let route = null
    try {
      route = NativeStoreLock.directRoute(url)
    } catch {}
    c = route === null ? null : new Connection(route)
    connections.set(url, c)
  }
  return c !== null && c.usable() ? c : null
}

module.exports = { connection, counts, replyEnd }
