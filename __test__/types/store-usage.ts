// Type-level usage of a lock on a store (see usage.ts for how this file is checked).
import { PidLock, withLock, type AcquireResult, type LockErrorCode, type PidLockOptions } from 'leaselock'

async function onStore(): Promise<void> {
  const lock = new PidLock('nightly-migration', { store: 'redis://127.0.0.1:6379/0', leaseStaleThreshold: 10_000 })
  const got: AcquireResult = await lock.acquire({ timeout: 30_000 })
  const token: bigint | null = got.token
  const current: bigint | null = lock.token
  const holder = await PidLock.inspect('nightly-migration', { store: 'unix:///run/redis.sock' })
  const theirs: bigint | null | undefined = holder?.token
  const codes: LockErrorCode[] = ['ELOCKSTOREUNREACHABLE', 'ELOCKSTOREAUTH', 'ELOCKSTORE', 'ERR_LOCK_STORE_SYNC']
  void [token, current, theirs, codes]
  await using scoped = new PidLock('scoped', { store: 'valkey://cache:6379' })
  void scoped
  // @ts-expect-error the store is a URL string
  void new PidLock('k', { store: new URL('redis://127.0.0.1') })
  // @ts-expect-error on a store the first argument is a key (a string), not a file URL
  void new PidLock(new URL('file:///tmp/x.lock'), { store: 'redis://127.0.0.1' })
  // @ts-expect-error the same for inspect
  void PidLock.inspect(new URL('file:///tmp/x.lock'), { store: 'redis://127.0.0.1' })
  // Options built elsewhere, with or without a store, go with a string.
  const opts: PidLockOptions = Math.random() > 0.5 ? { store: 'redis://127.0.0.1' } : {}
  void new PidLock('k', opts)
  void withLock('k', () => 1, opts)
  void new PidLock(new URL('file:///tmp/x.lock'), {})
}

void onStore
