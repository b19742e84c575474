// Types of the ESM entry (lib/vite.mjs): the same plugin as the CommonJS entry.
import singleInstance from './vite.js'

export type SingleInstanceOptions = singleInstance.SingleInstanceOptions
export type LeaseLostContext = singleInstance.LeaseLostContext
export type SingleInstanceError = singleInstance.SingleInstanceError
export type ServerMetadata = singleInstance.ServerMetadata
export { singleInstance }
export default singleInstance
