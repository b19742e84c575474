'use strict'
// `leaselock status`, `leaselock list` and `leaselock stop`: who holds a lock, which guards run,
// and stopping a proven holder.

const nodePath = require('node:path')
const { PidLock } = require('./index.js')
const { ago, formatRows, holderLines, mdString, shown } = require('./holder.js')
const { liveEntries } = require('./registry.js')
const { stopHolder, STOP_TIMEOUT } = require('./replace.js')
const { EXIT, UsageError, parse, parseDuration, errorExit } = require('./cli-args.js')

function holderJson(holder) {
  if (!holder) return null
  const out = {}
  for (const [k, v] of Object.entries(holder)) out[k] = v instanceof Date ? v.toISOString() : v
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

const STATUS_TEXT = {
  free: (path) => `free: ${path}\n`,
  held: (path, h) => `held by pid ${shown(h.pid)}\n${formatRows(holderLines(h, path, null))}\n`,
  dead: (path, h) => `free: ${path}\n  left by pid ${shown(h.pid)}, which is no longer running; the next acquire takes it over\n`,
  stale: (path, h) =>
    h.valid
      ? `free: ${path}\n  the lease of pid ${shown(h.pid)} has had no heartbeat since ${ago(h.lastHeartbeat)}; the next acquire takes it over\n`
      : `free: ${path}\n  its content is not a lease and it is old enough to be reclaimed\n`,
  invalid: (path, h) => `held: ${path}\n  its content is not a lease (${h.size} bytes); it counts as held until it is older than the invalid-content threshold\n`,
}

async function status(args, io) {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } })
  const path = oneLock(positionals, 'status')
  let holder
  try {
    holder = await PidLock.inspect(path)
  } catch (err) {
    return errorExit(err, io.stderr)
  }
  const [state, code] = stateOf(holder)
  io.stdout.write(values.json ? `${JSON.stringify({ state, path, holder: holderJson(holder) })}\n` : STATUS_TEXT[state](path, holder))
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
    io.stdout.write(`${JSON.stringify({ version: 1, locks: rows })}\n`)
    return 0
  }
  if (!rows.length) {
    io.stdout.write('no running guards\n')
    return 0
  }
  for (const r of rows) {
    const head = [r.tool, r.command].filter(Boolean).map(shown).join(' ')
    io.stdout.write(`${head}: pid ${shown(r.pid)}${r.url ? `, ${shown(r.url)}` : ''}\n`)
    const rows2 = [r.project && ['project', r.project], r.startedAt && ['started', ago(new Date(r.startedAt))], ['lock', r.lock]].filter(Boolean)
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
