'use strict'
// `SingleInstancePlugin`: one `webpack serve` / `webpack --watch` per project.
//
// Where the lock is taken, and why there:
// - `webpack serve` and `webpack --watch` (or `watch: true`): synchronously in `apply()`, which
//   runs while the compiler is created. webpack-dev-server is constructed only after that, and it
//   probes and binds its port in `start()`; taking the lock any later (say in `watchRun`) would
//   let the second server bind a port and start compiling before it is refused. webpack-dev-server
//   sets `process.env.WEBPACK_SERVE` when it is loaded, which `webpack serve` does first.
// - `compiler.watch()` called by a program without `watch: true`: in `watchRun`, before the
//   first compilation; a refusal fails that compilation with the error.
// Released on `watchClose` (watching or serving ends) and on `shutdown` (compiler.close()).
//
// The URL is recorded when the dev server listens: through `devServer.onListening` when the
// configuration has a `devServer` object (the plugin wraps the user's own callback, which
// webpack-cli copies into the server's options), otherwise from the "Loopback:" and "On Your
// Network" lines webpack-dev-server logs through the compiler's infrastructure logger.

const nodePath = require('node:path')
const fs = require('node:fs')
const { ALLOW_ENV, applyLostPolicy, checkOptions, packageRoot, refusalError, reuseMessage, takeLock, takeLockSync } = require('./guard.js')
const { shown } = require('./holder.js')
const { Hold } = require('./hold.js')
const { commandLine } = require('./command-line.js')

const PLUGIN_NAME = 'LeaselockSingleInstancePlugin'
const WHAT = { 'dev-server': 'webpack dev server', watch: 'webpack --watch' }
const OPTIONS = { owner: 'SingleInstancePlugin', booleans: ['serve', 'watch'], policies: ['warn', 'exit'] }

/** Whether this process is the webpack command line (not a program using the webpack API). */
function runByWebpackCli() {
  const main = process.argv[1]
  if (!main) return false
  let real = main
  try {
    real = fs.realpathSync(main)
  } catch {
    // keep the path as given
  }
  return /[\\/](webpack[\\/]bin[\\/]webpack|webpack-cli[\\/]bin[\\/]cli)\.js$/.test(real)
}

function hostForUrl(host) {
  if (!host || host === '0.0.0.0' || host === '::' || host === 'local-ip' || host === 'local-ipv4' || host === 'local-ipv6') return 'localhost'
  return host.includes(':') ? `[${host}]` : host
}

/** URL and port of a listening webpack-dev-server instance. */
function devServerInfo(devServer) {
  const http = devServer && devServer.server
  const addr = http && typeof http.address === 'function' ? http.address() : null
  if (!addr || typeof addr !== 'object') return { url: null, urls: [], port: null }
  const protocol = devServer.isTlsServer ? 'https' : 'http'
  const configured = devServer.options && typeof devServer.options.host === 'string' ? devServer.options.host : null
  const url = `${protocol}://${hostForUrl(configured || addr.address)}:${addr.port}/`
  return { url, urls: [url], port: addr.port }
}

