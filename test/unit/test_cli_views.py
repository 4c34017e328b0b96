"""What the subcommands print, from replies shaped as the server sends them."""

import time

from nicos_scriptserver.clients.cli.views import catalog_text, history_table, \
    hold_text, job_text, param_text, queue_table, status_text, watch_frame
from nicos_scriptserver.wire.protocol import LISTING_COLUMNS

NOW = time.mktime((2024, 5, 6, 12, 0, 0, 0, 0, -1))
COLUMNS = list(LISTING_COLUMNS)


def row(job_id, name, state='queued', seconds=None, held=False, reason='',
        estimated='ok'):
    return (job_id, 'aware', name, 'user', state, None, None, None, NOW,
            estimated, seconds, 0 if estimated else None, None, held, reason,
            None, 1)


CURRENT = {'id': 7, 'name': 'scan.py', 'state': 'running', 'progress': 0.25,
           'progress_message': 'T = 10 K', 'current_line': 4}
QUEUE = {'current': CURRENT, 'columns': COLUMNS, 'held': False,
         'hold_reason': '',
         'waiting': [row(8, 'a.py', seconds=90), row(9, 'b.py', 'skipped', seconds=30)]}
TIMELINE = {'now': NOW, 'held': False, 'complete': True,
            'current': {'id': 7, 'elapsed': 125.0,
                        'expected_end': NOW + 300},
            'jobs': [{'id': 8, 'expected_start': NOW + 300},
                     {'id': 9, 'expected_start': None}],
            'queue_end': NOW + 390}


def test_status_shows_the_current_job_and_when_the_queue_ends():
    out = status_text(QUEUE, TIMELINE, NOW)
    assert 'job:          7 scan.py' in out
    assert 'progress:     25%' in out
    assert 'message:      T = 10 K' in out
    assert 'line:         4' in out
    assert 'elapsed:      2m05s' in out
    assert 'expected end: 12:05:00' in out
    assert 'queue held:   no' in out
    assert 'waiting:      2 (1 to run, 1 skipped)' in out
    assert 'queue ends:   12:06:30' in out


def test_held_back_jobs_are_not_counted_as_to_run():
    queue = dict(QUEUE, waiting=[row(8, 'a.py', held=True), row(10, 'c.py'),
                                 row(9, 'b.py', 'skipped')])
    assert field(status_text(queue, TIMELINE, NOW), 'waiting') == \
        '3 (1 to run, 1 held back, 1 skipped)'


def test_an_unknown_end_names_the_job_without_estimate():
    timeline = dict(TIMELINE, complete=False, queue_end=None, unknown_from=8)
    assert field(status_text(QUEUE, timeline, NOW), 'queue ends') == \
        'unknown: job 8 (a.py) has no estimate'
    timeline = dict(timeline, unknown_from=7)
    assert field(status_text(QUEUE, timeline, NOW), 'queue ends') == \
        'unknown: job 7 (scan.py) has no estimate'


def test_an_empty_queue_has_no_end():
    queue = dict(QUEUE, current=None, waiting=[])
    timeline = dict(TIMELINE, current=None, jobs=[], queue_end=None,
                    complete=True, unknown_from=None)
    assert field(status_text(queue, timeline, NOW), 'queue ends') == \
        'nothing to run'


def test_status_of_an_idle_held_queue_says_why_no_end_is_known():
    queue = dict(QUEUE, current=None, held=True, hold_reason='job aborted')
    timeline = dict(TIMELINE, current=None, held=True, queue_end=None)
    out = status_text(queue, timeline, NOW)
    assert out.startswith('job:        none running')
    assert 'yes (job aborted)' in out
    assert 'not while the queue is held' in out


def test_a_safety_hold_names_the_jobs_it_protects():
    held = dict(QUEUE, held=True, hold_reason='job 3 was aborted',
                hold_kind='safety')
    assert hold_text(dict(held, protected=[8])) == \
        'yes (job 3 was aborted), protects job 8'
    assert hold_text(dict(held, protected=list(range(8, 15)))) == \
        'yes (job 3 was aborted), protects jobs 8, 9, 10, 11, 12 and 2 more'
    assert hold_text(dict(held, hold_kind='manual', protected=[],
                          hold_reason='held by user')) == 'yes (held by user)'


