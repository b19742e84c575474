// A lock holder on a Redis store in its own process, driven through stdin and stdout.
//
//   node redis-holder.mjs '<json config>'
//
// config: { url, key, options?, acquire?: true (default) | false, acquireOptions? }
// It prints one line per event: `READY`, `ACQUIRED <json>`, `FAILED <json>`, `LOST <json>`,
// `RELEASED <json>`, `HELD <json>`, `UPDATED`; tokens as decimal strings.
// Commands on stdin, one per line: `acquire [<json>]`, `release`, `held`, `update <json>`,
// `exit <code>`.
import { createInterface } from 'node:readline'
import { PidLock } from '../../lib/index.mjs'

const config = JSON.parse(process.argv[2] ?? '{}')
const json = (v) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x))
const say = (tag, value) => process.stdout.write(value === undefined ? `${tag}\n` : `${tag} ${json(value)}\n`)
const failure = (err) => ({ code: err?.code ?? null, message: err?.message ?? String(err), holder: err?.holder ?? null })

const lock = new PidLock(config.key, {
  ...(config.options ?? {}),
  store: config.url,
  onLeaseLost: (info) => say('LOST', { ...info, heldAtCallback: lock.held, pid: process.pid }),
})

async function acquire(opts) {
  try {
    const out = await lock.acquire(opts)
    say('ACQUIRED', { token: out.token, reclaimed: out.reclaimed, held: lock.held, pid: process.pid })
  } catch (err) {
    say('FAILED', failure(err))
  }
}

const rl = createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  const space = line.indexOf(' ')
  const cmd = space < 0 ? line : line.slice(0, space)
  const rest = space < 0 ? '' : line.slice(space + 1)
  switch (cmd) {
    case 'acquire':
      await acquire(rest ? JSON.parse(rest) : undefined)
      break
    case 'release':
      try {
        say('RELEASED', { removed: await lock.release() })
      } catch (err) {
        say('FAILED', failure(err))
      }
      break
    case 'held':
      say('HELD', { held: lock.held, token: lock.token })
      break
    case 'update':
      try {
        await lock.update(JSON.parse(rest))
        say('UPDATED')
      } catch (err) {
        say('FAILED', failure(err))
      }
      break
    case 'exit':
      process.exit(Number(rest || 0))
      break
    default:
      say('UNKNOWN', line)
  }
})

say('READY', { pid: process.pid })
if (config.acquire !== false) await acquire(config.acquireOptions)
