/// <reference types="node" />
/**
 * leaselock: cross-process lock files that cannot get stuck.
 *
 * A `PidLock` guards one lock file. While held, a native heartbeat renews the lease; a holder
 * that died or froze past `leaseStaleThreshold` is taken over safely; release never deletes
 * another owner's lock. File-compatible with the Go package `kit/lockfile`.
 */

/** Holder metadata: a JSON-serialisable object or array (serialising to one), at most 4096 bytes as JSON, nested at most 32 levels. */
export type LockMetadata = { [key: string]: unknown } | unknown[]

/** A lock file that carries a valid lease. */
export interface LeaseHolder {
  valid: true
  /** The holder's process id (in the holder's PID namespace). */
  pid: number
  /** `"<pid>-<UnixNano>-<seq>"`, new for every acquisition. */
  ownerId: string
  /** `null` in a lease that does not record it (a Go-written one). */
  hostname: string | null
  /** When the holder acquired the lock; `null` in a Go-written lease. */
  startedAt: Date | null
  lastHeartbeat: Date
  metadata: LockMetadata | null
  /**
   * `true`/`false` when this host can prove it (same host, boot and PID namespace, pid and
   * process start time checked); `'unknown'` otherwise (treated as alive).
   */
  alive: boolean | 'unknown'
  /** Whether the lease has gone without a heartbeat for `leaseStaleThreshold` or longer. */
  stale: boolean
  /**
   * The lease's fencing token (see {@link AcquireResult.token}); `null` in a lease written without
   * one (a Go holder's). `JSON.stringify` writes it as decimal text.
   */
  token: bigint | null
  /**
   * Present when the metadata was dropped on reading because it nested deeper than 32 levels
   * (then `metadata` is `null`): says so, for a person.
   */
  metadataDropped?: string
  /** From `inspect` only: see {@link TakeoverCheck}. */
  canTakeOver?: boolean
  blockedBy?: TakeoverBlocker | null
}

/** A file in the way of a takeover that this process may not move (see `ELOCKNOTMOVABLE`). */
export interface TakeoverBlocker {
  path: string
  /** Its owner's uid; `null` where unknown (Windows). */
  owner: number | null
  /** A sentence naming the file, its owner and what stops this user. */
  message: string
}

/**
 * What `inspect` adds: whether this process may move what is at the lock path once the rules
 * allow a takeover (`false`: a file of another user in a sticky directory, or something at
 * the takeover-claim name it may not move), and what is in the way.
 */
export interface TakeoverCheck {
  canTakeOver: boolean
  blockedBy: TakeoverBlocker | null
}

/** A lock file whose content is not a valid lease (empty, garbage, a bare pid...). */
export interface InvalidLockContent {
  valid: false
  pid: null
  ownerId: null
  hostname: null
  startedAt: null
  lastHeartbeat: null
  metadata: null
  alive: 'unknown'
  /** Whether it is older than `invalidPidLockStaleThreshold` (by mtime), so reclaimable. */
  stale: boolean
  /** Bytes of content read (0 for a file over 16 KiB, which is never read; 0 on a store). */
  size: number
  /** `null` for a value on a store. */
  modifiedAt: Date | null
  /** Content that is not a lease carries no token: always `null`. */
  token: null
  /** From `inspect` only: see {@link TakeoverCheck}. */
  canTakeOver?: boolean
  blockedBy?: TakeoverBlocker | null
}

export type LockHolder = LeaseHolder | InvalidLockContent

