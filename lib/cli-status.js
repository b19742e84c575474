'use strict'
// `leaselock status`, `leaselock list` and `leaselock stop`: who holds a lock, which guards run,
// and stopping a proven holder.

const nodePath = require('node:path')
const { PidLock } = require('./index.js')
const { ago, formatRows, holderLines, mdString, shown, STORE_VALUE_NOT_A_LEASE } = require('./holder.js')
const { safeJson, safeUrl } = require('./sanitize.js')
const { liveEntries } = require('./registry.js')
const { stopHolder, STOP_TIMEOUT } = require('./replace.js')
const { EXIT, UsageError, parse, parseDuration, errorExit, lockTarget } = require('./cli-args.js')

function holderJson(holder) {
  if (!holder) return null
  const out = {}
  for (const [k, v] of Object.entries(holder)) {
    // A fencing token is a bigint: JSON has no such type, so it is printed as a string.
    out[k] = v instanceof Date ? v.toISOString() : typeof v === 'bigint' ? String(v) : v
  }
  return out
}

function oneLock(positionals, command) {
  if (positionals.length !== 1) throw new UsageError(`${command} needs exactly one <lockfile>`)
  return nodePath.resolve(positionals[0])
}

/** The state `status` reports for a holder, and its exit code. */
function stateOf(holder) {
  if (!holder) return ['free', EXIT.FREE]
  if (!holder.valid) return holder.stale ? ['stale', EXIT.FREE] : ['invalid', EXIT.INVALID]
  if (holder.alive === false) return ['dead', EXIT.FREE]
  if (holder.stale) return ['stale', EXIT.FREE]
  return ['held', EXIT.HELD]
}

/** Free by the rules, but not for this user: a file in the way that it may not move. */
const blocked = (h) => Boolean(h && h.canTakeOver === false)
const head = (h) => (blocked(h) ? 'blocked' : 'free')
// The engine's message says who owns what: "this user cannot take the lock over: ...".
const takes = (h) =>
  blocked(h) ? `but ${shown(h.blockedBy ? h.blockedBy.message : 'this user cannot take it over: a file is in the way', 4096)}` : 'the next acquire takes it over'

const STATUS_TEXT = {
  free: (path) => `free: ${path}\n`,
  held: (path, h) => `held by pid ${shown(h.pid)}\n${formatRows(holderLines(h, path, null))}\n`,
  dead: (path, h) => `${head(h)}: ${path}\n  left by pid ${shown(h.pid)}, which is no longer running; ${takes(h)}\n`,
  stale: (path, h) =>
    h.valid
      ? `${head(h)}: ${path}\n  the lease of pid ${shown(h.pid)} has had no heartbeat since ${ago(h.lastHeartbeat)}; ${takes(h)}\n`
      : `${head(h)}: ${path}\n  its content is not a lease and it is old enough to be reclaimed; ${takes(h)}\n`,
  invalid: (path, h) => `held: ${path}\n  its content is not a lease (${h.size} bytes); it counts as held until it is older than the invalid-content threshold\n`,
  // On a store: another program's value under the lease key, never expired or touched by us.
  foreign: (key) => `held: ${key}\n  ${STORE_VALUE_NOT_A_LEASE}\n`,
}

async function status(args, io) {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, store: { type: 'string' } })
  oneLock(positionals, 'status')
  const { path, storeOptions } = lockTarget(values, positionals[0])
  let holder
  try {
    holder = await PidLock.inspect(path, storeOptions)
  } catch (err) {
    // A store URL or key the lock refuses is bad usage, as for `run`.
    if (err.code === 'ERR_INVALID_ARG_VALUE' || err.code === 'ERR_INVALID_ARG_TYPE') throw new UsageError(err.message)
    return errorExit(err, io.stderr)
  }
  const [state, free] = stateOf(holder)
  const code = free === EXIT.FREE && blocked(holder) ? EXIT.HELD : free
  const text = state === 'invalid' && storeOptions.store !== undefined ? STATUS_TEXT.foreign : STATUS_TEXT[state]
  io.stdout.write(values.json ? `${safeJson({ state, path, holder: holderJson(holder) })}\n` : text(path, holder))
  return code
}

/** One `list --json` row: a stable, documented shape. */
function listRow({ lock, tool, holder }) {
  const md = holder.metadata && typeof holder.metadata === 'object' && !Array.isArray(holder.metadata) ? holder.metadata : {}
  return {
    tool: mdString(md, 'tool') || tool || null,
    command: mdString(md, 'command') || mdString(md, 'commandLine') || null,
    project: mdString(md, 'root') || mdString(md, 'cwd') || null,
    url: mdString(md, 'url'),
    pid: holder.pid,
    startedAt: holder.startedAt ? holder.startedAt.toISOString() : null,
    lock,
  }
}

async function list(args, io) {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } })
  if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`)
  const rows = (await liveEntries()).map(listRow)
  if (values.json) {
    io.stdout.write(`${safeJson({ version: 1, locks: rows })}\n`)
    return 0
  }
  if (!rows.length) {
    io.stdout.write('no running guards\n')
    return 0
  }
  for (const r of rows) {
    const what = [r.tool, r.command].filter(Boolean).map((v) => shown(v)).join(' ')
    const url = safeUrl(r.url)
    io.stdout.write(`${what}: pid ${shown(r.pid)}${url ? `, ${url}` : ''}\n`)
    const rows2 = [r.project && ['project', shown(r.project)], r.startedAt && ['started', ago(new Date(r.startedAt))], ['lock', shown(r.lock, 4096)]].filter(Boolean)
    io.stdout.write(`${formatRows(rows2)}\n`)
  }
  return 0
}

const STOP_OPTIONS = {
  timeout: { type: 'string' },
  force: { type: 'boolean' },
  'allow-other-owner': { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
}

/** Stop options shared with `run --replace`. */
function stopOptions(values) {
  return {
    timeout: values.timeout === undefined ? STOP_TIMEOUT : parseDuration(values.timeout, '--timeout'),
    force: Boolean(values.force),
    allowOtherOwner: Boolean(values['allow-other-owner']),
  }
}

/** Maps a stop failure to its exit code (after printing it). */
function stopFailed(err, io) {
  if (err.code === 'ELOCKUNPROVEN') {
    io.stderr.write(`leaselock: ${err.message}\n`)
    return EXIT.NOPERM
  }
  if (err.code === 'ELOCKSTOPTIMEOUT') {
    io.stderr.write(`leaselock: ${err.message}\n`)
    return EXIT.REFUSED
  }
  return errorExit(err, io.stderr)
}

async function stop(args, io) {
  const { values, positionals } = parse(args, STOP_OPTIONS)
  const path = oneLock(positionals, 'stop')
  const say = values.quiet ? () => {} : (text) => io.stderr.write(`${text}\n`)
  try {
    const { stopped } = await stopHolder(path, { ...stopOptions(values), say })
    if (!stopped) say(`leaselock: ${path} has no running holder; nothing to stop.`)
    return 0
  } catch (err) {
    return stopFailed(err, io)
  }
}

module.exports = { status, list, stop, STOP_OPTIONS, stopOptions, stopFailed }
