#!/usr/bin/env node
// Pack smoke test: what a user gets from `npm install leaselock`, checked before it is published.
//
// 1. `npm pack` the package and compare the tarball with EXPECTED_FILES, exactly: a missing file
//    fails, and so does anything extra (a binary, target/, src/, tests, benches...).
// 2. Build the host's per-platform package the way the release does (`napi create-npm-dirs`
//    generates its package.json; the binary from `npm run build` goes in) and pack it too. The
//    main package never carries a binary: published, it finds one through its per-platform
//    optionalDependencies (added by `napi pre-publish` at publish time), so that is also the only
//    way it may find one here.
// 3. Install both tarballs into a fresh project in a temp dir, offline (no runtime dependencies),
//    and there `require` and `import` the package, run one acquire/release cycle each way, check
//    the binary was loaded from the per-platform package, resolve the subpath exports and the bin,
//    and type-check a TypeScript consumer against the published types.
//
// Run `npm run build` first. Usage: node scripts/pack-smoke.mjs [--keep]
// LEASELOCK_SMOKE_NODE=<path to node> runs the consumer with another Node than the one packing:
// the dev tools (napi CLI, vite) need Node 20, the package itself does not.
// Exits non-zero on the first failed check. Also used by __test__/package.test.mjs.

import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/**
 * The exact contents of the main package's tarball (paths inside `package/`). This is the one
 * place to update when a published file is added or removed.
 *
 * A path in PENDING_FILES may be absent from the tarball while the file does not exist in the
 * source tree yet (it is reported, not failed); once the file exists it must be in the tarball.
 * Empty this set when every listed file has been written.
 */
export const EXPECTED_FILES = [
  'LICENSE',
  'README.md',
  'bin/leaselock.js',
  'index.d.ts',
  'index.js',
  'lib/abort-listen.js',
  'lib/arguments.js',
  'lib/cli-args.js',
  'lib/cli-run.js',
  'lib/cli-status.js',
  'lib/cli.js',
  'lib/command-line.js',
  'lib/constants.js',
  'lib/guard.js',
  'lib/hold.js',
  'lib/holder.js',
  'lib/index.d.mts',
  'lib/index.d.ts',
  'lib/index.js',
  'lib/index.mjs',
  'lib/native.js',
  'lib/proof.js',
  'lib/records.js',
  'lib/registry.js',
  'lib/replace.js',
  'lib/sanitize.js',
  'lib/spawn.js',
  'lib/stop-requests.js',
  'lib/store-direct.js',
  'lib/store.js',
  'lib/vite-coexist.js',
  'lib/vite.d.mts',
  'lib/vite.d.ts',
  'lib/vite.js',
  'lib/vite.mjs',
  'lib/waiting.js',
  'lib/webpack.d.mts',
  'lib/webpack.d.ts',
  'lib/webpack.js',
  'lib/webpack.mjs',
  'lib/with-lock.js',
  'package.json',
]
export const PENDING_FILES = new Set([])

/** `platform-arch[-abi]` as napi-rs names binaries and per-platform packages. */
export function hostPlatformArchABI() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const report = process.report?.getReport?.()
    const glibc = report?.header?.glibcVersionRuntime
    return `${platform}-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `${platform}-${arch}-msvc`
  return `${platform}-${arch}`
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    shell: process.platform === 'win32' && /^(npm|npx)$/.test(cmd),
    maxBuffer: 64 * 1024 * 1024,
    ...opts,
  })
  if (r.error) throw r.error
  if (r.status !== 0) {
    const shown = [cmd, ...args].join(' ')
    throw new Error(`\`${shown}\` exited with ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`)
  }
  return r.stdout
}

/** `npm pack` in `dir` into `dest`; returns the tarball path and its file list. */
function pack(dir, dest) {
  const out = run('npm', ['pack', '--json', '--pack-destination', dest], {
    cwd: dir,
    env: { ...process.env, npm_config_loglevel: 'error' },
  })
  // npm prints lifecycle output before the JSON when a package has pack scripts.
  const [info] = JSON.parse(out.slice(out.indexOf('[')))
  return { tarball: path.join(dest, info.filename), files: info.files.map((f) => f.path).sort() }
}

function check(condition, message) {
  if (!condition) throw new Error(message)
}

export function checkMainContents(files, log = console.log) {
  const got = new Set(files)
  const expected = new Set(EXPECTED_FILES)
  const extra = files.filter((f) => !expected.has(f))
  const missing = []
  for (const f of EXPECTED_FILES) {
    if (got.has(f)) continue
    if (PENDING_FILES.has(f) && !fs.existsSync(path.join(REPO, f))) {
      log(`pending: ${f} is expected in the package but does not exist yet`)
      continue
    }
    missing.push(f)
  }
  check(
    extra.length === 0 && missing.length === 0,
    'the tarball does not have the expected contents' +
      (missing.length ? `\n  missing: ${missing.join(', ')}` : '') +
      (extra.length ? `\n  not expected: ${extra.join(', ')}` : '') +
      '\n(fix "files" in package.json, or EXPECTED_FILES in scripts/pack-smoke.mjs)',
  )
}

