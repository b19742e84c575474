// leaselock/vite with the real Vite CLI and API, in throwaway projects.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { PidLock } from '../lib/index.mjs'
import { LISTEN_MARK, Proc, VITES, bin, freePort, isListening, repoRoot, tempProject } from './integrations/helpers.mjs'
import { lockDirEntries } from './helpers/util.mjs'

const config = (options = '') => `import { singleInstance } from 'leaselock/vite'
export default { plugins: [singleInstance(${options})], server: { host: '127.0.0.1' }, clearScreen: false }
`

// Runs inside the project: uses Vite's API the way a test runner or a custom server would.
const programmatic = `import { createServer } from 'vite'
import { PidLock } from 'leaselock'
const [mode, portText] = process.argv.slice(2)
const port = Number(portText)
const lockPath = 'node_modules/.vite/leaselock/dev-server.lock'
const opts = () => ({ root: process.cwd(), logLevel: 'silent', server: { port, strictPort: true, host: '127.0.0.1' } })
const say = (tag, v) => console.log(tag + ' ' + JSON.stringify(v ?? null))
const refusal = (err) => ({ code: err.code ?? null, pid: err.holder?.pid ?? null, message: err.message })
if (mode === 'second') {
  try {
    await createServer(opts())
    say('CREATED')
  } catch (err) {
    say('THROWN', refusal(err))
  }
  // No process.exit: the process must end by itself, so nothing may be left open.
} else {
  const server = await createServer(opts())
  await server.listen()
  const holder = await PidLock.inspect(lockPath)
  say('LISTENING', { pid: holder?.pid, url: holder?.metadata?.url, port: holder?.metadata?.port, root: holder?.metadata?.root })
  try {
    await createServer({ ...opts(), server: { ...opts().server, port: port + 1 } })
    say('SECOND-CREATED')
  } catch (err) {
    say('SECOND-THROWN', refusal(err))
  }
  await server.close()
  say('CLOSED', await PidLock.inspect(lockPath))
}
`

