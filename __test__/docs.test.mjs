// The documents a user and a contributor navigate: every relative link and #anchor in them
// resolves, the README opens with the two commands that work on a fresh clone, its table of
// contents reaches every section, and it stays short enough to read. Offline, and fast: it reads
// files only. Where each kind of text belongs is in CONTRIBUTING.md ("Documentation").

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** The README is for users: what does not fit goes to docs/ (see CONTRIBUTING.md). */
const README_MAX_LINES = 400

const DOCS = [
  'README.md',
  'CONTRIBUTING.md',
  ...fs.readdirSync(path.join(REPO, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  'bench/README.md',
]

const read = (rel) => fs.readFileSync(path.join(REPO, rel), 'utf8')

/** The text outside fenced code blocks, line by line (fences hide headings and links). */
function proseLines(text) {
  const out = []
  let fence = null
  for (const line of text.split('\n')) {
    const m = /^\s*(`{3,}|~{3,})/.exec(line)
    if (m) {
      if (fence === null) fence = m[1][0]
      else if (m[1][0] === fence) fence = null
      out.push('')
      continue
    }
    out.push(fence === null ? line : '')
  }
  return out
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading) {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

/** Every anchor a Markdown file offers: its headings (numbered when repeated) and explicit ids. */
function anchors(text) {
  const seen = new Map()
  const out = new Set()
  for (const line of proseLines(text)) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (h) {
      const base = slug(h[1])
      const n = seen.get(base) ?? 0
      seen.set(base, n + 1)
      out.add(n === 0 ? base : `${base}-${n}`)
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) out.add(m[1])
  }
  return out
}

/** `[text](target)` links outside code, as { target, line }. */
function links(text) {
  const out = []
  proseLines(text).forEach((line, i) => {
    const bare = line.replace(/`[^`]*`/g, '')
    for (const m of bare.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push({ target: m[1], line: i + 1 })
  })
  return out
}

test('every relative link and #anchor in the documents resolves', () => {
  const broken = []
  let checked = 0
  for (const doc of DOCS) {
    for (const { target, line } of links(read(doc))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue // https:, mailto: ...
      checked++
      const [file, anchor] = target.split('#')
      const dest = file === '' ? doc : path.posix.normalize(path.posix.join(path.posix.dirname(doc), file))
      const where = `${doc}:${line} -> ${target}`
      if (dest.startsWith('..') || !fs.existsSync(path.join(REPO, dest))) {
        broken.push(`${where}: no file ${dest}`)
        continue
      }
      if (anchor !== undefined) {
        if (!dest.endsWith('.md')) broken.push(`${where}: an anchor into a file that is not Markdown`)
        else if (!anchors(read(dest)).has(anchor)) broken.push(`${where}: no heading with anchor #${anchor} in ${dest}`)
      }
    }
  }
  assert.ok(checked > 50, `only ${checked} relative links found: is the link parser broken?`)
  assert.deepEqual(broken, [], `broken links:\n  ${broken.join('\n  ')}`)
})

test('the anchor rule matches GitHub for the headings the documents use', () => {
  assert.equal(slug('`new PidLock(path, options?)`'), 'new-pidlockpath-options')
  assert.equal(slug("The lease parser against Go's rules"), 'the-lease-parser-against-gos-rules')
  assert.equal(slug('What `held` vouches for'), 'what-held-vouches-for')
  assert.equal(slug('`lock.acquire(options?)` → `Promise<{ reclaimed }>`'), 'lockacquireoptions--promise-reclaimed-')
})

test('the README opens with the two commands that work on a fresh clone', () => {
  const readme = read('README.md')
  const firstBlock = /^# [^\n]+\n+```sh\n([\s\S]*?)\n```/.exec(readme)
  assert.ok(firstBlock, 'the README must start with its title and then a sh code block')
  const commands = firstBlock[1].split('\n').map((l) => l.replace(/\s+#.*$/, '').trim())
  assert.deepEqual(commands, ['npm install && npm run demo', 'npm install && npm test'])
  const { scripts } = JSON.parse(read('package.json'))
  assert.ok(scripts.demo && scripts.test, 'package.json must define the demo and test scripts')
})

test('the README has a table of contents that reaches every section, and stays short', () => {
  const readme = read('README.md')
  const lines = readme.split('\n').length
  assert.ok(
    lines <= README_MAX_LINES,
    `README.md has ${lines} lines (at most ${README_MAX_LINES}): move detail to docs/ (see CONTRIBUTING.md)`,
  )
  const toc = /\n## Contents\n([\s\S]*?)\n## /.exec(readme)
  assert.ok(toc, 'the README needs a "## Contents" section')
  const listed = new Set([...toc[1].matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]))
  const sections = proseLines(readme)
    .map((l) => /^## (.*)$/.exec(l)?.[1])
    .filter((h) => h && h !== 'Contents' && h !== 'License')
  const missing = sections.filter((h) => !listed.has(slug(h)))
  assert.deepEqual(missing, [], 'README sections missing from its table of contents')
})