// Runs inside the consumer project, as CommonJS: require, one cycle, and where the binary came from.
const CJS_CONSUMER = `'use strict'
const assert = require('node:assert')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const leaselock = require('leaselock')
assert.strictEqual(typeof leaselock.PidLock, 'function')
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-smoke-'))
;(async () => {
  const lock = new leaselock.PidLock(path.join(dir, 'cjs.lock'))
  const { reclaimed, token } = await lock.acquire()
  assert.strictEqual(reclaimed, null)
  assert.strictEqual(typeof token, 'bigint')
  assert.strictEqual(lock.held, true)
  const holder = await leaselock.PidLock.inspect(lock.path)
  assert.strictEqual(holder.pid, process.pid)
  await lock.release()
  assert.strictEqual(lock.held, false)
  assert.strictEqual(fs.existsSync(lock.path), false)
  const binaries = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
  console.log(JSON.stringify({ binaries, pkg: require.resolve('leaselock') }))
})().finally(() => fs.rmSync(dir, { recursive: true, force: true }))
`

// The same through the ESM entry, with a sync cycle too.
const ESM_CONSUMER = `import assert from 'node:assert'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import os from 'node:os'
import path from 'node:path'
import leaselockDefault, { PidLock, DEFAULTS, HELD_TEXT } from 'leaselock'
assert.strictEqual(PidLock, leaselockDefault.PidLock)
assert.strictEqual(typeof DEFAULTS.leaseStaleThreshold, 'number')
assert.strictEqual(typeof HELD_TEXT, 'string')
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-smoke-'))
try {
  const lock = new PidLock(path.join(dir, 'esm.lock'))
  await lock.acquire()
  assert.strictEqual(lock.held, true)
  const other = new PidLock(lock.path)
  await assert.rejects(other.acquire(), { code: 'ELOCKHELD' })
  await lock.release()
  other.acquireSync()
  assert.strictEqual(other.held, true)
  other.releaseSync()
  assert.strictEqual(fs.existsSync(lock.path), false)
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
const resolved = {}
for (const sub of process.argv.slice(2)) {
  // import.meta.resolve is there from Node 18.19 and 20.6.
  resolved[sub] = import.meta.resolve ? fileURLToPath(import.meta.resolve(sub)) : null
}
console.log(JSON.stringify({ resolved }))
`

const TS_CONSUMER = `import { PidLock, type LockHolder, type PidLockOptions } from 'leaselock'
const options: PidLockOptions = { leaseStaleThreshold: 3000, metadata: { job: 'smoke' } }
export async function cycle(file: string): Promise<LockHolder | null> {
  const lock = new PidLock(file, options)
  const { reclaimed } = await lock.acquire({ timeout: 0 })
  await lock.release()
  return reclaimed
}
`

