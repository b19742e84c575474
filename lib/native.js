'use strict'
// The native binding, loaded through the loader that `napi build` generates (`../index.js`,
// never edited by hand), with what the generated code cannot say:
// - when no binary is installed for this platform, an error that says so and how to get one,
//   instead of the loader's "npm has a bug related to optional dependencies" (which misleads
//   when the package came from a tarball or a git dependency, which carry no binary);
// - a handle on a process for signalling it safely (a pidfd on Linux).

const os = require('node:os')

const PACKAGE = 'leaselock'

/** `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`...: napi-rs's name for this platform. */
function platformName() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null
    return `${platform}-${arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
  }
  return platform === 'win32' ? `${platform}-${arch}-msvc` : `${platform}-${arch}`
}

function missingBinaryError(cause) {
  const name = platformName()
  const err = new Error(
    `${PACKAGE}: no prebuilt native binary is installed for this platform (${name}).\n` +
      `The binaries come with the published package from the npm registry, as the optional dependency ${PACKAGE}-${name};\n` +
      `an install from a tarball, a git dependency or a local path has none. Either:\n` +
      `  - install the published package: npm install ${PACKAGE}  (with optional dependencies enabled), or\n` +
      `  - build it from source in the package directory (needs Rust): npm run build\n` +
      `(${os.type()} ${os.release()}, Node ${process.version}; the loader's own errors are in err.cause)`,
    { cause },
  )
  err.code = 'ERR_LEASELOCK_NO_BINARY'
  return err
}

function load() {
  try {
    return require('../index.js')
  } catch (err) {
    if (err && /Cannot find native binding|Failed to load native binding/.test(err.message)) throw missingBinaryError(err)
    throw err
  }
}

const binding = load()

/**
 * A handle on process `pid` for signalling it: on Linux a pidfd (the process it names cannot
 * be replaced by another one that reuses the pid); where there is none, the bare pid.
 * `signal(name)` returns false when the process has already ended.
 */
function processHandle(pid) {
  const handle = binding.openProcessHandle(pid)
  return {
    pidfd: Boolean(handle),
    signal(name) {
      if (handle) return handle.signal(os.constants.signals[name])
      try {
        process.kill(pid, name)
        return true
      } catch (err) {
        if (err && err.code === 'ESRCH') return false
        throw err
      }
    },
    close() {
      if (handle) handle.close()
    },
  }
}

module.exports = { binding, processHandle, missingBinaryError, platformName }
