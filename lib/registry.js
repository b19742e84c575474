'use strict'
// The per-user registry of running guards, read by `leaselock list`: one small file per lock,
// naming the lock and the pid that holds it, in a directory only this user can use
// (`$XDG_RUNTIME_DIR/leaselock`, else `<tmpdir>/leaselock-<uid>`). Everything else `list` shows
// comes from the lease itself, so an entry is only a pointer: an entry whose lock is no longer
// held by its pid is ignored and removed. Writing the registry never fails the caller.

const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const nodePath = require('node:path')
const { PidLock } = require('./index.js')

const VERSION = 1
const uid = () => (typeof process.geteuid === 'function' ? process.geteuid() : null)

function registryDir() {
  const runtime = process.env.XDG_RUNTIME_DIR
  if (runtime && nodePath.isAbsolute(runtime)) return nodePath.join(runtime, 'leaselock')
  return nodePath.join(os.tmpdir(), uid() === null ? 'leaselock-registry' : `leaselock-${uid()}`)
}

/** The registry directory, created if needed; null when it is not safely ours. */
function ownDir(create) {
  const dir = registryDir()
  if (create) {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    } catch {
      return null
    }
  }
  let st
  try {
    st = fs.lstatSync(dir)
  } catch {
    return null
  }
  // Someone else's directory, or one others may write, is not used: they could plant entries.
  if (!st.isDirectory() || (uid() !== null && (st.uid !== uid() || (st.mode & 0o077) !== 0))) return null
  return dir
}

const entryName = (lockPath) => `${crypto.createHash('sha256').update(lockPath).digest('hex').slice(0, 24)}.json`

/** Records that this process holds the lock at `lockPath` (`tool`: "vite", "leaselock run"...). */
function register(lockPath, tool) {
  const dir = ownDir(true)
  if (!dir) return
  const file = nodePath.join(dir, entryName(lockPath))
  const tmp = `${file}.${process.pid}.tmp`
  try {
    fs.writeFileSync(tmp, `${JSON.stringify({ version: VERSION, lock: lockPath, pid: process.pid, tool })}\n`, { mode: 0o600, flag: 'w' })
    fs.renameSync(tmp, file)
  } catch {
    fs.rmSync(tmp, { force: true })
  }
}

/** Removes this process's entry for `lockPath` (another process's newer entry is left alone). */
function unregister(lockPath) {
  const dir = ownDir(false)
  if (!dir) return
  const file = nodePath.join(dir, entryName(lockPath))
  try {
    const entry = JSON.parse(fs.readFileSync(file, 'utf8'))
    if (entry.pid === process.pid) fs.rmSync(file, { force: true })
  } catch {
    // nothing of ours there
  }
}

function readEntry(file) {
  try {
    const st = fs.lstatSync(file)
    if (!st.isFile() || st.size > 8192) return null
    const e = JSON.parse(fs.readFileSync(file, 'utf8'))
    return e && e.version === VERSION && typeof e.lock === 'string' && nodePath.isAbsolute(e.lock) && Number.isInteger(e.pid) ? e : null
  } catch {
    return null
  }
}

/**
 * The live guards of this user: `[{ lock, holder, tool }]`, each lock held by the pid its entry
 * names, and that pid alive. Entries that fail that are removed; a lease gone stale is kept
 * while its pid is known to be alive (its holder is only frozen: stopped in a debugger,
 * suspended) until another takes it.
 */
async function liveEntries() {
  const dir = ownDir(false)
  if (!dir) return []
  const out = []
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.json')) continue
    const file = nodePath.join(dir, name)
    const entry = readEntry(file)
    let holder = null
    if (entry) {
      try {
        holder = await PidLock.inspect(entry.lock)
      } catch {
        continue // cannot be read now (permissions, a slow mount): neither shown nor pruned
      }
    }
    // Stale but alive is a frozen holder; stale and unknown (another boot) is gone.
    const live = entry && holder && holder.valid && holder.pid === entry.pid && (holder.alive === true || (holder.alive !== false && !holder.stale))
    if (live) out.push({ lock: entry.lock, tool: entry.tool, holder })
    else fs.rmSync(file, { force: true })
  }
  return out.sort((a, b) => (a.holder.startedAt ?? 0) - (b.holder.startedAt ?? 0))
}

module.exports = { registryDir, register, unregister, liveEntries }
