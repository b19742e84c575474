// The TypeScript contract: __test__/types/usage.ts exercises every overload of lib/index.d.ts
// and holds `@ts-expect-error` lines for wrong uses; `tsc --noEmit --strict` must accept it.
// Types that became too loose make a directive unused, which tsc reports as an error.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { execFile } from 'node:child_process'
import { repoRoot } from './helpers/util.mjs'

const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')
const project = path.join(repoRoot, '__test__', 'types')

test('tsc --noEmit --strict accepts the usage file, and every wrong use fails', { timeout: 180_000 }, async () => {
  const config = JSON.parse(fs.readFileSync(path.join(project, 'tsconfig.json'), 'utf8'))
  assert.equal(config.compilerOptions.strict, true)
  assert.equal(config.compilerOptions.noEmit, true)
  const usage = fs.readFileSync(path.join(project, 'usage.ts'), 'utf8')
  assert.ok((usage.match(/@ts-expect-error/g) ?? []).length >= 20, 'the wrong uses are there')
  const result = await new Promise((resolve) => {
    execFile(process.execPath, [tsc, '-p', project], { cwd: repoRoot }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code : 0, output: stdout + stderr })
    })
  })
  assert.equal(result.code, 0, result.output)
})
