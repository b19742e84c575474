// ESM entry: the same objects as the CommonJS entry.
import cjs from './index.js'

export const { PidLock, DEFAULTS, HELD_TEXT, withLock, withLockSync } = cjs
export default cjs
