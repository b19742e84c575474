'use strict'
// Defaults, limits and the held-lock text are the engine's own (stated once, in Rust); this
// module reads them once for the JavaScript modules that need them.

const { constants } = require('./native.js').binding

const native = constants()

module.exports = {
  DEFAULTS: Object.freeze(native.defaults),
  HELD_TEXT: native.heldText,
  METADATA_LIMIT: native.metadataLimit,
  METADATA_DEPTH_LIMIT: native.metadataDepthLimit,
}
