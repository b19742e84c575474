// The safe floors the benchmark compares leaselock with: the system calls the lock makes,
// issued by a plain native loop (examples/syscall_floor.rs) in the same run. See README.md.
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BINARY = path.join(ROOT, 'target', 'release', 'examples', process.platform === 'win32' ? 'syscall_floor.exe' : 'syscall_floor')

let built = false

/** How many threads process `pid` has (1 where /proc cannot tell): a floor shaped like it has as many. */
export function taskCount(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).length
  } catch {
    return 1
  }
}

/** Builds the floor program once per run; null where it measures nothing (not Linux). */
export function floorBinary() {
  if (process.platform !== 'linux') return null
  if (!built) {
    execFileSync('cargo', ['build', '--release', '--quiet', '--example', 'syscall_floor'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
    built = true
  }
  return BINARY
}

/**
 * `count` acquire+release pairs' worth of system calls in `dir`: each pair's time in ms. With
 * `threads`, the floor process has that many idle threads besides its own, as a Node process
 * does (its descriptor table is then shared, which makes every call on a descriptor dearer).
 */
export function safePairs(dir, count, threads = 0) {
  const bin = floorBinary()
  if (!bin) return []
  const out = execFileSync(bin, ['pair', dir, String(count), String(threads)], { encoding: 'utf8' })
  return JSON.parse(out).map((us) => us / 1000)
}

/**
 * A process that holds `n` open files in `dir` and renews each every `ms` as a heartbeat does
 * (with `threads` idle threads besides, as above); resolves with its pid once ready, and
 * `stop()` ends it. Null where there is no floor program.
 */
export async function renewalFloor(dir, n, ms, threads = 0) {
  const bin = floorBinary()
  if (!bin) return null
  fs.mkdirSync(dir, { recursive: true })
  const proc = spawn(bin, ['idle', dir, String(n), String(ms), String(threads)], { stdio: ['pipe', 'pipe', 'inherit'] })
  proc.stdin.on('error', () => {})
  const exited = new Promise((resolve) => proc.on('exit', resolve))
  await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: proc.stdout })
    rl.once('line', (line) => (line === 'READY' ? resolve() : reject(new Error(`floor said ${line}`))))
    exited.then(() => reject(new Error('the renewal floor exited before READY')))
  })
  return {
    pid: proc.pid,
    async stop() {
      proc.stdin.end()
      const timer = setTimeout(() => proc.kill('SIGKILL'), 2000)
      await exited
      clearTimeout(timer)
    },
  }
}
