// Two things a user meets before any lock: how `leaselock run` starts a command on Windows
// (npm's .cmd shims), and the message when no native binary is installed for the platform.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { repoRoot } from './integrations/helpers.mjs'

const require = createRequire(import.meta.url)
const { spawnArgs, quoteForCmd } = require('../lib/spawn.js')

test('run on Windows: a .cmd/.bat shim found on PATH runs through cmd.exe, quoted for it', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-win-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const bin = path.join(dir, 'node_modules', '.bin')
  fs.mkdirSync(bin, { recursive: true })
  fs.writeFileSync(path.join(bin, 'vite.cmd'), '@echo off\n')
  fs.writeFileSync(path.join(dir, 'tool.exe'), '')
  const env = { PATH: bin, PATHEXT: '.COM;.EXE;.BAT;.CMD', COMSPEC: 'C:\\Windows\\system32\\cmd.exe' }
  const shim = spawnArgs(['vite', '--port', '3000', 'a b&c'], { platform: 'win32', env, cwd: dir })
  assert.equal(shim.file, env.COMSPEC)
  assert.deepEqual(shim.args.slice(0, 3), ['/d', '/s', '/c'])
  assert.equal(shim.options.windowsVerbatimArguments, true)
  // Each argument quoted, then every cmd metacharacter escaped twice (npm shims re-parse).
  assert.ok(shim.args[3].includes('vite.cmd'), shim.args[3])
  assert.ok(shim.args[3].includes('^^^"a^^^ b^^^&c^^^"'), shim.args[3])
  // An .exe runs directly; elsewhere nothing changes.
  assert.deepEqual(spawnArgs(['tool', 'x'], { platform: 'win32', env: { ...env, PATH: dir }, cwd: dir }).args, ['x'])
  assert.deepEqual(spawnArgs(['vite', 'x'], { platform: 'linux', env, cwd: dir }), { file: 'vite', args: ['x'], options: {} })
  assert.equal(quoteForCmd('say "hi"\\', false), '^"say^ \\^"hi\\^"\\\\^"')
})

test('no binary for this platform: a message that says so and how to get one', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leaselock-nobin-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  // What a tarball or git install holds: the package without any .node file.
  for (const f of ['package.json', 'index.js', 'index.d.ts']) fs.copyFileSync(path.join(repoRoot, f), path.join(dir, f))
  fs.cpSync(path.join(repoRoot, 'lib'), path.join(dir, 'lib'), { recursive: true })
  const env = { ...process.env }
  delete env.NAPI_RS_NATIVE_LIBRARY_PATH
  const r = spawnSync(process.execPath, ['-e', `try { require(${JSON.stringify(path.join(dir, 'lib', 'index.js'))}) } catch (e) { console.log(e.code); console.log(e.message); console.log(Boolean(e.cause)) }`], { encoding: 'utf8', env })
  assert.match(r.stdout, /^ERR_LEASELOCK_NO_BINARY\n/)
  assert.match(r.stdout, /no prebuilt native binary is installed for this platform \(linux-x64-gnu|no prebuilt native binary is installed for this platform \(/)
  assert.match(r.stdout, /npm install leaselock/)
  assert.match(r.stdout, /npm run build/)
  assert.doesNotMatch(r.stdout, /npm has a bug/)
  assert.match(r.stdout, /true\n$/, 'the loader errors stay available as the cause')
})
