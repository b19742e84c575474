'use strict'
// `leaselock run`: runs a command while holding a lock. An application, not the library: it
// installs signal handlers and sets the exit code.

const { spawn } = require('node:child_process')
const os = require('node:os')
const { PidLock } = require('./index.js')
const { formatRows, holderLines, holderUrl, shown } = require('./holder.js')
const { leaseLostMessage } = require('./guard.js')
const { METADATA_LIMIT, fitMetadata, joinArgs, quoteArg } = require('./command-line.js')
const { register, unregister } = require('./registry.js')
const { acquireVisibly } = require('./waiting.js')
const { stopHolder } = require('./replace.js')
const { spawnArgs } = require('./spawn.js')
const { STOP_OPTIONS, stopOptions, stopFailed } = require('./cli-status.js')
const { EXIT, UsageError, parse, parseDuration, errorExit, lockTarget } = require('./cli-args.js')

const RUN_OPTIONS = {
  wait: { type: 'string' },
  metadata: { type: 'string' },
  'on-lost': { type: 'string' },
  replace: { type: 'boolean' },
  reuse: { type: 'boolean' },
  'record-command': { type: 'boolean' },
  store: { type: 'string' },
  ...STOP_OPTIONS,
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2']

function parseMetadata(value) {
  let md
  try {
    md = JSON.parse(value)
  } catch (err) {
    throw new UsageError(`--metadata is not valid JSON: ${err.message}`)
  }
  if (md === null || typeof md !== 'object' || Array.isArray(md)) throw new UsageError('--metadata must be a JSON object')
  return md
}

function runOptions(args) {
  const { values, positionals, command } = parse(args, RUN_OPTIONS, { command: true })
  if (positionals.length < 1) throw new UsageError('run needs a <lockfile>')
  if (!command || command.length === 0) throw new UsageError('run needs a command (after the lock file, or after --)')
  const onLost = values['on-lost'] ?? 'warn'
  if (onLost !== 'warn' && onLost !== 'term') throw new UsageError(`--on-lost must be "warn" or "term", got ${JSON.stringify(onLost)}`)
  if (values.replace && values.reuse) throw new UsageError('--replace and --reuse exclude each other')
  // Stopping a holder needs its process on this machine (/proc); a store's holder may be anywhere.
  if (values.replace && values.store !== undefined) throw new UsageError('--replace cannot be used with --store')
  const { path, storeOptions } = lockTarget(values, positionals[0])
  return {
    path,
    storeOptions,
    command,
    wait: values.wait === undefined ? 0 : parseDuration(values.wait, '--wait', { infinity: true }),
    metadata: values.metadata === undefined ? {} : parseMetadata(values.metadata),
    onLost,
    replace: Boolean(values.replace),
    reuse: Boolean(values.reuse),
    recordCommand: Boolean(values['record-command']),
    quiet: Boolean(values.quiet),
    stop: stopOptions(values),
  }
}

/** The refusal for a held lock (exit 75), or for --reuse the running holder's URL (exit 0). */
function refused(err, o, line, io) {
  const holder = err.holder
  const url = holderUrl(holder)
  if (o.reuse && url && holder.alive !== false) {
    io.stdout.write(`${url}\n`)
    if (!o.quiet) io.stderr.write(`leaselock: reusing pid ${shown(holder.pid)}, which already runs for ${o.path}; not running \`${line}\`.\n`)
    return 0
  }
  const onStore = o.storeOptions.store !== undefined
  const why = holder
    ? `the lock is held by pid ${shown(holder.pid)}.`
    : onStore
      ? `the value under the key ${shown(o.path)} is not a lease.`
      : 'the lock file does not hold a lease yet (another process may be taking it).'
  io.stderr.write(`leaselock: not running \`${line}\`: ${why}\n${formatRows(holderLines(holder, o.path, null, { onStore }))}\n`)
  // --replace and `stop` act on a holder's lock file on this machine, not on a store; another
  // program's value under a store key does not go away by waiting.
  if (holder) io.stderr.write(onStore ? 'Wait for it (--wait <duration>), or stop its process first.\n' : 'Wait for it (--wait <duration>), replace it (--replace), or stop it first.\n')
  else if (!onStore) io.stderr.write('Try again in a moment, or wait for it with --wait <duration>.\n')
  return EXIT.REFUSED
}

/** Takes the lock as the options say (replace, wait visibly); resolves with an exit code or null. */
async function take(lock, o, line, io) {
  if (o.replace) {
    const say = o.quiet ? () => {} : (text) => io.stderr.write(`${text}\n`)
    try {
      await stopHolder(o.path, { ...o.stop, say })
    } catch (err) {
      return stopFailed(err, io)
    }
  }
  try {
    await acquireVisibly((timeout) => lock.acquire({ timeout }), {
      path: o.path,
      inspect: () => PidLock.inspect(o.path, o.storeOptions),
      timeout: o.wait,
      stream: io.stderr,
      quiet: o.quiet,
    })
    return null
  } catch (err) {
    if (err.code !== 'ELOCKHELD') return errorExit(err, io.stderr)
    return refused(err, o, line, io)
  }
}

/** Spawns the command and resolves with the exit code leaselock passes on. */
function supervise(o, io, state, token) {
  const interactive = Boolean(process.stdin.isTTY)
  return new Promise((resolve) => {
    const { file, args, options } = spawnArgs(o.command)
    try {
      // The command also gets the fencing token, to pass on to what it writes; without one
      // (see docs/cli.md) none is passed on, not even one inherited from an outer run.
      const env = { ...process.env, LEASELOCK_LOCKFILE: o.path }
      if (token === null) delete env.LEASELOCK_TOKEN
      else env.LEASELOCK_TOKEN = String(token)
      state.child = spawn(file, args, { stdio: 'inherit', env, ...options })
    } catch (err) {
      io.stderr.write(`leaselock: cannot run ${quoteArg(o.command[0])}: ${err.message}\n`)
      resolve(EXIT.SOFTWARE)
      return
    }
    const child = state.child
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
      state.handlers.set(signal, handler)
      process.on(signal, handler)
    }
    child.once('error', (err) => {
      const code = err.code === 'ENOENT' ? EXIT.NOT_FOUND : err.code === 'EACCES' ? EXIT.CANNOT_EXECUTE : EXIT.SOFTWARE
      io.stderr.write(`leaselock: cannot run ${quoteArg(o.command[0])}: ${err.code === 'ENOENT' ? 'command not found' : err.message}\n`)
      resolve(code)
    })
    child.once('exit', (code, signal) => resolve(signal ? 128 + (os.constants.signals[signal] || 0) : (code ?? EXIT.SOFTWARE)))
  })
}

