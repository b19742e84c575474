// Vite's types are ECMAScript modules; this file is the CommonJS entry's, so the import says
// how to resolve them (TS1541 under node16/nodenext otherwise).
import type { Plugin, PreviewServer, ViteDevServer } from 'vite' with { 'resolution-mode': 'import' }
import type { LeaseLostInfo, LockHeldError, PidLockOptions } from './index.js'

/**
 * A Vite plugin that allows one dev server per project:
 * `plugins: [singleInstance()]`.
 *
 * The lock is taken before the server binds its port (in `configureServer`), at
 * `<cacheDir>/leaselock/dev-server.lock` by default - keyed like Vite 8.4's own command lock
 * (command, root, config file, mode): another mode or config file gets
 * `dev-server-<mode>-<hash>.lock`, so what Vite runs side by side, the plugin allows. Its
 * metadata gets the server's URLs, port, root, mode and command line once it listens.
 * On Vite >= 8.4, `vite --bypass-lock` counts as `allowMultiple`. A second server in the same project is refused
 * with {@link singleInstance.SingleInstanceError}: the Vite CLI prints its message and exits
 * with code 1; `createServer()` rejects with it (after closing what it had opened). The lock is
 * released when the server closes; a server killed without closing (SIGKILL, Ctrl+C) leaves a
 * lease the next server takes over at once.
 *
 * Not guarded: Vitest's own Vite server (when `VITEST` is set).
 */
declare function singleInstance(options?: singleInstance.SingleInstanceOptions): Plugin

declare namespace singleInstance {
  export interface SingleInstanceOptions {
    /** Guard the dev server (`vite`, `vite dev`, `createServer()`). Default `true`. */
    dev?: boolean
    /** Guard `vite preview` (lock `<cacheDir>/leaselock/preview.lock`). Default `false`. */
    preview?: boolean
    /** Guard `vite build --watch` (lock `<cacheDir>/leaselock/build-watch.lock`). Default `false`. */
    buildWatch?: boolean
    /**
     * The lock file, relative to the project root (Vite's `root`) or absolute. Default: one file
     * per guarded command under Vite's `cacheDir`, so projects that share a cache share a lock.
     */
    lockfile?: string
    /**
     * Start even when another instance holds the lock (it keeps the lock; a warning is logged).
     * Default: `true` when the environment variable `LEASELOCK_ALLOW_MULTIPLE` is `1`, `true`,
     * `yes` or `on`, else `false`. An explicit `false` ignores the variable.
     */
    allowMultiple?: boolean
    /**
     * Milliseconds to wait for the running instance to end before refusing. Default 0. While it
     * waits, the plugin says who it waits for (pid, URL, age) on stderr.
     */
    wait?: number
    /**
     * When another instance holds the lock: `'refuse'` (default) fails the start;
     * `'replace'` asks the running one to exit (SIGTERM, on Windows a stop request; only when
     * it is proven to hold the lock file), waits up to 10 s for it to let go, then takes its
     * place; `'reuse'` prints the running one's URL and exits with code 0 without starting
     * (from `createServer()` it rejects with the {@link SingleInstanceError}, whose `url` is
     * set).
     */
    onConflict?: 'refuse' | 'replace' | 'reuse'
    /** No waiting messages. Default `false`. */
    quiet?: boolean
    /**
     * When the lease is lost while the server runs (its file removed, taken over after the
     * process was frozen past the stale threshold...):
     * `'warn'` (default) logs a warning with Vite's logger; `'close'` closes the server;
     * `'exit'` closes it and exits the process with code 1; a function is called instead.
     */
    onLeaseLost?: 'warn' | 'close' | 'exit' | ((info: LeaseLostInfo, context: LeaseLostContext) => void)
    /** Options of the underlying lock (heartbeat interval, stale threshold, modes...). */
    lockOptions?: Omit<PidLockOptions, 'metadata' | 'onLeaseLost' | 'heldError'>
    /** Extra fields for the lease's metadata (the plugin's own fields win). */
    metadata?: { [key: string]: unknown }
  }

  export interface LeaseLostContext {
    /** The server that lost its lease; `null` for `vite build --watch`. */
    server: ViteDevServer | PreviewServer | null
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
    tool: 'vite'
    command: 'dev' | 'preview' | 'build-watch'
    root: string
    /** Vite's mode and config file: with the command and root, the key of the lock. */
    mode: string
    configFile: string | null
    cwd: string
    commandLine: string
    /** Once the server listens. */
    url?: string | null
    urls?: string[]
    port?: number | null
    listeningAt?: string
    [key: string]: unknown
  }

  export { singleInstance, singleInstance as default }
}

export = singleInstance
