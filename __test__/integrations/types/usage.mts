// Compiled with `tsc --noEmit --strict` by __test__/vite.test.mjs: the plugin types as an ES
// module sees them. Lines marked @ts-expect-error must stay errors.
import { defineConfig, type Plugin } from 'vite'
import singleInstanceDefault, { singleInstance } from 'leaselock/vite'
import type { SingleInstanceOptions, SingleInstanceError } from 'leaselock/vite'
import SingleInstancePluginDefault, { SingleInstancePlugin } from 'leaselock/webpack'
import type { SingleInstancePluginOptions } from 'leaselock/webpack'
import type { Configuration } from 'webpack'

const p: Plugin = singleInstance()
const q: Plugin = singleInstanceDefault({ preview: true, buildWatch: true, lockfile: '.cache/dev.lock', wait: 1000 })
export default defineConfig({ plugins: [p, q, singleInstance({ allowMultiple: true, onLeaseLost: 'exit' })] })

const opts: SingleInstanceOptions = {
  onLeaseLost: (info, { server, message }) => {
    const reason: 'owner-changed' | 'removed' | 'heartbeat-failed' | 'heartbeat-stalled' | 'store-unreachable' = info.reason
    void reason
    void server?.httpServer
    void message.length
  },
  lockOptions: { leaseStaleThreshold: 5000 },
  metadata: { team: 'web' },
}
void opts

function handle(err: unknown) {
  const e = err as SingleInstanceError
  if (e.code === 'ELOCKHELD' && e.holder) {
    const pid: number = e.holder.pid
    void pid
  }
}
void handle

// @ts-expect-error unknown policy
singleInstance({ onLeaseLost: 'ignore' })
// @ts-expect-error lockfile is a string
singleInstance({ lockfile: 1 })
// @ts-expect-error metadata of the lease is the plugin's, not an option of the lock here
singleInstance({ lockOptions: { metadata: {} } })

const config: Configuration = {
  plugins: [new SingleInstancePlugin(), new SingleInstancePluginDefault({ serve: true, watch: false, onLeaseLost: 'exit' })],
}
void config
const wopts: SingleInstancePluginOptions = { onLeaseLost: (info, { compiler, message }) => void [info.path, compiler.context, message] }
void wopts
// @ts-expect-error 'close' is a Vite policy only
new SingleInstancePlugin({ onLeaseLost: 'close' })
