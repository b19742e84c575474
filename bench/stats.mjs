// Small statistics and formatting helpers for the benchmark.

/** The q-quantile (0..1) of `values`, linear between neighbours. */
export function quantile(values, q) {
  if (values.length === 0) return NaN
  const s = [...values].sort((a, b) => a - b)
  const pos = (s.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return s[lo] + (s[hi] - s[lo]) * (pos - lo)
}

/** Median, p10, p90, quartiles, min, max and count of `values`. */
export function summary(values) {
  return {
    n: values.length,
    median: quantile(values, 0.5),
    p10: quantile(values, 0.1),
    p90: quantile(values, 0.9),
    q1: quantile(values, 0.25),
    q3: quantile(values, 0.75),
    min: values.length ? Math.min(...values) : NaN,
    max: values.length ? Math.max(...values) : NaN,
  }
}

export function mean(values) {
  return values.reduce((a, b) => a + b, 0) / values.length
}

export function stddev(values) {
  const m = mean(values)
  return Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / values.length)
}

function digits(v) {
  const a = Math.abs(v)
  if (a >= 100) return v.toFixed(0)
  if (a >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

/** A duration given in milliseconds, in the unit that reads best. */
export function formatMs(ms) {
  if (!Number.isFinite(ms)) return String(ms)
  if (Math.abs(ms) < 1) return `${digits(ms * 1000)} µs`
  if (Math.abs(ms) < 10_000) return `${digits(ms)} ms`
  return `${digits(ms / 1000)} s`
}

/** A value in `unit`: 'ms' (durations), '%', 'MB', '/s' or a bare number. */
export function formatValue(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return 'n/a'
  switch (unit) {
    case 'ms':
      return formatMs(v)
    case '%':
      return `${v < 0.1 ? v.toFixed(3) : digits(v)} %`
    case 'MB':
      return `${digits(v)} MB`
    case '/s':
      return `${digits(v)} /s`
    default:
      return digits(v)
  }
}

/** "a–b" in `unit`, with the unit written once when both ends share it. */
export function formatRange(lo, hi, unit) {
  const a = formatValue(lo, unit)
  const b = formatValue(hi, unit)
  const [an, au] = a.split(' ')
  const [bn, bu] = b.split(' ')
  if (au !== undefined && au === bu) return `${an}–${bn} ${au}`
  return `${a}–${b}`
}

/** A markdown table from a header row and rows of strings. */
export function markdownTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}
