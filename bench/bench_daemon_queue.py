"""Our daemon against stock NICOS 3.12.2, same setups, same run (prints figures).

Run: .venv/bin/python bench/bench_daemon_queue.py   (about 1.5-3 minutes)

Starts two instances side by side on free ports: ours (ScriptServerDaemon)
and a stock twin whose daemon is NICOS's own NicosDaemon (built from a copy
of setups/ in a temporary directory, see _daemon_bench.py). Clients run in
this process; event times are taken when an event arrives here
(time.perf_counter). It is not a test: nothing fails the run; each target
prints "target met" or "TARGET MISSED" (targets apply to ours; those of
submit, gap and listing are issue #20's).

Figures:
 1. submit acknowledged: ours ss_submit (durable, syntax-checked) while the
    queue is held; stock `queue` while a blocker script runs.
 2. job-to-job gap of trivial jobs: `done` event of job N to `processing`
    event of job N+1.
 3. move one waiting job with 5,000 / 10,000 waiting (ours ss_move to a
    random index; stock `rearrange` with the full id list at 5,000), events
    per move, full queue listing (ours ss_queue, stock getstatus; ours also
    with the rows turned into dicts, as our clients show them).
 4. pause request -> paused event, pause points every 10 ms; resume round
    trip (ours ss_pause/ss_resume, stock break 2/continue).
 5. cost of one pause_point() with no pause pending, timed inside the daemon.
 6. getstatus round trip with 10 clients polling concurrently (threads).
 7. black-box job vs a bare `python -c pass` spawn.
"""

import datetime
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _daemon_bench import NOISE, ForeignLoad, Row, login, pct, \
    print_table, start_ours, start_stock, wait_for_quiet  # noqa: E402

ALLOW_ROOT = os.geteuid() == 0
SCRIPT = ('set_ei(12.5)\nfor t in (10, 20, 30):\n    set_temperature(t)\n'
          '    measure(frames=1000)\n')
SUBMITS = 300
SUBMITS_AT_5000 = 50
GAP_JOBS = 201
GAP_ROUNDS = 3           # alternating ours/stock, samples pooled
MOVES = 100
LISTINGS = 30
PAUSES = 50
PP_CALLS = 100_000      # pause_point() calls in a loop outside <script>
PP_SCRIPT_CALLS = 5_000  # ... and in a loop of the job's own lines
PP_RUNS = 3
POLL_CLIENTS = 10
POLL_PERIOD = 0.010
POLL_SECONDS = 2.0
BLACKBOX_RUNS = 20
STOCK_REARRANGES = 3
STOCK_REARRANGE_BUDGET = 60.0   # s: stop measuring stock rearrange after this

PAUSE_JOB = 'for i in range(100000):\n    pause_point()\n    sleep(0.01)\n'
# Two loops each: pause_point() then an empty loop (the loop's own cost).
# The first pair runs in a function compiled as '<bench>': NICOS's trace
# function sees only '<script>' lines, so this is the cost of the call
# itself. The second pair runs as lines of the job, as in a user's script:
# every executed line is then observed (status/line events).
PP_JOB = f'''\
import time as _time
_ns = {{}}
exec(compile("""
def loop(n, pp, clock):
    a = clock()
    for _ in range(n):
        pp()
    b = clock()
    for _ in range(n):
        pass
    c = clock()
    return (b - a) / n * 1e6, (c - b) / n * 1e6
""", '<bench>', 'exec'), _ns)
_pp, _empty = _ns['loop']({PP_CALLS}, pause_point, _time.perf_counter)
_n = {PP_SCRIPT_CALLS}
_a = _time.perf_counter()
for _i in range(_n):
    pause_point()
_b = _time.perf_counter()
for _i in range(_n):
    pass
_c = _time.perf_counter()
printinfo('PPCOST %.4f %.4f %.4f %.4f' % (_pp, _empty, (_b - _a) / _n * 1e6,
                                          (_c - _b) / _n * 1e6))
'''
STOCK_SPAWN_JOB = ('import subprocess, sys\n'
                   "subprocess.run([sys.executable, '-c', 'pass'], check=True)\n")


