'use strict'
// `singleInstance()`: one Vite dev server per project.
//
// Where the lock is taken, and why there:
// - dev server: `configureServer`, the first hook that only a real dev server runs (tools that
//   merely resolve the config never reach it) and that runs before Vite binds its port and before
//   the dependency optimizer writes to the cache (both happen in `server.listen()`). A refused
//   server is closed (watcher, WebSocket server) before the error is thrown, so a program that
//   catches it from `createServer()` is left with nothing running.
// - `vite preview`: `configurePreviewServer`, also before the port is bound.
// - `vite build --watch`: `configResolved`, before anything is built.
// A thrown error is what Vite expects from a plugin: its CLI prints the message and exits with
// code 1; `createServer()` rejects with it.

const nodePath = require('node:path')
const { ALLOW_ENV, applyLostPolicy, checkOptions, refusalError, reuseMessage, takeLock } = require('./guard.js')
const { Hold } = require('./hold.js')
const { commandLine } = require('./command-line.js')
const { shown } = require('./holder.js')
const coexist = require('./vite-coexist.js')

const PLUGIN_NAME = 'leaselock:single-instance'
const WHAT = { dev: 'Vite dev server', preview: 'Vite preview server', 'build-watch': 'vite build --watch' }
const OPTIONS = { owner: 'singleInstance()', booleans: ['dev', 'preview', 'buildWatch'], policies: ['warn', 'close', 'exit'] }

/** URLs of a listening Vite server: local ones first, as Vite prints them. */
function serverUrls(server, https) {
  const urls = []
  const r = server.resolvedUrls
  if (r) urls.push(...(r.local || []), ...(r.network || []))
  const http = server.httpServer
  const addr = http && typeof http.address === 'function' ? http.address() : null
  const port = addr && typeof addr === 'object' ? addr.port : null
  if (urls.length === 0 && port) {
    const host = addr.address === '0.0.0.0' || addr.address === '::' ? 'localhost' : addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
    urls.push(`${https ? 'https' : 'http'}://${host}:${port}${server.config.base || '/'}`)
  }
  return { url: urls[0] || null, urls: urls.slice(0, 8), port }
}

/** Records the server's URL in the lease as soon as it listens. */
function publishWhenListening(server, hold, https, logger) {
  const http = server.httpServer
  if (!http) return
  // Synchronously, in the 'listening' event: the URL is in the lease before `listen()`
  // resolves. Vite's own listener (prepended) has filled `resolvedUrls` by then.
  const publish = () => {
    if (!hold.held) return
    const { url, urls, port } = serverUrls(server, https)
    try {
      hold.updateSync({ url, urls, port, listeningAt: new Date().toISOString() })
    } catch (err) {
      logger.warn(`leaselock: could not record the server URL in the lock: ${err.message}`)
    }
  }
  http.on('listening', publish)
  http.once('close', () => http.off('listening', publish))
}

/** Closes what a refused server has opened so far, then rethrows the refusal. */
async function closeAndThrow(server, err) {
  await Promise.resolve(server.close()).catch(() => {})
  throw err
}

/** How to start a second server on purpose, naming the switch that works with this Vite. */
function overrideText(viteLocks) {
  const own = `set ${ALLOW_ENV}=1, or pass singleInstance({ allowMultiple: true })`
  return viteLocks ? `pass --bypass-lock (Vite's own switch; leaselock honours it too), ${own}` : own
}

/**
 * A Vite plugin that allows one dev server per project (see `lib/vite.d.ts`).
 */
