// ESM entry: the same class as the CommonJS entry.
import cjs from './webpack.js'

export const SingleInstancePlugin = cjs
export default cjs