def say(*args):
    print(*args, flush=True)


def timed_calls(client, command, args_fn, count, warmup=10):
    for i in range(warmup):
        client.call(command, *args_fn(i))
    samples = []
    for i in range(count):
        args = args_fn(i)
        t0 = time.perf_counter()
        client.call(command, *args)
        samples.append(time.perf_counter() - t0)
    return samples


def timed(call, count):
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return samples


def is_event(name, key=None, value=None):
    def pred(n, d):
        return n == name and (key is None or (d is not None and d.get(key) == value))
    return pred


def job_state(job_id, *states):
    return lambda n, d: (n == 'ss_job' and d is not None and d['id'] == job_id
                         and d['state'] in states)


class StockBlocker:
    """A stock script that keeps the stock script thread busy until ended."""

    def __init__(self, client, tmpdir: Path):
        self.client = client
        self.go = tmpdir / f'go-{random.getrandbits(32):08x}'
        source = ('import os\n'
                  'for _ in range(3000):\n'
                  f'    if os.path.exists({str(self.go)!r}):\n'
                  '        break\n'
                  '    sleep(0.2)\n')
        mark = client.mark()
        self.reqid = client.call('queue', 'blocker', source)
        client.wait_event(is_event('processing', 'reqid', self.reqid), 30, mark)

    def end(self):
        mark = self.client.mark()
        self.go.touch()
        self.client.wait_event(is_event('done', 'reqid', self.reqid), 30, mark)


# -- figures ---------------------------------------------------------------------

def fig0_disk(tmp, rows):
    """What one durable SQLite commit costs on this disk (context for ours)."""
    import sqlite3
    db = sqlite3.connect(str(tmp / 'fsync.sqlite'), isolation_level=None)
    db.execute('PRAGMA journal_mode=WAL')
    db.execute('PRAGMA synchronous=FULL')
    db.execute('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)')
    samples = []
    for i in range(220):
        t0 = time.perf_counter()
        db.execute('BEGIN')
        db.execute('INSERT INTO t (v) VALUES (?)', (SCRIPT,))
        db.execute('COMMIT')
        if i >= 20:
            samples.append(time.perf_counter() - t0)
    db.close()
    row = Row('0 SQLite WAL commit, synchronous=FULL (disk)')
    row.set('ours', samples)
    rows.append(row)


def fig1_submit(oc, sc, tmp, rows):
    row = Row('1 submit acknowledged').target('p50', 0.5)
    rows.append(row)
    oc.call('ss_hold')
    samples = timed_calls(oc, 'ss_submit',
                          lambda i: ({'source': SCRIPT, 'name': f'j{i}'},),
                          SUBMITS)
    row.set('ours', samples)
    third = SUBMITS // 3
    row.ours_note = (f'p50 of the first {third} (10..{10 + third} waiting) '
                     f'{pct(samples[:third], 50) * 1e3:.3f} ms, of the last '
                     f'{third} {pct(samples[-third:], 50) * 1e3:.3f} ms')
    oc.call('ss_clear')
    blocker = StockBlocker(sc, tmp)
    try:
        row.set('stock', timed_calls(sc, 'queue', lambda i: (f'j{i}', SCRIPT),
                                     SUBMITS))
        sc.call('unqueue', '*')
    finally:
        blocker.end()
    oc.quiet(0.2)
    sc.quiet(0.2)
    oc.forget()
    sc.forget()


def gaps_from_events(client, start, reqids):
    """done(N) -> processing(N+1) arrival gaps, for the requests *reqids*."""
    wanted = set(reqids)
    done_at = None
    gaps = []
    for stamp, name, data in client.since(start):
        if name == 'done' and data and data.get('reqid') in wanted:
            done_at = stamp
        elif name == 'processing' and data and data.get('reqid') in wanted:
            if done_at is not None:
                gaps.append(stamp - done_at)
            done_at = None
    return gaps


