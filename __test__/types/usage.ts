// Type-level usage of the public API: every overload of lib/index.d.ts, compiled with
// `tsc -p __test__/types` (strict, no emit). Lines marked `@ts-expect-error` must fail to
// compile: if the types ever accept them, tsc reports the unused directive and the test fails.
import {
  PidLock,
  DEFAULTS,
  HELD_TEXT,
  type AcquireOptions,
  type AcquireResult,
  type AcquireSyncOptions,
  type InspectOptions,
  type InvalidLockContent,
  type LockFilesystem,
  type LeaseHolder,
  type LeaseLostInfo,
  type LockErrorCode,
  type LockHeldError,
  type LockNotLeaseError,
  type LockHolder,
  type LockMetadata,
  type LockPathError,
  type PidLockOptions,
  type TakeoverBlocker,
} from 'leaselock'

async function everything(): Promise<void> {
  // Construction: a string or a URL, options optional.
  const plain: PidLock = new PidLock('.cache/dev.lock')
  const viaUrl = new PidLock(new URL('file:///tmp/x.lock'))
  const options: PidLockOptions = {
    heldError: 'dev server already running',
    acquireRetryLimit: 12,
    acquireRetryDelay: 0,
    invalidPidLockStaleThreshold: 1200,
    invalidContent: 'refuse',
    fileWriteMode: 0o644,
    directoryWriteMode: 0o755,
    processAppearsAlive: (pid: number): boolean => pid > 0,
    leaseHeartbeatInterval: 250,
    leaseStaleThreshold: 3000,
    onLeaseLost: (info: LeaseLostInfo) => {
      const reason: 'owner-changed' | 'removed' | 'heartbeat-failed' | 'heartbeat-stalled' | 'store-unreachable' = info.reason
      const path: string = info.path
      const owner: LockHolder | null = info.newOwner
      const error: string | null = info.error
      const at: Date = info.at
      void [reason, path, owner, error, at]
    },
    metadata: { url: 'http://localhost:5173/', port: 5173 },
  }
  const full = new PidLock('x.lock', options)
  new PidLock('x.lock', { heldError: new Error('custom') })
  new PidLock('x.lock', { metadata: null })
  new PidLock('x.lock', { metadata: [1, 2, 3] })

  // Getters.
  const p: string = full.path
  const held: boolean = full.held
  const where: LockFilesystem | null = full.filesystem
  if (where) {
    const kind: 'local' | 'network' | 'fuse' | 'unknown' = where.kind
    const stable: boolean | null = where.stableInodes
    void [where.type.length, kind, stable]
  }
  void [p, held, plain, viaUrl]

  // acquire: no options, a timeout, Infinity, a signal.
  const r1: AcquireResult = await full.acquire()
  const r2 = await full.acquire({ timeout: 1000 })
  const r3 = await full.acquire({ timeout: Infinity, signal: AbortSignal.timeout(10) })
  const acquireOptions: AcquireOptions = { signal: new AbortController().signal }
  await full.acquire(acquireOptions)
  const reclaimed: LockHolder | null = r1.reclaimed
  void [r2, r3]
  if (reclaimed !== null) {
    if (reclaimed.valid) {
      const h: LeaseHolder = reclaimed
      const pid: number = h.pid
      const owner: string = h.ownerId
      const host: string | null = h.hostname
      const started: Date | null = h.startedAt
      const beat: Date = h.lastHeartbeat
      const md: LockMetadata | null = h.metadata
      const alive: boolean | 'unknown' = h.alive
      const stale: boolean = h.stale
      void [pid, owner, host, started, beat, md, alive, stale]
    } else {
      const bad: InvalidLockContent = reclaimed
      const size: number = bad.size
      const modified: Date | null = bad.modifiedAt
      const pid: null = bad.pid
      void [size, modified, pid]
    }
  }

  // Sync twins.
  const s1: AcquireResult = full.acquireSync()
  const syncOptions: AcquireSyncOptions = { timeout: 50 }
  full.acquireSync(syncOptions)
  void s1
  const released: Promise<boolean> = full.release()
  await released
  const removed: boolean = full.releaseSync()
  void removed

  // Metadata.
  await full.update({ url: 'http://localhost:5174/' })
  await full.update(null)
  await full.update(['a', 1])
  full.updateSync({ ready: true })
  full.updateSync(null)

  // Inspection.
  const seen: LockHolder | null = await PidLock.inspect('x.lock')
  const seenUrl = await PidLock.inspect(new URL('file:///tmp/x.lock'), { leaseStaleThreshold: 3000 })
  const inspectOptions: InspectOptions = { invalidPidLockStaleThreshold: 1200, invalidContent: 'reclaim' }
  const seenSync: LockHolder | null = PidLock.inspectSync('x.lock', inspectOptions)
  void [seen, seenUrl, seenSync]
  if (seen && seen.valid && seen.metadata && !Array.isArray(seen.metadata)) {
    const url: unknown = seen.metadata.url
    void url
  }

  // Errors.
  try {
    await full.acquire()
  } catch (err) {
    const e = err as LockHeldError
    const code: 'ELOCKHELD' = e.code
    const path: string = e.path
    const holder: LeaseHolder | null = e.holder
    const message: string = e.message
    void [code, path, holder, message]
  }
  const notLease = {} as LockNotLeaseError
  const notLeaseFields: ['ELOCKNOTLEASE', string, number | null] = [notLease.code, notLease.path, notLease.size]
  void notLeaseFields
  const codes: LockErrorCode[] = ['ELOCKHELD', 'ELOCKCONTENDED', 'ELOCKNOTFILE', 'ELOCKNOTLEASE', 'ELOCKNOTHELD', 'ELOCKBUSY', 'ELOCKNOTMOVABLE', 'ELOCKUNSAFEPATH']
  void codes
  try {
    await new PidLock('/tmp/shared/x.lock', { allowUntrustedParents: false }).acquire()
  } catch (err) {
    const e = err as LockPathError
    const where: string = e.path
    const owner: number | undefined = e.owner
    void [where, owner]
  }
  const checked = await PidLock.inspect('x.lock', { allowUntrustedParents: true })
  if (checked && checked.canTakeOver === false && checked.blockedBy) {
    const blocker: TakeoverBlocker = checked.blockedBy
    const owner: number | null = blocker.owner
    void [blocker.message, owner]
  }
  if (checked && checked.valid && checked.metadataDropped !== undefined) {
    const note: string = checked.metadataDropped
    void note
  }

  // Disposal.
  {
    await using scoped = new PidLock('scoped.lock')
    await scoped.acquire()
  }
  {
    using scopedSync = new PidLock('scoped-sync.lock')
    scopedSync.acquireSync()
  }
  await full[Symbol.asyncDispose]()
  full[Symbol.dispose]()

  // Constants.
  const retry: 12 = DEFAULTS.acquireRetryLimit
  const hb: 250 = DEFAULTS.leaseHeartbeatInterval
  const text: 'lock file is already held by another process' = HELD_TEXT
  void [retry, hb, text]
}

