'use strict'
// The `leaselock` command: `run` guards any command with a lock, `status` tells who holds one,
// `list` shows the running guards, `stop` stops a proven holder. This file dispatches and holds
// the help texts; each command lives in its own file.

const { EXIT, UsageError, errorExit } = require('./cli-args.js')
const { run } = require('./cli-run.js')
const { status, list, stop } = require('./cli-status.js')

const DURATION = 'Durations: 500ms, 30s, 2m, 1h; a bare number is milliseconds.'

const HELP = {
  run: `Usage: leaselock run [options] <lockfile> [--] <command> [args...]

Runs <command> while holding <lockfile>; refuses (75) when another live process holds it.
leaselock's options come before the command: everything from the command's first word on (or
after --) belongs to the command, so \`leaselock run x.lock node app.js --help\` runs it.
Signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2) are passed to the command; the lock is
released when it ends. When stdin is a terminal, SIGINT and SIGQUIT are not passed on (Ctrl+C
already reaches the command itself; send SIGTERM to stop it from another program). The
command gets LEASELOCK_LOCKFILE=<absolute lock path, or the key with --store> and
LEASELOCK_TOKEN=<the acquisition's fencing token> (unset when the acquisition has none).

Options:
  --wait <duration>    wait up to this long for the lock ("Infinity": until free; default: try
                       once); says who it waits for (pid, URL, age)
  --replace            stop the running holder first (SIGTERM, then wait up to --timeout for it
                       to let go) - only when it is proven to hold the lock (see \`stop\`)
  --reuse              when a live holder has a URL in its lease, print that URL and exit 0
                       without running anything
  --timeout <duration> with --replace: how long the holder gets to exit (default 10s)
  --force              with --replace: SIGKILL a holder still running after --timeout
  --metadata <json>    a JSON object stored in the lease for others to read,
                       e.g. '{"url":"http://localhost:3000"}'
  --record-command     store the command line in the lease (shortened), for \`status\` and
                       refusals to show; off by default, as the lock file is readable by others
                       and arguments may carry secrets
  --on-lost <policy>   when the lock is lost while the command runs: "warn" (default) or
                       "term" (send SIGTERM to the command)
  -q, --quiet          no waiting or replacing messages
  --allow-other-owner  with --replace, as root: accept a lock file owned by another user
  --store <url>        keep the lock on a Redis/Valkey server (redis://[:password@]host:port/db,
                       rediss://, unix:///path.sock): <lockfile> is then a key there; not
                       with --replace

Exit codes: the command's exit code, or 128 + the signal number when a signal ended it;
75 the lock is held by another process (refused); 77 --replace: the holder is not proven, so
it was not signalled; 64 bad usage; 73 the lock file cannot be created, or <lockfile> is not a
lock (another file is there; it is left untouched); 126/127 the command cannot be run / is not
found; 69 the store (--store) cannot be reached, refused the credentials or answered with an
error; 70 another error.
${DURATION}

Example (package.json):
  "dev": "leaselock run .cache/dev.lock -- node server.js"
`,
  status: `Usage: leaselock status [--json] [--store <url>] <lockfile>

Tells who holds <lockfile>, or that it is free.
  --json          print {"state", "path", "holder"}; state is free, held, dead, stale or invalid
  --store <url>   inspect the key <lockfile> on a Redis/Valkey server instead of a lock file

Exit codes: 0 free (no lock, or one left by a dead or stale holder: the next run takes it
over); 1 held by a live process, or free by the rules but blocked for this user (a file in the
way that it may not move); 2 the file is not a lease (counts as held for now), or with
--store the value under the key is not a lease (counts as held, never touched); 64 bad usage;
73 the lock file cannot be read or is not a lock; 69 the store (--store) cannot be reached,
refused the credentials or answered with an error; 70 another error.
`,
  list: `Usage: leaselock list [--json]

Shows every running dev-server guard (Vite, webpack plugins) and \`leaselock run\` lock of this
user on this machine: tool, project, URL, pid, start time and lock path. Entries whose holder
has gone are dropped.
  --json    print {"version": 1, "locks": [{"tool", "command", "project", "url", "pid",
            "startedAt", "lock"}]}: a stable shape for scripts and agents (null where unknown)
`,
  stop: `Usage: leaselock stop [options] <lockfile>

Asks the process holding <lockfile> to exit (SIGTERM) and waits until it has let go.
Only a process proven to hold the lock is signalled: the lock file is a regular file that
neither group nor others may write, owned by you and by the holder's user, which has that very
file open, and the holder is alive on this machine. Root signals only a root-owned lock unless
--allow-other-owner is given. Linux reads this from /proc, macOS from libproc, Windows from
the file's security and the processes that have it open (there the ask is a stop request).
  --timeout <duration>  how long to wait for it to let go (default 10s)
  --force               then send SIGKILL
  --allow-other-owner   (root) accept a lock file owned by another user
  -q, --quiet           no progress messages

Exit codes: 0 stopped, or nothing was running; 75 still held after --timeout;
77 the holder is not proven, nothing was signalled; 64 bad usage; 73 the lock file cannot be
read or is not a lock; 70 another error.
${DURATION}
`,
}

const MAIN_HELP = `Usage:
  leaselock run [options] <lockfile> [--] <command> [args...]
  leaselock status [--json] [--store <url>] <lockfile>
  leaselock list [--json]
  leaselock stop [options] <lockfile>
  leaselock <command> --help | leaselock --help | --version

run      runs a command while holding a lock file; refuses when another live process holds it
status   tells who holds a lock file, or that it is free
list     shows this user's running dev-server guards and run locks
stop     stops the proven holder of a lock file

Exit codes: run passes on the command's own; 75 the lock is held by another process (refused);
64 bad usage; the rest are listed by "leaselock <command> --help", with each command's options.
`

const COMMANDS = { run, status, list, stop }

/** Whether `rest` asks for help before the command to run begins (for `run`). */
function asksHelp(sub, rest) {
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]
    if (a === '--') return false
    if (a === '--help' || a === '-h') return true
    // After `run`'s lock file, the next word starts the command: its --help is its own.
    if (sub === 'run' && !a.startsWith('-') && rest.slice(0, i).filter((x) => !x.startsWith('-')).length >= 1) return false
  }
  return false
}

/** Runs the command line `args`; resolves with the exit code. */
async function main(args, io = { stdout: process.stdout, stderr: process.stderr }) {
  const [sub, ...rest] = args
  try {
    if (sub === undefined) {
      io.stderr.write(MAIN_HELP)
      return EXIT.USAGE
    }
    if (sub === '-h' || sub === '--help') {
      io.stdout.write(MAIN_HELP)
      return 0
    }
    if (sub === 'help') {
      io.stdout.write(HELP[rest[0]] ?? MAIN_HELP)
      return 0
    }
    if (sub === '-v' || sub === '--version') {
      io.stdout.write(`${require('../package.json').version}\n`)
      return 0
    }
    if (!Object.hasOwn(COMMANDS, sub)) throw new UsageError(`unknown command ${JSON.stringify(sub)}`)
    if (asksHelp(sub, rest)) {
      io.stdout.write(HELP[sub])
      return 0
    }
    return await COMMANDS[sub](rest, io)
  } catch (err) {
    if (err instanceof UsageError) {
      const hint = Object.hasOwn(COMMANDS, sub) ? `leaselock ${sub} --help` : 'leaselock --help'
      io.stderr.write(`leaselock: ${err.message}\nRun "${hint}" for usage.\n`)
      return EXIT.USAGE
    }
    return errorExit(err, io.stderr)
  }
}

module.exports = { main, EXIT, HELP: MAIN_HELP }