function singleInstance(options) {
  const opts = checkOptions(options, OPTIONS)
  const guards = { dev: opts.dev !== false, preview: opts.preview === true, 'build-watch': opts.buildWatch === true }
  let config = null
  /** The hold of the server this plugin instance belongs to, and what was decided with it. */
  let hold = null
  let decision = null
  /** `'--bypass-lock'` when Vite's own switch was given; whether Vite's own lock runs here. */
  let bypass = null
  let viteLocks = false

  const log = (level, text) => config.logger[level](text, { timestamp: true })

  function lockPath(kind) {
    if (opts.lockfile) return nodePath.resolve(config.root, opts.lockfile)
    return nodePath.join(config.cacheDir, 'leaselock', coexist.lockName(kind, config))
  }

  function onLost(kind, info, server, h) {
    applyLostPolicy(opts.onLeaseLost, {
      what: WHAT[kind],
      info,
      context: { server: server || null },
      log,
      stopping: 'the server',
      retake: () => h.retake(),
      stop(policy) {
        const close = server && typeof server.close === 'function' ? server.close() : Promise.resolve()
        Promise.resolve(close)
          .catch((err) => log('error', `leaselock: closing the server failed: ${err && err.message}`))
          .then(() => {
            if (policy === 'exit') process.exit(1)
          })
      },
    })
  }

  /**
   * Takes the lock for `kind`: `{ hold, reclaimed }`, `{ hold: null }` when a second instance
   * may run without it, `{ reuse }` when the running one is to be used. Throws the refusal.
   */
  async function take(kind, server) {
    const h = new Hold(lockPath(kind), {
      tool: 'vite',
      lockOptions: opts.lockOptions,
      metadata: {
        ...(opts.metadata || {}),
        tool: 'vite',
        command: kind,
        root: config.root,
        mode: config.mode,
        configFile: config.configFile || null,
        cwd: process.cwd(),
        commandLine: commandLine(),
      },
      onLost: (info) => onLost(kind, info, server, h),
    })
    return takeLock(h, {
      what: WHAT[kind],
      projectDir: config.root,
      allow: opts.allowMultiple,
      bypass,
      onConflict: opts.onConflict,
      wait: opts.wait,
      quiet: opts.quiet,
      override: overrideText(viteLocks),
      log,
    })
  }

  /** A reused server: say where the running one is, and end this one without starting it. */
  async function reuse(kind, server, got) {
    log('info', reuseMessage(WHAT[kind], got.holder, got.reuse))
    if (coexist.runByViteCli()) {
      process.stdout.write(`${shown(got.reuse)}\n`)
      if (server) await Promise.resolve(server.close()).catch(() => {})
      process.exit(0)
    }
    const err = refusalError({ holder: got.holder, path: lockPath(kind) }, { what: WHAT[kind], projectDir: config.root })
    err.url = got.reuse
    throw err
  }

  /** Whether Vite's own check is to be skipped for this server (see vite-coexist.js). */
  function skipViteCheck(got) {
    if (!viteLocks) return false
    if (!got.hold) {
      if (!bypass) log('info', "leaselock: Vite's own lock is bypassed for this server too.")
      return true
    }
    const r = got.reclaimed
    if (r && r.valid && r.alive !== false) {
      log('info', `leaselock: took over the lock of pid ${shown(r.pid)}, whose lease had gone stale (frozen or suspended); Vite's own lock still lists that process, so its check is skipped for this server.`)
      return true
    }
    return false
  }

  /** Guards a dev or preview server: refused ones are closed before the error is thrown. */
  async function guardServer(kind, server, https) {
    let got
    try {
      got = await take(kind, server)
      if (got.reuse) await reuse(kind, server, got)
    } catch (err) {
      return closeAndThrow(server, err)
    }
    const d = coexist.decide(server, { skipVite: skipViteCheck(got), held: Boolean(got.hold), log })
    if (!got.hold) return null
    hold = got.hold
    decision = d
    publishWhenListening(server, hold, https, config.logger)
    // Older Vite versions have no closeServer hook; the HTTP server's close covers them.
    const h = hold
    if (server.httpServer) server.httpServer.once('close', () => (d.keep ? undefined : h.release().catch(() => {})))
    return h
  }

  async function configResolved(resolved) {
    config = resolved
    const version = this && this.meta ? this.meta.viteVersion : undefined
    bypass = coexist.bypassSwitch(version, resolved)
    viteLocks = coexist.hasCommandLock(version) && coexist.runByViteCli() && !bypass
    if (viteLocks && resolved.command === 'serve') coexist.wrapViteLock(resolved)
    if (!guards['build-watch'] || resolved.isWorker) return
    if (resolved.command !== 'build' || !resolved.build || !resolved.build.watch) return
    if (hold) return
    const got = await take('build-watch', null)
    if (got.reuse) await reuse('build-watch', null, got)
    hold = got.hold
  }

  async function configureServer(server) {
    // Vitest runs its tests in a Vite server of its own: that is not a second dev server.
    if (!guards.dev || process.env.VITEST) return
    const h = await guardServer('dev', server, Boolean(config.server && config.server.https))
    if (!h) return
    // A restart creates the new server while this one still runs: let it join our lock.
    const restart = server.restart
    if (typeof restart === 'function') {
      const path = h.path
      server.restart = function leaselockRestart(...args) {
        return Hold.restarting(path, () => restart.apply(this, args))
      }
    }
  }

  async function configurePreviewServer(server) {
    await guardServer('preview', server, Boolean(config.preview && config.preview.https))
  }

  /** Lets go of the lock - unless Vite's own check refused after ours: then it is kept. */
  async function release() {
    if (hold && !(decision && decision.keep)) await hold.release().catch(() => {})
  }

  const plugin = { name: PLUGIN_NAME, enforce: 'pre', configResolved, configureServer, closeServer: release, closeWatcher: release }
  if (guards.preview) {
    plugin.configurePreviewServer = configurePreviewServer
    plugin.closePreviewServer = release
  }
  return plugin
}

// The function itself, so that `require('leaselock/vite')` and the default import are it too.
module.exports = singleInstance
singleInstance.singleInstance = singleInstance
singleInstance.default = singleInstance