def test_queue_table_lists_positions_estimates_and_start_times():
    lines = queue_table(QUEUE, TIMELINE, NOW).splitlines()
    assert lines[0].split() == ['pos', 'id', 'kind', 'name', 'owner', 'state',
                                'estimate', 'expected', 'start']
    assert lines[2].split() == ['0', '8', 'aware', 'a.py', 'user', 'queued',
                                '1m30s', '12:05:00']
    assert lines[3].split() == ['1', '9', 'aware', 'b.py', 'user', 'skipped',
                                '30s', '-']


def test_an_empty_queue_says_so():
    assert queue_table(dict(QUEUE, waiting=[]), TIMELINE, NOW) == \
        'the queue is empty'


def test_history_shows_outcome_how_long_it_took_and_the_failing_line():
    jobs = [{'id': 3, 'name': 'bad.py', 'owner': 'user', 'state': 'failed',
             'started_at': NOW - 725, 'paused_total': 120.0,
             'finished_at': NOW, 'error': {'type': 'ZeroDivisionError',
                                           'message': 'division by zero\nmore',
                                           'line': 2}},
            {'id': 2, 'name': 'ok.py', 'owner': 'user', 'state': 'done',
             'started_at': NOW - 45, 'finished_at': NOW, 'error': None},
            {'id': 1, 'name': 'never.py', 'owner': 'user', 'state': 'aborted',
             'finished_at': NOW, 'error': None}]
    lines = history_table(jobs, NOW).splitlines()
    assert lines[0].split()[5] == 'took'
    assert lines[2].endswith('failed   12:00:00  12m05s (paused 2m)  '
                             'line 2: ZeroDivisionError: division by zero')
    assert lines[3].split() == ['2', 'ok.py', 'user', 'done', '12:00:00',
                                '45s', '-']
    assert lines[4].split()[5] == '-'


def field(text, key):
    """The value of a ``key: value`` line of *text*."""
    line, = [line for line in text.splitlines()
             if line.startswith(key + ':')]
    return line[len(key) + 1:].strip()


def test_show_gives_one_job_with_hold_reason_report_and_error():
    job = {'id': 5, 'name': 'hot', 'kind': 'aware', 'owner': 'user',
           'changed_by': 'user', 'state': 'queued', 'held': True,
           'hold_reason': 'dry run: T_sample: 500 K is above 300 K (line 1)',
           'queued_at': NOW, 'started_at': None, 'finished_at': None,
           'error': None, 'source': 'set_temperature(500)\n',
           'estimate': {'state': 'failed', 'seconds': None, 'sources': {},
                        'devices': {'T_sample': {'min': '295', 'max': '500',
                                                 'last': '500'}},
                        'problems': [{'kind': 'limit', 'line': 1,
                                      'message': '500 K is above 300 K'}]}}
    out = job_text(job, NOW)
    assert field(out, 'state') == 'held back'
    assert field(out, 'held back') == \
        'dry run: T_sample: 500 K is above 300 K (line 1)'
    assert '  failed, estimate -' in out
    assert '  moves T_sample over 295..500, ends at 500' in out
    assert '  limit: line 1: 500 K is above 300 K' in out
    assert out.endswith('script:\nset_temperature(500)')

    failed = dict(job, state='failed', held=False, started_at=NOW - 3,
                  finished_at=NOW, error={'type': 'ValueError', 'message': 'x',
                                          'line': 1, 'traceback': 'Tb\n'})
    out = job_text(failed, NOW)
    assert 'held back' not in out
    assert field(out, 'took') == '3s'
    assert field(out, 'error') == 'line 1: ValueError: x'
    assert 'traceback:\nTb\nscript:' in out


def test_history_says_who_else_last_changed_a_job():
    jobs = [{'id': 4, 'name': 'a.py', 'owner': 'user', 'changed_by': 'admin',
             'state': 'done', 'finished_at': NOW, 'error': None},
            {'id': 3, 'name': 'b.py', 'owner': 'user', 'changed_by': 'user',
             'state': 'done', 'finished_at': NOW, 'error': None}]
    lines = history_table(jobs, NOW).splitlines()
    assert ' user (changed by admin) ' in lines[2]
    assert lines[3].split()[:3] == ['3', 'b.py', 'user']


