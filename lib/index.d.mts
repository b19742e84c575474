// Types of the ESM entry (lib/index.mjs): the same API as the CommonJS entry.
import * as leaselock from './index.js'

export * from './index.js'
export default leaselock
