'use strict'
// How a lock holder is described to a person: one place for the lines that the ELOCKHELD
// message, the Vite and webpack refusals and the `leaselock` command all print.

const { proveHolder } = require('./proof.js')

/**
 * Every value read from a lock file passes through here on its way to a terminal: the one place
 * where holder data is made fit to print.
 */
function shown(value) {
  return String(value)
}

function ago(when) {
  const s = Math.max(0, Math.round((Date.now() - when.getTime()) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`
  const h = Math.floor(s / 3600)
  return h < 48 ? `${h}h ${Math.floor((s % 3600) / 60)}m ago` : `${Math.floor(h / 24)} days ago`
}


/** `pid 123, http://localhost:5173/` (the URL when the lease has one): who a message is about. */
function whoHolds(holder, { url = true } = {}) {
  if (!holder) return 'another process'
  const u = url ? mdString(holder.metadata, 'url') : null
  return `pid ${shown(holder.pid)}${u ? `, ${shown(u)}` : ''}`
}

function mdString(md, key) {
  return md && typeof md === 'object' && typeof md[key] === 'string' && md[key] ? md[key] : null
}

/**
 * The rows (raw; formatRows shows them) that describe a holder: what a person needs to find it (URL, PID, project, command),
 * when it started, and how to stop it.
 */
function holderLines(holder, lockPath, projectDir) {
  const rows = []
  if (!holder) {
    rows.push(['lock', lockPath])
    rows.push(['state', 'the file does not hold a lease (yet); it counts as held until it is older than the invalid-content threshold (1.2 s by default), then it is reclaimed'])
    return rows
  }
  const md = holder.metadata
  rows.push(['pid', String(holder.pid) + (holder.alive === 'unknown' && holder.hostname ? ` (on ${holder.hostname})` : '')])
  const url = mdString(md, 'url')
  if (url) rows.push(['url', url])
  const project = mdString(md, 'root') || projectDir
  if (project) rows.push(['project', project])
  else if (mdString(md, 'cwd')) rows.push(['directory', md.cwd])
  const command = mdString(md, 'commandLine')
  if (command) rows.push(['command', command])
  if (holder.startedAt) rows.push(['started', `${ago(holder.startedAt)} (${holder.startedAt.toLocaleString()})`])
  rows.push(['lock', lockPath])
  // How to stop it is said only for a process proven to hold this very file (proof.js): a
  // planted lease may name any process, and a hint is an invitation to signal it.
  if (lockPath && proveHolder(lockPath, holder).ok) rows.push(['stop it', `kill ${holder.pid}`])
  return rows
}

/** Rows as `  key:   value` lines; every value is holder data or built from it, so it is shown(). */
function formatRows(rows) {
  const width = Math.max(...rows.map(([k]) => k.length)) + 2
  return rows.map(([k, v]) => `  ${(k + ':').padEnd(width)}${shown(v)}`).join('\n')
}

module.exports = { shown, ago, whoHolds, mdString, holderLines, formatRows }