export interface PidLockOptions {
  /** Message (or Error, kept as `cause`) used for `ELOCKHELD` rejections. Default: `"lock file is already held by another process"` (on a store: `"lock is already held by another process"`). */
  heldError?: string | Error
  /** Attempts in total when a stale lock keeps changing under us. Integer >= 1. Default 12. */
  acquireRetryLimit?: number
  /** Milliseconds slept between such attempts. Integer >= 0. Default 20. */
  acquireRetryDelay?: number
  /** Milliseconds (by mtime) a file with invalid content counts as held. Integer >= 1. Default 1200. */
  invalidPidLockStaleThreshold?: number
  /**
   * What a file at the lock path whose content is not a valid lease may be. `'refuse'` (default):
   * only a *possible lease* - empty or whitespace, a record cut off mid-write (a prefix of
   * `{"version":...`), or a JSON object with an `ownerID` key that is still not a valid lease -
   * follows `invalidPidLockStaleThreshold`; anything else (`data.json`, `package.json`, a binary)
   * is never replaced, renamed or removed, and every call rejects with `ELOCKNOTLEASE`.
   * `'reclaim'`: the Go package's rule - all invalid content is reclaimed once older than
   * `invalidPidLockStaleThreshold`. The default differs from Go because users pass the
   * resource's own path by habit (proper-lockfile locks `<path>.lock` beside it), and Go's rule
   * then deletes their file.
   */
  invalidContent?: 'refuse' | 'reclaim'
  /**
   * Mode of a new lock file (umask applies). Default 0o644. Read/write bits only, readable by
   * the owner, never group- or other-writable (0o400 ... 0o644): whoever can write a lease can
   * forge its holder. Use 0o600 when the metadata is private. Otherwise `RangeError`
   * `ERR_OUT_OF_RANGE`.
   */
  fileWriteMode?: number
  /**
   * Mode of parent directories created on acquire (umask applies). Default 0o755. rwx for the
   * owner, no setuid/setgid, no other-write (0o700 ... 0o1775). Otherwise `RangeError`
   * `ERR_OUT_OF_RANGE`.
   */
  directoryWriteMode?: number
  /**
   * Follow a symlink in the lock path that belongs to another user (not this one, not root),
   * and use a parent directory that others may write without the sticky bit and that belongs
   * to another user. Default `false`: either is refused with `ELOCKUNSAFEPATH`, because whoever
   * owns it could point the lock (and its takeovers and removals) at a directory of their
   * choosing. Set it only when you trust every user who can write there.
   */
  allowUntrustedParents?: boolean
  /** Overrides the liveness check of a holder's pid; it has the last word, as in Go. A throw counts as alive. */
  processAppearsAlive?: (pid: number) => boolean
  /** Milliseconds between heartbeats while held. Integer >= 1. Default 250. */
  leaseHeartbeatInterval?: number
  /** Milliseconds without a heartbeat after which a lease may be taken over. Integer > leaseHeartbeatInterval. Default 3000. */
  leaseStaleThreshold?: number
  /**
   * Called once (on the JS thread) when a held lease is lost; `held` is already false, unless a
   * later `acquire()` (which verifies an unconfirmed lease, reporting its loss here) has since
   * taken the lock anew. A throw becomes a process warning.
   */
  onLeaseLost?: (info: LeaseLostInfo) => void
  /** Stored in the lease for others to read (`PidLock.inspect`, `err.holder.metadata`). */
  metadata?: LockMetadata | null
  /**
   * Keep the lock on a Redis or Valkey server instead of in a file: `redis://[user:pass@]host[:port][/db]`,
   * `rediss://` (TLS; the certificate is checked against the system's roots, or `SSL_CERT_FILE`), `unix:///path/to/socket[?db=N&pass=...]`
   * (also `valkey://`, `valkeys://`, `redis+unix://`, `valkey+unix://`). The first constructor
   * argument is then the lock's key (1 to 512 bytes, no `{`, `}` or null byte). The lease lives
   * `leaseStaleThreshold` ms on the server unless renewed every `leaseHeartbeatInterval` ms.
   * The sync methods throw `ERR_LOCK_STORE_SYNC`; `processAppearsAlive`, the file modes and the
   * retry options do not apply.
   */
  store?: string
}

