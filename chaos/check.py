#!/usr/bin/env python3
"""Independent judge of a chaos run. Shares no code with the lock: it only reads the journal.

Journal lines (one JSON object each; times are CLOCK_MONOTONIC milliseconds):
  config  {workers, heartbeat, stale}                     written by the driver
  stop / cont / kill  {pid, t, [ms, kind]}                written by the driver before it signals
  exit    {pid, code, signal}                             a worker process ended
  crash   {pid, code, signal}                             ... without having been killed
  end     {t}                                             the run is over
  enter   {w, pid, c, t, a, oid, rk, [tok]}               a worker entered its critical section
                                                          (a: when it began to acquire; rk: what
                                                          its acquire took over: dead/stale/...;
                                                          tok: its fencing token)
  leave   {w, pid, c, t, held}                            ... and left it
  lost    {w, pid, c, t, reason, by}                      onLeaseLost for cycle c of that process
  skip    {w, pid, c, t}                                  acquired, but lost before entering
  release-found-lost {w, pid, c, t}                       release() removed nothing: lost

A critical section (CS) runs from its enter record to its leave record, or to the kill of its
process (SIGKILL, or the end of the run). Two CS overlap when one enters before the other left.

The only overlap the design allows: one of the two was frozen (SIGSTOP) past its lease while it
held the lock - a freeze that overlaps its holding, from the start of its acquire to its
leave, and lasted at least (stale - heartbeat) ms, so its last heartbeat can be stale - AND its
library told it: through onLeaseLost, or through `held` turning false (the worker checks `held`
before every step and leaves at once when it is false; the library turns it false on waking
when the last confirmed heartbeat is too old, before its heartbeat thread has even run). Every
other overlap is a violation.

Fencing tokens (lock files and stores alike): critical sections entered later must carry
greater tokens.
A section that entered after another yet carries a smaller token acquired first and was
overtaken; that is allowed only when it was frozen past its lease (as above). Every other such
inversion, and any token given out twice, is a violation.

A holder frozen past its lease that wakes and leaves while `held` still said true, without
onLeaseLost, was never told: such overlaps are counted apart as `frozen_never_told`, and are
violations unless `--allow-untold` is given.

Exit status: 1 on any violation, crash or unreadable line; 0 otherwise.
"""
import json
import statistics
import sys


def load(path):
    records, bad = [], 0
    with open(path, 'rb') as f:
        for raw in f:
            try:
                records.append(json.loads(raw))
            except ValueError:
                bad += 1
    return records, bad


def summary(values):
    if not values:
        return None
    s = sorted(values)
    return {
        'count': len(s),
        'min': round(s[0], 1),
        'median': round(statistics.median(s), 1),
        'p95': round(s[min(len(s) - 1, int(len(s) * 0.95))], 1),
        'max': round(s[-1], 1),
    }


