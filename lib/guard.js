'use strict'
// What the Vite plugin and the webpack plugin share: checking their options, the override
// switch (allow multiple), the refusal a person reads, and the lost-lease policy. Each plugin
// is an adapter that says where in its tool's life these run.

const fs = require('node:fs')
const nodePath = require('node:path')
const { formatRows, holderLines, holderUrl, shown, whoHolds } = require('./holder.js')
const { acquireVisibly } = require('./waiting.js')
const { stopHolder, stopHolderSync } = require('./replace.js')

const ALLOW_ENV = 'LEASELOCK_ALLOW_MULTIPLE'
const inspectCustom = Symbol.for('nodejs.util.inspect.custom')

// ---------------------------------------------------------------------------------------------
// Options.

function optionError(owner, name, expected, value) {
  const e = new TypeError(`${owner}: "${name}" must be ${expected}, got ${value === null ? 'null' : typeof value}`)
  e.code = 'ERR_INVALID_ARG_TYPE'
  return e
}

const isObject = (v) => v !== null && typeof v === 'object'
/** What a plugin does when another instance holds the lock. */
const CONFLICT = ['refuse', 'replace', 'reuse']

/**
 * Checks a plugin's options. `owner` names the plugin in errors; `booleans` are its own switches;
 * `policies` the lost-lease policies it supports besides a function. Returns the options.
 */
function checkOptions(options, { owner, booleans, policies }) {
  if (options === undefined) return {}
  const fail = (name, expected, value) => optionError(owner, name, expected, value)
  if (!isObject(options)) throw fail('options', 'an object', options)
  for (const key of [...booleans, 'allowMultiple', 'quiet']) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') throw fail(key, 'a boolean', options[key])
  }
  if (options.lockfile !== undefined && (typeof options.lockfile !== 'string' || !options.lockfile)) {
    throw fail('lockfile', 'a non-empty string', options.lockfile)
  }
  const lost = options.onLeaseLost
  if (lost !== undefined && typeof lost !== 'function' && !policies.includes(lost)) {
    throw fail('onLeaseLost', `${policies.map((p) => `'${p}'`).join(', ')} or a function`, lost)
  }
  if (options.wait !== undefined && (typeof options.wait !== 'number' || !(options.wait >= 0))) {
    throw fail('wait', 'a number >= 0 (milliseconds)', options.wait)
  }
  if (options.onConflict !== undefined && !CONFLICT.includes(options.onConflict)) {
    throw fail('onConflict', CONFLICT.map((p) => `'${p}'`).join(', '), options.onConflict)
  }
  for (const key of ['lockOptions', 'metadata']) {
    if (options[key] !== undefined && !isObject(options[key])) throw fail(key, 'an object', options[key])
  }
  return options
}

// ---------------------------------------------------------------------------------------------
// The override.

/** The override: the option wins; otherwise `LEASELOCK_ALLOW_MULTIPLE=1` (or `true`/`yes`/`on`). */
function allowMultiple(option) {
  if (option === true || option === false) return option
  const env = process.env[ALLOW_ENV]
  return env !== undefined && /^(1|true|yes|on)$/i.test(env.trim())
}

/** Why a second instance is allowed, for the warning: the option, or the environment. */
function allowReason(option) {
  return option === true ? 'allowMultiple: true' : `${ALLOW_ENV} is set`
}

// ---------------------------------------------------------------------------------------------
// The refusal.

/**
 * The message printed when a second instance is refused.
 * `what`: "Vite dev server", "webpack dev server", ...; `override`: how to start one anyway.
 */
function refusalMessage({ what, holder, lockPath, projectDir, override }) {
  const url = holderUrl(holder)
  const head = holder
    ? `Another ${what} is already running for this project (${whoHolds(holder)}).`
    : `Another ${what} is starting for this project: its lock file is being written.`
  const advice = holder ? (url ? 'Use the running one (open its URL), or stop it first.' : 'Use the running one, or stop it first.') : 'Try again in a moment.'
  const lines = [head, formatRows(holderLines(holder, lockPath, projectDir)), advice]
  if (override) lines.push(`To start a second one on purpose: ${override}.`)
  return lines.join('\n')
}

/**
 * An `ELOCKHELD` error whose message is the refusal text. Printed with `util.inspect` (as the
 * Vite and webpack CLIs do), it shows only that text: a refusal is not a crash, a stack trace
 * would only bury the line a person needs.
 */
function refusalError(cause, context) {
  const message = refusalMessage({ ...context, holder: cause.holder ?? null, lockPath: cause.path })
  const err = new Error(message, { cause })
  err.code = 'ELOCKHELD'
  err.path = cause.path
  err.holder = cause.holder ?? null
  Object.defineProperty(err, inspectCustom, { value: () => message, enumerable: false })
  return err
}

function isHeld(err) {
  return Boolean(err && err.code === 'ELOCKHELD')
}

/**
 * The allow-multiple path and the refusal, for an `ELOCKHELD` from taking a plugin's lock.
 * Returns null when a second instance may start anyway (after logging why), else the error to
 * throw. `plugin`: { what, projectDir, override, allow (the option), log(level, text) }.
 */
function refusedOrAllowed(err, plugin) {
  if (!isHeld(err)) return err
  if (plugin.bypass || allowMultiple(plugin.allow)) {
    const who = whoHolds(err.holder, { url: false })
    plugin.log('warn', `leaselock: ${who} already runs a ${plugin.what} for this project; starting another one anyway (${plugin.bypass || allowReason(plugin.allow)}).`)
    return null
  }
  return refusalError(err, { what: plugin.what, projectDir: plugin.projectDir, override: plugin.override })
}

