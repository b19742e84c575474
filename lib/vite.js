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
const {
  ALLOW_ENV,
  Hold,
  allowMultiple,
  commandLine,
  isHeld,
  leaseLostMessage,
  refusalError,
} = require('./guard.js')

const PLUGIN_NAME = 'leaselock:single-instance'
const WHAT = { dev: 'Vite dev server', preview: 'Vite preview server', 'build-watch': 'vite build --watch' }

function optionError(name, expected, value) {
  const e = new TypeError(`singleInstance(): "${name}" must be ${expected}, got ${value === null ? 'null' : typeof value}`)
  e.code = 'ERR_INVALID_ARG_TYPE'
  return e
}

function checkOptions(options) {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object') throw optionError('options', 'an object', options)
  for (const key of ['dev', 'preview', 'buildWatch', 'allowMultiple']) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') throw optionError(key, 'a boolean', options[key])
  }
  if (options.lockfile !== undefined && (typeof options.lockfile !== 'string' || !options.lockfile)) {
    throw optionError('lockfile', 'a non-empty string', options.lockfile)
  }
  const lost = options.onLeaseLost
  if (lost !== undefined && typeof lost !== 'function' && !['warn', 'close', 'exit'].includes(lost)) {
    throw optionError('onLeaseLost', "'warn', 'close', 'exit' or a function", lost)
  }
  if (options.wait !== undefined && (typeof options.wait !== 'number' || !(options.wait >= 0))) {
    throw optionError('wait', 'a number >= 0 (milliseconds)', options.wait)
  }
  if (options.lockOptions !== undefined && (options.lockOptions === null || typeof options.lockOptions !== 'object')) {
    throw optionError('lockOptions', 'an object', options.lockOptions)
  }
  if (options.metadata !== undefined && (options.metadata === null || typeof options.metadata !== 'object')) {
    throw optionError('metadata', 'an object', options.metadata)
  }
  return options
}

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

/**
 * A Vite plugin that allows one dev server per project (see `lib/vite.d.ts`).
 */
