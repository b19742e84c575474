// leaselock/webpack with the real webpack CLI, webpack-dev-server and the webpack API, in
// throwaway projects.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { PidLock } from '../lib/index.mjs'
import { LISTEN_MARK, Proc, bin, freePort, isListening, repoRoot, tempProject } from './integrations/helpers.mjs'

const withDevServer = (options = '') => `const { SingleInstancePlugin } = require('leaselock/webpack')
module.exports = {
  mode: 'development',
  entry: './src/index.js',
  infrastructureLogging: { level: 'info' },
  plugins: [new SingleInstancePlugin(${options})],
  devServer: { host: '127.0.0.1', port: Number(process.env.PORT), hot: false, liveReload: false, client: false, static: false },
}
`
// No devServer section: host and port come from the command line.
const withoutDevServer = `const SingleInstancePlugin = require('leaselock/webpack')
module.exports = { mode: 'development', entry: './src/index.js', plugins: [new SingleInstancePlugin()] }
`

// Runs inside the project: the webpack API, as a program would use it.
const programmatic = `const webpack = require('webpack')
const { SingleInstancePlugin } = require('leaselock/webpack')
const say = (tag, v) => console.log(tag + ' ' + JSON.stringify(v ?? null))
const refusal = (err) => ({ code: err.code ?? null, pid: err.holder?.pid ?? null, message: err.message })
const config = { mode: 'development', entry: './src/index.js', plugins: [new SingleInstancePlugin()] }
if (process.argv[2] === 'serve') {
  // Loading webpack-dev-server marks the process as serving, as \`webpack serve\` does.
  require('webpack-dev-server')
  try {
    webpack(config)
    say('CREATED')
  } catch (err) {
    say('THROWN', refusal(err))
  }
} else {
  // compiler.watch() without watch: true: the lock is taken in watchRun.
  const compiler = webpack(config)
  const watching = compiler.watch({}, (err) => {
    say(err ? 'WATCH-ERROR' : 'WATCH-OK', err ? refusal(err) : null)
    watching.close(() => say('CLOSED'))
  })
}
`

function webpackProject(t, extra = {}) {
  return tempProject(t, 'webpack', {
    'src/index.js': 'console.log("throwaway")\n',
    'webpack.config.js': withDevServer(),
    'programmatic.cjs': programmatic,
    ...extra,
  })
}

const lockOf = (dir, kind = 'dev-server') => path.join(dir, 'node_modules', '.cache', 'leaselock', `webpack-${kind}.lock`)

function serve(t, dir, port, { env = {}, args = [], traceListen = false } = {}) {
  return new Proc(t, process.execPath, [bin.webpack, 'serve', ...args], { cwd: dir, env: { PORT: String(port), ...env }, traceListen })
}

async function holderWithUrl(lock) {
  for (let i = 0; i < 200; i++) {
    const h = await PidLock.inspect(lock)
    if (h?.metadata?.url) return h
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.fail(`no URL in the lease at ${lock}`)
}

/**
 * webpack-dev-server majors tested side by side: 6.x (Node >= 22.15) is installed under its own
 * name, and webpack-cli's `serve` loads it when WEBPACK_DEV_SERVER_PACKAGE names it.
 */
const DEV_SERVERS = ['webpack-dev-server', 'webpack-dev-server6'].map((name) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'node_modules', name, 'package.json'), 'utf8'))
  const env = name === 'webpack-dev-server' ? {} : { WEBPACK_DEV_SERVER_PACKAGE: name }
  const needs = /^>=\s*([\d.]+)/.exec(pkg.engines?.node ?? '')?.[1]
  const skip = needs && older(process.versions.node, needs) ? `webpack-dev-server ${pkg.version} needs Node >= ${needs}` : false
  return { version: pkg.version, env, skip }
})

function older(version, than) {
  const [a, b] = [version, than].map((v) => v.split('.').map(Number))
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0)
  return false
}

for (const wds of DEV_SERVERS) {
  test(`webpack-dev-server ${wds.version}: a second \`webpack serve\` refuses with the running URL and PID, exits 1 and never binds a port`, { skip: wds.skip }, (t) =>
    refusesSecondServe(t, wds.env))
}