def test_parameters_show_type_unit_limits_choices_and_default():
    energy = {'name': 'energy', 'type': 'float', 'unit': 'meV', 'min': 0.5,
              'max': 100, 'min_inclusive': True, 'max_inclusive': True,
              'has_default': False}
    assert param_text(energy) == 'energy: float [meV] (0.5..100)'
    frames = {'name': 'frames', 'type': 'int', 'nullable': True, 'min': 0,
              'min_inclusive': False, 'max': None, 'has_default': True,
              'default': None}
    assert param_text(frames) == 'frames: int | None (> 0) = None'
    mode = {'name': 'mode', 'type': 'str', 'choices': ['fast', 'slow'],
            'has_default': True, 'default': 'fast'}
    assert param_text(mode) == "mode: str {'fast', 'slow'} = 'fast'"


def test_catalog_lists_commands_with_their_summary_and_errors():
    catalog = {'commands': [{'name': 'get_ei', 'params': [],
                             'summary': 'The incident energy.\nMore.'}],
               'errors': [{'file': 'broken.py', 'line': 3,
                           'message': 'invalid syntax'}]}
    assert catalog_text(catalog).splitlines() == [
        'get_ei()', '    The incident energy.',
        'error in broken.py:3: invalid syntax']


def test_watch_frame_has_a_progress_bar_and_the_expected_ends():
    lines = watch_frame(QUEUE, TIMELINE, NOW).splitlines()
    assert lines[0] == 'job 7 scan.py  [running]'
    assert lines[1].startswith('[#######.') and lines[1].endswith(' 25%')
    assert lines[2] == 'T = 10 K'
    assert lines[3] == 'elapsed 2m05s, expected end 12:05:00'
    assert lines[4] == 'waiting 2, held no, queue ends 12:06:30'


def test_status_says_how_long_the_job_is_paused_and_what_is_held_back():
    paused = dict(CURRENT, state='paused', paused_for=125.0)
    queue = dict(QUEUE, current=paused, waiting=[
        row(8, 'a.py'), row(9, 'hot', held=True, estimated=None,
                            reason='dry run: 500 K is above 300 K (line 1)')])
    out = status_text(queue, TIMELINE, NOW)
    assert field(out, 'state') == 'paused for 2m05s'
    assert field(out, 'job 9') == \
        'held back because dry run: 500 K is above 300 K (line 1)'
    table = queue_table(queue, TIMELINE, NOW).splitlines()
    assert table[-1] == ('job 9 is held back because dry run: 500 K is above '
                         '300 K (line 1); "confirm 9" runs it anyway')
    assert 'paused for 2m05s' in watch_frame(queue, TIMELINE, NOW)
    shown = dict(paused, kind='aware', owner='user', source='x = 1\n')
    assert field(job_text(shown, NOW), 'state') == 'paused for 2m05s'


def test_a_black_box_job_shows_progress_by_time():
    box = dict(CURRENT, kind='blackbox', progress=None,
               progress_by_time=0.42, paused_for=None)
    queue = dict(QUEUE, current=box)
    assert field(status_text(queue, TIMELINE, NOW), 'progress') == \
        '42% of its estimated time'
    assert '42% of its estimated time' in watch_frame(queue, TIMELINE, NOW)
    assert field(status_text(QUEUE, TIMELINE, NOW), 'progress') == '25%'


def test_audit_lists_when_who_where_what_and_why():
    from nicos_scriptserver.clients.cli.views import audit_table
    entries = [{'seq': 2, 'at': NOW, 'who': 'admin',
                'client': 'ss_move from 127.0.0.1, connection 3',
                'action': 'move', 'jobs': [5], 'why': 'job 5: moved it to '
                                                      'position 0'},
               {'seq': 1, 'at': NOW, 'who': 'server', 'client': '',
                'action': 'start_next', 'jobs': [], 'why': ''}]
    lines = audit_table(entries, NOW).splitlines()
    assert lines[0].split() == ['when', 'who', 'client', 'action', 'jobs', 'why']
    assert lines[2].split()[:9] == ['12:00:00', 'admin', 'ss_move', 'from',
                                    '127.0.0.1,', 'connection', '3', 'move', '5']
    assert lines[2].endswith('job 5: moved it to position 0')
    assert lines[3].split() == ['12:00:00', 'server', '-', 'start_next', '-', '-']
    assert audit_table([], NOW) == 'no queue changes recorded'
