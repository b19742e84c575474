// Several waiters for one lock in one process, driven by the tests through stdin and stdout.
//
//   node waiters.mjs '<json config>'      config: { path, n, timeout? }
//
// Starts `n` PidLocks on `path`, each in `acquire({ timeout })` at once, and prints `READY`,
// then `ACQUIRED {"i":<i>,"pid":<pid>}` as each gets the lock (or `FAILED {...}`).
// Commands on stdin: `release <i>` (prints `RELEASED <i>`).
import { createInterface } from 'node:readline'
import { PidLock } from '../../lib/index.mjs'

const { path, n, timeout = 120_000 } = JSON.parse(process.argv[2])
const say = (tag, value) => process.stdout.write(`${tag} ${JSON.stringify(value)}\n`)

const locks = Array.from({ length: n }, () => new PidLock(path))
locks.forEach((lock, i) => {
  lock.acquire({ timeout }).then(
    () => say('ACQUIRED', { i, pid: process.pid }),
    (err) => say('FAILED', { i, code: err.code ?? null, message: err.message }),
  )
})
say('READY', { pid: process.pid })

const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  const [cmd, arg] = line.split(' ')
  if (cmd === 'release') {
    locks[Number(arg)].releaseSync()
    say('RELEASED', Number(arg))
  }
})
