#!/usr/bin/python3
"""Compare CPython test-suite runs made natively and under greenld.

Called by tests/cpython/run.sh; usable on its own on a results folder:

    compare.py RESULTS_DIR KNOWN_FAILURES_FILE MODULE...
    compare.py --unfinished LOG META    (the test case a run hung/died in)

For every MODULE the folder holds MODULE.native.log / MODULE.greenld.log
(the output of `python3 -m test -v MODULE`, stdout and stderr merged) and
MODULE.native.meta / MODULE.greenld.meta ("rc=N", "seconds=N",
"stalled=0|1" lines written by run.sh; rc 124 means the hard timeout or
the stall watchdog fired), plus MODULE.MODE.2.log/.meta ... for the
reruns made after a hang or a crash.

Prints one table row per module, then every test case that passes natively
but not under greenld, split into known failures (listed in the known
failures file) and regressions. Exits 1 if there is any regression, else 0.

Per-test-case outcome, parsed from unittest's verbose output:
  pass    "... ok" or "... expected failure"
  fail    "... FAIL" or "... unexpected success"
  error   "... ERROR" (also setUpClass/setUpModule errors)
  skip    "... skipped 'reason'"
  hang    the test that was running when the hard timeout fired
  crash   the test that was running when the interpreter died
  missing never started (the run died first, or a class fixture failed)
A failing subtest makes its test fail (the worst subtest outcome wins).
The "FAIL: ..." / "ERROR: ..." blocks of unittest's closing summary are
authoritative: they catch statuses lost in interleaved test output.
"""
import fnmatch
import os
import re
import sys

# "test_foo (test.test_x.Class.test_foo)" or, for a fixture error,
# "setUpClass (test.test_x.Class)"; a subtest adds " [msg]" or " (k=v)".
# A docstring's first line may follow on the next line, before " ... ".
ANNOUNCE = re.compile(r'^(\s*)([A-Za-z_]\w*) \(((?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*)\)(.*)$')
STATUS = re.compile(r'(?:^|\.\.\. )(ok|FAIL|ERROR|expected failure|unexpected success|skipped\b.*)\s*$')
SUMMARY = re.compile(r'^(FAIL|ERROR|UNEXPECTED SUCCESS): ([A-Za-z_]\w*) \(((?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*)\)')
RANK = {'pass': 0, 'skip': 1, 'fail': 2, 'error': 3}
FIXTURES = {'setUpClass', 'tearDownClass', 'setUpModule', 'tearDownModule'}


def status_of(word):
    if word in ('ok', 'expected failure'):
        return 'pass'
    if word in ('FAIL', 'unexpected success'):
        return 'fail'
    if word == 'ERROR':
        return 'error'
    return 'skip'


def test_id(name, inner):
    # unittest 3.11 prints "name (module.Class.name)"; older ones and
    # fixtures print "name (module.Class)".
    return inner if inner.endswith('.' + name) else inner + '.' + name


def read_meta(path):
    meta = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.strip().partition('=')
                meta[k] = v
    except OSError:
        pass
    return meta


