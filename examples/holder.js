'use strict'
// One lock holder for the demo: a separate Node process that takes orders on stdin and reports
// what happens on stdout, one JSON object per line. The demo drives several of these.
//
//   node examples/holder.js '{"path": "...", "options": {...}}'
//
// Orders (one per line): `acquire [timeoutMs]`, `release`, `exit <code>` (process.exit).
// Reports: {event: 'ready' | 'acquired' | 'refused' | 'error' | 'released' | 'lost', ...}.

const readline = require('node:readline')
const { PidLock } = require('../lib/index.js')

const config = JSON.parse(process.argv[2])

function report(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, pid: process.pid, at: Date.now(), ...fields })}\n`)
}

const lock = new PidLock(config.path, {
  ...config.options,
  // Fired on the JS thread, once, when the heartbeat finds the lease is no longer ours.
  onLeaseLost: (info) => report('lost', { info, held: lock.held }),
})

async function acquire(timeout) {
  const started = performance.now()
  try {
    const { reclaimed } = await lock.acquire({ timeout })
    report('acquired', { reclaimed, tookMs: performance.now() - started })
  } catch (err) {
    const fields = { code: err.code, message: err.message, holder: err.holder ?? null }
    report(err.code === 'ELOCKHELD' ? 'refused' : 'error', { ...fields, tookMs: performance.now() - started })
  }
}

async function release() {
  try {
    await lock.release()
    report('released', { held: lock.held })
  } catch (err) {
    report('error', { code: err.code, message: err.message })
  }
}

const orders = readline.createInterface({ input: process.stdin })
orders.on('line', (line) => {
  const [order, arg] = line.trim().split(/\s+/)
  if (order === 'acquire') acquire(arg === undefined ? 0 : Number(arg))
  else if (order === 'release') release()
  // No release first: a lock still held is released natively as the process exits.
  else if (order === 'exit') process.exit(Number(arg ?? 0))
  else report('error', { message: `unknown order: ${line}` })
})
// The demo went away: end quietly (anything still held is released at exit).
orders.on('close', () => process.exit(0))

report('ready')
