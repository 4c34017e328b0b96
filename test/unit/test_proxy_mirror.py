"""The proxy's mirror of the daemon (sans-I/O), against a model daemon.

The model does what NICOS's daemon does to ``getstatus`` and
``getmessages`` and sends the events NICOS sends for it; everything goes
through pickle and `plainpickle`, as over the daemon link. The property:
whatever the events, wherever the seed falls among them (its reply
overtaking events, or events overtaking it), the mirror serves nothing
until two seeds agree, and then what a fresh ``getstatus`` says.
"""

import pickle

import pytest
from hypothesis import given, settings, strategies as st

from nicos_scriptserver.proxy.classic import decode_event
from nicos_scriptserver.proxy.mirror import MIRROR_EVENTS, Mirror, \
    message_count

ACTION, INFO, WARNING = 21, 20, 30


def wire(data):
    """*data* as it arrives over the daemon link."""
    return decode_event(pickle.dumps(data, 2))


class ModelDaemon:
    """NICOS's daemon as far as getstatus, getmessages and events go.
    After each event, what getstatus and getmessages would answer."""

    def __init__(self):
        self.state = {
            'status': (-1, -1), 'script': '', 'eta': (1, 0), 'scriptname': '',
            'watch': {}, 'requests': [], 'mode': 'master',
            'setups': (['startup', 'demo'], ['demo']), 'devices': ['T', 'm1'],
            'devicefailures': {}}
        self.messages = []
        self.events = []
        self.snapshots = [self.snapshot()]
        self.clock = 1700000000.0
        self.ids = 0
        self.skipped = []

    def snapshot(self):
        return wire(self.state), wire(self.messages)

    def emit(self, name, data):
        self.events.append((name, wire(data)))
        self.snapshots.append(self.snapshot())

    @property
    def requests(self):
        return self.state['requests']

    def log(self, text, level=INFO):
        self.clock += 0.001
        message = ['nicos', self.clock, level, text + '\n', None, '7']
        if level != ACTION:
            self.messages.append(message)
        self.emit('message', message)

    # -- what clients and scripts do -------------------------------------

    def queue(self, script):
        self.ids += 1
        request = {'reqid': str(self.ids), 'name': f'job {self.ids}',
                   'script': script, 'user': 'user', 'job': self.ids}
        self.requests.append(request)
        self.emit('request', request)
        self.log(f'job {self.ids} queued')

    def unqueue(self, index):
        if self.requests:
            request = self.requests.pop(index % len(self.requests))
            self.emit('blocked', [request['reqid']])

    def skip(self, index):
        if self.requests:
            request = self.requests.pop(index % len(self.requests))
            self.skipped.append(request)
            self.emit('blocked', [request['reqid']])

    def unskip(self, index):
        if self.skipped:
            request = self.skipped.pop(index % len(self.skipped))
            self.requests.append(request)
            self.emit('request', request)

    def rearrange(self, seed):
        order = sorted(self.requests, key=lambda r: hash((seed, r['reqid'])))
        self.state['requests'] = order
        self.emit('rearranged', [r['reqid'] for r in order])

    def update(self, index, script):
        if self.requests:
            i = index % len(self.requests)
            self.requests[i] = dict(self.requests[i], script=script)
            self.emit('updated', self.requests[i])

    def start(self):
        if self.requests and self.state['status'][0] < 0:
            request = self.requests.pop(0)
            self.state.update(script=request['script'],
                              scriptname=request['name'], eta=(1, -1))
            self.emit('processing', request)
            self.set_status(0, 1)

    def set_status(self, status, line):
        self.state['status'] = (status, line)
        self.emit('status', (status, line))

    def line(self, line):
        if self.state['status'][0] >= 0:
            self.set_status(self.state['status'][0], line)

    def pause(self):
        if self.state['status'][0] == 0:
            self.set_status(1, self.state['status'][1])

    def finish(self):
        if self.state['status'][0] >= 0:
            self.emit('done', {'reqid': 'x', 'success': True})
            self.set_status(-1, self.state['status'][1])

    def eta(self, value):
        self.state['eta'] = (3, value)
        self.emit('eta', (3, value))

    def watch(self, value):
        self.state['watch'] = {'T.read()': value}
        self.emit('watch', self.state['watch'])

    def mode(self, mode):
        self.state['mode'] = mode
        self.emit('mode', mode)


