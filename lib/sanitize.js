'use strict'
// Everything read from a lock file was written by whoever could write the lock's directory, so
// it is untrusted text. Before any of it reaches a terminal it goes through here: control
// characters that a terminal interprets (ESC starts OSC 52 clipboard writes, OSC 8 links,
// cursor moves; CR and LF forge extra rows), bidirectional overrides that reorder what is shown,
// and invisible characters are made visible as escapes, and each field is capped in length.

/** The longest field printed, in characters (an escape counts as its visible length). */
const FIELD_LIMIT = 200

// C0 controls, DEL, C1 controls, the Arabic letter mark, zero-width and direction marks,
// line/paragraph separators, embeddings and overrides, word joiner and invisible operators,
// isolates, deprecated format characters, the byte order mark, interlinear annotation marks,
// and surrogates (a pair is one character when iterated, so only a lone one reaches this test:
// not text, and a terminal may show it as anything).
const UNSAFE = /^[\u0000-\u001f\u007f-\u009f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb]$/u

function escapeChar(ch) {
  const code = ch.codePointAt(0)
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, '0')}`
  return `\\u${code.toString(16).padStart(4, '0')}`
}

/**
 * `value` as text that is safe to print: unsafe characters escaped (`\x1b`, `\u202e`), at most
 * `limit` characters (an escape counts with its printed length), a cut marked with `…`.
 * Non-strings are turned into text first.
 */
function safeText(value, limit = FIELD_LIMIT) {
  const text = typeof value === 'string' ? value : String(value)
  let out = ''
  let width = 0
  for (const ch of text) {
    const piece = UNSAFE.test(ch) ? escapeChar(ch) : ch
    const w = piece === ch ? 1 : piece.length
    if (width + w > limit) return `${out}…`
    out += piece
    width += w
  }
  return out
}

/**
 * A URL read from a lock file, printable only when it is an http(s) URL without credentials
 * (`http://localhost@evil.example` reads as localhost to a person); otherwise `null`. The
 * normalised form is printed: the URL parser percent-encodes spaces and controls in it.
 */
function safeUrl(value) {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return null
  let url
  try {
    url = new URL(value)
  } catch {
    return null
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null
  if (url.username || url.password) return null
  const href = url.href
  return href.length > FIELD_LIMIT ? null : safeText(href)
}

const LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/

/** A host name read from a lock file, printable only when it has host name syntax; else `null`. */
function safeHostname(value) {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253) return null
  const name = value.endsWith('.') ? value.slice(0, -1) : value
  return name.split('.').every((label) => LABEL.test(label)) ? value : null
}

module.exports = { FIELD_LIMIT, safeText, safeUrl, safeHostname }
