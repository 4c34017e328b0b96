"""Nested progress: a command's own progress counts within the job's step."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nicos_scriptserver.app.progress import ProgressStack


def test_a_command_inside_a_step_counts_within_it():
    stack = ProgressStack()
    assert stack.step(2, 5, 'point 2 of 5') == (pytest.approx(0.2),
                                                 'point 2 of 5')
    stack.enter()  # measure()
    assert stack.progress(0.5, 'block 10 of 20') == (
        pytest.approx(0.3), 'point 2 of 5 · block 10 of 20')
    assert stack.leave() == (pytest.approx(0.3), 'point 2 of 5')
    assert stack.step(3, 5, 'point 3 of 5') == (pytest.approx(0.4),
                                                 'point 3 of 5')


def test_steps_nest_in_steps():
    stack = ProgressStack()
    stack.step(2, 4)              # the job: 0.25..0.5
    stack.enter()
    stack.step(3, 5, 'point 3 of 5')   # scan_temperature: 0.35..0.40
    stack.enter()
    fraction, message = stack.progress(0.5, 'block 2 of 4')
    assert fraction == pytest.approx(0.375)
    assert message == 'step 2 of 4 · point 3 of 5 · block 2 of 4'


def test_a_second_command_in_a_step_goes_on_from_the_first():
    stack = ProgressStack()
    stack.step(1, 2)
    stack.enter()
    stack.progress(0.5)
    stack.leave()
    stack.enter()
    assert stack.progress(0.0)[0] == pytest.approx(0.25)
    assert stack.progress(1.0)[0] == pytest.approx(0.5)


def test_without_steps_a_command_reports_as_it_always_did():
    stack = ProgressStack()
    for _ in range(2):  # measure(); measure()
        stack.enter()
        assert stack.progress(0.5, 'block 1 of 2') == (0.5, 'block 1 of 2')
        assert stack.leave() == (0.5, '')


def test_a_command_that_reports_nothing_sends_nothing_when_it_returns():
    stack = ProgressStack()
    stack.step(1, 3)
    stack.enter()
    assert stack.leave() is None
    assert stack.leave() is None  # the job's own scope never ends


steps = st.integers(1, 20).flatmap(
    lambda total: st.tuples(st.integers(1, total), st.just(total)))
fractions = st.floats(0.0, 1.0)
operations = st.lists(st.one_of(
    st.tuples(st.just('step'), steps),
    st.tuples(st.just('progress'), fractions),
    st.tuples(st.just('enter'), st.none()),
    st.tuples(st.just('leave'), st.none())), max_size=40)


@given(steps, operations)
def test_whatever_commands_report_the_job_stays_in_its_step(job_step, ops):
    number, total = job_step
    stack = ProgressStack()
    stack.step(number, total)
    stack.enter()
    depth = 1
    for name, value in ops:
        if name == 'step':
            report = stack.step(*value)
        elif name == 'progress':
            report = stack.progress(value)
        elif name == 'enter':
            stack.enter()
            depth += 1
            continue
        elif depth > 1:
            report = stack.leave()
            depth -= 1
        else:
            continue  # the command scope of the job's step stays open
        if report is not None:
            fraction = report[0]
            assert 0.0 <= fraction <= 1.0
            assert (number - 1) / total - 1e-9 <= fraction <= \
                number / total + 1e-9


@given(steps, st.lists(st.one_of(
    st.lists(fractions, max_size=5).map(sorted),
    st.integers(1, 5)), max_size=6))
def test_commands_reporting_forward_move_the_job_forward(job_step, commands):
    """Each command reports either rising fractions, or steps 1..n each
    with a nested command that reports halfway and done."""
    number, total = job_step
    stack = ProgressStack()
    seen = [stack.step(number, total)[0]]
    for command in commands:
        stack.enter()
        if isinstance(command, list):
            seen += [stack.progress(f)[0] for f in command]
        else:
            for point in range(1, command + 1):
                seen.append(stack.step(point, command)[0])
                stack.enter()
                seen += [stack.progress(0.5)[0], stack.progress(1.0)[0]]
                seen.append(stack.leave()[0])
        report = stack.leave()
        if report is not None:
            seen.append(report[0])
    assert all(a <= b + 1e-12 for a, b in zip(seen, seen[1:])), seen
    assert all(0.0 <= f <= 1.0 for f in seen)
