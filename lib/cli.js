'use strict'
// The `leaselock` command: `run` guards any command with a lock, `status` tells who holds one.
// An application, not the library: it installs signal handlers and sets the exit code.

const { spawn } = require('node:child_process')
const os = require('node:os')
const nodePath = require('node:path')
const { PidLock } = require('./index.js')
const { ago, formatRows, holderLines, quoteArg, leaseLostMessage } = require('./guard.js')
const { safeJson, safeText } = require('./sanitize.js')

/** Exit codes, from sysexits.h where one fits. */
const EXIT = Object.freeze({
  FREE: 0,
  HELD: 1,
  INVALID: 2,
  USAGE: 64, // EX_USAGE
  SOFTWARE: 70, // EX_SOFTWARE: an unexpected error
  UNAVAILABLE: 69, // EX_UNAVAILABLE: the lock's store cannot be reached
  CANTCREAT: 73, // EX_CANTCREAT: the lock file cannot be created or read
  REFUSED: 75, // EX_TEMPFAIL: another process holds the lock; try again later
  CANNOT_EXECUTE: 126,
  NOT_FOUND: 127,
})

const HELP = `Usage:
  leaselock run <lockfile> [options] -- <command> [args...]
  leaselock status <lockfile> [--json]
  leaselock run --store <url> <key> [options] -- <command> [args...]
  leaselock status --store <url> <key> [--json]
  leaselock --help | --version

run      Runs <command> while holding <lockfile>; refuses when another live process holds it.
         Signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2) are passed to the command; the lock is
         released when it ends. In a terminal, Ctrl+C already reaches the command itself, so
         leaselock does not send it a second SIGINT.
  --wait <ms>          wait up to <ms> for the lock (default 0: try once; "Infinity": until free)
  --metadata <json>    a JSON object stored in the lease for others to read, e.g. '{"url":"http://localhost:3000"}'
  --on-lost <policy>   when the lock is lost while the command runs: "warn" (default) or "term"
                       (send SIGTERM to the command)
  --store <url>        keep the lock on a Redis/Valkey server (redis://[:password@]host:port/db,
                       unix:///path.sock) under <key> instead of in a file; the command also
                       gets LEASELOCK_TOKEN=<fencing token>

status   Tells who holds <lockfile>, or that it is free.
  --json               print the state as JSON: {"state", "path", "holder"}
  --store <url>        inspect <key> on a Redis/Valkey server

Exit codes:
  run      the command's exit code, or 128 + the signal number when a signal ended it;
           75 the lock is held by another process (refused); 64 bad usage;
           73 the lock file cannot be created, or <lockfile> is not a lock (another file is
           there; it is left untouched); 126/127 the command cannot be run / is not found;
           70 another error.
  status   0 free (no lock, or one left by a dead or stale holder: the next run takes it over);
           1 held by a live process, or free by the rules but blocked for this user (a file in
           the way that it may not move); 2 the file is not a lease (counts as held for now);
           64 bad usage; 73 the lock file cannot be read or is not a lock; 70 another error.
  both     69 the store (--store) cannot be reached or refused the credentials.

Environment:
  The command gets LEASELOCK_LOCKFILE=<absolute lock path>.

Example (package.json):
  "dev": "leaselock run .cache/dev.lock -- node server.js"
`

class UsageError extends Error {}

function parseWait(value) {
  if (value === undefined) throw new UsageError('--wait needs a value in milliseconds')
  if (/^(inf|infinity)$/i.test(value)) return Infinity
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new UsageError(`--wait must be a number of milliseconds >= 0 or "Infinity", got ${JSON.stringify(value)}`)
  }
  return n
}

function parseMetadata(value) {
  if (value === undefined) throw new UsageError('--metadata needs a JSON object')
  let md
  try {
    md = JSON.parse(value)
  } catch (err) {
    throw new UsageError(`--metadata is not valid JSON: ${err.message}`)
  }
  if (md === null || typeof md !== 'object' || Array.isArray(md)) throw new UsageError('--metadata must be a JSON object')
  return md
}

