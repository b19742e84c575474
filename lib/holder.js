'use strict'
// How a lock holder is described to a person: one place for the lines that the ELOCKHELD
// message, the Vite and webpack refusals and the `leaselock` command all print. Every field
// taken from the lock file passes through ./sanitize.js on its way out.

const { proveHolder } = require('./proof.js')
const { safeHostname, safeText, safeUrl } = require('./sanitize.js')

/** Any value read from a lock file, fit to print (./sanitize.js). */
function shown(value, limit) {
  return safeText(value, limit)
}

/** The holder's host name when it is printable; a placeholder for one that is not. */
function hostLabel(holder) {
  if (!holder.hostname) return null
  return safeHostname(holder.hostname) ?? 'a host whose name is not valid host name syntax'
}

function ago(when) {
  const s = Math.max(0, Math.round((Date.now() - when.getTime()) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`
  const h = Math.floor(s / 3600)
  return h < 48 ? `${h}h ${Math.floor((s % 3600) / 60)}m ago` : `${Math.floor(h / 24)} days ago`
}


/** A non-empty string field of the metadata, raw (print it through ./sanitize.js). */
function mdString(md, key) {
  return md && typeof md === 'object' && typeof md[key] === 'string' && md[key] ? md[key] : null
}

/** The holder's URL when it is a printable http(s) URL, else null. */
function holderUrl(holder) {
  return holder ? safeUrl(mdString(holder.metadata, 'url')) : null
}

/** `pid 123, http://localhost:5173/` (the URL when the lease has one): who a message is about. */
function whoHolds(holder, { url = true } = {}) {
  if (!holder) return 'another process'
  const u = url ? holderUrl(holder) : null
  return `pid ${shown(holder.pid)}${u ? `, ${u}` : ''}`
}

/** What a value that is not a lease under a store's key means (it is never ours to touch). */
const STORE_VALUE_NOT_A_LEASE = 'the value under its key is not a lease; it counts as held, and leaselock never overwrites or deletes it'

/**
 * The rows (each value fit to print) that describe a holder: what a person needs to find it
 * (URL, PID, project, command), when it started, and how to stop it. No holder: the content is
 * not a lease - a lock file's (reclaimed once old enough) or, `onStore`, a store value's.
 */
function holderLines(holder, lockPath, projectDir, { onStore = false } = {}) {
  const rows = []
  if (!holder) {
    rows.push(['lock', shown(lockPath, 4096)])
    rows.push(['state', onStore ? STORE_VALUE_NOT_A_LEASE : 'the file does not hold a lease (yet); it counts as held until it is older than the invalid-content threshold (1.2 s by default), then it is reclaimed'])
    return rows
  }
  const md = holder.metadata
  rows.push(['pid', shown(holder.pid) + (holder.alive === 'unknown' && holder.hostname ? ` (on ${hostLabel(holder)})` : '')])
  const url = holderUrl(holder)
  if (url) rows.push(['url', url])
  else if (mdString(md, 'url')) rows.push(['url', '(not shown: not a plain http or https URL)'])
  const project = mdString(md, 'root') || projectDir
  if (project) rows.push(['project', shown(project)])
  else if (mdString(md, 'cwd')) rows.push(['directory', shown(md.cwd)])
  const command = mdString(md, 'commandLine')
  if (command) rows.push(['command', shown(command)])
  if (holder.metadataDropped) rows.push(['metadata', shown(holder.metadataDropped)])
  if (holder.startedAt) rows.push(['started', `${ago(holder.startedAt)} (${holder.startedAt.toLocaleString()})`])
  rows.push(['lock', shown(lockPath, 4096)])
  if (holder.pid === process.pid && holder.alive === true) {
    // Another PidLock (or a worker thread) of this very process: no process to stop.
    rows.push(['note', 'that is this process: another PidLock instance or worker here holds it'])
    return rows
  }
  // How to stop it is said only for a process proven to hold this very file (proof.js): a
  // planted lease may name any process, and a hint is an invitation to signal it.
  if (lockPath && proveHolder(lockPath, holder).ok) rows.push(['stop it', stopHint(holder)])
  return rows
}

/**
 * How to stop a proven holder by hand. On Windows `taskkill` without /F only asks a process's
 * windows to close, which a console program such as a dev server does not have, so the hint
 * there is the forced form; `leaselock stop` is the graceful way.
 */
function stopHint(holder) {
  const pid = shown(holder.pid)
  return process.platform === 'win32' ? `taskkill /PID ${pid} /F  (gracefully: leaselock stop <lockfile>)` : `kill ${pid}`
}

/** Rows as `  key:   value` lines (their values are already fit to print). */
function formatRows(rows) {
  const width = Math.max(...rows.map(([k]) => k.length)) + 2
  return rows.map(([k, v]) => `  ${(k + ':').padEnd(width)}${v}`).join('\n')
}

module.exports = { shown, ago, whoHolds, mdString, holderUrl, holderLines, formatRows, STORE_VALUE_NOT_A_LEASE }