const URL_RE = /\bhttps?:\/\/[^\s,"']+/g
// eslint-disable-next-line no-control-regex
const ANSI_RE = /\u001b\[[0-9;]*m/g

/** The dev server's URL, from the "Loopback:" / "On Your Network" lines it logs. */
function urlsFromLog(compiler, publish) {
  let urls = null
  compiler.hooks.infrastructureLog.tap(PLUGIN_NAME, (origin, type, args) => {
    if (origin !== 'webpack-dev-server' || !args || typeof args[0] !== 'string') return undefined
    const text = args[0].replace(ANSI_RE, '')
    if (!/^(Project is running at|Loopback|On Your Network)/.test(text)) return undefined
    const found = text.match(URL_RE) || []
    if (urls === null) {
      urls = []
      // The status lines are logged one after another; record them together.
      setImmediate(() => {
        const list = urls
        urls = null
        const port = list.length ? Number(new URL(list[0]).port) || null : null
        publish({ url: list[0] || null, urls: list.slice(0, 8), port })
      })
    }
    urls.push(...found)
    return undefined
  })
}

/** Records where the dev server listens: through `devServer.onListening`, else from its log. */
function publishWhenListening(compiler, publish) {
  const devServer = compiler.options.devServer
  if (devServer && typeof devServer === 'object') {
    const user = devServer.onListening
    devServer.onListening = function leaselockOnListening(server) {
      publish(devServerInfo(server))
      if (typeof user === 'function') return user.call(this, server)
    }
    return
  }
  urlsFromLog(compiler, publish)
}

class SingleInstancePlugin {
  #opts

  constructor(options) {
    this.#opts = checkOptions(options, OPTIONS)
  }

  apply(compiler) {
    const opts = this.#opts
    const underServe = Boolean(process.env.WEBPACK_SERVE)
    const serving = opts.serve !== false && underServe
    const watching = opts.watch !== false && compiler.options.watch === true
    const projectDir = packageRoot(compiler.context || process.cwd())
    const logger = () => compiler.getInfrastructureLogger('leaselock')
    // webpack's logger names itself "[leaselock]": the shared texts' own prefix is dropped.
    const log = (level, text) => logger()[level](text.replace(/^leaselock: /, ''))
    let hold = null
    let settled = false
    let kindTaken = null

    const lockPath = (kind) => {
      if (opts.lockfile) return nodePath.resolve(compiler.context || process.cwd(), opts.lockfile)
      const name = compiler.name ? `-${String(compiler.name).replace(/[^\w.-]+/g, '_')}` : ''
      return nodePath.join(projectDir, 'node_modules', '.cache', 'leaselock', `webpack-${kind}${name}.lock`)
    }

    const onLost = (kind, info, h) =>
      applyLostPolicy(opts.onLeaseLost, {
        what: WHAT[kind],
        info,
        context: { compiler },
        log,
        retake: () => h.retake(),
        stop: () => compiler.close(() => process.exit(1)),
      })

    const newHold = (kind) => {
      const h = new Hold(lockPath(kind), {
        tool: 'webpack',
        lockOptions: opts.lockOptions,
        metadata: { ...(opts.metadata || {}), tool: 'webpack', command: kind, root: projectDir, cwd: process.cwd(), commandLine: commandLine() },
        onLost: (info) => onLost(kind, info, h),
      })
      return h
    }

    const conflict = (kind) => ({
      what: WHAT[kind],
      projectDir,
      allow: opts.allowMultiple,
      onConflict: opts.onConflict,
      wait: opts.wait,
      quiet: opts.quiet,
      override: `set ${ALLOW_ENV}=1, or pass new SingleInstancePlugin({ allowMultiple: true })`,
      log,
    })

    /** `onConflict: 'reuse'`: the webpack CLI prints the URL and exits 0; a program gets ELOCKHELD. */
    const reuse = (kind, got) => {
      log('info', reuseMessage(WHAT[kind], got.holder, got.reuse))
      if (runByWebpackCli()) {
        process.stdout.write(`${shown(got.reuse)}\n`)
        process.exit(0)
      }
      const err = refusalError({ holder: got.holder, path: lockPath(kind) }, { what: WHAT[kind], projectDir })
      err.url = got.reuse
      throw err
    }

    const took = (kind, got) => {
      if (got.reuse) reuse(kind, got)
      hold = got.hold
      kindTaken = got.hold ? kind : null
    }

    /** `webpack serve` / `--watch`: synchronously, before the dev server exists. */
    const takeAtOnce = (kind) => {
      settled = true
      try {
        took(kind, takeLockSync(newHold(kind), conflict(kind)))
      } catch (err) {
        if (['ELOCKHELD', 'ELOCKUNPROVEN', 'ELOCKSTOPTIMEOUT'].includes(err.code) && runByWebpackCli()) {
          // The webpack CLI would print this with "[webpack-cli]" and exit with 2, the code
          // of a broken configuration; a refusal is not that.
          process.stderr.write(`${err.message}\n`)
          process.exit(1)
        }
        throw err
      }
    }

    /**
     * A program that calls compiler.watch() itself: before the first compilation. Under
     * `webpack serve` the dev server makes that call, so `serve: false` leaves it unguarded too.
     */
    const takeBeforeFirstWatchRun = async () => {
      if (settled || opts.watch === false || (underServe && opts.serve === false)) return
      settled = true
      took('watch', await takeLock(newHold('watch'), conflict('watch')))
    }

    const release = () => {
      const h = hold
      hold = null
      settled = false
      if (h) h.releaseSync()
    }

    const publish = (info) => {
      if (!hold || kindTaken !== 'dev-server' || !info.url) return
      hold.update({ ...info, listeningAt: new Date().toISOString() }).catch((err) => {
        logger().warn(`could not record the server URL in the lock: ${err.message}`)
      })
    }

    if (serving || watching) takeAtOnce(serving ? 'dev-server' : 'watch')
    compiler.hooks.watchRun.tapPromise(PLUGIN_NAME, takeBeforeFirstWatchRun)
    compiler.hooks.watchClose.tap(PLUGIN_NAME, release)
    compiler.hooks.shutdown.tap(PLUGIN_NAME, release)
    if (serving) publishWhenListening(compiler, publish)
  }
}

module.exports = SingleInstancePlugin
module.exports.SingleInstancePlugin = SingleInstancePlugin
module.exports.default = SingleInstancePlugin
