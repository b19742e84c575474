// One of several processes taking turns on one lock on a Redis store: `cycles` acquisitions,
// each journaled to a shared O_APPEND file as `enter <id> <token> <hrtime>` / `leave <id>
// <token> <hrtime>` lines, so that the test can check that no two overlapped and that the
// fencing tokens rose in the order the lock was held.
//   node redis-cycler.mjs <url> <key> <journal path> <id> <cycles>
import fs from 'node:fs'
import { PidLock } from '../../lib/index.mjs'

const [url, key, journal, id, cyclesText] = process.argv.slice(2)
const cycles = Number(cyclesText)
const fd = fs.openSync(journal, 'a')
const lock = new PidLock(key, { store: url })

for (let done = 0; done < cycles; done++) {
  const { token } = await lock.acquire({ timeout: 60_000 })
  fs.writeSync(fd, `enter ${id} ${token} ${process.hrtime.bigint()}\n`)
  // A little work inside the critical section, so that an overlap would have room to show.
  const until = process.hrtime.bigint() + 200_000n
  while (process.hrtime.bigint() < until) {}
  fs.writeSync(fd, `leave ${id} ${token} ${process.hrtime.bigint()}\n`)
  if (!(await lock.release())) throw new Error('release found the lease gone')
}
fs.closeSync(fd)
console.log(`DONE ${id}`)
