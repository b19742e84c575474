// Throwaway projects and real dev-server processes for the integration tests.
//
// A project lives in a fresh temp dir; its node_modules holds symlinks to this repository (as
// `leaselock`) and to the tools installed here, so `import 'leaselock/vite'` resolves through the
// package's "exports" exactly as in a user's project.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url))
export const tracer = fileURLToPath(new URL('./listen-tracer.cjs', import.meta.url))
export const LISTEN_MARK = 'LEASELOCK-TEST-LISTEN'

const TOOLS = {
  vite: ['vite'],
  webpack: ['webpack', 'webpack-cli', 'webpack-dev-server'],
}

/** Binaries of the tools, run with this Node so that the spawned pid is the tool's own. */
export const bin = {
  vite: path.join(repoRoot, 'node_modules', 'vite', 'bin', 'vite.js'),
  webpack: path.join(repoRoot, 'node_modules', 'webpack', 'bin', 'webpack.js'),
  leaselock: path.join(repoRoot, 'bin', 'leaselock.js'),
}

/**
 * The Vite majors tested side by side: each is installed under its own name (npm aliases in
 * devDependencies), and a throwaway project sees it as `vite`.
 */
export const VITES = [
  { name: 'vite', bin: path.join(repoRoot, 'node_modules', 'vite', 'bin', 'vite.js') },
  { name: 'vite7', bin: path.join(repoRoot, 'node_modules', 'vite7', 'bin', 'vite.js') },
].map((v) => ({ ...v, version: JSON.parse(fs.readFileSync(path.join(repoRoot, 'node_modules', v.name, 'package.json'), 'utf8')).version }))

/**
 * A temp project with `files` ({ relative path: content }); removed after the test.
 * `packages` maps a name in the project's node_modules to one installed here (`{ vite: 'vite7' }`).
 */
export function tempProject(t, tool, files, packages = {}) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `leaselock-${tool}-`)))
  // The processes the test started go first: a dev server still writing its cache would make
  // the removal fail, and a failed hook would leave them running and the test file hanging.
  t.after(async () => {
    await stopAll(t)
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
  })
  fs.mkdirSync(path.join(dir, 'node_modules'))
  // A junction on Windows: a directory symlink there needs a privilege users rarely have.
  const link = process.platform === 'win32' ? 'junction' : 'dir'
  fs.symlinkSync(repoRoot, path.join(dir, 'node_modules', 'leaselock'), link)
  for (const name of TOOLS[tool] ?? []) {
    fs.symlinkSync(path.join(repoRoot, 'node_modules', packages[name] ?? name), path.join(dir, 'node_modules', name), link)
  }
  for (const [rel, content] of Object.entries({ 'package.json': '{"name":"throwaway","private":true}\n', ...files })) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true })
    fs.writeFileSync(path.join(dir, rel), content)
  }
  return dir
}

/** A TCP port that was free a moment ago, on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.unref()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** Whether something accepts connections on 127.0.0.1:port. */
export function isListening(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g

/** The processes each test started, by test context. */
const running = new WeakMap()

/** Kills and awaits every process `t` started that is still running. */
async function stopAll(t) {
  const procs = running.get(t)
  if (procs) await Promise.all([...procs].map((p) => p.stop()))
}

/** A child process whose output (stdout + stderr, colours stripped) can be awaited. */
export class Proc {
  constructor(t, command, args, { cwd, env = {}, traceListen = false } = {}) {
    const nodeOptions = [process.env.NODE_OPTIONS, traceListen ? `--require ${JSON.stringify(tracer)}` : null].filter(Boolean).join(' ')
    this.child = spawn(command, args, {
      cwd,
      env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', CI: '1', NODE_OPTIONS: nodeOptions, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.pid = this.child.pid
    this.out = ''
    this.waiters = new Set()
    const take = (chunk) => {
      this.out += chunk.toString().replace(ANSI, '')
      for (const w of this.waiters) w()
    }
    this.child.stdout.on('data', take)
    this.child.stderr.on('data', take)
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.status = { code, signal }
        for (const w of this.waiters) w()
        resolve(this.status)
      })
    })
    this.status = null
    /** Resolves once its output pipes are closed too: 'exit' can come before the last output. */
    this.closed = new Promise((resolve) => this.child.once('close', resolve))
    // Every process a test starts dies with the test, whatever happened.
    if (!running.has(t)) running.set(t, new Set())
    running.get(t).add(this)
    t.after(() => stopAll(t))
  }

  /** SIGKILL (TerminateProcess on Windows) unless it has exited; resolves once it has. */
  async stop() {
    if (this.status === null) this.child.kill('SIGKILL')
    await this.exited
  }

  /** Resolves with the match once `re` appears in the output; rejects on exit or timeout. */
  waitFor(re, ms = 20_000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.out.match(re)
        if (m) return done(null, m)
        if (this.status) return done(new Error(`process exited (${JSON.stringify(this.status)}) before ${re}; output:\n${this.out}`))
      }
      const timer = setTimeout(() => done(new Error(`timed out after ${ms} ms waiting for ${re}; output:\n${this.out}`)), ms)
      const done = (err, m) => {
        clearTimeout(timer)
        this.waiters.delete(check)
        if (err) reject(err)
        else resolve(m)
      }
      this.waiters.add(check)
      check()
    })
  }

  /** Resolves with { code, signal } once the process has exited; rejects after `ms`. */
  exit(ms = 20_000) {
    let timer
    return Promise.race([
      this.exited.finally(() => clearTimeout(timer)),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`still running after ${ms} ms; output:\n${this.out}`)), ms)
      }),
    ])
  }

  kill(signal = 'SIGTERM') {
    if (this.status === null) this.child.kill(signal)
  }
}