def fig2_gap(oc, sc, tmp, rows):
    row = Row('2 job-to-job gap (pass)').target('p50', 0.8).target('p99', 2.0)
    info = Row('2 ours ss_job done -> next ss_job running')
    daemon_side = Row('2 ours finished_at -> next started_at (daemon)')
    rows.extend([row, info, daemon_side])
    samples = {'ours': [], 'stock': [], 'info': [], 'daemon': []}
    walls = {'ours': 0.0, 'stock': 0.0}
    per_round = GAP_JOBS // GAP_ROUNDS + 1
    for _ in range(GAP_ROUNDS):
        # ours: queue held while submitting, then released
        oc.call('ss_hold')
        jobs = oc.call('ss_submit', [{'source': 'pass', 'name': f'g{i}'}
                                     for i in range(per_round)])
        ids = [job['id'] for job in jobs]
        mark = oc.mark()
        t0 = time.perf_counter()
        oc.call('ss_release')
        oc.wait_event(is_event('done', 'reqid', str(ids[-1])), 60, mark)
        walls['ours'] += time.perf_counter() - t0
        samples['ours'] += gaps_from_events(oc, mark, [str(i) for i in ids])
        done_at = None
        for stamp, name, data in oc.since(mark):
            if name == 'ss_job' and data['id'] in ids:
                if data['state'] == 'done':
                    done_at = stamp
                elif data['state'] == 'running' and done_at is not None:
                    samples['info'].append(stamp - done_at)
                    done_at = None
        history = {job['id']: job for job in
                   oc.call('ss_history', per_round + 5)}
        for prev, nxt in zip(ids, ids[1:]):
            samples['daemon'].append(history[nxt]['started_at']
                                     - history[prev]['finished_at'])
        oc.forget()
        # stock: a blocker script runs while submitting, then ends
        blocker = StockBlocker(sc, tmp)
        try:
            reqids = [sc.call('queue', f'g{i}', 'pass')
                      for i in range(per_round)]
            mark = sc.mark()
            t0 = time.perf_counter()
        finally:
            blocker.end()
        sc.wait_event(is_event('done', 'reqid', reqids[-1]), 60, mark)
        walls['stock'] += time.perf_counter() - t0
        samples['stock'] += gaps_from_events(sc, mark, reqids)
        sc.forget()
    row.set('ours', samples['ours'])
    row.set('stock', samples['stock'])
    info.set('ours', samples['info'])
    daemon_side.set('ours', samples['daemon'])
    total = GAP_ROUNDS * per_round
    row.ours_note = f'{total / walls["ours"]:.0f} jobs/s'
    row.stock_note = (f'{total / walls["stock"]:.0f} jobs/s (incl. the '
                      'blocker ending)')


def _names_since(client, mark):
    names = [name for _, name, _ in client.since(mark) if name not in NOISE]
    counts = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts


def fig3_move_ours(oc, rows, listing_row, move_rows, submit_row):
    oc.call('ss_hold')
    oc.keep_data = False
    batches = Row('3 ours ss_submit batch of 500 (0..10,000 waiting)')
    rows.append(batches)
    batch_times = []
    try:
        waiting = 0
        for target, move_row in zip((5000, 10000), move_rows):
            t0 = time.perf_counter()
            while waiting < target:
                batch = min(500, target - waiting)
                specs = [{'source': SCRIPT, 'name': f'm{waiting + i}'}
                         for i in range(batch)]
                t1 = time.perf_counter()
                oc.call('ss_submit', specs)
                batch_times.append(time.perf_counter() - t1)
                waiting += batch
            fill = time.perf_counter() - t0
            oc.quiet(0.3)
            ids = [job['id'] for job in oc.queue()['waiting']]
            assert len(ids) == target, len(ids)
            if target == 5000:
                listing_row.set('ours', timed_calls(oc, 'ss_queue', lambda i: (),
                                                    LISTINGS, warmup=3))
                rows.append(Row('3 ours listing as dicts (client.queue()), 5,000 waiting'))
                rows[-1].set('ours', timed(oc.queue, LISTINGS))
                rows.append(Row('3 ours getstatus with 5,000 waiting'))
                rows[-1].set('ours', timed_calls(oc, 'getstatus', lambda i: (),
                                                 LISTINGS, warmup=3))
            else:
                rows.append(Row('3 listing with 10,000 waiting'))
                rows[-1].set('ours', timed_calls(oc, 'ss_queue', lambda i: (),
                                                 LISTINGS, warmup=3))
            oc.quiet(0.3)
            rng = random.Random(target)
            mark = oc.mark()
            samples = timed_calls(
                oc, 'ss_move', lambda i: (rng.choice(ids), rng.randrange(target)),
                MOVES, warmup=0)
            t_ack = time.perf_counter()
            oc.quiet(0.5)
            stamps = [t for t, n, _ in oc.since(mark) if n not in NOISE]
            tail = (stamps[-1] - t_ack) if stamps else float('nan')
            counts = _names_since(oc, mark)
            move_row.set('ours', samples)
            per_move = sum(counts.values()) / MOVES
            move_row.ours_note = (f'{per_move:g} ev/move ' + ','.join(
                f'{n}:{c / MOVES:g}' for n, c in sorted(counts.items())))
            say(f'  ours @{target}: filled in {fill:.1f} s; events per move '
                f'{per_move:g} {counts}; last event {tail * 1e3:.0f} ms after '
                'the last move was acknowledged')
            move_row.events_per_move = per_move
            if target == 5000:
                # (the queue then holds 5,050: the fill to 10,000 counts them)
                submit_row.set('ours', timed_calls(
                    oc, 'ss_submit', lambda i: ({'source': SCRIPT},),
                    SUBMITS_AT_5000, warmup=0))
                waiting += SUBMITS_AT_5000
                oc.quiet(0.3)
        batches.set('ours', batch_times)
        t0 = time.perf_counter()
        oc.call('ss_clear')
        rows.append(Row('3 ours ss_clear of 10,000'))
        rows[-1].set('ours', [time.perf_counter() - t0])
        oc.quiet(0.3)
    finally:
        oc.keep_data = True
        oc.forget()


def fig3_move_stock(stock, sc, tmp, listing_row, move_row, submit_row):
    counter = login(stock, keep_events=False)
    blocker = StockBlocker(sc, tmp)
    stock_submits = []
    try:
        t0 = time.perf_counter()
        reqids = [sc.call('queue', f'm{i}', SCRIPT) for i in range(5000)]
        say(f'  stock: 5,000 queued in {time.perf_counter() - t0:.1f} s')
        sc.quiet(0.3)
        listing_row.set('stock', timed_calls(sc, 'getstatus', lambda i: (),
                                             LISTINGS, warmup=3))
        for i in range(SUBMITS_AT_5000):
            t0 = time.perf_counter()
            extra = sc.call('queue', f'x{i}', SCRIPT)
            stock_submits.append(time.perf_counter() - t0)
            sc.call('unqueue', extra)
        submit_row.set('stock', stock_submits)
        # Stock emits one 'rearranged' event (the full id list) per id in
        # the new order. The main client masks it; a second, unmasked client
        # counts what a connected GUI would receive.
        sc.call('eventmask', ['rearranged'])
        rng = random.Random(1)
        order = list(reqids)
        samples, tails, counts = [], [], []
        budget = time.perf_counter() + STOCK_REARRANGE_BUDGET
        for _ in range(STOCK_REARRANGES):
            if time.perf_counter() > budget or not counter.isconnected:
                break
            moved = order.pop(rng.randrange(len(order)))
            order.insert(rng.randrange(len(order) + 1), moved)
            before = counter.counts['rearranged']
            t0 = time.perf_counter()
            sc.call('rearrange', order)
            ack = time.perf_counter()
            samples.append(ack - t0)
            deadline = time.monotonic() + 120
            while counter.isconnected and time.monotonic() < deadline and \
                    counter.counts['rearranged'] - before < len(order):
                time.sleep(0.05)
            got = counter.counts['rearranged'] - before
            counts.append(got)
            tails.append(counter.last_arrival - t0)
            say(f'  stock rearrange @5000: ack {samples[-1] * 1e3:.0f} ms, '
                f'{got} events, last at {tails[-1] * 1e3:.0f} ms '
                f'(counting client connected: {counter.isconnected})')
        if samples:
            move_row.set('stock', samples)
            move_row.stock_note = (f'{sum(counts) / len(counts):g} ev/move '
                                   "('rearranged', each the full id list), "
                                   'last one arrived after '
                                   f'{pct(tails, 50):.1f} s')
        sc.call('eventunmask', ['rearranged'])
        sc.call('unqueue', '*')
    finally:
        blocker.end()
        counter.disconnect()
        sc.quiet(0.3)
        sc.forget()