async function refusesSecondServe(t, env) {
  const dir = webpackProject(t)
  const [p1, p2] = [await freePort(), await freePort()]
  const first = serve(t, dir, p1, { env })
  await first.waitFor(/compiled successfully/)
  await first.waitFor(/compiled successfully/)
  const holder = await holderWithUrl(lockOf(dir))
  assert.equal(holder.pid, first.pid)
  assert.equal(holder.metadata.url, `http://127.0.0.1:${p1}/`)
  assert.equal(holder.metadata.port, p1)
  assert.equal(holder.metadata.root, dir)

  const second = serve(t, dir, p2, { env, traceListen: true })
  const { code } = await second.exit()
  assert.equal(code, 1, second.out)
  assert.match(second.out, /Another webpack dev server is already running for this project/)
  assert.ok(second.out.includes(`http://127.0.0.1:${p1}/`), second.out)
  assert.ok(second.out.includes(`pid ${first.pid}`), second.out)
  assert.ok(second.out.includes(`kill ${first.pid}`), second.out)
  assert.ok(second.out.includes(`project: ${dir}`), second.out)
  assert.match(second.out, /started:\s+\d+s ago/)
  assert.doesNotMatch(second.out, /Project is running at|compiled/)
  assert.ok(!second.out.includes(LISTEN_MARK), `the refused server tried to listen:\n${second.out}`)
  assert.equal(await isListening(p2), false)
  assert.equal(first.status, null)
  assert.equal(await isListening(p1), true)
}

test('after SIGKILL a new `webpack serve` starts at once (URL read from the dev server log)', async (t) => {
  const dir = webpackProject(t, { 'webpack.config.js': withoutDevServer })
  const args = (port) => ['--host', '127.0.0.1', '--port', String(port), '--no-hot', '--no-live-reload']
  const first = serve(t, dir, 0, { args: args(await freePort()) })
  await first.waitFor(/compiled successfully/)
  first.kill('SIGKILL')
  await first.exit()
  assert.equal((await PidLock.inspect(lockOf(dir)))?.alive, false)

  const port = await freePort()
  const next = serve(t, dir, 0, { args: args(port) })
  await next.waitFor(/compiled successfully/)
  assert.doesNotMatch(next.out, /already running/)
  const holder = await holderWithUrl(lockOf(dir))
  assert.equal(holder.pid, next.pid)
  assert.equal(holder.metadata.url, `http://127.0.0.1:${port}/`)
  assert.equal(holder.metadata.port, port)
})

test('a second dev server on purpose: LEASELOCK_ALLOW_MULTIPLE=1 or allowMultiple: true', async (t) => {
  const dir = webpackProject(t, { 'webpack.multi.config.js': withDevServer('{ allowMultiple: true }') })
  const first = serve(t, dir, await freePort())
  await first.waitFor(/compiled successfully/)
  const p2 = await freePort()
  const byEnv = serve(t, dir, p2, { env: { LEASELOCK_ALLOW_MULTIPLE: '1' } })
  await byEnv.waitFor(/compiled successfully/)
  assert.match(byEnv.out, new RegExp(`pid ${first.pid} already runs a webpack dev server for this project; starting another one anyway \\(LEASELOCK_ALLOW_MULTIPLE is set\\)`))
  assert.equal(await isListening(p2), true)
  const byOption = serve(t, dir, await freePort(), { args: ['--config', 'webpack.multi.config.js'] })
  await byOption.waitFor(/compiled successfully/)
  assert.match(byOption.out, /starting another one anyway \(allowMultiple: true\)/)
  assert.equal((await PidLock.inspect(lockOf(dir))).pid, first.pid)
})

test('`serve: false` turns the dev-server guard off: a second `webpack serve` starts and no lock is taken', async (t) => {
  const dir = webpackProject(t, { 'webpack.config.js': withDevServer('{ serve: false }') })
  const first = serve(t, dir, await freePort())
  await first.waitFor(/compiled successfully/)
  const p2 = await freePort()
  const second = serve(t, dir, p2)
  await second.waitFor(/compiled successfully/)
  assert.equal(await isListening(p2), true)
  const cache = path.join(dir, 'node_modules', '.cache', 'leaselock')
  assert.deepEqual(fs.existsSync(cache) ? fs.readdirSync(cache) : [], [], 'neither the dev-server nor the watch lock')
})