def judge(records, bad_lines, leftovers=0, allow_untold=False):
    config = next((r for r in records if r.get('ev') == 'config'), {})
    stale = float(config.get('stale', 400))
    heartbeat = float(config.get('heartbeat', 50))
    end_t = max((r['t'] for r in records if 't' in r), default=0.0)

    sections = {}        # (pid, c) -> dict
    lost = {}            # (pid, c) -> lost record
    kills = {}           # pid -> earliest kill time
    freezes = {}         # pid -> [[stop, cont]]
    crashes, skips, acquire_errors = [], 0, {}
    found_at_release = set()
    owner_ids = {}
    duplicate_owner_ids = []
    first_t = None

    for r in records:
        ev = r.get('ev')
        if ev == 'enter':
            key = (r['pid'], r['c'])
            sections[key] = {
                'w': r['w'], 'pid': r['pid'], 'c': r['c'], 'enter': r['t'],
                'a': r.get('a', r['t']), 'leave': None, 'oid': r.get('oid'), 'rk': r.get('rk'),
                'tok': int(r['tok']) if r.get('tok') is not None else None,
            }
            oid = r.get('oid')
            if oid is not None:
                if oid in owner_ids:
                    duplicate_owner_ids.append(oid)
                owner_ids[oid] = key
            first_t = r['t'] if first_t is None else min(first_t, r['t'])
        elif ev == 'leave':
            s = sections.get((r['pid'], r['c']))
            if s is not None:
                s['leave'] = r['t']
                # It left because its library said `held` was false.
                s['left_unheld'] = r.get('held') is False
        elif ev == 'lost':
            lost.setdefault((r['pid'], r['c']), r)
        elif ev == 'kill':
            kills.setdefault(r['pid'], r['t'])
        elif ev == 'stop':
            freezes.setdefault(r['pid'], []).append([r['t'], None])
        elif ev == 'cont':
            for f in reversed(freezes.get(r['pid'], [])):
                if f[1] is None:
                    f[1] = r['t']
                    break
        elif ev == 'crash':
            crashes.append(r)
        elif ev == 'skip':
            skips += 1
        elif ev == 'release-found-lost':
            found_at_release.add((r['pid'], r['c']))
        elif ev == 'acquire-error':
            acquire_errors[r.get('code')] = acquire_errors.get(r.get('code'), 0) + 1

    # Close what a kill (or the end of the run) cut short.
    for s in sections.values():
        if s['leave'] is None:
            s['leave'] = max(s['enter'], kills.get(s['pid'], end_t))
            s['killed'] = True
    for pid, fs in freezes.items():
        for f in fs:
            if f[1] is None:
                f[1] = kills.get(pid, end_t)

    def long_freeze(s):
        """A freeze of s's process past its lease while it held (or was acquiring) the lock."""
        found = None
        for stop, cont in freezes.get(s['pid'], []):
            if cont - stop >= stale - heartbeat and stop < s['leave'] and cont > s['a']:
                found = (stop, cont)  # the latest one: what it woke from last
        return found

    ordered = sorted(sections.values(), key=lambda s: s['enter'])
    episodes, violations, untold = {}, [], set()
    for i, x in enumerate(ordered):
        for y in ordered[i + 1:]:
            if y['enter'] >= x['leave']:
                break
            start, stop = y['enter'], min(x['leave'], y['leave'])
            if stop <= start:
                continue
            verdict = None
            for frozen, other in ((x, y), (y, x)):
                fz = long_freeze(frozen)
                told = lost.get((frozen['pid'], frozen['c']))
                if told is None and frozen.get('left_unheld'):
                    told = {'t': frozen['leave'], 'reason': 'held-false'}
                if fz and told:
                    # It lasted until the frozen holder was told, or left, whichever came first.
                    until = min(stop, max(start, told['t']))
                    verdict = {
                        'frozen': frozen['pid'], 'cycle': frozen['c'], 'other': other['pid'],
                        'freeze_ms': round(fz[1] - fz[0], 1), 'overlap_ms': round(until - start, 1),
                        'reason': told.get('reason'),
                        'told_after_wake_ms': round(told['t'] - fz[1], 1),
                    }
                    break
            if verdict is None:
                # Frozen past its lease, woke, and left (released) before its heartbeat ran:
                # the library never told it. Counted apart; a violation unless allowed.
                for frozen, other in ((x, y), (y, x)):
                    if (long_freeze(frozen) and (frozen['pid'], frozen['c']) not in lost
                            and not frozen.get('left_unheld')):
                        untold.add((frozen['pid'], frozen['c']))
                        verdict = 'untold'
                        break
                if verdict == 'untold' and allow_untold:
                    continue
                verdict = None
            if verdict:
                key = (verdict['frozen'], verdict['cycle'])
                ep = episodes.get(key)
                if ep is None:
                    episodes[key] = dict(verdict, start=start, until=start + verdict['overlap_ms'],
                                         others=1)
                else:
                    ep['start'] = min(ep['start'], start)
                    ep['until'] = max(ep['until'], start + verdict['overlap_ms'])
                    ep['others'] += 1
            else:
                violations.append({
                    'a': {k: x[k] for k in ('w', 'pid', 'c', 'enter', 'leave', 'oid')},
                    'b': {k: y[k] for k in ('w', 'pid', 'c', 'enter', 'leave', 'oid')},
                    'overlap_ms': round(stop - start, 3),
                    'a_told': (x['pid'], x['c']) in lost, 'b_told': (y['pid'], y['c']) in lost,
                    'a_frozen': long_freeze(x) is not None, 'b_frozen': long_freeze(y) is not None,
                })

    # Fencing tokens must rise in the order the sections were entered.
    token_inversions, tokens_seen, duplicate_tokens, overtaken = [], set(), [], 0
    highest = None
    for s in ordered:
        if s['tok'] is None:
            continue
        if s['tok'] in tokens_seen:
            duplicate_tokens.append(s['tok'])
        tokens_seen.add(s['tok'])
        if highest is not None and s['tok'] < highest['tok']:
            if long_freeze(s):
                overtaken += 1
            else:
                token_inversions.append({'late': {k: s[k] for k in ('pid', 'c', 'enter', 'tok')},
                                         'earlier': {k: highest[k] for k in ('pid', 'c', 'enter', 'tok')}})
        if highest is None or s['tok'] > highest['tok']:
            highest = s

    # One allowed overlap per frozen critical section, however many others came and went
    # while it was frozen: from the first other holder's enter to the frozen one being told.
    allowed = []
    for ep in episodes.values():
        ep['overlap_ms'] = round(ep['until'] - ep['start'], 1)
        del ep['start'], ep['until']
        allowed.append(ep)

    takeovers = {}
    for s in sections.values():
        if s['rk']:
            takeovers[s['rk']] = takeovers.get(s['rk'], 0) + 1
    lost_by_reason = {}
    unexplained_losses = 0
    for key, r in lost.items():
        lost_by_reason[r.get('reason')] = lost_by_reason.get(r.get('reason'), 0) + 1
        s = sections.get(key)
        any_freeze = any(stop < r['t'] for stop, _ in freezes.get(key[0], []))
        if not any_freeze:
            unexplained_losses += 1
    # How long an untold frozen holder carried on after waking, until it left.
    untold_after_wake = []
    for key in untold:
        s = sections[key]
        fz = long_freeze(s)
        if fz:
            untold_after_wake.append(max(0.0, s['leave'] - fz[1]))
    n_stops = sum(len(v) for v in freezes.values())
    long_stops = sum(1 for v in freezes.values() for a, b in v if b - a >= stale - heartbeat)
    span = (end_t - first_t) / 1000 if first_t is not None else 0

    report = {
        'duration_s': round(span, 1),
        'workers': config.get('workers'),
        'heartbeat_ms': heartbeat,
        'stale_ms': stale,
        'cycles': len(sections),
        'takeovers': {'dead': takeovers.get('dead', 0), 'stale': takeovers.get('stale', 0),
                      'invalid': takeovers.get('invalid', 0), 'other': takeovers.get('other', 0)},
        'kills': len(kills),
        'freezes': {'total': n_stops, 'past_stale': long_stops},
        'lost_leases': lost_by_reason,
        'lost_without_freeze': unexplained_losses,
        'acquired_but_lost_before_enter': skips,
        'acquire_errors': acquire_errors,
        'allowed_overlaps': {
            'count': len(allowed),
            'overlap_ms': summary([a['overlap_ms'] for a in allowed]),
            'freeze_ms': summary([a['freeze_ms'] for a in allowed]),
            'told_after_wake_ms': summary([a['told_after_wake_ms'] for a in allowed]),
            'other_holders_meanwhile': sum(a['others'] for a in allowed),
        },
        'frozen_never_told': len(untold),
        'untold_left_after_wake_ms': summary(untold_after_wake),
        'untold_but_release_said_lost': len(untold & found_at_release),
        'untold_allowed': allow_untold,
        'violations': len(violations),
        'violation_details': violations[:20],
        'duplicate_owner_ids': duplicate_owner_ids[:20],
        'tokens': {'checked': len(tokens_seen), 'overtaken_while_frozen': overtaken,
                   'inversions': token_inversions[:20], 'duplicates': duplicate_tokens[:20]},
        'crashes': [{k: c.get(k) for k in ('w', 'pid', 'code', 'signal')} for c in crashes],
        'unreadable_lines': bad_lines,
        'leftover_files': leftovers,
    }
    ok = (not violations and not crashes and not bad_lines and not duplicate_owner_ids
          and not token_inversions and not duplicate_tokens)
    report['ok'] = ok
    return report