async function wrongTypes(): Promise<void> {
  // @ts-expect-error a path is required
  new PidLock()
  // @ts-expect-error a path is a string or a URL
  new PidLock(42)
  // @ts-expect-error durations are numbers
  new PidLock('x.lock', { leaseHeartbeatInterval: '250' })
  // @ts-expect-error allowUntrustedParents is a boolean
  new PidLock('x.lock', { allowUntrustedParents: 'yes' })
  // @ts-expect-error heldError is a string or an Error
  new PidLock('x.lock', { heldError: 5 })
  // @ts-expect-error processAppearsAlive returns a boolean
  new PidLock('x.lock', { processAppearsAlive: (pid: number) => String(pid) })
  // @ts-expect-error onLeaseLost receives a LeaseLostInfo, not a string
  new PidLock('x.lock', { onLeaseLost: (info: string) => info })
  // @ts-expect-error metadata is an object or an array, not a string
  new PidLock('x.lock', { metadata: 'text' })
  // @ts-expect-error unknown option
  new PidLock('x.lock', { staleThreshold: 3000 })
  // @ts-expect-error invalidContent is 'refuse' or 'reclaim'
  new PidLock('x.lock', { invalidContent: 'delete' })

  const lock = new PidLock('x.lock')
  // @ts-expect-error path is read-only
  lock.path = '/elsewhere'
  // @ts-expect-error held is read-only
  lock.held = true
  // @ts-expect-error timeout is a number
  await lock.acquire({ timeout: '10' })
  // @ts-expect-error signal is an AbortSignal
  await lock.acquire({ signal: true })
  // @ts-expect-error acquireSync takes no signal
  lock.acquireSync({ signal: new AbortController().signal })
  // @ts-expect-error update needs an argument
  await lock.update()
  // @ts-expect-error metadata is not a number
  lock.updateSync(5)
  // @ts-expect-error release takes no arguments
  await lock.release(true)
  // @ts-expect-error inspect is static
  await lock.inspect('x.lock')
  // @ts-expect-error inspect options are numbers
  PidLock.inspectSync('x.lock', { leaseStaleThreshold: 'long' })

  const { reclaimed } = await lock.acquire()
  if (reclaimed) {
    // @ts-expect-error pid may be null (invalid content) until narrowed by `valid`
    const pid: number = reclaimed.pid
    void pid
    if (!reclaimed.valid) {
      // @ts-expect-error invalid content has no heartbeat
      const beat: Date = reclaimed.lastHeartbeat
      void beat
    }
  }
  const info = {} as LeaseLostInfo
  // @ts-expect-error not one of the reasons
  const r: typeof info.reason = 'timeout'
  void r
  // @ts-expect-error DEFAULTS is read-only
  DEFAULTS.leaseStaleThreshold = 1
  // @ts-expect-error not an error code of this package
  const code: LockErrorCode = 'EPERM'
  void code
}

void everything
void wrongTypes