texts = st.text(max_size=12)
index = st.integers(0, 50)
steps = st.one_of(
    st.tuples(st.just('queue'), texts),
    st.tuples(st.just('unqueue'), index),
    st.tuples(st.just('skip'), index),
    st.tuples(st.just('unskip'), index),
    st.tuples(st.just('rearrange'), index),
    st.tuples(st.just('update'), index, texts),
    st.tuples(st.just('start')),
    st.tuples(st.just('line'), st.integers(1, 99)),
    st.tuples(st.just('pause')),
    st.tuples(st.just('finish')),
    st.tuples(st.just('eta'), st.floats(0, 1e9)),
    st.tuples(st.just('watch'), st.integers()),
    st.tuples(st.just('mode'), st.sampled_from(['master', 'slave'])),
    st.tuples(st.just('log'), texts, st.sampled_from([INFO, WARNING, ACTION])),
)


def run(steps_):
    daemon = ModelDaemon()
    for name, *args in steps_:
        getattr(daemon, name)(*args)
    return daemon


def seeded(daemon, mark_at, reply_at, received, kept=1000):
    """A mirror that marked its seed after *mark_at* events, whose replies
    describe the daemon after *reply_at* events and arrived after
    *received* events; then every other event."""
    mirror = Mirror(kept=kept)
    events = daemon.events
    for event in events[:mark_at]:
        mirror.apply(*event)
    marks = mirror.mark(), mirror.mark()
    for event in events[mark_at:received]:
        mirror.apply(*event)
    status, messages = daemon.snapshots[reply_at]
    mirror.seed_status(marks[0], status)
    mirror.seed_messages(marks[1], messages, kept)
    for event in events[received:]:
        mirror.apply(*event)
    return mirror


@settings(max_examples=400, deadline=None)
@given(st.lists(steps, max_size=40), st.data())
def test_any_events_around_a_seed_end_as_a_fresh_getstatus(steps_, data):
    daemon = run(steps_)
    count = len(daemon.events)
    mark_at = data.draw(st.integers(0, count), label='mark')
    # The daemon answers after the request was sent; the reply overtakes
    # events before it or comes after events after it.
    reply_at = data.draw(st.integers(mark_at, count), label='reply')
    received = data.draw(st.integers(mark_at, count), label='received')
    mirror = seeded(daemon, mark_at, reply_at, received)
    assert mirror.status() is None   # one seed: not confirmed yet
    status, messages = daemon.snapshots[-1]
    # A reply that overtook events which are then applied again can leave
    # the first seed wrong in a way no event shows (a request re-queued
    # after a skip lands at its old place): the second seed then disagrees,
    # the mirror still answers nothing, and a third seed confirms.
    if not mirror.seed_status(mirror.mark(), status):
        assert mirror.differences and mirror.status() is None
        assert mirror.seed_status(mirror.mark(), status)
    assert mirror.status() == status
    for count in (1, 10, 1000):
        assert mirror.messages(count) == messages[-count:]
    assert mirror.messages(None) == messages


@settings(max_examples=200, deadline=None)
@given(st.lists(steps, max_size=30))
def test_a_confirmed_mirror_follows_every_event(steps_):
    daemon = run(steps_)
    mirror = seeded(daemon, 0, 0, 0)
    mirror.reset()
    marks = mirror.mark(), mirror.mark()
    mirror.seed_status(marks[0], daemon.snapshots[0][0])
    mirror.seed_messages(marks[1], daemon.snapshots[0][1], 1000)
    assert mirror.seed_status(mirror.mark(), daemon.snapshots[0][0])
    for i, event in enumerate(daemon.events):
        version = mirror.version
        mirror.apply(*event)
        # After each event, what getstatus would have said at that moment;
        # a new answer has a new version (the cache of encoded replies).
        assert (mirror.status(), mirror.messages(None)) == daemon.snapshots[i + 1]
        if daemon.snapshots[i + 1] != daemon.snapshots[i]:
            assert mirror.version > version


def confirmed_mirror(daemon=None):
    daemon = daemon or ModelDaemon()
    mirror = seeded(daemon, 0, 0, 0)
    assert mirror.seed_status(mirror.mark(), daemon.snapshots[-1][0])
    return daemon, mirror


def test_one_reply_overtaking_events_is_not_served_until_a_second_agrees():
    daemon = ModelDaemon()
    mirror = Mirror()
    marks = mirror.mark(), mirror.mark()
    daemon.queue('a')
    daemon.queue('b')
    # The reply already has both requests, whose events are still on
    # their way; the mirror does not answer from it alone.
    mirror.seed_status(marks[0], daemon.snapshots[-1][0])
    mirror.seed_messages(marks[1], daemon.snapshots[-1][1], 1000)
    assert mirror.status() is None and mirror.messages(1) is None
    for event in daemon.events:
        mirror.apply(*event)
    assert mirror.seed_status(mirror.mark(), daemon.snapshots[-1][0])
    assert [r['reqid'] for r in mirror.status()['requests']] == ['1', '2']
    # The log messages that came with the seed and again as events are kept once.
    assert mirror.messages(None) == daemon.messages