test('`webpack --watch`: a second one is refused, compiler.watch() gets the error, Ctrl+C releases', async (t) => {
  const dir = webpackProject(t)
  const first = new Proc(t, process.execPath, [bin.webpack, '--watch'], { cwd: dir })
  await first.waitFor(/compiled successfully/)
  assert.equal((await PidLock.inspect(lockOf(dir, 'watch'))).pid, first.pid)

  const second = new Proc(t, process.execPath, [bin.webpack, '--watch'], { cwd: dir })
  assert.equal((await second.exit()).code, 1, second.out)
  assert.match(second.out, /Another webpack --watch is already running for this project \(pid \d+\)/)
  assert.doesNotMatch(second.out, /compiled/)

  const api = new Proc(t, process.execPath, ['programmatic.cjs', 'watch'], { cwd: dir })
  const [, json] = await api.waitFor(/WATCH-ERROR (.*)\n/)
  assert.equal(JSON.parse(json).code, 'ELOCKHELD')
  assert.equal(JSON.parse(json).pid, first.pid)
  await api.waitFor(/CLOSED/)
  assert.deepEqual(await api.exit(), { code: 0, signal: null })

  first.kill('SIGINT')
  await first.exit()
  assert.equal(fs.existsSync(lockOf(dir, 'watch')), false, first.out)
  // Free again: the API's watcher now gets it.
  const again = new Proc(t, process.execPath, ['programmatic.cjs', 'watch'], { cwd: dir })
  await again.waitFor(/WATCH-OK/)
  await again.waitFor(/CLOSED/)
  assert.deepEqual(await again.exit(), { code: 0, signal: null })
  assert.equal(fs.existsSync(lockOf(dir, 'watch')), false, 'watching.close() released the lock')
})

test('webpack(config) with webpack-dev-server loaded throws ELOCKHELD instead of exiting', async (t) => {
  const dir = webpackProject(t)
  const first = serve(t, dir, await freePort())
  await first.waitFor(/compiled successfully/)
  const api = new Proc(t, process.execPath, ['programmatic.cjs', 'serve'], { cwd: dir })
  const [, json] = await api.waitFor(/THROWN (.*)\n/)
  const err = JSON.parse(json)
  assert.equal(err.code, 'ELOCKHELD')
  assert.equal(err.pid, first.pid)
  assert.match(err.message, /Another webpack dev server is already running/)
  assert.deepEqual(await api.exit(), { code: 0, signal: null })

  // Stopping the dev server (SIGTERM: webpack-dev-server closes and exits) releases the lock.
  first.kill('SIGTERM')
  await first.exit()
  assert.equal(fs.existsSync(lockOf(dir)), false, first.out)
})

for (const wds of DEV_SERVERS) {
  test(`webpack-dev-server ${wds.version}: onConflict: 'replace' stops the running \`webpack serve\`; 'reuse' prints its URL and exits 0`, { skip: wds.skip }, (t) =>
    replacesAndReuses(t, wds.env))
}

async function replacesAndReuses(t, env) {
  const dir = webpackProject(t, {
    'webpack.replace.config.js': withDevServer("{ onConflict: 'replace' }"),
    'webpack.reuse.config.js': withDevServer("{ onConflict: 'reuse' }"),
  })
  const first = serve(t, dir, await freePort(), { env })
  await first.waitFor(/compiled successfully/)
  const { metadata } = await holderWithUrl(lockOf(dir))

  const reused = serve(t, dir, await freePort(), { env, args: ['--config', 'webpack.reuse.config.js'] })
  assert.deepEqual(await reused.exit(), { code: 0, signal: null }, reused.out)
  assert.ok(reused.out.includes(`${metadata.url}\n`), reused.out)
  assert.doesNotMatch(reused.out, /compiled/)

  const port = await freePort()
  const second = serve(t, dir, port, { env, args: ['--config', 'webpack.replace.config.js'] })
  await second.waitFor(/compiled successfully/)
  assert.notEqual((await first.exit()).code, null, 'the first one was stopped')
  assert.match(second.out, new RegExp(`asking pid ${first.pid}, ${metadata.url.replace(/[.]/g, '\\.')} to exit \\(SIGTERM\\)`))
  assert.equal((await holderWithUrl(lockOf(dir))).pid, second.pid)
  assert.equal(await isListening(port), true)
}