export interface LeaseLostInfo {
  /**
   * `'owner-changed'`: another owner's lease is at the path (a takeover or an overwrite);
   * `'removed'`: the file was removed or replaced by something that is not a lease;
   * `'heartbeat-failed'`: heartbeats kept failing (see `error`) until the lease was about to expire;
   * `'heartbeat-stalled'`: a renewal did not complete by then - its filesystem is stuck (a hung
   * network or FUSE mount). Told while the call is still stuck; its late completion changes nothing.
   * `'store-unreachable'` (a lock on a store): no renewal was confirmed before the lease could
   * expire (connection lost, server stopped or too slow; see `error`). A store lock's
   * `'removed'` also covers a lease that expired or a server that lost its data.
   */
  reason: 'owner-changed' | 'removed' | 'heartbeat-failed' | 'heartbeat-stalled' | 'store-unreachable'
  /** The lock file's path; the key, for a lock on a store. */
  path: string
  /** The lease now at the path, when there is one. */
  newOwner: LockHolder | null
  /** The last OS error code (`'EIO'`, `'EMFILE'`...) for `'heartbeat-failed'`; the store's message for `'store-unreachable'`. */
  error: string | null
  at: Date
}

/** The filesystem a lock lives on, and so which path its I/O takes (see README). */
export interface LockFilesystem {
  /** The kernel's name for its type: `'ext4'`, `'tmpfs'`, `'nfs'`, `'fuse'`, `'apfs'`, `'NTFS'`... */
  type: string
  /**
   * `'local'`: a local disk type; async methods do their first file work on the JS thread.
   * `'network'`, `'fuse'`, `'unknown'`: any call may be slow or hang; async methods do all their
   * file work on another thread. Sync methods block the JS thread everywhere, by contract.
   */
  kind: 'local' | 'network' | 'fuse' | 'unknown'
  /**
   * Whether inode numbers stay with a file across names there (FUSE mounts often make them up
   * per name; the lock then recognises its files by content). `null` until looked at.
   */
  stableInodes: boolean | null
}

export interface AcquireOptions {
  /**
   * Milliseconds to wait for a held lock. 0 (default): try once. `Infinity`: until free. A waiter
   * sleeps until the lock file changes, its holder process ends or its lease may go stale.
   */
  timeout?: number
  /** Aborting rejects with `signal.reason` and leaves nothing behind. */
  signal?: AbortSignal
}

export interface AcquireSyncOptions {
  /** Milliseconds to wait, blocking the thread. 0 (default): try once. */
  timeout?: number
}

export interface AcquireResult {
  /** What this acquisition took over: `null` when the lock was free or already held by this instance. */
  reclaimed: LockHolder | null
  /**
   * The fencing token of this acquisition: strictly greater than every token given out before
   * for the same lock path on its filesystem, or the same key on the same server (see
   * docs/design.md, "Fencing tokens"). Pass it to what the lock guards, which refuses anything
   * older than the newest it has seen. `null` only where this user cannot use the lock file's
   * counter (another user's, in a sticky directory).
   */
  token: bigint | null
}

export interface InspectOptions {
  /** Inspect a lock on this store (see {@link PidLockOptions.store}); the first argument is the key. */
  store?: string
  /** Default 3000. */
  leaseStaleThreshold?: number
  /** Default 1200. */
  invalidPidLockStaleThreshold?: number
  /** Default `'refuse'`: a file that cannot be a lease rejects with `ELOCKNOTLEASE`. */
  invalidContent?: 'refuse' | 'reclaim'
  /** As in {@link PidLockOptions.allowUntrustedParents}. Default `false`. */
  allowUntrustedParents?: boolean
}

/**
 * `code: 'ELOCKNOTLEASE'`: the file at the lock path is not a lock (and cannot be a lease cut
 * off mid-write); it was left untouched. The message names the path, its size and a printable
 * glimpse of its start. Lock a separate path (`data.json.lock`), or delete the file if it is a
 * stale lock of another tool; `invalidContent: 'reclaim'` restores the Go package's rule.
 */
export interface LockNotLeaseError extends Error {
  code: 'ELOCKNOTLEASE'
  path: string
  /** The lock file's size in bytes; `null` when the refused file is the token counter (`path`). */
  size: number | null
}

/** `code: 'ELOCKHELD'`: a live process holds the lock (or its content is not a lease yet, or another program's value is under a store key). */
export interface LockHeldError extends Error {
  code: 'ELOCKHELD'
  path: string
  /** `null` when the file's content is not a valid lease ("owner unavailable"). */
  holder: LeaseHolder | null
}