async function run(args, io) {
  const o = runOptions(args)
  const line = joinArgs(o.command)
  if (Buffer.byteLength(JSON.stringify({ ...o.metadata, tool: 'leaselock run' })) > METADATA_LIMIT) {
    throw new UsageError(`--metadata is too large: the lease holds at most ${METADATA_LIMIT} bytes of metadata`)
  }
  const state = { child: null, handlers: new Map() }
  let lock
  try {
    // Lock files are readable by others and an argv may carry a secret (a token, a password), so
    // the command is recorded only when asked, once, as a line that a long command shortens
    // (never a reason not to run).
    const recorded = o.recordCommand ? { commandLine: line } : {}
    const metadata = fitMetadata({ ...o.metadata, tool: 'leaselock run', ...recorded, cwd: process.cwd() }, ['cwd'])
    lock = new PidLock(o.path, {
      ...o.storeOptions,
      metadata,
      onLeaseLost: (info) => {
        io.stderr.write(`${leaseLostMessage(`command (${line})`, info)}\n`)
        const child = state.child
        if (o.onLost === 'term' && child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      },
    })
  } catch (err) {
    if (err.code === 'ERR_OUT_OF_RANGE' || err.code === 'ERR_INVALID_ARG_VALUE') throw new UsageError(err.message)
    return errorExit(err, io.stderr)
  }
  const early = await take(lock, o, line, io)
  if (early !== null) return early

  // From here on the lock is held: every way out goes through release().
  // The registry `list` reads points at lock files on this machine; a store key is not one.
  const local = o.storeOptions.store === undefined
  if (local) register(o.path, 'leaselock run')
  try {
    return await supervise(o, io, state, lock.token)
  } finally {
    for (const [signal, handler] of state.handlers) process.off(signal, handler)
    if (local) unregister(o.path)
    try {
      await lock.release()
    } catch (err) {
      io.stderr.write(`leaselock: releasing ${o.path} failed: ${err.message}\n`)
    }
  }
}

module.exports = { run, RUN_OPTIONS }
