"""The crash rounds' zero-loss check: which waiting lists are one
unacknowledged request away from what the client was told."""

import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'integration'))

from crashloop import _one_change_away  # noqa: E402

jobs = st.lists(st.integers(0, 5), max_size=7, unique=True).map(
    lambda ids: [[i, 'queued', f'src{i}'] for i in ids])


def every_move(before):
    for source in range(len(before)):
        rest = before[:source] + before[source + 1:]
        for target in range(len(before)):
            yield rest[:target] + [before[source]] + rest[target:]


@given(jobs, st.data())
def test_a_list_with_one_job_moved_is_one_move_away(before, data):
    moves = list(every_move(before)) or [[]]
    after = data.draw(st.sampled_from(moves))
    assert _one_change_away(before, after, 'move', set())


@given(jobs, jobs)
def test_a_move_is_accepted_exactly_when_some_single_move_gives_it(before, after):
    assert _one_change_away(before, after, 'move', set()) == \
        (after in list(every_move(before)) or before == after == [])


@given(jobs, jobs)
def test_a_remove_is_accepted_exactly_when_one_job_is_gone(before, after):
    expected = any(before[:i] + before[i + 1:] == after for i in range(len(before)))
    assert _one_change_away(before, after, 'remove', set()) == expected