def fig3_move(oc, sc, stock, tmp, rows):
    move5 = Row('3 move one job, 5,000 waiting').target('p50', 2.0)
    move10 = Row('3 move one job, 10,000 waiting').target('p50', 2.0)
    listing = Row('3 full listing, 5,000 waiting').target('p50', 4.0)
    submit = Row('3 submit acknowledged, 5,000 waiting')
    rows.extend([move5, move10, listing, submit])
    fig3_move_ours(oc, rows, listing, (move5, move10), submit)
    for row in (move5, move10):
        got = getattr(row, 'events_per_move', None)
        if got is not None:
            row.check(f'one event per move (got {got:g})', got == 1)
    fig3_move_stock(stock, sc, tmp, listing, move5, submit)
    move10.stock_note = 'not measured'


def fig4_pause(oc, sc, rows):
    row = Row('4 pause request -> paused event').target('p50', 6.0) \
        .target('p99', 15.0)
    resume = Row('4 resume round trip').target('p50', 2.0)
    back = Row('4 resume -> running event')
    inbreak = Row('4 ours pause -> stock status INBREAK event')
    rows.extend([row, resume, back, inbreak])
    rng = random.Random(4)

    # ours
    oc.call('ss_release')
    mark = oc.mark()
    job, = oc.call('ss_submit', {'source': PAUSE_JOB, 'name': 'pause'})
    oc.wait_event(job_state(job['id'], 'running'), 30, mark)
    time.sleep(0.1)
    pauses, resumes, backs, inbreaks = [], [], [], []
    for i in range(PAUSES + 3):
        time.sleep(rng.uniform(0.005, 0.03))
        mark = oc.mark()
        t0 = time.perf_counter()
        oc.call('ss_pause')
        t1 = oc.wait_event(job_state(job['id'], 'paused'), 10, mark)[1]
        t1b = oc.wait_event(lambda n, d: n == 'status' and d[0] == 1, 10,
                            mark)[1]
        mark = oc.mark()
        t2 = time.perf_counter()
        oc.call('ss_resume')
        t3 = time.perf_counter()
        t4 = oc.wait_event(job_state(job['id'], 'running'), 10, mark)[1]
        if i >= 3:
            pauses.append(t1 - t0)
            resumes.append(t3 - t2)
            backs.append(t4 - t2)
            inbreaks.append(t1b - t0)
    mark = oc.mark()
    oc.call('ss_abort')
    oc.wait_event(job_state(job['id'], 'aborted', 'done', 'failed'), 30, mark)
    oc.call('ss_release')
    row.set('ours', pauses)
    resume.set('ours', resumes)
    back.set('ours', backs)
    inbreak.set('ours', inbreaks)
    oc.forget()

    # stock
    mark = sc.mark()
    reqid = sc.call('queue', 'pause', PAUSE_JOB)
    sc.wait_event(is_event('processing', 'reqid', reqid), 30, mark)
    time.sleep(0.1)
    pauses, resumes, backs = [], [], []
    for i in range(PAUSES + 3):
        time.sleep(rng.uniform(0.005, 0.03))
        mark = sc.mark()
        t0 = time.perf_counter()
        sc.call('break', 2)
        t1 = sc.wait_event(lambda n, d: n == 'status' and d[0] == 1, 10, mark)[1]
        mark = sc.mark()
        t2 = time.perf_counter()
        sc.call('continue')
        t3 = time.perf_counter()
        t4 = sc.wait_event(lambda n, d: n == 'status' and d[0] == 0, 10, mark)[1]
        if i >= 3:
            pauses.append(t1 - t0)
            resumes.append(t3 - t2)
            backs.append(t4 - t2)
    mark = sc.mark()
    sc.call('stop', 2)
    sc.wait_event(is_event('done', 'reqid', reqid), 30, mark)
    row.set('stock', pauses)
    resume.set('stock', resumes)
    back.set('stock', backs)
    sc.forget()


