"""Tables, durations and progress bars of the command-line client."""

import time

from nicos_scriptserver.clients.cli.formatting import clock, duration, key_values, \
    progress_bar, table


def test_table_aligns_columns_under_an_underlined_header():
    out = table(['id', 'name'], [[1, 'scan'], [12, None]]).splitlines()
    assert out == ['id  name',
                   '--  ----',
                   '1   scan',
                   '12  -']


def test_table_with_no_rows_is_just_the_header():
    assert table(['id', 'state'], []).splitlines() == ['id  state',
                                                       '--  -----']


def test_durations_read_as_seconds_minutes_or_hours():
    assert duration(None) == '-'
    assert duration(4.6) == '5s'
    assert duration(725) == '12m05s'
    assert duration(3 * 3600 + 125) == '3h02m'


def test_clock_shows_the_date_only_for_another_day():
    now = time.mktime((2024, 5, 6, 12, 0, 0, 0, 0, -1))
    assert clock(now + 65, now) == '12:01:05'
    assert clock(now + 86400, now) == '2024-05-07 12:00'
    assert clock(None, now) == '-'


def test_progress_bar_fills_with_the_fraction():
    assert progress_bar(0.5, width=10) == '[#####.....]  50%'
    assert progress_bar(1.0, width=4) == '[####] 100%'
    # Out-of-range reports do not break the bar.
    assert progress_bar(1.7, width=4) == '[####] 100%'
    assert progress_bar(None, width=4) == '[....]    ?'


def test_key_values_align_the_values():
    assert key_values([('job', 3), ('expected end', None)]).splitlines() == [
        'job:          3',
        'expected end: -']