function singleInstance(options) {
  const opts = checkOptions(options)
  const guards = {
    dev: opts.dev !== false,
    preview: opts.preview === true,
    'build-watch': opts.buildWatch === true,
  }
  let config = null
  /** The hold of the server this plugin instance belongs to. */
  let hold = null

  function lockPath(kind) {
    if (opts.lockfile) return nodePath.resolve(config.root, opts.lockfile)
    return nodePath.join(config.cacheDir, 'leaselock', `${kind === 'dev' ? 'dev-server' : kind}.lock`)
  }

  function onLost(kind, info, server) {
    const message = leaseLostMessage(WHAT[kind], info)
    const policy = opts.onLeaseLost ?? 'warn'
    if (typeof policy === 'function') {
      try {
        policy(info, { server: server || null, message })
      } catch (err) {
        config.logger.error(`leaselock: onLeaseLost threw: ${err && err.stack ? err.stack : err}`)
      }
      return
    }
    if (policy === 'warn') {
      config.logger.warn(message, { timestamp: true })
      return
    }
    config.logger.error(`${message}\nleaselock: stopping the server (onLeaseLost: '${policy}').`, { timestamp: true })
    const close = server && typeof server.close === 'function' ? server.close() : Promise.resolve()
    Promise.resolve(close)
      .catch((err) => config.logger.error(`leaselock: closing the server failed: ${err && err.message}`))
      .then(() => {
        if (policy === 'exit') process.exit(1)
      })
  }

  /**
   * Takes the lock for `kind`. Returns the hold, or null when a second instance is allowed
   * to run without it. Throws the refusal error.
   */
  async function take(kind, server) {
    const path = lockPath(kind)
    const h = new Hold(path, {
      lockOptions: opts.lockOptions,
      metadata: {
        ...(opts.metadata || {}),
        tool: 'vite',
        command: kind,
        root: config.root,
        cwd: process.cwd(),
        commandLine: commandLine(),
      },
      onLost: (info) => onLost(kind, info, server),
    })
    try {
      await h.acquire(opts.wait ?? 0)
      return h
    } catch (err) {
      if (!isHeld(err)) throw err
      if (allowMultiple(opts.allowMultiple)) {
        const who = err.holder ? `pid ${err.holder.pid}` : 'another process'
        config.logger.warn(
          `leaselock: ${who} already runs a ${WHAT[kind]} for this project; starting another one anyway (${opts.allowMultiple === true ? 'allowMultiple: true' : `${ALLOW_ENV} is set`}).`,
          { timestamp: true },
        )
        return null
      }
      throw refusalError(err, {
        what: WHAT[kind],
        projectDir: config.root,
        override: `set ${ALLOW_ENV}=1, or pass singleInstance({ allowMultiple: true })`,
      })
    }
  }

  function publishWhenListening(server, h, https) {
    const http = server.httpServer
    if (!http) return
    // Synchronously, in the 'listening' event: the URL is in the lease before `listen()`
    // resolves. Vite's own listener (prepended) has filled `resolvedUrls` by then.
    const publish = () => {
      if (!h.held) return
      const { url, urls, port } = serverUrls(server, https)
      try {
        h.updateSync({ url, urls, port, listeningAt: new Date().toISOString() })
      } catch (err) {
        config.logger.warn(`leaselock: could not record the server URL in the lock: ${err.message}`)
      }
    }
    http.on('listening', publish)
    http.once('close', () => http.off('listening', publish))
  }

  const plugin = {
    name: PLUGIN_NAME,
    enforce: 'pre',

    async configResolved(resolved) {
      config = resolved
      if (!guards['build-watch'] || resolved.isWorker) return
      if (resolved.command !== 'build' || !resolved.build || !resolved.build.watch) return
      if (hold) return
      hold = await take('build-watch', null)
    },

    async configureServer(server) {
      // Vitest runs its tests in a Vite server of its own: that is not a second dev server.
      if (!guards.dev || process.env.VITEST) return
      const path = lockPath('dev')
      let h
      try {
        h = await take('dev', server)
      } catch (err) {
        // Refused before anything listens: close what Vite has opened so far (file watcher,
        // WebSocket server), so a caller of createServer() is not left with live handles.
        await Promise.resolve(server.close()).catch(() => {})
        throw err
      }
      if (!h) return
      hold = h
      // A restart creates the new server while this one still runs: let it join our lock.
      const restart = server.restart
      if (typeof restart === 'function') {
        server.restart = function leaselockRestart(...args) {
          return Hold.restarting(path, () => restart.apply(this, args))
        }
      }
      publishWhenListening(server, h, Boolean(config.server && config.server.https))
      // Older Vite versions have no closeServer hook; the HTTP server's close covers them.
      if (server.httpServer) server.httpServer.once('close', () => h.release().catch(() => {}))
    },

    async closeServer() {
      if (hold) await hold.release().catch(() => {})
    },

    async closeWatcher() {
      if (hold) await hold.release().catch(() => {})
    },
  }

  if (guards.preview) {
    plugin.configurePreviewServer = async function (server) {
      let h
      try {
        h = await take('preview', server)
      } catch (err) {
        await Promise.resolve(server.close()).catch(() => {})
        throw err
      }
      if (!h) return
      hold = h
      publishWhenListening(server, h, Boolean(config.preview && config.preview.https))
      if (server.httpServer) server.httpServer.once('close', () => h.release().catch(() => {}))
    }
    plugin.closePreviewServer = async function () {
      if (hold) await hold.release().catch(() => {})
    }
  }

  return plugin
}

// The function itself, so that `require('leaselock/vite')` and the default import are it too.
module.exports = singleInstance
singleInstance.singleInstance = singleInstance
singleInstance.default = singleInstance