PPCOST = re.compile(r'^PPCOST ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)$')


def _ppcost(client, mark):
    """The four figures the pause_point job printed (see PP_JOB)."""
    _, _, _, data = client.wait_event(
        lambda n, d: n == 'message' and PPCOST.match(str(d[3]).strip()),
        120, mark)
    return [float(x) for x in PPCOST.match(str(data[3]).strip()).groups()]


def _run_ppjob(client, ours_side):
    mark = client.mark()
    before = dict(client.counts)
    if ours_side:
        client.call('ss_submit', {'source': PP_JOB, 'name': 'ppcost'})
    else:
        client.call('queue', 'ppcost', PP_JOB)
    values = _ppcost(client, mark)
    client.wait_event(lambda n, d: n == 'done', 60, mark)
    time.sleep(0.2)
    received = {k: v - before.get(k, 0) for k, v in client.counts.items()
                if v - before.get(k, 0)}
    client.forget()
    return values, received


def fig5_pause_point(oc, sc, rows):
    row = Row('5 one pause_point(), no pause pending', 'us').target('p50', 5.0)
    net = Row('5   same minus empty loop iteration', 'us')
    in_script = Row('5 pause_point() as a job line (loop)', 'us')
    line = Row('5 one empty loop iteration as job line', 'us')
    rows.extend([row, net, in_script, line])
    for side, client in (('ours', oc), ('stock', sc)):
        runs = []
        for _ in range(PP_RUNS):
            values, received = _run_ppjob(client, side == 'ours')
            runs.append(values)
        pp, empty, pp_line, empty_line = zip(*runs)
        row.set(side, pp, scale=1)
        net.set(side, [a - b for a, b in zip(pp, empty)], scale=1)
        in_script.set(side, pp_line, scale=1)
        line.set(side, empty_line, scale=1)
        setattr(line, f'{side}_note',
                f'{sum(received.values())} ev/job')
        say(f'  {side}: events received during the last run '
            f'({2 * PP_SCRIPT_CALLS} loop iterations as job lines): '
            f'{dict(sorted(received.items()))}')


def _poll(procs, period, duration, count):
    """getstatus latencies from POLL_CLIENTS concurrent clients."""
    clients = [login(procs, keep_events=False) for _ in range(POLL_CLIENTS)]
    samples, errors = [], []
    lock = threading.Lock()
    start = threading.Barrier(POLL_CLIENTS)

    def run(client, phase):
        mine = []
        try:
            start.wait()
            t_next = time.perf_counter() + phase
            end = time.perf_counter() + duration
            while (t_next < end) if period else (len(mine) < count):
                if period:
                    delay = t_next - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    t_next += period
                t0 = time.perf_counter()
                client.call('getstatus')
                mine.append(time.perf_counter() - t0)
        except Exception as err:   # pragma: no cover - reported below
            errors.append(repr(err))
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=run, args=(c, i * period / POLL_CLIENTS))
               for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.disconnect()
    if errors:
        say('  poll errors:', errors[:3])
    return samples


def fig6_status(ours, stock, oc, sc, rows):
    row = Row(f'6 getstatus, {POLL_CLIENTS} clients polling every '
              f'{POLL_PERIOD * 1e3:g} ms').target('p99', 2.0)
    flood = Row(f'6 getstatus, {POLL_CLIENTS} clients back-to-back')
    single = Row('6 getstatus, one client alone')
    rows.extend([row, flood, single])
    for side, procs, client in (('ours', ours, oc), ('stock', stock, sc)):
        single.set(side, timed_calls(client, 'getstatus', lambda i: (), 200))
        row.set(side, _poll(procs, POLL_PERIOD, POLL_SECONDS, 0))
        flood.set(side, _poll(procs, 0, 0, 100))
        client.forget()


