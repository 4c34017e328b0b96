"""The proxy's mirror of the daemon and its event socket, with a real
daemon and proxy: subscribers get the daemon's events, and ``getstatus``
through the proxy is the daemon's own after every change."""

import json
import os
import random
import signal
import time

import pytest
import zmq
from nicos.clients.proto.zeromq import ClientTransport
from nicos.protocols.daemon.classic import JsonSerializer

from nicos_scriptserver.clients.proxyclient import ProxyError
from test_proxy import VIEWER_LOGIN, connect, credentials
from waiting import wait_until

pytestmark = pytest.mark.integration

# A job that runs until stopped and can pause at each round.
RUNNER = 'for i in range(100000):\n    pause_point()\n    sleep(0.05)\n'


@pytest.fixture(scope='module')
def server_args():
    # No dry runs: a submitted job is runnable (and announced) at once.
    return {'proxy': True, 'proxy_args': ['--viewer-login', VIEWER_LOGIN],
            'dry_run_policy': 'off'}


class Events:
    """A SUB socket on the proxy's event socket, as NICOS's ZeroMQ
    client opens it; what it received, in order."""

    def __init__(self, server, topic=b'ALL'):
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.linger = 0
        self.sock.connect(f'tcp://127.0.0.1:{server.instance.proxy_port + 1}')
        self.sock.setsockopt(zmq.SUBSCRIBE, topic)
        self.seen = []

    def receive(self, timeout):
        """The next event as (name, data), or None after *timeout* s."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        frames = self.sock.recv_multipart()
        assert len(frames) == 3 and frames[0] == b'ALL', frames
        event = frames[1].decode(), json.loads(frames[2])
        self.seen.append(event)
        return event

    def wait(self, name, test=lambda data: True, timeout=30.0):
        """The first event *name* (from now) whose data passes *test*."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = self.receive(left)
            if event and event[0] == name and test(event[1]):
                return event[1]
        raise AssertionError(f'no {name} event in {timeout} s; last seen: '
                             f'{[n for n, _ in self.seen[-20:]]}')

    def close(self):
        self.sock.close(0)


def subscribed(server, direct, *streams):
    """Wait until every stream gets events (a SUB's subscription reaches
    the proxy a moment after it connects): a held job comes and goes."""
    def all_receive():
        job, = direct.call('ss_submit', {'kind': 'aware', 'name': 'probe',
                                         'source': 'pass'})
        direct.call('ss_remove', job['id'])
        return all(stream.receive(0.5) for stream in streams)
    wait_until(all_receive, timeout=30)
    # What else the probes sent, until no stream gets anything for a
    # while; then every stream starts from the same event on. (Draining
    # one stream after another left an event that came late in the first
    # stream only.)
    while any([stream.receive(0.2) for stream in streams]):
        pass
    for stream in streams:
        stream.seen.clear()


def plain(value):
    """A daemon reply as a client of the proxy sees it (JSON)."""
    return json.loads(json.dumps(value))


