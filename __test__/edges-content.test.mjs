// Nothing lost: a file at the lock path that is not a lock is never replaced, renamed or removed
// (issue 12, section 1). Only content that may be a lease - empty, a writer's cut-off record, or
// a JSON object with an ownerID that is nevertheless not valid - follows the invalid-content
// rules; `invalidContent: 'reclaim'` restores the Go package's rule for everything.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { PidLock } from '../lib/index.mjs'
import { tempDir, age, readLease, exists, repoRoot, notUnderWine, lockDirEntries } from './helpers/util.mjs'

const bin = path.join(repoRoot, 'bin', 'leaselock.js')

function notLease(err, p, size) {
  assert.ok(err instanceof Error, `expected an Error, got ${err}`)
  assert.equal(err.code, 'ELOCKNOTLEASE', err.message)
  assert.equal(err.path, p)
  assert.equal(err.size, size)
  assert.ok(err.message.includes(p), `the message names the path: ${err.message}`)
  assert.ok(err.message.includes(`${size} bytes`), `the message gives the size: ${err.message}`)
  assert.ok(err.message.includes(`${path.basename(p)}.lock`), `the message suggests a separate lock path: ${err.message}`)
  return err
}

async function rejection(promise) {
  return promise.then(
    () => assert.fail('expected a rejection'),
    (err) => err,
  )
}

function thrown(fn) {
  try {
    fn()
  } catch (err) {
    return err
  }
  assert.fail('expected a throw')
}

/** Every way of taking or reading the lock refuses the file and leaves it byte for byte. */
async function refusedEverywhere(p, content) {
  const size = content.length
  const before = fs.statSync(p)
  const lock = new PidLock(p)
  notLease(await rejection(lock.acquire()), p, size)
  notLease(await rejection(lock.acquire({ timeout: 300 })), p, size)
  notLease(thrown(() => lock.acquireSync()), p, size)
  notLease(thrown(() => lock.acquireSync({ timeout: 300 })), p, size)
  notLease(await rejection(PidLock.inspect(p)), p, size)
  notLease(thrown(() => PidLock.inspectSync(p)), p, size)
  assert.equal(lock.held, false)
  assert.equal(await lock.release(), false)
  const after = fs.statSync(p)
  assert.equal(after.ino, before.ino, 'the same file, not a copy')
  assert.deepEqual(fs.readFileSync(p), Buffer.from(content))
  assert.deepEqual(lockDirEntries(path.dirname(p)).sort(), [path.basename(p)], 'no helper file left behind')
}

test('an hour-old data.json is refused with ELOCKNOTLEASE and left alone', async (t) => {
  const p = path.join(tempDir(t), 'data.json')
  const content = '{"name":"app"}'
  fs.writeFileSync(p, content)
  age(p, 3600_000)
  await refusedEverywhere(p, content)
  const err = notLease(thrown(() => new PidLock(p).acquireSync()), p, content.length)
  assert.ok(err.message.includes('{"name":"app"}'), `the message shows the start of the file: ${err.message}`)
})

test('a 100 KB binary file is refused, with a printable glimpse, and left alone', async (t) => {
  const p = path.join(tempDir(t), 'blob.bin')
  const content = Buffer.alloc(100 * 1024)
  for (let i = 0; i < content.length; i++) content[i] = (i * 7919) & 0xff
  content.write('\x1b]52;c;AAAA\x07PK', 0, 'latin1')
  fs.writeFileSync(p, content)
  age(p, 3600_000)
  await refusedEverywhere(p, content)
  const err = notLease(thrown(() => new PidLock(p).acquireSync()), p, content.length)
  // Printable: no control characters reach a terminal through the message.
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(err.message, /[\x00-\x08\x0b-\x1f\x7f]/)
  assert.ok(err.message.includes('\\x1b]52;c;AAAA\\x07PK'), err.message)
})

test('a package.json (a "version" key but no ownerID) is not a possible lease', async (t) => {
  const p = path.join(tempDir(t), 'package.json')
  const content = '{\n  "name": "app",\n  "version": "1.0.0"\n}\n'
  fs.writeFileSync(p, content)
  age(p, 3600_000)
  await refusedEverywhere(p, content)
})

test('JSON that is complete but not an object with ownerID, or garbage after a record, is not a possible lease', async (t) => {
  const dir = tempDir(t)
  const bodies = [
    'null',
    '12345\n',
    '[1,2]',
    '"text"',
    '{"version":1}',
    '{"version":1,"ownerID":"a","pid":1,"lastHeartbeatUnixNano":1}x',
    '{"version":1,"ownerID":"a","pid":1,"lastHeartbeatUnixNano":1}{}',
    'not-a-lease-json',
    '{"ver":1',
  ]
  for (const [i, body] of bodies.entries()) {
    const p = path.join(dir, `f${i}`, 'x.lock')
    fs.mkdirSync(path.dirname(p))
    fs.writeFileSync(p, body)
    age(p, 3600_000)
    await refusedEverywhere(p, body)
  }
})

