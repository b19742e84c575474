// Mutual exclusion on a Redis store among several processes, checked from their journals:
// no two critical sections overlap, and the fencing tokens rise in the order the lock was held.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Child, tempDir } from './helpers/util.mjs'
import { startRedis, redisOrSkip } from './helpers/redis-server.mjs'

const cycler = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'redis-cycler.mjs')

test('four processes taking turns 40 times each never overlap; tokens rise with every turn', redisOrSkip(), async (t) => {
  const srv = await startRedis(t)
  const dir = tempDir(t)
  const journal = path.join(dir, 'journal')
  const workers = [0, 1, 2, 3].map((id) => new Child([cycler, srv.url, 'shared', journal, String(id), '40'], { t }))
  for (const w of workers) await w.line('DONE', 120_000)
  const events = fs
    .readFileSync(journal, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [kind, id, token, at] = line.split(' ')
      return { kind, id, token: BigInt(token), at: BigInt(at) }
    })
    .sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0))
  assert.equal(events.length, 4 * 40 * 2)
  let inside = null
  let lastToken = 0n
  for (const e of events) {
    if (e.kind === 'enter') {
      assert.equal(inside, null, `process ${e.id} entered while ${inside?.id} was inside`)
      assert.ok(e.token > lastToken, `token ${e.token} after ${lastToken}`)
      lastToken = e.token
      inside = e
    } else {
      assert.equal(inside?.id, e.id)
      assert.equal(inside.token, e.token)
      inside = null
    }
  }
})