export async function packSmoke({ keep = false, log = console.log } = {}) {
  const abi = hostPlatformArchABI()
  const pkgJson = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'))
  const { name, version } = pkgJson
  const binaryName = pkgJson.napi?.binaryName ?? name
  const binaryFile = `${binaryName}.${abi}.node`
  const builtBinary = path.join(REPO, binaryFile)
  check(fs.existsSync(builtBinary), `${binaryFile} not found at the repo root: run \`npm run build\` first`)

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-pack-'))
  try {
    const tarballs = path.join(work, 'tarballs')
    fs.mkdirSync(tarballs)

    // 1. The main package.
    const main = pack(REPO, tarballs)
    log(`packed ${path.basename(main.tarball)}: ${main.files.length} files`)
    checkMainContents(main.files, log)

    // 2. The host's per-platform package, generated from package.json as at publish time.
    // create-npm-dirs only writes inside the project it reads, so it runs on a copy of the manifest.
    const stage = path.join(work, 'stage')
    fs.mkdirSync(stage)
    fs.copyFileSync(path.join(REPO, 'package.json'), path.join(stage, 'package.json'))
    const repoRequire = createRequire(path.join(REPO, 'package.json'))
    const cliPkg = repoRequire.resolve('@napi-rs/cli/package.json')
    const cli = path.join(path.dirname(cliPkg), JSON.parse(fs.readFileSync(cliPkg, 'utf8')).bin.napi)
    run(process.execPath, [cli, 'create-npm-dirs', '--cwd', stage, '--npm-dir', 'npm'])
    const platformDir = path.join(stage, 'npm', abi)
    check(fs.existsSync(path.join(platformDir, 'package.json')), `no per-platform package for ${abi}: is it in napi.targets?`)
    fs.copyFileSync(builtBinary, path.join(platformDir, binaryFile))
    const platform = pack(platformDir, tarballs)
    check(
      JSON.stringify(platform.files) === JSON.stringify([binaryFile, 'README.md', 'package.json'].sort()),
      `per-platform package contents: ${platform.files.join(', ')}`,
    )
    const platformPkgName = `${name}-${abi}`
    log(`packed ${path.basename(platform.tarball)}`)

    // 3. A fresh consumer project: nothing from the repo's node_modules is reachable from it.
    const app = path.join(work, 'app')
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'smoke-app', private: true }))
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock', main.tarball, platform.tarball], {
      cwd: app,
      env: { ...process.env, npm_config_loglevel: 'error' },
    })
    const installed = path.join(app, 'node_modules', name)
    const installedFiles = []
    const walk = (d, rel) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(d, e.name), rel + e.name + '/')
        else installedFiles.push(rel + e.name)
      }
    }
    walk(installed, '')
    checkMainContents(installedFiles.sort(), () => {})
    log(`installed ${name}@${version} and ${platformPkgName} into a fresh project`)

    const env = { ...process.env }
    delete env.NAPI_RS_NATIVE_LIBRARY_PATH
    delete env.NODE_PATH
    const consumerNode = process.env.LEASELOCK_SMOKE_NODE || process.execPath
    log(`consumer runs on Node ${run(consumerNode, ['--version']).trim()}`)

    fs.writeFileSync(path.join(app, 'consumer.cjs'), CJS_CONSUMER)
    const cjs = JSON.parse(run(consumerNode, ['consumer.cjs'], { cwd: app, env }).trim().split('\n').pop())
    const expectedBinary = path.join(app, 'node_modules', platformPkgName, binaryFile)
    check(
      cjs.binaries.length === 1 && fs.realpathSync(cjs.binaries[0]) === fs.realpathSync(expectedBinary),
      `the binary should load from ${platformPkgName}; loaded: ${cjs.binaries.join(', ') || 'none'}`,
    )
    check(cjs.pkg.startsWith(installed + path.sep), `require('${name}') resolved outside the install: ${cjs.pkg}`)
    log('require: acquire/release cycle ok, binary from the per-platform package')

    // Subpath exports: each must resolve (for import) to a file inside the installed package,
    // unless its target is still pending.
    const subpaths = Object.keys(pkgJson.exports ?? {})
      .filter((k) => k !== '.' && !k.includes('*'))
      .map((k) => name + k.slice(1))
    fs.writeFileSync(path.join(app, 'consumer.mjs'), ESM_CONSUMER)
    const esm = JSON.parse(run(consumerNode, ['consumer.mjs', ...subpaths], { cwd: app, env }).trim().split('\n').pop())
    log('import: acquire/release cycle ok')
    const appRequire = createRequire(path.join(app, 'consumer.cjs'))
    for (const sub of subpaths) {
      const target = exportTarget(pkgJson.exports['.' + sub.slice(name.length)])
      if (target && PENDING_FILES.has(target) && !fs.existsSync(path.join(REPO, target))) {
        log(`pending: ${sub} -> ${target} not written yet, not resolved`)
        continue
      }
      const viaRequire = appRequire.resolve(sub)
      check(fs.existsSync(viaRequire) && viaRequire.startsWith(installed + path.sep), `require.resolve('${sub}') -> ${viaRequire}`)
      const viaImport = esm.resolved[sub]
      if (viaImport !== null) {
        check(fs.existsSync(viaImport) && viaImport.startsWith(installed + path.sep), `import.meta.resolve('${sub}') -> ${viaImport}`)
      }
      log(`resolved ${sub}`)
    }

    // The command: npm links it into node_modules/.bin.
    for (const [cmd, file] of Object.entries(pkgJson.bin ?? {})) {
      if (PENDING_FILES.has(file) && !fs.existsSync(path.join(REPO, file))) {
        log(`pending: bin ${cmd} -> ${file} not written yet`)
        continue
      }
      const link = path.join(app, 'node_modules', '.bin', process.platform === 'win32' ? `${cmd}.cmd` : cmd)
      check(fs.existsSync(link), `npm did not install the ${cmd} command`)
      log(`bin ${cmd} installed`)
    }

    // The published types, as a strict TypeScript consumer with Node 16+ resolution sees them.
    const tsc = path.join(path.dirname(repoRequire.resolve('typescript/package.json')), 'bin', 'tsc')
    fs.writeFileSync(path.join(app, 'consumer.mts'), TS_CONSUMER)
    run(process.execPath, [
      tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--skipLibCheck', 'false', '--types', 'node',
      '--typeRoots', path.join(REPO, 'node_modules', '@types'), 'consumer.mts',
    ], { cwd: app })
    log('types: a strict TypeScript consumer compiles against the package')
  } finally {
    if (keep) log(`kept ${work}`)
    else fs.rmSync(work, { recursive: true, force: true })
  }
}

/** The file an export entry points at for `import` (`./lib/x.mjs` -> `lib/x.mjs`). */
function exportTarget(entry) {
  if (typeof entry === 'string') return entry.replace(/^\.\//, '')
  if (entry && typeof entry === 'object') return exportTarget(entry.import ?? entry.default ?? entry.require)
  return null
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  packSmoke({ keep: process.argv.includes('--keep') }).then(
    () => console.log('pack smoke test passed'),
    (err) => {
      console.error(`pack smoke test FAILED: ${err.message}`)
      process.exitCode = 1
    },
  )
}
