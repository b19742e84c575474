// A second local user for the attacker tests (__test__/hostile-*.test.mjs). The attacker acts
// through `setpriv` with plain shell tools (it needs nothing of this package); the victim is
// root (this test process, or its CLI) or another unprivileged user, run as a child that loads
// the package and then drops to that user. Users are numeric ids: nothing is added to the
// system's user database. Both share one group, so a group-writable workspace is writable by
// both, as a shared CI or project directory is.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { repoRoot } from './util.mjs'

export const SHARED_GID = 4710
export const ATTACKER = Object.freeze({ uid: 65534, gid: SHARED_GID })
export const VICTIM = Object.freeze({ uid: 4712, gid: SHARED_GID })
export const cliBin = path.join(repoRoot, 'bin', 'leaselock.js')

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0
/** Why these tests cannot run here, or false. */
export const skipReason = !isRoot ? 'needs root to act as two other users' : !hasSetpriv ? 'setpriv (util-linux) is not installed' : false

/** Runs `script` with sh as the attacker; returns { status, out, err }. */
export function attackerSh(script, ...args) {
  const r = spawnSync(
    'setpriv',
    [`--reuid=${ATTACKER.uid}`, `--regid=${ATTACKER.gid}`, '--clear-groups', 'sh', '-c', script, 'sh', ...args],
    { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/' } },
  )
  return { status: r.status, out: r.stdout, err: r.stderr }
}

/** The attacker writes `text` to `file` (a new file of theirs); throws if the system refused. */
export function plant(file, text) {
  const r = attackerSh('umask 022 && printf %s "$1" > "$2"', text, file)
  if (r.status !== 0) throw new Error(`could not plant ${file}: ${r.err}`)
}

export function asAttacker(script, ...args) {
  const r = attackerSh(script, ...args)
  if (r.status !== 0) throw new Error(`attacker's "${script}" failed: ${r.err}`)
  return r.out
}

function removeLater(t, dir) {
  t.after(() => {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
    } catch (err) {
      t.diagnostic(`could not remove ${dir}: ${err.message}`)
    }
  })
}

/** A directory like /tmp: world-writable with the sticky bit, owned by root. */
export function stickyDir(t) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-sticky-')))
  fs.chmodSync(dir, 0o1777)
  removeLater(t, dir)
  return dir
}

/** A shared workspace: owned by root, writable by the group both users are in, no sticky bit. */
export function sharedDir(t) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-shared-')))
  fs.chownSync(dir, 0, SHARED_GID)
  fs.chmodSync(dir, 0o775)
  removeLater(t, dir)
  return dir
}

/** A private directory of root's, outside any shared place (the attacker's target). */
export function rootDir(t) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-root-')))
  fs.chmodSync(dir, 0o755)
  removeLater(t, dir)
  return dir
}

export const PLACES = [
  ['sticky', stickyDir],
  ['group-writable', sharedDir],
]

/** A lease as another program would write it; `identity` adds our host-identity fields. */
export function leaseText({ pid, ageMs = 0, hostname, metadata, metadataRaw }) {
  const ns = BigInt(Date.now() - ageMs) * 1_000_000n
  let s = `{"version":1,"ownerID":"${pid}-${ns}-1","pid":${pid},"lastHeartbeatUnixNano":${ns}`
  if (hostname !== undefined) {
    s += `,"hostname":${JSON.stringify(hostname)},"bootId":"x","pidNamespace":"pid:[1]","processStart":"1"`
  }
  if (metadata !== undefined) s += `,"metadata":${JSON.stringify(metadata)}`
  if (metadataRaw !== undefined) s += `,"metadata":${metadataRaw}`
  return `${s}}\n`
}

/** Sets a file's times `ageMs` in the past (the attacker's own file, changed by root). */
export function age(file, ageMs) {
  const when = new Date(Date.now() - ageMs)
  fs.lutimesSync(file, when, when)
}

/**
 * Runs `body` (text of an async function taking ({ PidLock, cli }, args)) in a child Node that
 * loads the package, then becomes `user` ({ uid, gid }, or null to stay root); resolves with the
 * JSON it returns. `cli(args)` runs the `leaselock` command in that process: { code, out, err }.
 */
export function asVictim(body, args, { user = VICTIM, timeout = 30_000, umask } = {}) {
  const code = `
    const { PidLock } = await import(${JSON.stringify(pathToFileURL(path.join(repoRoot, 'lib', 'index.mjs')).href)})
    const { createRequire } = await import('node:module')
    const { main } = createRequire(${JSON.stringify(path.join(repoRoot, 'lib', 'cli.js'))})(${JSON.stringify(path.join(repoRoot, 'lib', 'cli.js'))})
    const args = JSON.parse(process.env.HOSTILE_ARGS)
    const user = JSON.parse(process.env.HOSTILE_USER)
    if (process.env.HOSTILE_UMASK) process.umask(Number(process.env.HOSTILE_UMASK))
    if (user) { process.setgid(user.gid); process.setgroups([]); process.setuid(user.uid) }
    const cli = async (argv) => {
      let out = '', err = ''
      const code = await main(argv, { stdout: { write: (s) => { out += s } }, stderr: { write: (s) => { err += s } } })
      return { code, out, err }
    }
    try {
      const out = await (${body})({ PidLock, cli }, args)
      process.stdout.write('RESULT ' + JSON.stringify(out) + '\\n')
    } catch (err) {
      process.stdout.write('RESULT ' + JSON.stringify({ thrown: { code: err.code ?? null, name: err.name, message: err.message } }) + '\\n')
    }
  `
  const env = { ...process.env, HOSTILE_ARGS: JSON.stringify(args), HOSTILE_USER: JSON.stringify(user), HOSTILE_UMASK: umask === undefined ? '' : String(umask) }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`victim hung for ${timeout} ms:\n${out}\n${err}`))
    }, timeout)
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('exit', (status, signal) => {
      clearTimeout(timer)
      const line = out.split('\n').find((l) => l.startsWith('RESULT '))
      if (status !== 0 || !line) return reject(new Error(`victim ended with ${signal ?? status}:\n${out}\n${err}`))
      resolve(JSON.parse(line.slice(7)))
    })
  })
}

/** Characters that a terminal acts on, or that reorder or hide what it shows. */
export const TERMINAL_UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/u
