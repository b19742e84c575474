// One of several processes taking turns on one lock: `cycles` acquire/release rounds, each
// journaled to a shared O_APPEND file as `enter <id> <hrtime> <token>` / `leave <id> <hrtime>`
// lines so that an independent checker can count overlaps and check the fencing tokens' order.
//   node cycler.mjs <lock path> <journal path> <id> <cycles>
import fs from 'node:fs'
import { PidLock } from '../../lib/index.mjs'

const [lockPath, journal, id, cyclesText] = process.argv.slice(2)
const cycles = Number(cyclesText)
const fd = fs.openSync(journal, 'a')
const lock = new PidLock(lockPath, { acquireRetryDelay: 1 })
// Refusals to try again after. On Windows a create that meets a name still being deleted (a
// release while another process reads the file) is retried as contention, and eight processes
// churning one name can spend the whole retry budget on that: ELOCKCONTENDED, not an overlap.
const busy = process.platform === 'win32' ? ['ELOCKHELD', 'ELOCKCONTENDED'] : ['ELOCKHELD']
const pause = () => new Promise((resolve) => setTimeout(resolve, Math.random() < 0.5 ? 0 : 1))

let done = 0
let refused = 0
while (done < cycles) {
  let token
  try {
    ;({ token } = await lock.acquire())
  } catch (err) {
    if (!busy.includes(err.code)) throw err
    refused++
    await pause()
    continue
  }
  fs.writeSync(fd, `enter ${id} ${process.hrtime.bigint()} ${token}\n`)
  // A little work inside the critical section, so that an overlap would have room to show.
  const until = process.hrtime.bigint() + 50_000n
  while (process.hrtime.bigint() < until) {}
  fs.writeSync(fd, `leave ${id} ${process.hrtime.bigint()}\n`)
  await lock.release()
  done++
  if (done % 4 === 0) await pause()
}
fs.closeSync(fd)
console.log(`DONE ${JSON.stringify({ id, done, refused })}`)