/**
 * Error codes, besides the OS ones (`EACCES`, `ENOTDIR`, `EROFS`, ...) which carry `errno`,
 * `syscall` and `path`:
 * - `ELOCKHELD`: see {@link LockHeldError}.
 * - `ELOCKCONTENDED`: the retry budget ran out while a stale lock kept changing under us.
 * - `ELOCKNOTFILE`: a symlink, directory, FIFO, socket or device is at the lock path (left untouched).
 * - `ELOCKNOTLEASE`: see {@link LockNotLeaseError}.
 * - `ELOCKNOTHELD`: `update()` on a lock this instance does not hold.
 * - `ELOCKBUSY`: a sync call while an async call runs on the same instance.
 * - `ELOCKSTOREUNREACHABLE`: a lock on a store: no connection (refused, reset, timed out).
 * - `ELOCKSTOREAUTH`: the store refused the credentials (wrong or missing password).
 * - `ELOCKSTORE`: the store answered with an error.
 * - `ERR_LOCK_STORE_SYNC`: a sync method on a lock on a store.
 * - `ELOCKNOTMOVABLE`: the lock may be taken over, but not by this user: a file in the way (the
 *   stale lock of another user in a sticky directory, or something at the takeover-claim name
 *   `.<name>.takeover`) may not be moved by it. Reported at once, also when waiting; `path` is
 *   that file and `owner` its owner's uid. See {@link LockPathError}.
 * - `ELOCKUNSAFEPATH`: a symlink in the lock path belongs to another user, or a parent directory
 *   others may write (no sticky bit) belongs to another user; nothing was followed or touched.
 *   `path` is that symlink or directory, `owner` its uid. See `allowUntrustedParents`.
 * - `ERR_INVALID_ARG_TYPE`, `ERR_INVALID_ARG_VALUE`, `ERR_OUT_OF_RANGE`: bad arguments.
 */
export type LockErrorCode =
  | 'ELOCKHELD'
  | 'ELOCKCONTENDED'
  | 'ELOCKNOTFILE'
  | 'ELOCKNOTLEASE'
  | 'ELOCKNOTHELD'
  | 'ELOCKBUSY'
  | 'ELOCKSTOREUNREACHABLE'
  | 'ELOCKSTOREAUTH'
  | 'ELOCKSTORE'
  | 'ERR_LOCK_STORE_SYNC'
  | 'ELOCKNOTMOVABLE'
  | 'ELOCKUNSAFEPATH'

/** `ELOCKNOTMOVABLE` and `ELOCKUNSAFEPATH`: the file in the way and who owns it. */
export interface LockPathError extends Error {
  code: 'ELOCKNOTMOVABLE' | 'ELOCKUNSAFEPATH'
  /** The file, symlink or directory in the way (not the lock path). */
  path: string
  /** Its owner's uid (absent where unknown). */
  owner?: number
}

/**
 * Async calls on one instance (`acquire`, `release`, `update`) take effect one after another,
 * in call order: `lock.acquire(); lock.release()` ends released. A sync call made while async
 * calls are still queued on the same instance throws `ELOCKBUSY` instead of overtaking them.
 */
