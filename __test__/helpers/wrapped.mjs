// Node scripts run under a wrapper command (unshare, nsenter, setpriv...), for the tests that
// need another namespace, another user or another /proc. Root only; each use checks first that
// the kernel allows what it needs and skips with the reason otherwise.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { libMjsUrl } from './util.mjs'

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

/** Why `wrapper` cannot run a trivial command here, or null when it can. */
export function cannotRun(wrapper) {
  if (process.platform === 'win32') return 'POSIX only: namespaces, setuid and /proc'
  if (!isRoot) return 'needs root'
  const r = spawnSync(wrapper[0], [...wrapper.slice(1), 'true'], { encoding: 'utf8', timeout: 10_000 })
  if (r.error) return `${wrapper[0]}: ${r.error.message}`
  if (r.status !== 0) return `the kernel refused ${wrapper.join(' ')}: ${r.stderr.trim()}`
  return null
}

const HIDEPID_MOUNT = 'mount -t proc -o hidepid=2 proc /proc'

/** A shell wrapper that gives the command a private /proc mounted with hidepid=2. */
export const hidepid = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `${HIDEPID_MOUNT} && exec "$@"`, 'sh']

/**
 * Runs ES module `code` under `wrapper` as `uid` (null: stay root). `PidLock` and `args` are in
 * scope. Lines printed by the script can be awaited with `line(tag)`.
 */
export function wrappedScript(t, wrapper, code, { uid = null, args = [] } = {}) {
  const prelude =
    (uid === null ? '' : `process.setgroups([]); process.setgid(${uid}); process.setuid(${uid});\n`) +
    `const { PidLock } = await import(${JSON.stringify(libMjsUrl)}); const args = process.argv.slice(1);\n`
  const argv = [...wrapper, process.execPath, '--input-type=module', '-e', prelude + code, '--', ...args]
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] })
  proc.stdin.on('error', () => {})
  const lines = []
  const waiters = new Set()
  let out = ''
  let err = ''
  let ended = false
  proc.stdout.setEncoding('utf8')
  proc.stderr.setEncoding('utf8')
  proc.stdout.on('data', (d) => {
    out += d
    let nl
    while ((nl = out.indexOf('\n')) >= 0) {
      lines.push(out.slice(0, nl))
      out = out.slice(nl + 1)
    }
    for (const w of [...waiters]) w()
  })
  proc.stderr.on('data', (d) => {
    err += d
  })
  const exited = new Promise((resolve) =>
    proc.on('close', (code, signal) => {
      ended = true
      for (const w of [...waiters]) w()
      resolve({ code, signal })
    }),
  )
  // The wrapper may fork (unshare --fork, nsenter): the node process is then its child, which
  // a kill of the wrapper does not reach, so both are killed.
  t.after(() => {
    if (ended) return
    for (const pid of [descendantNode(proc.pid), proc.pid]) {
      if (!pid) continue
      try {
        process.kill(pid, 'SIGCONT')
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
  })
  return {
    proc,
    exited,
    stderr: () => err,
    send(line) {
      proc.stdin.write(line + '\n')
    },
    /** The host pid of the node process (the wrapper execs or forks into it). */
    nodePid() {
      return descendantNode(proc.pid)
    },
    line(tag, timeout = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const i = lines.findIndex((l) => l === tag || l.startsWith(tag + ' '))
          if (i >= 0) {
            const [l] = lines.splice(i, 1)
            finish()
            const rest = l.slice(tag.length + 1)
            resolve(rest ? JSON.parse(rest) : null)
          } else if (ended) {
            finish()
            reject(new Error(`ended without ${tag}; stdout: ${lines.join('\n')}${out}\nstderr: ${err}`))
          }
        }
        const timer = setTimeout(() => {
          finish()
          reject(new Error(`timed out waiting for ${tag}; stderr: ${err}`))
        }, timeout)
        const finish = () => {
          clearTimeout(timer)
          waiters.delete(check)
        }
        waiters.add(check)
        check()
      })
    },
  }
}

const NODE_EXE = fs.realpathSync(process.execPath)

/** The first process running this Node binary at or below `pid` (host pid numbers). */
function descendantNode(pid) {
  const queue = [pid]
  while (queue.length) {
    const p = queue.shift()
    try {
      // By executable, not by name: Node 24 names its main thread (and so the process's comm)
      // "MainThread".
      if (fs.readlinkSync(`/proc/${p}/exe`) === NODE_EXE) return p
      for (const task of fs.readdirSync(`/proc/${p}/task`)) {
        const kids = fs.readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim()
        if (kids) queue.push(...kids.split(' ').map(Number))
      }
    } catch {}
  }
  return null
}