def main(argv):
    if not argv or argv[0] in ('-h', '--help'):
        print('usage: check.py JOURNAL [--json] [--leftovers N] [--allow-untold]', file=sys.stderr)
        return 2
    as_json = '--json' in argv
    leftovers = 0
    allow_untold = '--allow-untold' in argv
    if '--leftovers' in argv:
        leftovers = int(argv[argv.index('--leftovers') + 1])
    records, bad = load(argv[0])
    report = judge(records, bad, leftovers, allow_untold)
    if as_json:
        print(json.dumps(report))
    else:
        t = report['takeovers']
        ao = report['allowed_overlaps']
        lines = [
            f"checked: {report['cycles']} critical sections over {report['duration_s']} s "
            f"({report['workers']} workers, heartbeat {report['heartbeat_ms']:g} ms, "
            f"stale {report['stale_ms']:g} ms)",
            f"takeovers: {t['dead']} of dead holders, {t['stale']} of stale (frozen) holders, "
            f"{t['invalid']} of invalid content",
            f"chaos: {report['kills']} SIGKILLs, {report['freezes']['total']} SIGSTOPs "
            f"({report['freezes']['past_stale']} past the stale threshold)",
            f"lost leases: {json.dumps(report['lost_leases'])}"
            f" ({report['lost_without_freeze']} without a freeze of their own)",
            f"allowed overlaps (frozen past the lease and told): {ao['count']}"
            + (f", overlap ms {json.dumps(ao['overlap_ms'])}" if ao['overlap_ms'] else ''),
            f"frozen holders told after waking, ms: {json.dumps(ao['told_after_wake_ms'])}",
            f"frozen past the lease, woke and left before being told: {report['frozen_never_told']}"
            + (" (allowed by --allow-untold)" if allow_untold else " (each one is a violation)")
            + (f", left after waking, ms {json.dumps(report['untold_left_after_wake_ms'])}"
               if report['untold_left_after_wake_ms'] else '')
            + f"; release() then said so for {report['untold_but_release_said_lost']}",
            f"violations: {report['violations']}",
        ]
        tk = report['tokens']
        if tk['checked']:
            lines.append(f"fencing tokens: {tk['checked']} checked, {len(tk['inversions'])} out of order"
                         f" ({tk['overtaken_while_frozen']} more overtaken while frozen past the lease),"
                         f" {len(tk['duplicates'])} given twice")
            for inv in tk['inversions']:
                lines.append('TOKEN INVERSION ' + json.dumps(inv))
        if report['crashes']:
            lines.append(f"crashes: {json.dumps(report['crashes'])}")
        if report['duplicate_owner_ids']:
            lines.append(f"duplicate owner ids: {report['duplicate_owner_ids']}")
        if report['unreadable_lines']:
            lines.append(f"unreadable journal lines: {report['unreadable_lines']}")
        if report['acquire_errors']:
            lines.append(f"acquire errors: {json.dumps(report['acquire_errors'])}")
        lines.append(f"files left in the lock directory besides the lock: {leftovers}")
        for v in report['violation_details']:
            lines.append('VIOLATION ' + json.dumps(v))
        print('\n'.join(lines))
    return 0 if report['ok'] else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