export declare class PidLock {
  /** Throws `TypeError`/`RangeError` (with `code`) for bad arguments. */
  constructor(path: string | URL, options?: PidLockOptions & { store?: undefined })
  /** A lock on a store (`options.store`): the first argument is its key, a string. */
  constructor(key: string, options?: PidLockOptions)
  /** The absolute path, resolved at construction; the key, for a lock on a store. */
  get path(): string
  /** The fencing token of the current acquisition while held (see {@link AcquireResult.token}); otherwise `null`. */
  get token(): bigint | null
  /**
   * Whether this instance holds the lock with a lease it can vouch for. No I/O. False once a
   * loss is known; also false while the last confirmed heartbeat is older than
   * `leaseStaleThreshold - leaseHeartbeatInterval` (on a store: once `leaseStaleThreshold`, less
   * a margin for clock drift, has passed since the last confirmed renewal was sent) - after this
   * process was frozen or asleep that long the lock may have been taken, so a holder that checks
   * `held` before acting never acts on a lease it may have lost. The heartbeat runs at once on
   * waking and either confirms the lease (`held` is true again) or reports the loss through
   * `onLeaseLost`.
   */
  get held(): boolean
  /** The filesystem the lock lives on; `null` until the first acquisition looked at it. No I/O. */
  get filesystem(): LockFilesystem | null
  /**
   * Resolves once held; already held by this instance: resolves at once with `reclaimed: null`
   * (a lease left unconfirmed by a freeze is first verified through the file: if it was lost,
   * the loss goes to `onLeaseLost` once and this acquires anew). Rejects with an `AbortError`
   * when `release()` is called on this instance while it waits.
   */
  acquire(options?: AcquireOptions): Promise<AcquireResult>
  acquireSync(options?: AcquireSyncOptions): AcquireResult
  /**
   * Resolves once released: `true` when it removed this instance's lock file; `false` when
   * there was nothing of ours to remove - never held, already released, or the lease was lost
   * (taken over while this process was frozen, say), in which case the file at the path is
   * somebody else's and was left alone. A holder that was frozen past its lease learns it here
   * at the latest, even if it releases before `onLeaseLost` could reach it.
   */
  release(): Promise<boolean>
  /** As `release()`; acquires of this instance not yet finished are cancelled (they reject with an `AbortError`, holding nothing), other queued calls make it throw `ELOCKBUSY`. */
  releaseSync(): boolean
  /** Replaces the metadata while held; rejects with `ELOCKNOTHELD` otherwise. */
  update(metadata: LockMetadata | null): Promise<void>
  updateSync(metadata: LockMetadata | null): void
  /** Who holds the lock at `path`, without taking it; `null` when free. */
  static inspect(path: string | URL, options?: InspectOptions & { store?: undefined }): Promise<LockHolder | null>
  /** Who holds the lock under `key` on `options.store`, without taking it; `null` when free. */
  static inspect(key: string, options?: InspectOptions): Promise<LockHolder | null>
  static inspectSync(path: string | URL, options?: InspectOptions): LockHolder | null
  /** Same as `release()` (its result dropped), for `await using`. */
  [Symbol.asyncDispose](): Promise<void>
  /**
   * Same as `releaseSync()`, for `using`. A lock on a store stops holding at once (no more
   * renewals, `held` false) and its lease is deleted in the background, or expires.
   */
  [Symbol.dispose](): void
}

/** The Go package's defaults, in milliseconds and file modes. */
export declare const DEFAULTS: Readonly<{
  acquireRetryLimit: 12
  acquireRetryDelay: 20
  invalidPidLockStaleThreshold: 1200
  fileWriteMode: 0o644
  directoryWriteMode: 0o755
  leaseHeartbeatInterval: 250
  leaseStaleThreshold: 3000
  invalidContent: 'refuse'
}>

/** The Go package's held-error text. */
export declare const HELD_TEXT: 'lock file is already held by another process'

/** Options of {@link withLock}: the lock's own, plus how long to wait for it. */
export interface WithLockOptions extends PidLockOptions, AcquireOptions {}

/** Options of {@link withLockSync}: the lock's own, plus how long to wait (blocking). */
export interface WithLockSyncOptions extends PidLockOptions, AcquireSyncOptions {}

/**
 * Acquires the lock at `path` (waiting up to `options.timeout`, abortable with
 * `options.signal`), runs `fn` with it, releases it in `finally` and resolves with what `fn`
 * returned. Rejects with `ELOCKHELD` when a live process holds it - `fn` never runs without
 * the lock. When `fn` throws, that error is the one rejected, even if the release fails too.
 */
export declare function withLock<T>(path: string | URL, fn: (lock: PidLock) => T | PromiseLike<T>, options?: WithLockOptions & { store?: undefined }): Promise<Awaited<T>>
/** {@link withLock} on a store (`options.store`): the first argument is the lock's key, a string. */
export declare function withLock<T>(key: string, fn: (lock: PidLock) => T | PromiseLike<T>, options?: WithLockOptions): Promise<Awaited<T>>

/** {@link withLock} on the calling thread, for synchronous `fn`. */
export declare function withLockSync<T>(path: string | URL, fn: (lock: PidLock) => T, options?: WithLockSyncOptions): T