// Every test below runs once per Vite major (see VITES): the plugin must work the same on each.
for (const vite of VITES) {
  describe(`Vite ${vite.version}`, () => {
    function viteProject(t, extra = {}) {
      return tempProject(t, 'vite', {
        'index.html': '<!doctype html><html><body><script type="module" src="/main.js"></script></body></html>\n',
        'main.js': 'document.body.append("throwaway")\n',
        'vite.config.js': config(),
        'programmatic.mjs': programmatic,
        ...extra,
      }, { vite: vite.name })
    }

    const lockOf = (dir) => path.join(dir, 'node_modules', '.vite', 'leaselock', 'dev-server.lock')

    async function startVite(t, dir, port, { env, args = [], traceListen = false } = {}) {
      const p = new Proc(t, process.execPath, [vite.bin, '--port', String(port), '--strictPort', ...args], { cwd: dir, env, traceListen })
      return p
    }

    test('a second `vite` refuses with the running URL and PID, exits 1 and never binds a port', async (t) => {
      const dir = viteProject(t)
      const [p1, p2] = [await freePort(), await freePort()]
      const first = await startVite(t, dir, p1)
      await first.waitFor(/Local:\s+http:\/\/127\.0\.0\.1:\d+/)
      // The URL reaches the lease once the server listens.
      let holder
      for (let i = 0; i < 100 && !holder?.metadata?.url; i++) {
        holder = await PidLock.inspect(lockOf(dir))
        if (!holder?.metadata?.url) await new Promise((r) => setTimeout(r, 50))
      }
      assert.equal(holder.pid, first.pid)
      assert.equal(holder.metadata.url, `http://127.0.0.1:${p1}/`)
      assert.equal(holder.metadata.port, p1)
      assert.equal(holder.metadata.root, dir)

      const second = await startVite(t, dir, p2, { traceListen: true })
      const { code } = await second.exit()
      assert.equal(code, 1, second.out)
      assert.match(second.out, /Another Vite dev server is already running for this project/)
      assert.ok(second.out.includes(`http://127.0.0.1:${p1}/`), second.out)
      assert.ok(second.out.includes(`pid ${first.pid}`), second.out)
      assert.ok(second.out.includes(`kill ${first.pid}`), second.out)
      assert.ok(second.out.includes(`project: ${dir}`), second.out)
      assert.match(second.out, /started:\s+\d+s ago/)
      assert.match(second.out, /LEASELOCK_ALLOW_MULTIPLE=1/)
      assert.doesNotMatch(second.out, /Local:/)
      assert.ok(!second.out.includes(LISTEN_MARK), `the refused server tried to listen:\n${second.out}`)
      assert.equal(await isListening(p2), false)
      // The first one is untouched.
      assert.equal(first.status, null)
      assert.equal((await PidLock.inspect(lockOf(dir))).pid, first.pid)
    })

    test('after SIGKILL of the running server a new one starts at once', async (t) => {
      const dir = viteProject(t)
      const first = await startVite(t, dir, await freePort())
      await first.waitFor(/Local:/)
      first.kill('SIGKILL')
      await first.exit()
      assert.equal((await PidLock.inspect(lockOf(dir)))?.alive, false, 'the killed server left its lease behind')

      const next = await startVite(t, dir, await freePort())
      await next.waitFor(/Local:/)
      assert.doesNotMatch(next.out, /already running/)
      assert.equal((await PidLock.inspect(lockOf(dir))).pid, next.pid)
    })

    test('after Ctrl+C (SIGINT) of the running server a new one starts at once', async (t) => {
      const dir = viteProject(t)
      const first = await startVite(t, dir, await freePort())
      await first.waitFor(/Local:/)
      first.kill('SIGINT')
      await first.exit()
      const next = await startVite(t, dir, await freePort())
      await next.waitFor(/Local:/)
      assert.equal((await PidLock.inspect(lockOf(dir))).pid, next.pid)
    })

    test('a second server on purpose: LEASELOCK_ALLOW_MULTIPLE=1 or allowMultiple: true', async (t) => {
      const dir = viteProject(t)
      const first = await startVite(t, dir, await freePort())
      await first.waitFor(/Local:/)

      const byEnv = await startVite(t, dir, await freePort(), { env: { LEASELOCK_ALLOW_MULTIPLE: '1' } })
      await byEnv.waitFor(/Local:/)
      assert.match(byEnv.out, new RegExp(`pid ${first.pid} already runs a Vite dev server for this project; starting another one anyway \\(LEASELOCK_ALLOW_MULTIPLE is set\\)`))
      // Vite 8.4's own lock lets it start too: no "Found another Vite" stack trace.
      assert.doesNotMatch(byEnv.out, /Found another Vite|error when starting/)
      // The lock still names the first server.
      assert.equal((await PidLock.inspect(lockOf(dir))).pid, first.pid)

      const optionDir = viteProject(t, { 'vite.config.js': config('{ allowMultiple: true }') })
      const own = await startVite(t, optionDir, await freePort())
      await own.waitFor(/Local:/)
      const byOption = await startVite(t, optionDir, await freePort())
      await byOption.waitFor(/Local:/)
      assert.match(byOption.out, /starting another one anyway \(allowMultiple: true\)/)
      assert.doesNotMatch(byOption.out, /Found another Vite|error when starting/)
    })

    test('keyed like Vite: another --mode or --config runs beside the first, each with its own lock', async (t) => {
      const dir = viteProject(t, { 'vite.other.config.js': config() })
      const first = await startVite(t, dir, await freePort())
      await first.waitFor(/Local:/)
      const staging = await startVite(t, dir, await freePort(), { args: ['--mode', 'staging'] })
      await staging.waitFor(/Local:/)
      const other = await startVite(t, dir, await freePort(), { args: ['--config', 'vite.other.config.js'] })
      await other.waitFor(/Local:/)
      const locks = lockDirEntries(path.dirname(lockOf(dir))).sort()
      assert.equal(locks.length, 3, locks.join(', '))
      assert.ok(locks.includes('dev-server.lock'))
      assert.ok(locks.some((f) => /^dev-server-staging-[0-9a-f]{12}\.lock$/.test(f)), locks.join(', '))
      // The same mode again is refused, like the first.
      const again = await startVite(t, dir, await freePort(), { args: ['--mode', 'staging'] })
      assert.equal((await again.exit()).code, 1, again.out)
      assert.ok(again.out.includes(`pid ${staging.pid}`), again.out)
    })

    test('createServer() rejects with ELOCKHELD (no exit) and leaves nothing open; close() releases', async (t) => {
      const dir = viteProject(t)
      const first = await startVite(t, dir, await freePort())
      await first.waitFor(/Local:/)
      const port = await freePort()
      const second = new Proc(t, process.execPath, ['programmatic.mjs', 'second', String(port)], { cwd: dir, traceListen: true })
      const [, json] = await second.waitFor(/THROWN (.*)\n/)
      const err = JSON.parse(json)
      assert.equal(err.code, 'ELOCKHELD')
      assert.equal(err.pid, first.pid)
      assert.match(err.message, /Another Vite dev server is already running/)
      // It ends by itself: the refused server closed its watcher and WebSocket server.
      assert.deepEqual(await second.exit(15_000), { code: 0, signal: null })
      assert.ok(!second.out.includes(LISTEN_MARK), second.out)

      first.kill('SIGTERM')
      await first.exit()
      const own = new Proc(t, process.execPath, ['programmatic.mjs', 'own', String(port)], { cwd: dir })
      const [, listening] = await own.waitFor(/LISTENING (.*)\n/)
      assert.deepEqual(JSON.parse(listening), { pid: own.pid, url: `http://127.0.0.1:${port}/`, port, root: dir })
      // A second server in the same process is refused too.
      const [, inProcess] = await own.waitFor(/SECOND-THROWN (.*)\n/)
      assert.equal(JSON.parse(inProcess).pid, own.pid)
      await own.waitFor(/CLOSED null/)
      assert.deepEqual(await own.exit(15_000), { code: 0, signal: null })
      assert.equal(fs.existsSync(lockOf(dir)), false)
    })

    test('a restart (config file changed) keeps the lock; a lost lease is reported in the log', async (t) => {
      const dir = viteProject(t)
      const server = await startVite(t, dir, await freePort())
      await server.waitFor(/Local:/)
      const before = await PidLock.inspect(lockOf(dir))
      fs.appendFileSync(path.join(dir, 'vite.config.js'), '// changed\n')
      await server.waitFor(/server restarted/)
      assert.doesNotMatch(server.out, /already running|restart failed/)
      const after = await PidLock.inspect(lockOf(dir))
      assert.equal(after.pid, server.pid)
      assert.equal(after.ownerId, before.ownerId, 'the restarted server kept the same lease')

      fs.rmSync(lockOf(dir))
      await server.waitFor(/this Vite dev server lost its lock .*: the lock file was removed or replaced/)
      assert.equal(server.status, null, 'by default a lost lease only warns')
      // ...and the lock, free again, is taken back: the server does not run unguarded.
      await server.waitFor(/The lock was free again: this Vite dev server holds it again/)
      assert.equal((await PidLock.inspect(lockOf(dir))).pid, server.pid)
    })

    test("onLeaseLost: 'exit' stops the server when its lease is lost", async (t) => {
      const dir = viteProject(t, { 'vite.config.js': config("{ onLeaseLost: 'exit' }") })
      const port = await freePort()
      const server = await startVite(t, dir, port)
      await server.waitFor(/Local:/)
      fs.rmSync(lockOf(dir))
      const { code } = await server.exit()
      assert.equal(code, 1)
      assert.match(server.out, /stopping the server/)
      assert.equal(await isListening(port), false)
    })

    test('when asked: `vite preview` and `vite build --watch` are guarded too; `vite build` is not', async (t) => {
      const dir = viteProject(t, { 'vite.config.js': config('{ preview: true, buildWatch: true }').replace("server: { host: '127.0.0.1' }", "server: { host: '127.0.0.1' }, preview: { host: '127.0.0.1' }") })
      const build = new Proc(t, process.execPath, [vite.bin, 'build'], { cwd: dir })
      assert.equal((await build.exit()).code, 0, build.out)
      const locks = path.join(dir, 'node_modules', '.vite', 'leaselock')
      assert.equal(fs.existsSync(path.join(locks, 'build-watch.lock')), false)

      const watch = new Proc(t, process.execPath, [vite.bin, 'build', '--watch'], { cwd: dir })
      await watch.waitFor(/built in/)
      const preview = new Proc(t, process.execPath, [vite.bin, 'preview', '--port', String(await freePort()), '--strictPort'], { cwd: dir })
      await preview.waitFor(/Local:/)

      const watch2 = new Proc(t, process.execPath, [vite.bin, 'build', '--watch'], { cwd: dir })
      assert.equal((await watch2.exit()).code, 1, watch2.out)
      assert.ok(watch2.out.includes(`Another vite build --watch is already running for this project (pid ${watch.pid})`), watch2.out)
      const port = await freePort()
      const preview2 = new Proc(t, process.execPath, [vite.bin, 'preview', '--port', String(port), '--strictPort'], { cwd: dir, traceListen: true })
      assert.equal((await preview2.exit()).code, 1, preview2.out)
      assert.ok(preview2.out.includes(`Another Vite preview server is already running for this project (pid ${preview.pid}`), preview2.out)
      assert.ok(!preview2.out.includes(LISTEN_MARK), preview2.out)

      // The preview server releases its lock when it closes (SIGTERM).
      preview.kill('SIGTERM')
      await preview.exit()
      assert.equal(fs.existsSync(path.join(locks, 'preview.lock')), false)
    })

  })
}

