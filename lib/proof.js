'use strict'
// Proof that a process holds a lock, before anything signals it.
//
// Anyone who can write the lock's directory can plant a lease naming any pid, with that
// process's correct start time (it is readable from /proc), so a lease that names a live
// process proves nothing by itself. A process is taken to be the holder only when all of these
// hold (issue: never signal a process the lease does not prove to be the holder):
// - the lease is read through a descriptor opened with O_NOFOLLOW whose fstat shows a regular
//   file that neither group nor others may write;
// - the file is owned by the caller's effective uid and by the holder's effective uid (a root
//   caller accepts only a root-owned file unless `allowOtherOwner` is given);
// - the holder process has that very file open (same device and inode among /proc/<pid>/fd);
// - the engine judges the holder alive (proven, not 'unknown') and its lease fresh.
// What cannot be checked this way (no /proc, another host) is never proven. Signals go through
// a pidfd opened before the final re-check (see replace.js), so a pid reused in between is
// never hit.

const fs = require('node:fs')

const MAX_LEASE = 16 * 1024

function fail(reason) {
  return { ok: false, reason }
}

/** The effective uid of `pid` from /proc/<pid>/status, or null. */
function effectiveUid(pid) {
  try {
    const m = /^Uid:\s+\d+\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

/** Whether `pid` has a file with this device and inode open. */
function hasOpen(pid, dev, ino) {
  let fds
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`)
  } catch {
    return false
  }
  for (const fd of fds) {
    try {
      const st = fs.statSync(`/proc/${pid}/fd/${fd}`, { bigint: true })
      if (st.dev === dev && st.ino === ino) return true
    } catch {
      // closed meanwhile, or not ours to see
    }
  }
  return false
}

/** Reads the lock at `path` without following a link: its stat and the lease's pid/owner. */
function readLease(path) {
  let fd
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  } catch (err) {
    return fail(err.code === 'ELOOP' ? 'the lock path is a symbolic link' : `the lock file cannot be opened (${err.code})`)
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true })
    if (!st.isFile()) return fail('the lock path is not a regular file')
    if ((st.mode & 0o022n) !== 0n) return fail('the lock file may be written by group or others')
    const buf = Buffer.alloc(MAX_LEASE)
    const n = fs.readSync(fd, buf, 0, MAX_LEASE, 0)
    let lease
    try {
      lease = JSON.parse(buf.subarray(0, n).toString('utf8'))
    } catch {
      return fail('the lock file does not hold a lease')
    }
    if (!lease || !Number.isInteger(lease.pid) || lease.pid <= 0 || typeof lease.ownerID !== 'string') return fail('the lock file does not hold a lease')
    return { ok: true, stat: st, pid: lease.pid, ownerId: lease.ownerID }
  } catch (err) {
    return fail(`the lock file cannot be read (${err.code || err.message})`)
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Whether the lease at `path` proves that `holder` (from `PidLock.inspect`) holds it:
 * `{ ok: true, pid, uid, dev, ino }` or `{ ok: false, reason }`.
 */
function proveHolder(path, holder, { allowOtherOwner = false } = {}) {
  if (process.platform !== 'linux') return fail('holder proof needs /proc (Linux)')
  if (!holder || !holder.valid) return fail('the lock file does not hold a lease')
  if (holder.alive !== true) return fail(holder.alive === false ? 'the holder is not running' : 'the holder cannot be proven alive from here')
  if (holder.stale) return fail('the lease is stale')
  const lease = readLease(path)
  if (!lease.ok) return lease
  if (lease.pid !== holder.pid || lease.ownerId !== holder.ownerId) return fail('the lock file changed while it was checked')
  const uid = Number(lease.stat.uid)
  const me = typeof process.geteuid === 'function' ? process.geteuid() : null
  if (me !== 0 || !allowOtherOwner) {
    if (uid !== me) return fail(`the lock file belongs to uid ${uid}, not to this user (uid ${me})`)
  }
  const holderUid = effectiveUid(holder.pid)
  if (holderUid === null) return fail(`process ${holder.pid} cannot be examined`)
  if (holderUid !== uid) return fail(`process ${holder.pid} runs as uid ${holderUid}, but the lock file belongs to uid ${uid}`)
  if (!hasOpen(holder.pid, lease.stat.dev, lease.stat.ino)) return fail(`process ${holder.pid} does not have the lock file open`)
  return { ok: true, pid: holder.pid, uid, dev: lease.stat.dev, ino: lease.stat.ino }
}

module.exports = { proveHolder }
