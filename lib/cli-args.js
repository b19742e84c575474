'use strict'
// What every `leaselock` subcommand shares: exit codes, usage errors, durations, and the split
// of a command line into leaselock's own options and the command it runs.

const nodePath = require('node:path')
const { parseArgs } = require('node:util')
const { safeText } = require('./sanitize.js')

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
  NOPERM: 77, // EX_NOPERM: the holder is not proven, so it is not signalled
  CANNOT_EXECUTE: 126,
  NOT_FOUND: 127,
})

class UsageError extends Error {}

const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** `500ms`, `30s`, `2m`, `1h`, a bare number of milliseconds, or `Infinity` (when allowed). */
function parseDuration(value, name, { infinity = false } = {}) {
  const text = String(value).trim()
  if (infinity && /^(inf|infinity)$/i.test(text)) return Infinity
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/i.exec(text)
  if (!m) {
    throw new UsageError(`${name} must be a duration such as 500ms, 30s or 2m (a bare number is milliseconds)${infinity ? ' or "Infinity"' : ''}, got ${JSON.stringify(value)}`)
  }
  return Math.round(Number(m[1]) * UNITS[(m[2] || 'ms').toLowerCase()])
}

/**
 * Parses `args` with node:util parseArgs against `options` (its format). With `command: true`,
 * the first positional is the lock file and everything from the next word on - or after `--` -
 * is the command, untouched: `leaselock run x.lock node app.js --help` runs `node app.js --help`.
 */
function parse(args, options, { command = false } = {}) {
  let own = args
  let rest = null
  if (command) {
    let positionals = 0
    for (let i = 0; i < args.length; i++) {
      const a = args[i]
      if (a === '--') {
        own = args.slice(0, i)
        rest = args.slice(i + 1)
        break
      }
      if (a.startsWith('-') && a !== '-') {
        const name = a.startsWith('--') ? a.slice(2).split('=')[0] : null
        const spec = name ? options[name] : Object.values(options).find((o) => `-${o.short}` === a)
        if (spec && spec.type === 'string' && !a.includes('=')) i++
        continue
      }
      if (++positionals === 2) {
        own = args.slice(0, i)
        rest = args.slice(i)
        break
      }
    }
  }
  let parsed
  try {
    parsed = parseArgs({ args: own, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError(err.message.replace(/^Unknown option '(.*?)'.*$/s, 'unknown option $1'))
  }
  return { values: parsed.values, positionals: parsed.positionals, command: rest }
}

const STORE_PROBLEMS = ['ELOCKSTOREUNREACHABLE', 'ELOCKSTOREAUTH', 'ELOCKSTORE']

/** `--store <url>` names a lock server: the positional is a key there, not a lock file path. */
function lockTarget(values, name) {
  if (values.store === undefined) return { path: nodePath.resolve(name), storeOptions: {} }
  return { path: name, storeOptions: { store: values.store } }
}

function errorExit(err, stderr) {
  const code = err && err.code
  const fileProblem = ['EACCES', 'EPERM', 'EROFS', 'ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG', 'ENOSPC', 'EDQUOT', 'ELOCKNOTFILE', 'ELOCKNOTLEASE', 'EISDIR', 'ELOCKNOTMOVABLE', 'ELOCKUNSAFEPATH'].includes(code)
  // Error messages may quote a lock file's content (ELOCKNOTLEASE): printed through the sanitiser.
  stderr.write(`leaselock: ${safeText(err && err.message ? err.message : String(err), 4096)}\n`)
  if (STORE_PROBLEMS.includes(code)) return EXIT.UNAVAILABLE
  return fileProblem ? EXIT.CANTCREAT : EXIT.SOFTWARE
}

module.exports = { EXIT, UsageError, parse, parseDuration, errorExit, lockTarget }
