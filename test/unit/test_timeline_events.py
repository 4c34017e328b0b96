"""The ss_timeline events: coalesced, and sent again while times move."""

import threading

from nicos_scriptserver.daemon.timelineevents import TimelineEmitter
from nicos_scriptserver.estimates.timeline import moves_with_clock


def current(state, remaining):
    return {'current': {'state': state, 'remaining': remaining}}


def test_times_move_with_the_clock_while_paused_or_overrunning():
    assert moves_with_clock(current('paused', 30.0))
    assert moves_with_clock(current('running', 0.0))
    assert not moves_with_clock(current('running', 30.0))
    assert not moves_with_clock(current('running', None))
    assert not moves_with_clock({'current': None})


class Recorder:
    def __init__(self):
        self.sent = []
        self.cond = threading.Condition()

    def __call__(self, name, data):
        with self.cond:
            self.sent.append(data)
            self.cond.notify_all()

    def wait_for(self, count, timeout=5.0):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.sent) >= count, timeout)


def test_a_paused_job_has_its_timeline_sent_again_without_changes():
    state = {'value': current('paused', 30.0)}
    recorder = Recorder()
    emitter = TimelineEmitter(lambda: state['value'], recorder, interval=0.01,
                              refresh=0.05)
    try:
        emitter([])  # the pause: one change
        assert recorder.wait_for(4), recorder.sent
        state['value'] = current('running', 30.0)
        emitter([])  # resumed
        with recorder.cond:
            assert recorder.cond.wait_for(
                lambda: recorder.sent[-1] == state['value'], 5.0)
            count = len(recorder.sent)
        # Running on time: nothing is sent until the queue changes.
        assert not recorder.wait_for(count + 1, timeout=0.3)
    finally:
        emitter.stop()