test('possible leases (empty, whitespace, a cut-off record, an invalid record with ownerID) keep the invalid-content rules', async (t) => {
  const dir = tempDir(t)
  const bodies = [
    '',
    ' \n\t',
    '{',
    '{"ver',
    '{"version":',
    '{"version":1,"ownerID":"4242-17000000',
    '{"version":1,"ownerID":"a","pid":1,"lastHeart',
    '{"version":2,"ownerID":"a","pid":1,"lastHeartbeatUnixNano":1}',
    '{"version":1,"ownerID":"a","pid":0,"lastHeartbeatUnixNano":1}',
    '{"version":1,"OWNERid":"  ","pid":1,"lastHeartbeatUnixNano":1}',
    '{"ownerID":7}',
    ' {"version":1,"ownerID":"a","pid":"1","lastHeartbeatUnixNano":1}\n',
  ]
  for (const [i, body] of bodies.entries()) {
    const p = path.join(dir, `f${i}`, 'x.lock')
    fs.mkdirSync(path.dirname(p))
    fs.writeFileSync(p, body)
    // Fresh: held, not refused, and left alone.
    const fresh = await rejection(new PidLock(p).acquire())
    assert.equal(fresh.code, 'ELOCKHELD', `${JSON.stringify(body)}: ${fresh.message}`)
    const seen = PidLock.inspectSync(p)
    assert.equal(seen.valid, false)
    assert.equal(seen.stale, false)
    assert.equal(fs.readFileSync(p, 'utf8'), body)
    // Old: reclaimed as before.
    age(p, 2000)
    const lock = new PidLock(p)
    const { reclaimed } = await lock.acquire()
    assert.equal(reclaimed.valid, false, JSON.stringify(body))
    assert.equal(reclaimed.size, Buffer.byteLength(body))
    assert.equal(readLease(p).pid, process.pid)
    assert.equal(await lock.release(), true)
    assert.equal(exists(p), false)
  }
})

test("invalidContent: 'reclaim' applies the Go rule to all invalid content", async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'data.json')
  fs.writeFileSync(p, '{"name":"app"}')
  const held = await rejection(new PidLock(p, { invalidContent: 'reclaim' }).acquire())
  assert.equal(held.code, 'ELOCKHELD', 'fresh: held, as in Go')
  age(p, 2000)
  const lock = new PidLock(p, { invalidContent: 'reclaim' })
  const { reclaimed } = await lock.acquire()
  assert.equal(reclaimed.valid, false)
  assert.equal(reclaimed.size, 14)
  await lock.release()
  // An oversized file too.
  fs.writeFileSync(p, Buffer.alloc(100 * 1024, 1))
  age(p, 2000)
  const big = new PidLock(p, { invalidContent: 'reclaim' })
  await big.acquire()
  assert.equal(readLease(p).pid, process.pid)
  await big.release()
  // inspect with 'reclaim' reports it as invalid content instead of refusing.
  fs.writeFileSync(p, 'hello')
  const seen = PidLock.inspectSync(p, { invalidContent: 'reclaim' })
  assert.equal(seen.valid, false)
  assert.equal(seen.size, 5)
})

test('invalidContent is validated', () => {
  assert.throws(() => new PidLock('x.lock', { invalidContent: 'yes' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
  assert.throws(() => new PidLock('x.lock', { invalidContent: 1 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => PidLock.inspectSync('x.lock', { invalidContent: 'nope' }), { code: 'ERR_INVALID_ARG_VALUE' })
  new PidLock('x.lock', { invalidContent: 'refuse' })
  new PidLock('x.lock', { invalidContent: 'reclaim' })
})

test('CLI: leaselock run package.json refuses, does not run the command, and keeps package.json', (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'package.json')
  const content = '{\n  "name": "app",\n  "version": "1.0.0"\n}\n'
  fs.writeFileSync(p, content)
  age(p, 3600_000)
  const marker = path.join(dir, 'ran')
  const run = spawnSync(process.execPath, [bin, 'run', p, '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`], { encoding: 'utf8' })
  assert.notEqual(run.status, 0)
  assert.match(run.stderr, /not a lease|not a lock/i)
  assert.ok(run.stderr.includes(p), run.stderr)
  assert.equal(exists(marker), false, 'the command did not run')
  assert.equal(fs.readFileSync(p, 'utf8'), content)
  const status = spawnSync(process.execPath, [bin, 'status', p, '--json'], { encoding: 'utf8' })
  assert.notEqual(status.status, 0)
  assert.notEqual(status.status, 1, 'not reported as held')
  assert.equal(fs.readFileSync(p, 'utf8'), content)
})

test('plugins: a Vite server or webpack watch whose lockfile is a data file is refused with ELOCKNOTLEASE and leaves it', notUnderWine('node_modules was installed on Linux, and Vite\'s bundler loads a native binding for the platform it was installed on'), async (t) => {
  const dir = tempDir(t)
  const p = path.join(dir, 'data.json')
  const content = '{"name":"app"}'
  fs.writeFileSync(p, content)
  age(p, 3600_000)
  const { createServer } = await import('vite')
  const { singleInstance } = await import('../lib/vite.mjs')
  const viteErr = await rejection(
    createServer({ root: dir, configFile: false, logLevel: 'silent', server: { port: 0 }, plugins: [singleInstance({ lockfile: 'data.json' })] }),
  )
  notLease(viteErr, p, content.length)
  const { createRequire } = await import('node:module')
  const require = createRequire(import.meta.url)
  const webpack = require('webpack')
  const { SingleInstancePlugin } = require('../lib/webpack.js')
  fs.writeFileSync(path.join(dir, 'entry.js'), 'export default 1\n')
  const webpackErr = await new Promise((resolve) => {
    const config = { mode: 'development', context: dir, entry: './entry.js', output: { path: path.join(dir, 'out') }, watch: true, plugins: [new SingleInstancePlugin({ lockfile: 'data.json' })] }
    const compiler = webpack(config, (err) => resolve(err))
    if (compiler) t.after(() => new Promise((done) => compiler.close(done)))
  })
  notLease(webpackErr, p, content.length)
  assert.equal(fs.readFileSync(p, 'utf8'), content)
  assert.equal(exists(path.join(dir, 'out')), false, 'webpack compiled nothing')
})
