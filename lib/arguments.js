'use strict'
// Argument checking for the public API, with Node's error classes and codes
// (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ERR_INVALID_ARG_VALUE).

const nodePath = require('node:path')
const { fileURLToPath } = require('node:url')
const { DEFAULTS, METADATA_LIMIT, METADATA_DEPTH_LIMIT } = require('./constants.js')
const { binding } = require('./native.js')

/** What may happen to a file at the lock path whose content is not a lease (see index.d.ts). */
const INVALID_CONTENT = ['refuse', 'reclaim']
const MAX_MS = 2 ** 31 - 1

function describe(value) {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`
  if (typeof value === 'object') {
    return value.constructor && value.constructor.name
      ? `an instance of ${value.constructor.name}`
      : 'an object'
  }
  if (typeof value === 'string') return `type string (${JSON.stringify(value.slice(0, 28))})`
  return `type ${typeof value} (${String(value)})`
}

function typeError(name, expected, value) {
  const e = new TypeError(`The "${name}" ${name.includes('.') ? 'property' : 'argument'} must be ${expected}. Received ${describe(value)}`)
  e.code = 'ERR_INVALID_ARG_TYPE'
  return e
}

function rangeError(name, expected, value) {
  const e = new RangeError(`The value of "${name}" is out of range. It must be ${expected}. Received ${typeof value === 'number' ? String(value) : describe(value)}`)
  e.code = 'ERR_OUT_OF_RANGE'
  return e
}

function valueError(name, reason, value) {
  const e = new TypeError(`The ${name.includes('.') ? 'property' : 'argument'} '${name}' ${reason}. Received ${describe(value)}`)
  e.code = 'ERR_INVALID_ARG_VALUE'
  return e
}

function integerOption(options, key, min, max = MAX_MS) {
  const value = options[key]
  if (value === undefined) return DEFAULTS[key]
  const name = `options.${key}`
  if (typeof value !== 'number') throw typeError(name, 'of type number', value)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw rangeError(name, `an integer >= ${min} and <= ${max}`, value)
  }
  return value
}

// A lock file is data: read/write bits only, and nobody but its owner may write it (anyone who
// can write a lease can forge its holder). A lock's directory may be shared by its group, but
// never written by everyone without the sticky bit, and never setuid/setgid.
const MODE_RULES = {
  fileWriteMode: { allowed: 0o644, required: 0o400, text: 'read/write bits only, owner-readable, without group or other write (0o400 ... 0o644)' },
  directoryWriteMode: { allowed: 0o1775, required: 0o700, text: 'rwx for the owner, without setuid, setgid or other write (0o700 ... 0o1775)' },
}

function modeOption(options, key) {
  const value = options[key]
  if (value === undefined) return DEFAULTS[key]
  const name = `options.${key}`
  if (typeof value !== 'number') throw typeError(name, 'of type number', value)
  const { allowed, required, text } = MODE_RULES[key]
  if (!Number.isInteger(value) || value < 0 || value > allowed || (value & ~allowed) !== 0 || (value & required) !== required) {
    const shown = Number.isInteger(value) && value >= 0 ? `0o${value.toString(8)}` : String(value)
    const e = new RangeError(`The value of "${name}" is out of range. It must be ${text}. Received ${shown}`)
    e.code = 'ERR_OUT_OF_RANGE'
    throw e
  }
  return value
}

function booleanOption(options, key) {
  const value = options[key]
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw typeError(`options.${key}`, 'of type boolean', value)
  return value
}

function functionOption(options, key) {
  const value = options[key]
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw typeError(`options.${key}`, 'of type function', value)
  return value
}

function lockPath(path) {
  if (path instanceof URL) path = fileURLToPath(path)
  if (typeof path !== 'string') throw typeError('path', 'of type string or an instance of URL', path)
  if (path.length === 0) throw valueError('path', 'must be a non-empty string', path)
  if (path.includes('\0')) throw valueError('path', 'must not contain null bytes', path)
  return nodePath.resolve(path)
}

function metadataJson(value, name) {
  if (value === undefined || value === null) return null
  if (typeof value !== 'object') throw typeError(name, 'an object or null', value)
  let json
  try {
    json = JSON.stringify(value)
  } catch (err) {
    throw valueError(name, `must be JSON-serialisable (${err.message})`, value)
  }
  // A toJSON() may turn the object into something else (a Date into a string) or nothing.
  if (typeof json !== 'string' || (json[0] !== '{' && json[0] !== '[')) {
    throw valueError(name, 'must serialise to a JSON object or array', value)
  }
  const size = Buffer.byteLength(json)
  if (size > METADATA_LIMIT) {
    throw rangeError(name, `at most ${METADATA_LIMIT} bytes as JSON`, `${size} bytes`)
  }
  if (binding.metadataNestsTooDeep(json)) {
    throw rangeError(name, `nested at most ${METADATA_DEPTH_LIMIT} levels deep (deeper, readers drop it)`, `more than ${METADATA_DEPTH_LIMIT} levels`)
  }
  return json
}

function timeoutOption(options, name) {
  const value = options.timeout
  if (value === undefined) return null
  if (typeof value !== 'number') throw typeError(`${name}.timeout`, 'of type number', value)
  if (Number.isNaN(value) || value < 0) {
    throw rangeError(`${name}.timeout`, '>= 0 (milliseconds) or Infinity', value)
  }
  return value === 0 ? null : value
}

function invalidContentOption(options) {
  const value = options.invalidContent
  if (value === undefined) return DEFAULTS.invalidContent
  if (typeof value !== 'string') throw typeError('options.invalidContent', 'of type string', value)
  if (!INVALID_CONTENT.includes(value)) {
    throw valueError('options.invalidContent', `must be one of ${INVALID_CONTENT.map((v) => `'${v}'`).join(', ')}`, value)
  }
  return value
}

function objectArg(value, name) {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object') throw typeError(name, 'of type object', value)
  return value
}

function isAbortSignal(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.aborted === 'boolean' &&
    typeof value.addEventListener === 'function'
  )
}

module.exports = {
  typeError,
  rangeError,
  valueError,
  integerOption,
  modeOption,
  booleanOption,
  functionOption,
  lockPath,
  metadataJson,
  timeoutOption,
  invalidContentOption,
  objectArg,
  isAbortSignal,
}
