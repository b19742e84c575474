// A command run under `leaselock run` in the tests: reports the signals it receives.
//   node signal-child.cjs <exit code on SIGTERM> [--no-handlers]
'use strict'
const code = Number(process.argv[2] ?? 0)
if (!process.argv.includes('--no-handlers')) {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      process.stdout.write(`GOT ${signal}\n`)
      if (signal === 'SIGTERM') process.exit(code)
    })
  }
}
process.stdout.write(`PID ${process.pid}\n`)
process.stdout.write(`TOKEN ${process.env.LEASELOCK_TOKEN}\n`)
process.stdout.write(`READY ${process.env.LEASELOCK_LOCKFILE}\n`)
setInterval(() => {}, 1000)