def test_a_seed_that_disagrees_is_taken_and_asked_again():
    daemon, mirror = confirmed_mirror()
    # A field no event describes changes: the next seed disagrees.
    daemon.state['devicefailures'] = {'m1': 'not reachable'}
    mirror.doubt()
    assert mirror.status() is None and mirror.wants_status
    assert not mirror.seed_status(mirror.mark(), wire(daemon.state))
    assert mirror.differences == ['devicefailures']   # for the log
    assert mirror.compared   # a real difference: the feed waits longer
    assert mirror.seed_status(mirror.mark(), wire(daemon.state))
    assert mirror.status()['devicefailures'] == {'m1': 'not reachable'}
    assert mirror.differences == []


def test_a_seed_sent_before_a_doubt_does_not_confirm():
    daemon, mirror = confirmed_mirror()
    mark = mirror.mark()
    mirror.doubt()   # e.g. a client's queue() was sent meanwhile
    assert not mirror.seed_status(mark, daemon.snapshots[-1][0])
    assert not mirror.compared   # says nothing: the feed asks again soon
    assert mirror.seed_status(mirror.mark(), daemon.snapshots[-1][0])


@pytest.mark.parametrize('event', [
    ('setup', (['startup', 'demo', 'sample'], ['demo', 'sample'])),
    ('device', ('create', ['Sample'])),
    ('updated', {'reqid': '99', 'script': 'x'}),   # no such request
    ('blocked', ['99']),
    ('rearranged', ['99']),
    ('status', None),   # not a status
    ('processing', ['not', 'a', 'request']),
])
def test_events_the_mirror_cannot_follow_exactly_make_it_ask(event):
    _, mirror = confirmed_mirror()
    mirror.apply(*event)
    assert mirror.status() is None and mirror.wants_status


def test_a_new_experiment_asks_for_the_messages_again():
    daemon, mirror = confirmed_mirror()
    daemon.log('before')
    mirror.apply(*daemon.events[-1])
    mirror.apply('experiment', ('p1234', 'user'))
    assert mirror.wants_messages and mirror.messages(1) is None
    mark = mirror.mark()
    mirror.seed_messages(mark, [], 1000)
    assert mirror.messages(None) == []


def test_messages_beyond_what_is_kept_come_from_the_daemon():
    daemon = ModelDaemon()
    for i in range(8):
        daemon.log(f'm{i}')
    mirror = seeded(daemon, 0, 0, 0, kept=5)
    assert mirror.seed_status(mirror.mark(), daemon.snapshots[-1][0])
    assert mirror.messages(5) == daemon.messages[-5:]
    assert mirror.messages(6) is None and mirror.messages(None) is None
    # NICOS answers getmessages(0) with everything: so does the daemon.
    assert mirror.messages(0) is None and mirror.messages(-3) is None


def test_actions_are_not_kept_as_the_daemon_does_not():
    daemon, mirror = confirmed_mirror()
    daemon.log('moving', ACTION)
    daemon.log('moved')
    for event in daemon.events:
        mirror.apply(*event)
    assert [m[3] for m in mirror.messages(None)] == ['moved\n']


def test_too_many_events_during_a_seed_void_it():
    daemon = ModelDaemon()
    mirror = Mirror(log_limit=3)
    mark = mirror.mark()
    for i in range(4):
        daemon.line(i)
        mirror.apply('status', (0, i))
    assert not mirror.seed_status(mark, daemon.snapshots[-1][0])
    assert mirror.wants_status and not mirror._log


def test_a_status_that_is_not_one_is_refused():
    mirror = Mirror()
    with pytest.raises(ValueError):
        mirror.seed_status(mirror.mark(), ['not', 'a', 'status'])
    with pytest.raises(ValueError):
        mirror.seed_messages(mirror.mark(), {'no': 'list'}, 10)
    assert mirror.wants_status and mirror.wants_messages


def test_it_asks_for_every_event_it_follows():
    assert {'status', 'request', 'processing', 'blocked', 'updated',
            'rearranged', 'message'} <= MIRROR_EVENTS


# -- getmessages' argument -----------------------------------------------------

@pytest.mark.parametrize('arg, understood', [
    ('*', (True, None)), ('10', (True, 10)), (' 7 ', (True, 7)), (3, (True, 3)),
    ('-2', (True, -2)), ('x', (False, None)), (True, (False, None)),
    (2.5, (False, None)), (None, (False, None)), ([1], (False, None))])
def test_getmessages_counts_are_read_as_nicos_reads_them(arg, understood):
    assert message_count(arg) == understood