test('entry points: the types compile (tsc --strict) and match what the modules export', async (t) => {
  const { createRequire } = await import('node:module')
  const require = createRequire(import.meta.url)
  const cjs = require('../lib/vite.js')
  const esm = await import('../lib/vite.mjs')
  assert.equal(typeof cjs, 'function')
  assert.equal(cjs.singleInstance, cjs)
  assert.equal(cjs.default, cjs)
  assert.equal(esm.default, cjs)
  assert.equal(esm.singleInstance, cjs)
  const plugin = cjs()
  assert.equal(plugin.name, 'leaselock:single-instance')
  assert.equal(plugin.enforce, 'pre')
  assert.equal('configurePreviewServer' in plugin, false, 'preview is guarded only when asked')
  assert.equal(typeof cjs({ preview: true }).configurePreviewServer, 'function')
  assert.throws(() => cjs({ onLeaseLost: 'ignore' }), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => cjs({ lockfile: '' }), { code: 'ERR_INVALID_ARG_TYPE' })
  const wp = require('../lib/webpack.js')
  const wpEsm = await import('../lib/webpack.mjs')
  assert.equal(wp.SingleInstancePlugin, wp)
  assert.equal(wp.default, wp)
  assert.equal(wpEsm.default, wp)
  assert.equal(wpEsm.SingleInstancePlugin, wp)
  assert.throws(() => new wp({ onLeaseLost: 'close' }), { code: 'ERR_INVALID_ARG_TYPE' })

  const { spawnSync } = await import('node:child_process')
  const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(repoRoot, '__test__', 'integrations', 'types', 'tsconfig.json')], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
})

