'use strict'
// Command lines as a person reads them, and lease metadata that always fits the lease: what the
// plugins and the `leaselock` command record about the process that holds a lock.

const nodePath = require('node:path')
/** The lease's cap on metadata, in bytes of JSON: the engine's own number (it refuses more). */
const { METADATA_LIMIT } = require('./constants.js')
/** A command line longer than this is shortened in the lease (the command itself runs in full). */
const COMMAND_LINE_MAX = 1000

function quoteArg(a) {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${String(a).replace(/'/g, `'\\''`)}'`
}

/** `argv` quoted and joined as a shell would take it. */
function joinArgs(argv) {
  return argv.map(quoteArg).join(' ')
}

/** The command line of this process, as a person would type it (`vite --port 3000`). */
function commandLine() {
  const script = process.argv[1] ? nodePath.basename(process.argv[1]).replace(/\.(c|m)?js$/, '') : 'node'
  return joinArgs([script, ...process.argv.slice(2)])
}

/** `line` cut to `max` characters, saying how much was cut. */
function shorten(line, max = COMMAND_LINE_MAX) {
  if (typeof line !== 'string' || line.length <= max) return line
  const note = ` ... (${line.length - max} more characters)`
  return line.slice(0, max - note.length) + note
}

const size = (md) => Buffer.byteLength(JSON.stringify(md))

/**
 * Keeps metadata under the lease's size cap: the command line is shortened first, then the least
 * useful fields are dropped. A caller never fails (or refuses to run) because a command is long.
 */
function fitMetadata(md, droppable = ['argv', 'urls', 'cwd']) {
  const out = { ...md }
  if (typeof out.commandLine === 'string') out.commandLine = shorten(out.commandLine)
  for (const key of [...droppable, 'commandLine']) {
    if (size(out) <= METADATA_LIMIT) return out
    delete out[key]
  }
  return size(out) <= METADATA_LIMIT ? out : { pid: process.pid }
}

module.exports = { METADATA_LIMIT, quoteArg, joinArgs, commandLine, shorten, fitMetadata }
