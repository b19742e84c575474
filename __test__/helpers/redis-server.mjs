// A real redis-server for one test file: on 127.0.0.1 only, on a free port, with a temporary
// directory and no persistence; stopped when the test ends. `scripts/setup-redis.sh` installs
// Debian's package where it is missing (once per test run); only when that is impossible
// does `redisOrSkip` skip, with the reason printed.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { repoRoot } from './util.mjs'

const running = new Set()
process.on('exit', () => {
  for (const proc of running) {
    try {
      proc.kill('SIGKILL')
    } catch {}
  }
})

const works = (cmd, arg) => spawnSync(cmd, [arg], { stdio: 'ignore' }).status === 0
let setupRan = false

/** Runs scripts/setup-redis.sh once, if redis-server or openssl is missing. */
function setup() {
  if (setupRan || (works('redis-server', '--version') && works('openssl', 'version'))) return
  setupRan = true
  spawnSync('bash', [path.join(repoRoot, 'scripts', 'setup-redis.sh')], { stdio: ['ignore', 'inherit', 'inherit'] })
}

/** `''` when redis-server can run here, else why not (after trying to install it). */
export function redisMissing() {
  setup()
  return works('redis-server', '--version') ? '' : 'redis-server is not installed and scripts/setup-redis.sh could not install it'
}

/** Options for `test()`: skips with the reason when redis-server (and, for `tls`, openssl) cannot run here. */
export function redisOrSkip({ tls = false } = {}) {
  const why = redisMissing() || (tls && !works('openssl', 'version') ? 'openssl (for the test certificates) is not installed and could not be' : '')
  return why ? { skip: why } : {}
}

/** A throwaway CA and a certificate for localhost signed by it, made with openssl. */
function makeCertificates(dir) {
  const run = (...args) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr || r.error}`)
  }
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=leaselock test CA')
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost')
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf')
  return path.join(dir, 'ca.pem')
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/**
 * A running server: `url` (`redis://127.0.0.1:<port>/0`, with the password if one was set),
 * `socket` (a unix socket path), and `stop()`, `kill()`, `restart()` (same port, data lost),
 * `pause()`/`resume()` (SIGSTOP/SIGCONT).
 */
export class RedisServer {
  constructor(t, { password = null, tls = false } = {}) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-redis-'))
    this.socket = path.join(this.dir, 'redis.sock')
    this.password = password
    /** With `tls`, the CA file that signed the server's certificate (for SSL_CERT_FILE). */
    this.ca = tls ? makeCertificates(this.dir) : null
    this.proc = null
    this.port = 0
    if (t) t.after(() => this.stop())
  }

  get url() {
    const auth = this.password === null ? '' : `:${encodeURIComponent(this.password)}@`
    // The certificate names localhost; a TLS client checks that name.
    return this.ca ? `rediss://${auth}localhost:${this.port}/0` : `redis://${auth}127.0.0.1:${this.port}/0`
  }

  /** A URL without the password (for wrong-credential tests). */
  urlWith(password) {
    return `redis://:${encodeURIComponent(password)}@127.0.0.1:${this.port}/0`
  }

  async start() {
    for (let attempt = 0; ; attempt++) {
      if (!this.port || attempt > 0) this.port = await freePort()
      try {
        await this.#launch()
        return this
      } catch (err) {
        if (attempt >= 4) throw err
      }
    }
  }

  #launch() {
    const tls = this.ca
      ? ['--port', '0', '--tls-port', String(this.port), '--tls-auth-clients', 'no',
          '--tls-cert-file', path.join(this.dir, 'server.pem'), '--tls-key-file', path.join(this.dir, 'server.key')]
      : ['--port', String(this.port)]
    const args = [
      '--bind', '127.0.0.1',
      ...tls,
      '--unixsocket', this.socket,
      '--unixsocketperm', '700',
      '--dir', this.dir,
      '--save', '',
      '--appendonly', 'no',
      '--protected-mode', 'yes',
      '--daemonize', 'no',
      '--logfile', '',
    ]
    if (this.password !== null) args.push('--requirepass', this.password)
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.proc = proc
    running.add(proc)
    proc.once('exit', () => running.delete(proc))
    return new Promise((resolve, reject) => {
      let out = ''
      const onData = (chunk) => {
        out += chunk
        if (out.includes('Ready to accept connections')) {
          proc.stdout.off('data', onData)
          proc.stdout.resume()
          proc.off('exit', onExit)
          resolve()
        }
      }
      const onExit = (code, signal) => {
        reject(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${out}`))
      }
      proc.stdout.setEncoding('utf8')
      proc.stdout.on('data', onData)
      proc.stderr.resume()
      proc.on('exit', onExit)
    })
  }

  /** Kills the server (SIGKILL): every key is gone, as after a crash without persistence. */
  async kill() {
    const proc = this.proc
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise((resolve) => proc.once('exit', resolve))
    proc.kill('SIGCONT')
    proc.kill('SIGKILL')
    await exited
  }

  /** A new server on the same port, with no data: a restart without persistence. */
  async restart() {
    await this.kill()
    try {
      fs.rmSync(this.socket, { force: true })
    } catch {}
    for (let i = 0; ; i++) {
      try {
        await this.#launch()
        return
      } catch (err) {
        // The old socket may linger for a moment.
        if (i >= 20) throw err
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  }

  pause() {
    this.proc.kill('SIGSTOP')
  }

  resume() {
    this.proc.kill('SIGCONT')
  }

  async stop() {
    await this.kill()
    try {
      fs.rmSync(this.dir, { recursive: true, force: true })
    } catch {}
  }
}

/** Starts a server for test `t` (stopped when it ends). */
export async function startRedis(t, options) {
  return new RedisServer(t, options).start()
}

function encode(args) {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')
}

/**
 * Sends one command to the server on a fresh connection and resolves with the raw reply text
 * (enough for `OK`, integers and short bulk strings in the tests).
 */
export function redisCommand(server, ...args) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1')
    let reply = ''
    const pre = server.password === null ? '' : encode(['AUTH', server.password])
    let skip = server.password === null ? 0 : 1
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.write(pre + encode(args)))
    socket.on('data', (chunk) => {
      reply += chunk
      while (skip > 0 && reply.includes('\r\n')) {
        reply = reply.slice(reply.indexOf('\r\n') + 2)
        skip--
      }
      const complete = /^[+\-:]/.test(reply) ? reply.endsWith('\r\n') : /^\$-1\r\n|^\$\d+\r\n[\s\S]*\r\n$/.test(reply)
      if (skip === 0 && complete) {
        socket.end()
        resolve(reply.trim())
      }
    })
    socket.on('error', reject)
  })
}