def fig7_blackbox(ours, oc, sc, rows):
    runner = Path(__file__).resolve().parent.parent / 'nicos_scriptserver' / 'runner'
    if not runner.is_dir():
        skipped = Row('7 black-box job: SKIPPED, nicos_scriptserver/runner '
                      'does not exist')
        rows.append(skipped)
        return
    # target (set below): p50 <= 2x the bare spawn p50 measured here
    run = Row('7 job processing -> done: blackbox pass')
    submit = Row('7 job submit -> done: blackbox pass')
    bare = Row('7 bare `python -c pass` spawn+wait (bench proc)')
    trivial = Row('7 job processing -> done: `pass` in daemon')
    rows.extend([run, submit, bare, trivial])
    env = ours.env
    oc.call('ss_release')

    def one(client, ours_side, source, kind=None):
        mark = client.mark()
        t0 = time.perf_counter()
        if ours_side:
            spec = {'source': source}
            if kind:
                spec['kind'] = kind
            job, = client.call('ss_submit', spec)
            reqid = str(job['id'])
        else:
            reqid = client.call('queue', 'bb', source)
        t1 = client.wait_event(is_event('processing', 'reqid', reqid), 30, mark)[1]
        t2 = client.wait_event(is_event('done', 'reqid', reqid), 30, mark)[1]
        if ours_side:
            state = client.call('ss_job', int(reqid))['state']
            if state != 'done':
                raise RuntimeError(f'black-box job {reqid} ended {state}')
        return t2 - t1, t2 - t0

    samples = {k: [] for k in ('bb', 'bbsub', 'bare', 'st', 'stsub', 'op', 'sp')}
    for i in range(BLACKBOX_RUNS + 2):
        bb, bbsub = one(oc, True, 'pass\n', 'blackbox')
        t0 = time.perf_counter()
        subprocess.run([sys.executable, '-c', 'pass'], env=env, check=True,
                       stdin=subprocess.DEVNULL)
        bare_t = time.perf_counter() - t0
        st, stsub = one(sc, False, STOCK_SPAWN_JOB)
        op, _ = one(oc, True, 'pass\n')
        sp, _ = one(sc, False, 'pass\n')
        if i >= 2:
            for key, value in zip(samples, (bb, bbsub, bare_t, st, stsub, op, sp)):
                samples[key].append(value)
    run.set('ours', samples['bb'])
    submit.set('ours', samples['bbsub'])
    bare.set('ours', samples['bare'])
    run.set('stock', samples['st'])
    submit.set('stock', samples['stsub'])
    run.stock_note = submit.stock_note = '(script: subprocess.run)'
    trivial.set('ours', samples['op'])
    trivial.set('stock', samples['sp'])
    limit = 2 * pct(samples['bare'], 50) * 1e3
    run.targets = [(f'p50 <= 2x bare spawn p50 = {limit:.1f} ms', 'p50', limit)]
    oc.forget()
    sc.forget()


def reset(oc, sc):
    """Leave both daemons idle with empty queues (ours released)."""
    oc.call('ss_clear')
    current = oc.call('ss_queue')['current']
    if current:
        mark = oc.mark()
        oc.call('ss_abort')
        oc.wait_event(job_state(current['id'], 'done', 'failed', 'aborted'),
                      60, mark)
        oc.call('ss_clear')
    oc.call('ss_release')
    status = sc.call('getstatus')
    if status['requests']:
        sc.call('unqueue', '*')
    if status['status'][0] >= 0:
        sc.call('stop', 2)
    sc.wait_idle(60)
    oc.wait_idle(60)
    oc.forget()
    sc.forget()


# -- main --------------------------------------------------------------------------

def nicos_version():
    try:
        import nicos
        return nicos.__version__ if hasattr(nicos, '__version__') else \
            nicos.nicos_version
    except Exception:   # pragma: no cover
        return '?'


