// Type-level usage of a lock on a store (see usage.ts for how this file is checked).
import { PidLock, type AcquireResult, type LockErrorCode } from 'leaselock'

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
}

void onStore