class Attempt:
    """One `python3 -m test -v MODULE` run, parsed."""

    def __init__(self, log_path, meta_path):
        self.meta = read_meta(meta_path)
        self.rc = int(self.meta.get('rc', '-1'))
        self.seconds = float(self.meta.get('seconds', '0'))
        self.stalled = self.meta.get('stalled') == '1'
        self.unfinished = None  # the test case running when the run hung or died
        self.results = {}      # test id -> status, in start order
        self.order = []
        self.module_skipped = None
        self.finished = False  # regrtest printed its closing "Tests result"
        self.fatal = None      # first "Fatal Python error" line, if any
        try:
            with open(log_path, errors='replace') as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        self._parse(lines)

    def _set(self, tid, status):
        old = self.results.get(tid)
        if old is None:
            self.order.append(tid)
        if old is None or old == 'unknown' or RANK.get(status, 0) > RANK.get(old, 0):
            self.results[tid] = status

    def _parse(self, lines):
        current = None   # test started, status not seen yet
        in_summary = False
        for line in lines:
            if line.startswith('== Tests result:') or line.startswith('Tests result:'):
                self.finished = True
            m = re.match(r'^\S+ skipped -- (.*)$', line)
            if m and not current:
                self.module_skipped = m.group(1)
            if line.startswith('Fatal Python error') and not self.fatal:
                self.fatal = line.strip()
            if line.startswith('=' * 70):
                in_summary = True
            m = SUMMARY.match(line)
            if m and in_summary:
                st = 'error' if m.group(1) == 'ERROR' else 'fail'
                self._set(test_id(m.group(2), m.group(3)), st)
                continue
            if in_summary:
                continue
            m = ANNOUNCE.match(line)
            if m:
                tid = test_id(m.group(2), m.group(3))
                rest = m.group(4)
                is_sub = bool(m.group(1)) and tid in self.results
                if not is_sub:
                    if current and self.results.get(current) == 'unknown':
                        pass  # status lost in the test's own output; decided at the end
                    current = tid
                    self._set(tid, 'unknown')
                s = STATUS.search(rest)
                if s:
                    self._set(tid, status_of(s.group(1)))
                    if not is_sub:
                        current = None
                continue
            if current:
                s = STATUS.search(line)
                if s:
                    self._set(current, status_of(s.group(1)))
                    current = None
        # A test whose status never showed: if the run finished, unittest's
        # summary would have named it had it failed, so it passed (or was
        # skipped: counted as a pass, which only errs towards no
        # regression). If the run did not finish, it is where it died.
        for tid in self.order:
            if self.results[tid] == 'unknown':
                if self.finished:
                    self.results[tid] = 'pass'
                else:
                    self.results[tid] = 'hang' if self.rc in (124, 137) else 'crash'
                    self.unfinished = tid

    def outcome(self):
        if self.module_skipped is not None and not self.results:
            return 'skipped'
        if self.rc == 124 or self.rc == 137:
            return 'STALL' if self.stalled else 'TIMEOUT'
        if self.fatal:
            return 'CRASH'
        if not self.finished:
            return 'CRASH rc=%d' % self.rc
        return {0: 'ok', 2: 'failures', 3: 'env changed', 4: 'no tests'}.get(self.rc, 'rc=%d' % self.rc)

    def counts(self):
        c = {k: 0 for k in ('pass', 'fail', 'error', 'skip', 'hang', 'crash')}
        for st in self.results.values():
            c[st] = c.get(st, 0) + 1
        return c


class Run:
    """All attempts at one module in one mode: MODULE.MODE.log, then the
    reruns MODULE.MODE.2.log ... that run.sh makes after a hang or crash
    (each without the test cases that hung or crashed before). Later
    attempts override earlier ones; a case left out of the reruns keeps
    its hang/crash status."""

    def __init__(self, results_dir, module, mode):
        self.attempts = []
        k = 1
        while True:
            base = os.path.join(results_dir, '%s.%s%s' % (module, mode, '' if k == 1 else '.%d' % k))
            if k > 1 and not os.path.exists(base + '.log'):
                break
            self.attempts.append(Attempt(base + '.log', base + '.meta'))
            k += 1
        self.results, self.order = {}, []
        for a in self.attempts:
            for tid in a.order:
                if tid not in self.results:
                    self.order.append(tid)
                self.results[tid] = a.results[tid]
        self.seconds = sum(a.seconds for a in self.attempts)

    def outcome(self):
        return '>'.join(a.outcome() for a in self.attempts)

    def counts(self):
        c = {k: 0 for k in ('pass', 'fail', 'error', 'skip', 'hang', 'crash')}
        for st in self.results.values():
            c[st] = c.get(st, 0) + 1
        return c


def load_known(path):
    known = []  # (module, pattern, reason)
    try:
        with open(path) as f:
            for raw in f:
                line, _, reason = raw.partition('#')
                parts = line.split()
                if not parts:
                    continue
                only_in_thread = parts[0] == 'in-thread:'
                if only_in_thread:
                    parts = parts[1:]
                if len(parts) != 2:
                    print('%s: bad line (want "[in-thread:] module test_id  # reason"): %s' % (path, raw.rstrip()),
                          file=sys.stderr)
                    continue
                known.append((parts[0], parts[1], reason.strip(), only_in_thread))
    except OSError:
        pass
    return known


