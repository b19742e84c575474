// A lock holder in its own process, driven by the tests through stdin and stdout.
//
//   node holder.mjs '<json config>'
//
// config: { path, options?, acquire?: true (default) | false, acquireOptions?, sync?,
//           lostThrows?, noLost? }
// It prints one line per event: `READY`, `ACQUIRED <json>` (with the fencing token as text), `FAILED <json>`, `LOST <json>`,
// `WARNING <json>`, `RELEASED`, `HELD <json>`, `UPDATED`, `BUSY_START`, `BUSY_END`, `GC`.
// Commands on stdin, one per line: `acquire [<json acquire options>]`, `acquireSync [<json>]`,
// `release`, `releaseSync`, `held`, `update <json>`, `busy <ms>`, `gc`, `throw`,
// `exit <code>`, `end` (stop reading stdin, so the process ends once nothing else is pending).
import { createInterface } from 'node:readline'
import { PidLock } from '../../lib/index.mjs'

const config = JSON.parse(process.argv[2] ?? '{}')

function say(tag, value) {
  process.stdout.write(value === undefined ? `${tag}\n` : `${tag} ${JSON.stringify(value)}\n`)
}

function failure(err) {
  return {
    code: err?.code ?? null,
    name: err?.name ?? null,
    message: err?.message ?? String(err),
    holder: err?.holder ?? null,
  }
}

process.on('warning', (w) => say('WARNING', { code: w.code ?? null, name: w.name, message: w.message }))

const options = { ...(config.options ?? {}) }
if (!config.noLost) {
  options.onLeaseLost = (info) => {
    say('LOST', { ...info, heldAtCallback: lock.held, pid: process.pid })
    if (config.lostThrows) throw new Error('callback exploded on purpose')
  }
}
const lock = new PidLock(config.path, options)

async function acquire(opts) {
  try {
    const out = config.sync ? lock.acquireSync(opts) : await lock.acquire(opts)
    say('ACQUIRED', { reclaimed: out.reclaimed, held: lock.held, pid: process.pid, token: out.token === null ? null : String(out.token) })
  } catch (err) {
    say('FAILED', failure(err))
  }
}

function arg(rest) {
  return rest ? JSON.parse(rest) : undefined
}

const rl = createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  const space = line.indexOf(' ')
  const cmd = space < 0 ? line : line.slice(0, space)
  const rest = space < 0 ? '' : line.slice(space + 1)
  switch (cmd) {
    case 'acquire':
      await acquire(arg(rest))
      break
    case 'acquireSync':
      try {
        const out = lock.acquireSync(arg(rest))
        say('ACQUIRED', { reclaimed: out.reclaimed, held: lock.held, pid: process.pid, token: out.token === null ? null : String(out.token) })
      } catch (err) {
        say('FAILED', failure(err))
      }
      break
    case 'release':
      try {
        await lock.release()
        say('RELEASED')
      } catch (err) {
        say('FAILED', failure(err))
      }
      break
    case 'releaseSync':
      lock.releaseSync()
      say('RELEASED')
      break
    case 'held':
      say('HELD', lock.held)
      break
    case 'update':
      try {
        await lock.update(arg(rest))
        say('UPDATED')
      } catch (err) {
        say('FAILED', failure(err))
      }
      break
    case 'busy': {
      say('BUSY_START')
      const until = Date.now() + Number(rest)
      while (Date.now() < until) {
        // a blocked event loop, on purpose
      }
      say('BUSY_END', { held: lock.held })
      break
    }
    case 'gc':
      globalThis.gc()
      say('GC')
      break
    case 'throw':
      setImmediate(() => {
        throw new Error('uncaught on purpose')
      })
      break
    case 'exit':
      process.exit(Number(rest || 0))
      break
    case 'end':
      rl.close()
      process.stdin.destroy()
      break
    default:
      say('UNKNOWN', line)
  }
})

say('READY', { pid: process.pid })
if (config.acquire !== false) await acquire(config.acquireOptions)