/** Splits `args` (after the subcommand) into options, positionals and the command after `--`. */
function parseArgs(args, spec) {
  const options = {}
  const positional = []
  let command = null
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--') {
      command = args.slice(i + 1)
      break
    }
    if (arg.startsWith('--') && arg.length > 2) {
      const eq = arg.indexOf('=')
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
      if (!(name in spec)) throw new UsageError(`unknown option --${name}`)
      if (spec[name] === 'flag') {
        if (eq !== -1) throw new UsageError(`--${name} takes no value`)
        options[name] = true
      } else {
        options[name] = eq === -1 ? args[++i] : arg.slice(eq + 1)
        if (options[name] === undefined) throw new UsageError(`--${name} needs a value`)
      }
      continue
    }
    if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg}`)
    positional.push(arg)
    // `run <lockfile> <command...>` without `--`: the command starts at the second positional.
    if (spec.__commandAfter && positional.length > spec.__commandAfter) {
      command = [positional.pop(), ...args.slice(i + 1)]
      break
    }
  }
  return { options, positional, command }
}

function holderJson(holder) {
  if (!holder) return null
  const out = {}
  for (const [k, v] of Object.entries(holder)) {
    // A fencing token (a store lock's holder) is a bigint: JSON has no such type, so a string.
    out[k] = v instanceof Date ? v.toISOString() : typeof v === 'bigint' ? String(v) : v
  }
  return out
}

function errorExit(err, stderr) {
  const code = err && err.code
  const fileProblem = ['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG', 'ENOSPC', 'EDQUOT', 'ELOCKNOTFILE', 'ELOCKNOTLEASE', 'EISDIR', 'ELOCKNOTMOVABLE', 'ELOCKUNSAFEPATH'].includes(code)
  stderr.write(`leaselock: ${safeText(err && err.message ? err.message : String(err), 4096)}\n`)
  if (['ELOCKSTOREUNREACHABLE', 'ELOCKSTOREAUTH', 'ELOCKSTORE'].includes(code)) return EXIT.UNAVAILABLE
  return fileProblem ? EXIT.CANTCREAT : EXIT.SOFTWARE
}

/** `--store <url>`: the lock is `<key>` on that store; otherwise a lock file path. */
function storeOption(options) {
  return options.store === undefined ? {} : { store: options.store }
}

function lockName(positional, options) {
  return options.store === undefined ? nodePath.resolve(positional) : positional
}

// ---------------------------------------------------------------------------------------------

async function status(args, io) {
  const { options, positional } = parseArgs(args, { json: 'flag', store: 'value' })
  if (positional.length !== 1) throw new UsageError('status needs exactly one <lockfile>')
  const path = lockName(positional[0], options)
  let holder
  try {
    holder = await PidLock.inspect(path, storeOption(options))
  } catch (err) {
    return errorExit(err, io.stderr)
  }
  let state
  let code
  if (!holder) {
    state = 'free'
    code = EXIT.FREE
  } else if (!holder.valid) {
    state = holder.stale ? 'stale' : 'invalid'
    code = holder.stale ? EXIT.FREE : EXIT.INVALID
  } else if (holder.alive === false) {
    state = 'dead'
    code = EXIT.FREE
  } else if (holder.stale) {
    state = 'stale'
    code = EXIT.FREE
  } else {
    state = 'held'
    code = EXIT.HELD
  }
  // Free by the rules, but not for this user: a file in the way it may not move.
  if (code === EXIT.FREE && holder && holder.canTakeOver === false) code = EXIT.HELD
  if (options.json) {
    io.stdout.write(`${safeJson({ state, path, holder: holderJson(holder) })}\n`)
    return code
  }
  const takes = holder && holder.canTakeOver === false
    ? `but this user cannot take it over: ${safeText(holder.blockedBy ? holder.blockedBy.message : 'a file in the way', 4096)}`
    : 'the next acquire takes it over'
  const head = holder && holder.canTakeOver === false ? 'blocked' : 'free'
  switch (state) {
    case 'free':
      io.stdout.write(`free: ${path}\n`)
      break
    case 'held':
      io.stdout.write(`held by pid ${holder.pid}\n${formatRows(holderLines(holder, path, null))}\n`)
      break
    case 'dead':
      io.stdout.write(`${head}: ${path}\n  left by pid ${holder.pid}, which is no longer running; ${takes}\n`)
      break
    case 'stale':
      io.stdout.write(
        holder.valid
          ? `${head}: ${path}\n  the lease of pid ${holder.pid} has had no heartbeat since ${ago(holder.lastHeartbeat)}; ${takes}\n`
          : `${head}: ${path}\n  its content is not a lease and it is old enough to be reclaimed; ${takes}\n`,
      )
      break
    case 'invalid':
      io.stdout.write(`held: ${path}\n  its content is not a lease (${holder.size} bytes); it counts as held until it is older than the invalid-content threshold\n`)
      break
  }
  return code
}

// ---------------------------------------------------------------------------------------------

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2']

async function run(args, io) {
  const { options, positional, command } = parseArgs(args, {
    wait: 'value',
    metadata: 'value',
    'on-lost': 'value',
    store: 'value',
    __commandAfter: 1,
  })
  if (positional.length < 1) throw new UsageError('run needs a <lockfile>')
  if (positional.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(positional[1])}`)
  if (!command || command.length === 0) throw new UsageError('run needs a command after --')
  const wait = options.wait === undefined ? 0 : parseWait(options.wait)
  const userMetadata = options.metadata === undefined ? {} : parseMetadata(options.metadata)
  const onLost = options['on-lost'] ?? 'warn'
  if (onLost !== 'warn' && onLost !== 'term') throw new UsageError(`--on-lost must be "warn" or "term", got ${JSON.stringify(onLost)}`)

  const path = lockName(positional[0], options)
  const line = command.map(quoteArg).join(' ')
  let child = null
  let lock
  try {
    lock = new PidLock(path, {
      ...storeOption(options),
      metadata: { ...userMetadata, tool: 'leaselock run', command, commandLine: line, cwd: process.cwd() },
      onLeaseLost: (info) => {
        io.stderr.write(`${leaseLostMessage(`command (${line})`, info)}\n`)
        if (onLost === 'term' && child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      },
    })
  } catch (err) {
    if (err.code === 'ERR_OUT_OF_RANGE' || err.code === 'ERR_INVALID_ARG_VALUE') throw new UsageError(err.message)
    return errorExit(err, io.stderr)
  }
  try {
    await lock.acquire({ timeout: wait })
  } catch (err) {
    if (err.code !== 'ELOCKHELD') return errorExit(err, io.stderr)
    const holder = err.holder
    const head = holder
      ? `leaselock: not running \`${line}\`: the lock is held by pid ${holder.pid}.`
      : `leaselock: not running \`${line}\`: the lock file does not hold a lease yet (another process may be taking it).`
    io.stderr.write(`${head}\n${formatRows(holderLines(holder, path, null))}\n`)
    io.stderr.write(holder ? `Wait for it (--wait <ms>), or stop it first.\n` : `Try again in a moment, or wait for it with --wait <ms>.\n`)
    return EXIT.REFUSED
  }

  // From here on the lock is held: every way out goes through release().
  const handlers = new Map()
  const interactive = Boolean(process.stdin.isTTY)
  try {
    return await new Promise((resolve) => {
      let spawnError = null
      try {
        child = spawn(command[0], command.slice(1), {
          stdio: 'inherit',
          env: { ...process.env, LEASELOCK_LOCKFILE: path, ...(lock.token === null ? {} : { LEASELOCK_TOKEN: String(lock.token) }) },
        })
      } catch (err) {
        spawnError = err
      }
      if (spawnError) {
        io.stderr.write(`leaselock: cannot run ${quoteArg(command[0])}: ${spawnError.message}\n`)
        resolve(EXIT.SOFTWARE)
        return
      }
      for (const signal of FORWARDED) {
        const handler = () => {
          // A Ctrl+C or Ctrl+\ typed in a terminal goes to the whole foreground process group,
          // the command included: sending it again would look like a second Ctrl+C, which many
          // tools take as "quit now, skip the cleanup".
          if (interactive && (signal === 'SIGINT' || signal === 'SIGQUIT')) return
          if (child.exitCode === null && child.signalCode === null) {
            try {
              child.kill(signal)
            } catch {
              // already gone
            }
          }
        }
        handlers.set(signal, handler)
        process.on(signal, handler)
      }
      child.once('error', (err) => {
        const code = err.code === 'ENOENT' ? EXIT.NOT_FOUND : err.code === 'EACCES' ? EXIT.CANNOT_EXECUTE : EXIT.SOFTWARE
        io.stderr.write(`leaselock: cannot run ${quoteArg(command[0])}: ${err.code === 'ENOENT' ? 'command not found' : err.message}\n`)
        resolve(code)
      })
      child.once('exit', (code, signal) => {
        if (signal) resolve(128 + (os.constants.signals[signal] || 0))
        else resolve(code ?? EXIT.SOFTWARE)
      })
    })
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler)
    try {
      await lock.release()
    } catch (err) {
      io.stderr.write(`leaselock: releasing ${path} failed: ${err.message}\n`)
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** Runs the command line `args`; resolves with the exit code. */
async function main(args, io = { stdout: process.stdout, stderr: process.stderr }) {
  const [sub, ...rest] = args
  try {
    if (sub === undefined) {
      io.stderr.write(HELP)
      return EXIT.USAGE
    }
    if (sub === '-h' || sub === '--help' || sub === 'help') {
      io.stdout.write(HELP)
      return 0
    }
    if (sub === '-v' || sub === '--version') {
      io.stdout.write(`${require('../package.json').version}\n`)
      return 0
    }
    if (rest.includes('--help') && !rest.slice(0, rest.indexOf('--help')).includes('--')) {
      io.stdout.write(HELP)
      return 0
    }
    if (sub === 'run') return await run(rest, io)
    if (sub === 'status') return await status(rest, io)
    throw new UsageError(`unknown command ${JSON.stringify(sub)}`)
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`leaselock: ${err.message}\nRun "leaselock --help" for usage.\n`)
      return EXIT.USAGE
    }
    return errorExit(err, io.stderr)
  }
}

module.exports = { main, EXIT, HELP }
