// Vite >= 8.4 ships its own command lock; these tests run the real Vite 8.4 CLI beside it, plus
// what the plugin adds on any Vite: replace, reuse, `leaselock list`, a frozen holder taken over.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { PidLock } from '../lib/index.mjs'
import { Proc, VITES, bin, freePort, tempProject } from './integrations/helpers.mjs'

const vite = VITES.find((v) => v.name === 'vite')
const [major, minor] = vite.version.split('.').map(Number)
const withCommandLock = major > 8 || (major === 8 && minor >= 4)

const config = (options = '') => `import { singleInstance } from 'leaselock/vite'
export default { plugins: [singleInstance(${options})], server: { host: '127.0.0.1' }, clearScreen: false }
`

function project(t, options = '') {
  const dir = tempProject(
    t,
    'vite',
    {
      'index.html': '<!doctype html><html><body>throwaway</body></html>\n',
      'vite.config.js': config(options),
    },
    { vite: vite.name },
  )
  // Each test has its own registry, so `leaselock list` sees only its servers.
  const runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-rt-'))
  fs.chmodSync(runtime, 0o700)
  t.after(() => fs.rmSync(runtime, { recursive: true, force: true }))
  return { dir, env: { XDG_RUNTIME_DIR: runtime } }
}

const lockOf = (dir) => path.join(dir, 'node_modules', '.vite', 'leaselock', 'dev-server.lock')

async function start(t, p, args = [], env = {}) {
  return new Proc(t, process.execPath, [vite.bin, '--port', String(await freePort()), '--strictPort', ...args], { cwd: p.dir, env: { ...p.env, ...env } })
}