def answered_while_stopped(server, daemon, timeout=15.0):
    """``getstatus`` through the proxy while the daemon is stopped.

    Right after a change the mirror may still be checking itself against
    the daemon (it lets the daemon answer then): a try with no answer is
    repeated, the daemon running in between, until *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        probe = connect(server, timeout=1.0)
        try:
            probe.login(VIEWER_LOGIN, 'any')
            daemon.send_signal(signal.SIGSTOP)
            try:
                return probe.call('getstatus')
            except ProxyError:
                assert time.monotonic() < deadline, \
                    'the proxy never answered getstatus without the daemon'
            finally:
                daemon.send_signal(signal.SIGCONT)
        finally:
            probe.close()


@pytest.fixture
def clients(server):
    """(direct user client, proxy writer, proxy viewer), queue emptied."""
    direct = server.client('user')
    current = direct.queue()['current']
    if current:
        direct.call('ss_abort')
        wait_until(lambda: not direct.queue()['current'])
    direct.call('ss_clear')
    direct.call('ss_hold')
    user, token = credentials(server)
    writer, viewer = connect(server), connect(server)
    writer.login(user, token)
    viewer.login(VIEWER_LOGIN, 'any')
    yield direct, writer, viewer
    writer.close()
    viewer.close()


def test_getstatus_through_the_proxy_is_the_daemons_after_every_change(
        server, clients):
    direct, writer, viewer = clients
    events, viewer_events = Events(server), Events(server)
    seed = int.from_bytes(os.urandom(4), 'big')
    rng = random.Random(seed)
    daemon = server.processes.procs['daemon']
    try:
        subscribed(server, direct, events, viewer_events)
        direct.call('ss_release')
        runner, = direct.call('ss_submit', {'kind': 'aware', 'name': 'runner',
                                            'source': RUNNER})
        events.wait('processing', lambda d: d['reqid'] == str(runner['id']))
        direct.call('ss_pause')
        events.wait('status', lambda d: d[0] == 1)
        skipped, unskipped, since_proxy_write, log = [], [], 2, []

        def requests():
            return direct.call('getstatus')['requests']

        def submit(via):
            job, = via.call('ss_submit', {'kind': 'aware',
                                          'name': f'job {rng.random():.3f}',
                                          'source': f'sleep({rng.randint(1, 9)})'})
            return 'request', lambda d: d['reqid'] == str(job['id'])

        def queue():
            reqid = writer.call('queue', f'ibex {rng.random():.3f}.py', 'sleep(1)')
            return 'request', lambda d: d['reqid'] == reqid

        def edit(via_proxy):
            request = rng.choice(requests())
            # Unique: an edit to the script a job has already changes
            # nothing a stock client shows, and no 'updated' is sent.
            script = f'sleep({rng.randint(10, 99)})  # edit {len(log)}'
            if via_proxy:
                writer.call('update', script, 'from the test', request['reqid'])
            else:
                direct.call('ss_edit', int(request['reqid']), {'source': script})
            return 'updated', lambda d: d['reqid'] == request['reqid'] \
                and d['script'] == script

        def move():
            waiting = requests()
            request = rng.choice(waiting[1:])
            direct.call('ss_move', int(request['reqid']), 'top')
            return 'rearranged', lambda d: d[0] == request['reqid']

        def rearrange():
            order = [r['reqid'] for r in requests()][::-1]
            writer.call('rearrange', order)
            return 'rearranged', lambda d: d == order

        def skip():
            request = rng.choice(requests())
            direct.call('ss_skip', int(request['reqid']))
            skipped.append(request['reqid'])
            return 'blocked', lambda d: d == [request['reqid']]

        def unskip():
            reqid = skipped.pop(rng.randrange(len(skipped)))
            direct.call('ss_unskip', int(reqid))
            unskipped.append(reqid)
            return 'request', lambda d: d['reqid'] == reqid

        def remove(via_proxy):
            reqid = rng.choice(requests())['reqid']
            if via_proxy:
                writer.call('unqueue', reqid)
            else:
                direct.call('ss_remove', int(reqid))
            return 'blocked', lambda d: d == [reqid]

        def resume_and_pause(via_proxy):
            if via_proxy:
                writer.call('continue')
            else:
                direct.call('ss_resume')
            events.wait('status', lambda d: d[0] == 0)
            if via_proxy:
                writer.call('break', 2)
            else:
                direct.call('ss_pause')
            return 'status', lambda d: d[0] == 1

        for step in range(30):
            waiting = len(requests())
            choices = [('submit', True), ('submit', False), ('queue', True),
                       ('resume_and_pause', True), ('resume_and_pause', False)]
            if waiting:
                choices += [('edit', True), ('edit', False), ('skip', False),
                            ('remove', True), ('remove', False)]
            if waiting > 1:
                choices += [('move', False), ('rearrange', True)]
            if skipped:
                choices.append(('unskip', False))
            name, via_proxy = rng.choice(choices)
            log.append(name + (' (proxy)' if via_proxy else ''))
            operation = {'submit': lambda: submit(writer if via_proxy else direct),
                         'queue': queue, 'edit': lambda: edit(via_proxy),
                         'move': move, 'rearrange': rearrange, 'skip': skip,
                         'unskip': unskip, 'remove': lambda: remove(via_proxy),
                         'resume_and_pause': lambda: resume_and_pause(via_proxy),
                         }[name]
            event, test = operation()
            context = f'seed {seed}, steps {log}'
            # Its event reaches subscribers, viewers included ...
            try:
                events.wait(event, test)
                viewer_events.wait(event, test)
            except AssertionError as missed:
                raise AssertionError(f'{missed} ({context})') from None
            if name == 'unskip' and requests()[-1]['reqid'] != unskipped[-1]:
                # ... an unskipped job goes back to its place in the queue.
                order = [r['reqid'] for r in requests()]
                events.wait('rearranged', lambda d: d == order)
                viewer_events.wait('rearranged', lambda d: d == order)
            # ... and then the proxy says what the daemon says.
            expected = plain(direct.call('getstatus'))
            assert viewer.call('getstatus') == expected, context
            assert writer.call('getstatus') == expected, context
            since_proxy_write = 0 if via_proxy else since_proxy_write + 1
            if since_proxy_write >= 2:
                # Answered without the daemon: stopped, it answers nothing.
                assert answered_while_stopped(server, daemon) == expected, \
                    context
        assert [n for n, _ in viewer_events.seen] == [n for n, _ in events.seen]
    finally:
        events.close()
        viewer_events.close()
        direct.call('ss_abort')


def test_messages_come_from_the_mirror_once_they_arrived(server, clients):
    direct, writer, viewer = clients
    events = Events(server)
    try:
        subscribed(server, direct, events)
        direct.call('ss_release')
        job, = direct.call('ss_submit', {'kind': 'aware', 'name': 'printer',
                                         'source': 'print("mirror marker")'})
        events.wait('message', lambda d: 'mirror marker' in d[3])
        events.wait('done', lambda d: d['reqid'] == str(job['id']))

        def agree():
            ours = viewer.call('getmessages', '10')
            return ours == plain(direct.call('getmessages', '10')) and ours
        messages = wait_until(agree, timeout=10)
        assert any('mirror marker' in m[3] for m in messages)
        daemon = server.processes.procs['daemon']
        daemon.send_signal(signal.SIGSTOP)
        try:
            assert viewer.call('getmessages', '10') == messages
            assert viewer.call('getmessages', 3) == messages[-3:]
        finally:
            daemon.send_signal(signal.SIGCONT)
        # What the mirror does not keep comes from the daemon.
        assert viewer.call('getmessages', '*') == \
            plain(direct.call('getmessages', '*'))
    finally:
        events.close()


def test_a_nicos_zeromq_client_gets_the_events(server, clients):
    """NICOS's own ZeroMQ transport, as its clients use it: a REQ socket
    on the port, a SUB socket on the port + 1 subscribed to ALL."""
    direct, _, _ = clients
    user, token = credentials(server)

    class Connection:
        host, port = '127.0.0.1', server.instance.proxy_port

    transport = ClientTransport(JsonSerializer())
    try:
        transport.connect(Connection)   # sends getbanner
        ok, banner = transport.recv_reply()
        assert ok and banner['serializer'] == 'json'
        transport.send_command('authenticate', [{'login': user, 'passwd': token,
                                                 'display': ''}])
        assert transport.recv_reply() == (True, {'user_level': 10})
        transport.connect_events(Connection)
        transport.event_sock.rcvtimeo = 1000

        def events_arrive():
            job, = direct.call('ss_submit', {'kind': 'aware', 'name': 'stock',
                                             'source': 'pass'})
            direct.call('ss_remove', job['id'])
            reqid, seen = str(job['id']), []
            try:
                while True:
                    name, data, blobs = transport.recv_event()
                    assert blobs == []
                    if name == 'request' and data['reqid'] == reqid:
                        seen.append(name)
                    if name == 'blocked' and data == [reqid]:
                        return seen + [name] if seen else False
            except zmq.Again:   # subscribed after some of them
                return False
        assert wait_until(events_arrive, timeout=30) == ['request', 'blocked']
    finally:
        transport.disconnect()


def test_events_go_to_viewers_and_stop_with_their_last_login(server_factory):
    running = server_factory(proxy=True, proxy_args=['--viewer-login', 'watcher'],
                             dry_run_policy='off')
    direct = running.client('user')
    direct.call('ss_hold')
    events = Events(running)
    try:
        with connect(running) as viewer:
            # Only a viewer is logged in, and gets them.
            assert viewer.login('watcher', 'any') == 0
            subscribed(running, direct, events)
            viewer.call('quit')
            # Its account's last login has ended: so have its events.
            job, = direct.call('ss_submit', {'kind': 'aware', 'source': 'pass'})
            assert events.receive(2) is None
    finally:
        events.close()


def test_the_mirror_follows_a_daemon_restart(server_factory):
    running = server_factory(proxy=True, dry_run_policy='off')
    user, token = credentials(running)
    events = Events(running)
    try:
        with connect(running) as writer:
            writer.login(user, token)
            direct = running.client('user')
            direct.call('ss_hold')
            direct.call('ss_submit', {'kind': 'aware', 'name': 'kept',
                                      'source': 'pass'})
            subscribed(running, direct, events)
            direct.disconnect()
            daemon = running.processes.procs['daemon']
            daemon.kill()
            daemon.wait()
            running.processes.start_daemon()
            direct = running.client('user')

            def same():
                try:
                    return writer.call('getstatus') == plain(direct.call('getstatus'))
                except Exception:   # the proxy's links are not back yet
                    return False
            wait_until(same, timeout=30)
            # Events flow again, through the same subscription.
            job, = direct.call('ss_submit', {'kind': 'aware', 'name': 'after',
                                             'source': 'pass'})
            events.wait('request', lambda d: d['reqid'] == str(job['id']))
            assert writer.call('getstatus') == plain(direct.call('getstatus'))
    finally:
        events.close()
