// `leaselock run --store` and `leaselock status --store` against a real redis-server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { Child, repoRoot } from './helpers/util.mjs'
import { startRedis, redisOrSkip, redisCommand } from './helpers/redis-server.mjs'

const bin = path.join(repoRoot, 'bin', 'leaselock.js')
const cli = (...args) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000 })

test('run --store holds the key while the command runs and passes the fencing token; status --store sees it', redisOrSkip(), async (t) => {
  const srv = await startRedis(t)
  const free = cli('status', '--store', srv.url, 'nightly', '--json')
  assert.equal(free.status, 0, free.stderr)
  assert.equal(JSON.parse(free.stdout).state, 'free')

  const holder = new Child([bin, 'run', '--store', srv.url, 'nightly', '--', process.execPath, '-e',
    'console.log("TOKEN " + process.env.LEASELOCK_TOKEN); process.stdin.resume(); process.stdin.on("end", () => process.exit(0))'], { t })
  const token = await holder.line('TOKEN')
  assert.match(String(token), /^\d+$/)

  const held = cli('status', '--store', srv.url, 'nightly', '--json')
  assert.equal(held.status, 1, held.stderr)
  const state = JSON.parse(held.stdout)
  assert.equal(state.state, 'held')
  assert.equal(state.holder.metadata.tool, 'leaselock run')

  const refused = cli('run', '--store', srv.url, 'nightly', '--', process.execPath, '-e', '0')
  assert.equal(refused.status, 75, refused.stderr)
  assert.match(refused.stderr, /held by pid/)
  // --replace and stop do not apply to a store: not offered.
  assert.doesNotMatch(refused.stderr, /--replace/)

  holder.proc.stdin.end()
  assert.deepEqual(await holder.exited, { code: 0, signal: null })
  const after = cli('run', '--store', srv.url, 'nightly', '--', process.execPath, '-e', 'console.log(process.env.LEASELOCK_TOKEN)')
  assert.equal(after.status, 0, after.stderr)
  assert.ok(BigInt(after.stdout.trim()) > BigInt(token))
})

test('run --store against an unreachable server exits 69 with a clear message', redisOrSkip(), async (t) => {
  const srv = await startRedis(t)
  const url = srv.url
  await srv.stop()
  const out = cli('run', '--store', url, 'k', '--', process.execPath, '-e', '0')
  assert.equal(out.status, 69)
  assert.match(out.stderr, /cannot reach the Redis server at redis:\/\/127\.0\.0\.1/)
  const st = cli('status', '--store', url, 'k')
  assert.equal(st.status, 69)
})

test('status --store and run --store on a value that is not a lease, and on a bad URL or key', redisOrSkip(), async (t) => {
  const srv = await startRedis(t)
  await redisCommand(srv, 'SET', 'leaselock:{other}:lease', 'not ours')
  const st = cli('status', '--store', srv.url, 'other')
  assert.equal(st.status, 2, st.stderr)
  assert.match(st.stdout, /not a lease; it counts as held, and leaselock never overwrites or deletes it/)
  assert.doesNotMatch(st.stdout, /threshold/)
  const run = cli('run', '--store', srv.url, 'other', '--', process.execPath, '-e', '0')
  assert.equal(run.status, 75, run.stderr)
  assert.match(run.stderr, /the value under the key other is not a lease/)
  assert.doesNotMatch(run.stderr, /threshold/)
  for (const args of [['--store', 'http://127.0.0.1', 'k'], ['--store', srv.url, 'a{b']]) {
    const bad = cli('status', ...args)
    assert.equal(bad.status, 64, `status ${args.join(' ')}: ${bad.stderr}`)
  }
})