async function urlIn(lock) {
  for (let i = 0; i < 200; i++) {
    const h = await PidLock.inspect(lock)
    if (h?.metadata?.url) return h
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.fail(`no URL in ${lock}`)
}

test('Vite 8.4: --bypass-lock is allow-multiple, and the refusal names it', { skip: !withCommandLock && `Vite ${vite.version} has no command lock` }, async (t) => {
  const p = project(t)
  const first = await start(t, p)
  await first.waitFor(/Local:/)
  const refused = await start(t, p)
  assert.equal((await refused.exit()).code, 1, refused.out)
  assert.match(refused.out, /To start a second one on purpose: pass --bypass-lock/)
  assert.doesNotMatch(refused.out, /Found another Vite/, 'ours refuses first, with the holder rows')

  const bypassed = await start(t, p, ['--bypass-lock'])
  await bypassed.waitFor(/Local:/)
  assert.match(bypassed.out, new RegExp(`pid ${first.pid} already runs a Vite dev server for this project; starting another one anyway \\(--bypass-lock\\)`))
  assert.equal((await PidLock.inspect(lockOf(p.dir))).pid, first.pid)
})

test("Vite 8.4: when Vite's own check refuses after ours, our lock is not released", { skip: !withCommandLock && `Vite ${vite.version} has no command lock` }, async (t) => {
  const p = project(t)
  // A Vite record (as Vite writes them) naming a live process of ours, with this project's key:
  // Vite's check refuses; ours found the lock free and took it.
  const other = new Proc(t, process.execPath, ['-e', 'setInterval(() => {}, 1000)'])
  const record = { command: 'dev', root: p.dir, configFile: path.join(p.dir, 'vite.config.js'), mode: 'development', pid: other.pid, urls: null }
  fs.mkdirSync(path.join(p.dir, 'node_modules', '.vite', 'lock'), { recursive: true })
  fs.writeFileSync(path.join(p.dir, 'node_modules', '.vite', 'lock', 'planted.json'), JSON.stringify(record))
  const server = await start(t, p)
  assert.equal((await server.exit()).code, 1, server.out)
  assert.match(server.out, /Found another Vite dev process for this project/)
  // The plugin did not release it on the way out (the process's end does).
  assert.match(server.out, /Vite's own lock refused this server after leaselock's lock was taken; the lock is kept until this process ends/)
  // Nothing is left that blocks the next start once Vite's record is gone.
  other.kill('SIGKILL')
  await other.exit()
  const next = await start(t, p)
  await next.waitFor(/Local:/)
  assert.equal((await PidLock.inspect(lockOf(p.dir))).pid, next.pid)
})

test('a frozen holder is taken over (Vite 8.4 alone would refuse forever); it learns so when it resumes', async (t) => {
  const p = project(t, '{ lockOptions: { leaseHeartbeatInterval: 100, leaseStaleThreshold: 1000 } }')
  const first = await start(t, p)
  await first.waitFor(/Local:/)
  await urlIn(lockOf(p.dir))
  first.kill('SIGSTOP')
  t.after(() => first.kill('SIGCONT'))
  for (let i = 0; i < 100 && !(await PidLock.inspect(lockOf(p.dir)))?.stale; i++) await new Promise((r) => setTimeout(r, 100))
  const third = await start(t, p)
  await third.waitFor(/Local:/)
  assert.doesNotMatch(third.out, /Found another Vite|error when starting/)
  if (withCommandLock) assert.match(third.out, new RegExp(`took over the lock of pid ${first.pid}, whose lease had gone stale`))
  first.kill('SIGCONT')
  await first.waitFor(/lost its lock .*: another process took it over/)
  assert.equal((await PidLock.inspect(lockOf(p.dir))).pid, third.pid)
})

test('two servers started in the same instant: exactly one serves', async (t) => {
  const p = project(t)
  const both = [await start(t, p), await start(t, p)]
  const outcome = await Promise.all(both.map((s) => s.waitFor(/Local:/).then(() => 'serves', () => (s.status?.code === 1 ? 'refused' : 'failed'))))
  assert.deepEqual(outcome.sort(), ['refused', 'serves'], both.map((s) => s.out).join('\n---\n'))
})

test("onConflict: 'replace' stops the running server (SIGTERM) and takes its place", async (t) => {
  const p = project(t, "{ onConflict: 'replace' }")
  const first = await start(t, p)
  await first.waitFor(/Local:/)
  await urlIn(lockOf(p.dir))
  const second = await start(t, p)
  await second.waitFor(/Local:/)
  assert.deepEqual(await first.exit(), { code: 143, signal: null }, first.out)
  assert.match(second.out, new RegExp(`asking pid ${first.pid}, http://127.0.0.1:\\d+/ to exit \\(SIGTERM\\)`))
  assert.equal((await PidLock.inspect(lockOf(p.dir))).pid, second.pid)
})

test("onConflict: 'reuse' prints the running server's URL and exits 0 without starting", async (t) => {
  const p = project(t, "{ onConflict: 'reuse' }")
  const first = await start(t, p)
  await first.waitFor(/Local:/)
  const { metadata } = await urlIn(lockOf(p.dir))
  const second = await start(t, p)
  assert.deepEqual(await second.exit(), { code: 0, signal: null }, second.out)
  assert.ok(second.out.includes(`${metadata.url}\n`), second.out)
  assert.match(second.out, /reusing it, not starting another/)
  assert.doesNotMatch(second.out, /Local:/)
})

test('`leaselock list` shows the running server: tool, project, URL, pid, lock', async (t) => {
  const p = project(t)
  const first = await start(t, p)
  await first.waitFor(/Local:/)
  const { metadata } = await urlIn(lockOf(p.dir))
  const list = new Proc(t, process.execPath, [bin.leaselock, 'list', '--json'], { env: p.env })
  assert.equal((await list.exit()).code, 0, list.out)
  const { version, locks } = JSON.parse(list.out)
  assert.equal(version, 1)
  assert.equal(locks.length, 1, list.out)
  assert.deepEqual({ ...locks[0], startedAt: typeof locks[0].startedAt }, { tool: 'vite', command: 'dev', project: p.dir, url: metadata.url, pid: first.pid, startedAt: 'string', lock: lockOf(p.dir) })
  first.kill('SIGKILL')
  await first.exit()
  const after = new Proc(t, process.execPath, [bin.leaselock, 'list', '--json'], { env: p.env })
  await after.exit()
  assert.deepEqual(JSON.parse(after.out).locks, [], 'a dead server is dropped')
  assert.deepEqual(fs.readdirSync(path.join(p.env.XDG_RUNTIME_DIR, 'leaselock')), [], 'and pruned')
})
