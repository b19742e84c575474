'use strict'
// Living beside Vite's own command lock (Vite >= 8.4: `vite:command-lock`, a JSON record per
// command, root, config file and mode under `<cacheDir>/lock`, skipped with `--bypass-lock`).
//
// The two guards must agree, or users see them disagree:
// - our lock is keyed like Vite's (lockName), so what Vite allows side by side, we allow;
// - `--bypass-lock` means allow-multiple for us too (bypassSwitch);
// - when we let a second server start on purpose (allowMultiple, LEASELOCK_ALLOW_MULTIPLE), or
//   when we took over a frozen holder whose record Vite still believes in, Vite's own check is
//   skipped for this server: ours has decided, and Vite's would refuse what we allowed;
// - when Vite's check refuses after ours succeeded, our lock is kept (never released because
//   of Vite's failure): the start fails, and the lease ends with the process (the engine
//   releases what a process still holds when it exits).
// Vite's plugin is wrapped, not removed: its hooks are looked up when they are called, after
// `configResolved`, so the wrapper is what runs.

const crypto = require('node:crypto')
const fs = require('node:fs')
const nodePath = require('node:path')

const VITE_LOCK_PLUGIN = 'vite:command-lock'
const VITE_LOCK_SINCE = [8, 4]
const WRAPPED = Symbol('leaselock.wrapped')
const DEFAULT_MODE = { dev: 'development', preview: 'production', 'build-watch': 'production' }
const FILE = { dev: 'dev-server', preview: 'preview', 'build-watch': 'build-watch' }

/** What our hooks decided per server, read by the wrapper of Vite's hooks. */
const decisions = new WeakMap()

function hasCommandLock(version) {
  const m = /^(\d+)\.(\d+)/.exec(version || '')
  if (!m) return false
  const [major, minor] = [Number(m[1]), Number(m[2])]
  return major > VITE_LOCK_SINCE[0] || (major === VITE_LOCK_SINCE[0] && minor >= VITE_LOCK_SINCE[1])
}

/** Whether this process is Vite's own command line (`vite`, `vite preview`, `vite build`). */
function runByViteCli() {
  const main = process.argv[1]
  if (!main) return false
  let real = main
  try {
    real = fs.realpathSync(main)
  } catch {
    // keep the path as given
  }
  return /[\\/]bin[\\/]vite\.js$/.test(real)
}

const bypassArg = () => process.argv.slice(2).some((a) => /^--(bypass-lock|bypassLock)(=true)?$/.test(a))

/**
 * `'--bypass-lock'` when Vite's own switch was given, else null. On the dev and preview
 * servers Vite's CLI adds its lock plugin unless the switch was given, so its absence says so;
 * `vite build --watch` has no plugin, only the argument.
 */
function bypassSwitch(version, config) {
  if (!hasCommandLock(version) || !runByViteCli()) return null
  if (bypassArg()) return '--bypass-lock'
  const serving = config.command === 'serve'
  return serving && !findViteLock(config) ? '--bypass-lock' : null
}

function findViteLock(config) {
  return (config.plugins || []).find((p) => p && p.name === VITE_LOCK_PLUGIN) || null
}

const isInside = (child, parent) => {
  const rel = nodePath.relative(parent, child)
  return rel !== '' && !rel.startsWith('..') && !nodePath.isAbsolute(rel)
}

/**
 * The lock file's name under `<cacheDir>/leaselock/`, keyed like Vite's record: command, root,
 * config file and mode. The usual case (the command's default mode, the project's own
 * vite.config.*, the cache inside the root) keeps the plain name (`dev-server.lock`); any
 * other key gets `<command>-<mode>-<hash>.lock`, so what Vite runs side by side holds
 * different locks.
 */
function lockName(kind, config) {
  const configFile = config.configFile || null
  const ownConfig = !configFile || (nodePath.dirname(configFile) === config.root && /^vite\.config\.[cm]?[jt]s$/.test(nodePath.basename(configFile)))
  if (config.mode === DEFAULT_MODE[kind] && ownConfig && isInside(nodePath.resolve(config.cacheDir), config.root)) return `${FILE[kind]}.lock`
  const hash = crypto.createHash('sha256').update(JSON.stringify([kind, config.root, configFile, config.mode])).digest('hex').slice(0, 12)
  return `${FILE[kind]}-${String(config.mode).replace(/[^\w.-]+/g, '_').slice(0, 40)}-${hash}.lock`
}

/** Wraps Vite's lock plugin (once) so that it follows the decision our hooks recorded. */
function wrapViteLock(config) {
  const plugin = findViteLock(config)
  if (!plugin || plugin[WRAPPED]) return Boolean(plugin)
  for (const hook of ['configureServer', 'configurePreviewServer']) {
    const original = plugin[hook]
    if (typeof original !== 'function') continue
    plugin[hook] = async function leaselockAwareCommandLock(server) {
      const d = decisions.get(server)
      if (d && d.skipVite) return undefined
      try {
        return await original.call(this, server)
      } catch (err) {
        if (d && d.held) {
          d.keep = true
          d.log('warn', "leaselock: Vite's own lock refused this server after leaselock's lock was taken; the lock is kept until this process ends, not released because of Vite's refusal.")
        }
        throw err
      }
    }
  }
  plugin[WRAPPED] = true
  return true
}

/**
 * Records what our hook decided for `server` (`held`: whether it holds our lock); returns the
 * record, whose `keep` the wrapper sets.
 */
function decide(server, { skipVite, held, log }) {
  const d = { skipVite: Boolean(skipVite), held: Boolean(held), keep: false, log }
  if (server) decisions.set(server, d)
  return d
}

module.exports = { bypassSwitch, decide, hasCommandLock, lockName, runByViteCli, wrapViteLock }
