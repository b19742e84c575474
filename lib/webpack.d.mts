// Types of the ESM entry (lib/webpack.mjs): the same plugin as the CommonJS entry.
import SingleInstancePlugin from './webpack.js'

export type SingleInstancePluginOptions = SingleInstancePlugin.SingleInstancePluginOptions
export type LeaseLostContext = SingleInstancePlugin.LeaseLostContext
export type SingleInstanceError = SingleInstancePlugin.SingleInstanceError
export type ServerMetadata = SingleInstancePlugin.ServerMetadata
export { SingleInstancePlugin }
export default SingleInstancePlugin