/** The URL to reuse when `onConflict: 'reuse'` and a live holder has one, else null. */
function reusable(err, plugin) {
  if (plugin.onConflict !== 'reuse' || !isHeld(err) || !err.holder || err.holder.alive === false) return null
  return holderUrl(err.holder)
}

/**
 * Takes a plugin's lock as its options say. Resolves with `{ hold, reclaimed }`; `{ hold: null }`
 * when a second instance may run without the lock; `{ hold: null, reuse: url, holder }` when the
 * running instance is to be reused. Rejects with the refusal.
 * `plugin`: { what, projectDir, override, allow, bypass, onConflict, wait, quiet, log(level, text) }.
 */
async function takeLock(hold, plugin) {
  const say = (text) => plugin.log('info', text)
  try {
    const out = await acquireVisibly((timeout) => hold.acquire(timeout), { path: hold.path, timeout: plugin.wait ?? 0, stream: process.stderr, quiet: plugin.quiet })
    return { hold, reclaimed: out.reclaimed }
  } catch (err) {
    if (isHeld(err) && plugin.onConflict === 'replace' && !plugin.bypass && !allowMultiple(plugin.allow)) {
      await stopHolder(hold.path, { say })
      return { hold, reclaimed: (await hold.acquire(0)).reclaimed }
    }
    return settle(err, plugin)
  }
}

/** takeLock on the calling thread; the visible waiting is one line before it blocks. */
function takeLockSync(hold, plugin) {
  try {
    return { hold, reclaimed: hold.acquireSync(0).reclaimed }
  } catch (first) {
    if (!isHeld(first)) throw first
    try {
      if (plugin.onConflict === 'replace' && !plugin.bypass && !allowMultiple(plugin.allow)) {
        stopHolderSync(hold.path, { say: (text) => plugin.log('info', text) })
      } else if (plugin.wait) {
        if (!plugin.quiet) plugin.log('info', `leaselock: waiting up to ${Math.round(plugin.wait / 1000)}s for ${whoHolds(first.holder)} to release ${hold.path}`)
      } else {
        return settle(first, plugin)
      }
      return { hold, reclaimed: hold.acquireSync(plugin.onConflict === 'replace' ? 0 : plugin.wait).reclaimed }
    } catch (err) {
      return settle(err, plugin)
    }
  }
}

function settle(err, plugin) {
  const url = reusable(err, plugin)
  if (url) return { hold: null, reuse: url, holder: err.holder }
  const out = refusedOrAllowed(err, plugin)
  if (out) throw out
  return { hold: null }
}

/** The line a reusing instance prints before it ends. */
function reuseMessage(what, holder, url) {
  return `leaselock: a ${what} already runs for this project at ${url} (pid ${shown(holder.pid)}); reusing it, not starting another (onConflict: 'reuse').`
}

// ---------------------------------------------------------------------------------------------
// The lost lease.

const REASONS = {
  'owner-changed': 'another process took it over',
  removed: 'the lock file was removed or replaced',
  'heartbeat-failed': 'its heartbeat kept failing',
  'heartbeat-stalled': 'its filesystem stopped answering (a hung mount)',
}

/** The warning for a lost lease: what happened, who has it now, what to do. */
function leaseLostMessage(what, info) {
  const reason = REASONS[info.reason] || info.reason
  const owner = info.newOwner
  const url = owner && owner.valid ? holderUrl(owner) : null
  const now = owner && owner.valid ? ` It now belongs to pid ${shown(owner.pid)}${url ? ` (${url})` : ''}.` : ''
  const err = info.error ? ` (${shown(info.error, 1000)})` : ''
  return `leaselock: this ${what} lost its lock ${shown(info.path, 4096)}: ${shown(reason)}${err}.${now} Another instance may start for this project now; restart this one to guard it again.`
}

/**
 * Applies the lost-lease policy: a function is called (a throw is logged); `'warn'` logs the
 * warning; any other policy (`'close'`, `'exit'`) logs an error and calls `stop(policy)`.
 * `context` is what the function gets besides `info` and the message.
 */
function applyLostPolicy(policy = 'warn', { what, info, context, log, stop, stopping = '', retake }) {
  const message = leaseLostMessage(what, info)
  if (typeof policy === 'function') {
    try {
      policy(info, { ...context, message })
    } catch (err) {
      log('error', `leaselock: onLeaseLost threw: ${err && err.stack ? err.stack : err}`)
    }
    return
  }
  if (policy === 'warn') {
    // A server that keeps running should not run unguarded when the lock is free again (its
    // file was removed, or the process that took it has ended): it takes it back if it can.
    if (!retake) return log('warn', message)
    retake().then(
      (ok) => log('warn', ok ? `${message.replace(/ Another instance may start.*$/, '')} The lock was free again: this ${what} holds it again.` : message),
      () => log('warn', message),
    )
    return
  }
  log('error', `${message}\nleaselock: stopping${stopping ? ` ${stopping}` : ''} (onLeaseLost: '${policy}').`)
  stop(policy)
}

// ---------------------------------------------------------------------------------------------

/** The directory of the nearest package.json at or above `dir`, or `dir` itself. */
function packageRoot(dir) {
  let cur = nodePath.resolve(dir)
  for (;;) {
    if (fs.existsSync(nodePath.join(cur, 'package.json'))) return cur
    const up = nodePath.dirname(cur)
    if (up === cur) return nodePath.resolve(dir)
    cur = up
  }
}

module.exports = {
  ALLOW_ENV,
  allowMultiple,
  applyLostPolicy,
  checkOptions,
  isHeld,
  leaseLostMessage,
  packageRoot,
  refusalError,
  refusalMessage,
  refusedOrAllowed,
  reuseMessage,
  takeLock,
  takeLockSync,
}