def main():
    begin = time.perf_counter()
    say(f'bench_daemon_queue  {datetime.datetime.now().isoformat(timespec="seconds")}')
    say(f'machine: {platform.node()} {platform.machine()}, nproc {os.cpu_count()} '
        f'(affinity {len(os.sched_getaffinity(0))}), load {os.getloadavg()}')
    say(f'python {platform.python_version()}, NICOS {nicos_version()}')
    others = wait_for_quiet()
    say(f'other processes use {others:.2f} CPUs '
        + ('(quiet)' if others < 0.15 else '(busy: figures will be noisy)'))
    tmp = Path(tempfile.mkdtemp(prefix='ss-daemon-bench-'))
    rows = []
    noisy = []
    ours = stock = None
    clients = []
    try:
        t0 = time.perf_counter()
        # The queue engine itself, as the stock twin has it: no dry runs
        # (bench_dryrun.py measures what they cost).
        ours = start_ours(tmp / 'ours', ALLOW_ROOT, dry_run_policy='off')
        stock = start_stock(tmp / 'stock', tmp / 'stockpkg', ALLOW_ROOT)
        say(f'servers up in {time.perf_counter() - t0:.1f} s '
            f'(ours :{ours.instance.daemon_port}, stock :{stock.instance.daemon_port})')
        oc = login(ours)
        sc = login(stock)
        clients = [oc, sc]
        stock_class = sc.call('eval', 'type(session.daemon_device).__name__', False)
        ours_class = oc.call('eval', 'type(session.daemon_device).__name__', False)
        say(f'daemon classes: ours {ours_class}, stock {stock_class}')
        figures = [
            ('0 disk', lambda: fig0_disk(tmp, rows)),
            ('1 submit', lambda: fig1_submit(oc, sc, tmp, rows)),
            ('3 move/list', lambda: fig3_move(oc, sc, stock, tmp, rows)),
            ('2 gap', lambda: fig2_gap(oc, sc, tmp, rows)),
            ('4 pause', lambda: fig4_pause(oc, sc, rows)),
            ('5 pause_point', lambda: fig5_pause_point(oc, sc, rows)),
            ('6 status', lambda: fig6_status(ours, stock, oc, sc, rows)),
            ('7 black-box', lambda: fig7_blackbox(ours, oc, sc, rows)),
        ]
        for name, run in figures:
            t0 = time.perf_counter()
            say(f'figure {name} ...')
            load = ForeignLoad()
            load.start()
            try:
                run()
            except Exception:
                say(f'figure {name} FAILED:')
                traceback.print_exc()
                rows.append(Row(f'{name}: FAILED, see above'))
            try:
                reset(oc, sc)
            except Exception:
                say(f'reset after figure {name} FAILED:')
                traceback.print_exc()
            foreign = load.stop()
            if foreign > 0.2:
                noisy.append(f'{name} ({foreign:.2f} CPUs)')
            say(f'  ({time.perf_counter() - t0:.1f} s; other processes used '
                f'{foreign:.2f} of {os.cpu_count()} CPUs meanwhile'
                f'{"  -- NOISY" if foreign > 0.2 else ""})')
            for client in (oc, sc):
                if client.problems:
                    say('  client problems:', client.problems[-3:])
                    client.problems.clear()
    finally:
        for client in clients:
            try:
                if client.isconnected:
                    client.disconnect()
            except Exception:
                pass
        for procs in (stock, ours):
            if procs is not None:
                procs.stop()
    say(f'load at the end {os.getloadavg()}')
    if noisy:
        say('figures measured while other processes were busy (noisy): '
            + ', '.join(noisy))
    say()
    rows.sort(key=lambda r: r.figure.split()[0])
    print_table(rows)
    failed = any('FAILED' in row.figure for row in rows)
    if failed:
        say(f'\ntotal {time.perf_counter() - begin:.0f} s; logs kept in {tmp}')
    else:
        say(f'\ntotal {time.perf_counter() - begin:.0f} s')
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
