'use strict'
// Starting a command the way a shell would find it, on every platform. On Windows,
// `child_process.spawn('vite')` finds neither `vite.cmd` (npm's shims in node_modules/.bin) nor
// any `.bat`/`.cmd` file, and such files can only be run through cmd.exe, whose quoting rules
// differ from every other program's. This resolves the command on PATH with PATHEXT, and runs a
// batch file through `cmd.exe /d /s /c` with each argument quoted for cmd (what cross-spawn
// does). Elsewhere the command is spawned as given.

const fs = require('node:fs')
const nodePath = require('node:path')

// cmd.exe treats these specially even inside an argument; each gets a caret in front.
const CMD_META = /([()\][%!^"`<>&|;, *?])/g

/** `arg` quoted for a program's own command-line parser (the MSVC rules), then for cmd.exe. */
function quoteForCmd(arg, twice) {
  // Backslashes before a quote are doubled and the quote escaped; trailing backslashes doubled
  // so that they do not escape the closing quote.
  let s = String(arg)
    .replace(/(\\*)"/g, '$1$1\\"')
    .replace(/(\\*)$/, '$1$1')
  s = `"${s}"`.replace(CMD_META, '^$1')
  // npm's .cmd shims pass their arguments through cmd.exe a second time.
  return twice ? s.replace(CMD_META, '^$1') : s
}

/** The file PATH/PATHEXT resolve `command` to on Windows, or null. */
function findOnPath(command, env, cwd) {
  // Windows matches names case-insensitively; the lower-case spelling makes the same lookup work
  // on a case-sensitive file system too (where the tests run).
  const exts = [...new Set((env.PATHEXT || '.COM;.EXE;.BAT;.CMD').split(';').filter(Boolean).flatMap((e) => [e, e.toLowerCase()]))]
  const hasDir = /[\\/]/.test(command)
  const dirs = hasDir ? [''] : [cwd, ...(env.PATH || env.Path || '').split(';').filter(Boolean)]
  const hasExt = exts.some((e) => command.toLowerCase().endsWith(e.toLowerCase()))
  for (const dir of dirs) {
    const base = nodePath.resolve(cwd, dir, command)
    for (const candidate of hasExt ? [base] : exts.map((e) => base + e)) {
      try {
        if (fs.statSync(candidate).isFile()) return candidate
      } catch {
        // not here
      }
    }
  }
  return null
}

/**
 * What to pass to `child_process.spawn` to run `argv` like a shell would:
 * `{ file, args, options }` (options to merge: `windowsVerbatimArguments` for cmd.exe).
 */
function spawnArgs(argv, { platform = process.platform, env = process.env, cwd = process.cwd() } = {}) {
  const [command, ...args] = argv
  if (platform !== 'win32') return { file: command, args, options: {} }
  const resolved = findOnPath(command, env, cwd)
  if (!resolved || !/\.(cmd|bat)$/i.test(resolved)) return { file: resolved || command, args, options: {} }
  const twice = /node_modules[\\/]\.bin[\\/][^\\/]+\.cmd$/i.test(resolved)
  // The command itself is not quoted (cmd.exe would take the quotes as part of its name), only
  // its special characters are escaped.
  const line = [resolved.replace(CMD_META, '^$1'), ...args.map((a) => quoteForCmd(a, twice))].join(' ')
  return {
    file: env.comspec || env.COMSPEC || 'cmd.exe',
    args: ['/d', '/s', '/c', `"${line}"`],
    options: { windowsVerbatimArguments: true },
  }
}

module.exports = { spawnArgs, quoteForCmd }