def known_reason(known, module, tid, in_thread):
    short = tid[len('test.' + module + '.'):] if tid.startswith('test.' + module + '.') else tid
    for mod, pat, reason, only_in_thread in known:
        if only_in_thread and not in_thread:
            continue
        if mod == module and (fnmatch.fnmatchcase(tid, pat) or fnmatch.fnmatchcase(short, pat)):
            return reason or '(no reason given)'
    return None


def fmt_counts(run):
    c = run.counts()
    s = '%4d %3d %3d %3d' % (c['pass'], c['fail'], c['error'], c['skip'])
    return s


def main(argv):
    if len(argv) == 3 and argv[0] == '--unfinished':
        # For run.sh: the test case a run hung or died in, if any.
        a = Attempt(argv[1], argv[2])
        if a.unfinished:
            print(a.unfinished)
        return 0
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    results_dir, known_path, modules = argv[0], argv[1], argv[2:]
    known = load_known(known_path)
    regressions, known_hits, fixed_known = [], [], []
    both_pass = 0
    rows = []
    for module in modules:
        nat = Run(results_dir, module, 'native')
        grn = Run(results_dir, module, 'greenld')
        mod_regr = mod_known = 0
        for tid in nat.order:
            if nat.results[tid] != 'pass':
                continue
            g = grn.results.get(tid, 'missing')
            in_thread = any(a.meta.get('in_thread') == '1' for a in grn.attempts)
            reason = known_reason(known, module, tid, in_thread)
            if g == 'pass':
                both_pass += 1
                if reason:
                    fixed_known.append((module, tid, reason))
                continue
            if reason:
                known_hits.append((module, tid, g, reason))
                mod_known += 1
            else:
                regressions.append((module, tid, g))
                mod_regr += 1
        gc = grn.counts()
        extra = []
        if gc['hang']:
            extra.append('%d hung' % gc['hang'])
        if gc['crash']:
            extra.append('%d crashed' % gc['crash'])
        missing = sum(1 for t in nat.order if t not in grn.results)
        if missing:
            extra.append('%d not run' % missing)
        rows.append((module, fmt_counts(nat), '%6.0fs' % nat.seconds, nat.outcome(),
                     fmt_counts(grn), '%6.0fs' % grn.seconds, grn.outcome(),
                     str(mod_regr), str(mod_known), ', '.join(extra)))

    hdr = ('module', 'native pass fail err skip', 'time', 'run',
           'greenld pass fail err skip', 'time', 'run', 'regr', 'known', 'greenld notes')
    widths = [max(len(hdr[i]), *(len(r[i]) for r in rows)) if rows else len(hdr[i]) for i in range(len(hdr))]
    line = lambda r: '  '.join(r[i].ljust(widths[i]) for i in range(len(r))).rstrip()
    print(line(hdr))
    print('  '.join('-' * w for w in widths))
    for r in rows:
        print(line(r))

    if known_hits:
        print('\nKnown failures (pass natively, not under greenld; listed in %s):' % os.path.basename(known_path))
        for module, tid, g, reason in known_hits:
            print('  %-6s %s %s  # %s' % (g, module, tid, reason))
    if fixed_known:
        print('\nListed as known failures but passing under greenld now (remove them?):')
        for module, tid, reason in fixed_known:
            print('  %s %s  # %s' % (module, tid, reason))
    if regressions:
        print('\nREGRESSIONS (pass natively, not under greenld, not listed as known):')
        for module, tid, g in regressions:
            print('  %-7s %s %s' % (g, module, tid))
        print('\n%d regression(s). Logs: %s' % (len(regressions), results_dir))
    else:
        print('\nNo regressions. Logs: %s' % results_dir)
    # For tests/run.sh: a test case passing natively counts as passed if it
    # passes under greenld too, as failed if it is a regression; known
    # failures are listed above and counted in neither.
    print('%d passed, %d failed' % (both_pass, len(regressions)))
    return 1 if regressions else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
