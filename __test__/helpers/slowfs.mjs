// A FUSE mount made by the tests themselves (scripts/slowfs.py): a passthrough of a temp
// directory with a per-operation delay, a hang switch, inode numbers passed through or made up
// per name, and rename flags accepted or refused. See that script for the modes.
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { repoRoot } from './util.mjs'

const SCRIPT = path.join(repoRoot, 'scripts', 'slowfs.py')
const SETUP = path.join(repoRoot, 'scripts', 'slowfs-setup.sh')

let pythonPath = null

/**
 * Why the FUSE tests cannot run here, or null. Only a kernel without /dev/fuse is a reason to
 * skip; anything missing is installed by scripts/slowfs-setup.sh (which fails loudly if it
 * cannot, failing the tests rather than hiding them).
 */
export function fuseSkipReason() {
  if (process.platform !== 'linux') return `FUSE tests run on Linux (this is ${process.platform})`
  if (!fs.existsSync('/dev/fuse')) return 'no /dev/fuse on this machine (the kernel offers no FUSE)'
  return null
}

function setup() {
  if (pythonPath) return pythonPath
  const out = execFileSync('bash', [SETUP], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  pythonPath = out.trim().split('\n').pop()
  return pythonPath
}

/**
 * Mounts a fresh slowfs over a fresh backing directory; unmounted when the test ends.
 * Returns { dir (the mount point), backing, command(text) (resolves once in force), unmount() }.
 */
export async function mountSlowFs(t, { ino = 'pass', renameFlags = 'ok', delayMs = 0 } = {}) {
  const pyPath = setup()
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-slowfs-'))
  const backing = path.join(root, 'backing')
  const dir = path.join(root, 'mnt')
  fs.mkdirSync(backing)
  fs.mkdirSync(dir)
  const proc = spawn('python3', [SCRIPT, backing, dir, `--ino=${ino}`, `--rename-flags=${renameFlags}`, `--delay-ms=${delayMs}`], {
    env: { ...process.env, PYTHONPATH: pyPath },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stderr = ''
  proc.stderr.setEncoding('utf8')
  proc.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000)
  })
  proc.stdin.on('error', () => {})
  const exited = new Promise((resolve) => proc.on('exit', resolve))
  const waiters = []
  let buf = ''
  proc.stdout.setEncoding('utf8')
  proc.stdout.on('data', (d) => {
    buf += d
    let nl
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      const i = waiters.findIndex((w) => w.line === line)
      if (i >= 0) waiters.splice(i, 1)[0].resolve()
    }
  })
  const expect = (line, timeout = 20_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`slowfs: no "${line}" within ${timeout} ms; stderr:\n${stderr}`)), timeout)
      const w = { line, resolve: () => (clearTimeout(timer), resolve()) }
      waiters.push(w)
      exited.then((code) => {
        clearTimeout(timer)
        reject(new Error(`slowfs exited (${code}) before "${line}"; stderr:\n${stderr}`))
      })
    })
  await expect('READY')

  let unmounted = null
  const unmount = () => {
    if (!unmounted) {
      unmounted = (async () => {
        proc.stdin.end() // lifts any hang, then the filesystem unmounts itself and exits
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
        try {
          execFileSync('umount', ['-l', dir], { stdio: 'ignore' })
        } catch {} // already unmounted: the usual case
        fs.rmSync(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
      })()
    }
    return unmounted
  }
  t.after(unmount)
  return {
    dir,
    backing,
    async command(text) {
      const ack = expect(`ok ${text}`)
      proc.stdin.write(`${text}\n`)
      await ack
    },
    unmount,
  }
}

/**
 * Entries of `dir` other than FUSE's own `.fuse_hidden*` names for unlinked open files and the
 * fencing-token counters (`.<lock name>.token`), which stay beside their locks for good.
 */
export function entries(dir) {
  return fs.readdirSync(dir).filter((n) => !n.startsWith('.fuse_hidden') && !/^\..+\.token$/.test(n)).sort()
}
