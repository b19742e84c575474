import type { Compiler } from 'webpack'
import type { LeaseLostInfo, LockHeldError, PidLockOptions } from './index.js'

/**
 * A webpack plugin that allows one `webpack serve` (webpack-dev-server) and one
 * `webpack --watch` per project: `plugins: [new SingleInstancePlugin()]`.
 *
 * The lock is taken in `apply()`, before webpack-dev-server probes or binds a port and before
 * anything compiles, at `<package root>/node_modules/.cache/leaselock/webpack-dev-server.lock`
 * (or `webpack-watch.lock`; `-<compiler name>` is appended for a named compiler). A program that
 * calls `compiler.watch()` itself gets the lock in `watchRun`. The lease's metadata gets the dev
 * server's URL and port once it listens. A second instance is refused with
 * {@link SingleInstancePlugin.SingleInstanceError}: the webpack CLI prints its message and exits
 * with code 1; `webpack(config)` throws it; `compiler.watch()` reports it to its callback.
 * Released when watching or serving ends (`watchClose`) and on `compiler.close()`.
 */
declare class SingleInstancePlugin {
  constructor(options?: SingleInstancePlugin.SingleInstancePluginOptions)
  apply(compiler: Compiler): void
}

declare namespace SingleInstancePlugin {
  export interface SingleInstancePluginOptions {
    /** Guard `webpack serve` / webpack-dev-server. Default `true`. */
    serve?: boolean
    /** Guard `webpack --watch`, `watch: true` and `compiler.watch()`. Default `true`. */
    watch?: boolean
    /** The lock file, relative to webpack's `context` or absolute. Default: see the class. */
    lockfile?: string
    /**
     * Start even when another instance holds the lock (it keeps the lock; a warning is logged).
     * Default: `true` when the environment variable `LEASELOCK_ALLOW_MULTIPLE` is `1`, `true`,
     * `yes` or `on`, else `false`. An explicit `false` ignores the variable.
     */
    allowMultiple?: boolean
    /**
     * Milliseconds to wait for the running instance to end before refusing. Default 0. The
     * plugin says who it waits for; `webpack serve` waits blocking, before anything starts.
     */
    wait?: number
    /**
     * When another instance holds the lock: `'refuse'` (default); `'replace'` asks the running
     * one to exit (SIGTERM, on Windows a stop request; only when it is proven to hold the lock
     * file), waits up to 10 s for it to let go, then takes its place; `'reuse'` prints the
     * running one's URL and exits with code 0 (the webpack CLI) or throws the
     * {@link SingleInstanceError} with `url` set.
     */
    onConflict?: 'refuse' | 'replace' | 'reuse'
    /** No waiting messages. Default `false`. */
    quiet?: boolean
    /**
     * When the lease is lost while running: `'warn'` (default) logs a warning through webpack's
     * infrastructure logger; `'exit'` closes the compiler and exits with code 1; a function is
     * called instead.
     */
    onLeaseLost?: 'warn' | 'exit' | ((info: LeaseLostInfo, context: LeaseLostContext) => void)
    /** Options of the underlying lock (heartbeat interval, stale threshold, modes...). */
    lockOptions?: Omit<PidLockOptions, 'metadata' | 'onLeaseLost' | 'heldError'>
    /** Extra fields for the lease's metadata (the plugin's own fields win). */
    metadata?: { [key: string]: unknown }
  }

  export interface LeaseLostContext {
    compiler: Compiler
    /** The warning the default policy would log. */
    message: string
  }

  /** What the plugin throws when another instance holds the lock. */
  export interface SingleInstanceError extends LockHeldError {
    /** The lock's own `ELOCKHELD` error. */
    cause: Error
    /** With `onConflict: 'reuse'`: the running server's URL. */
    url?: string
  }

  /** The metadata the plugin stores in the lease (read it with `PidLock.inspect`). */
  export interface ServerMetadata {
    tool: 'webpack'
    command: 'dev-server' | 'watch'
    root: string
    cwd: string
    commandLine: string
    /** Once the dev server listens. */
    url?: string | null
    urls?: string[]
    port?: number | null
    listeningAt?: string
    [key: string]: unknown
  }

  export { SingleInstancePlugin, SingleInstancePlugin as default }
}

export = SingleInstancePlugin
