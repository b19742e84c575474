// ESM entry: the same function as the CommonJS entry.
import cjs from './vite.js'

export const singleInstance = cjs
export default cjs
