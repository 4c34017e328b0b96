"""Holds as unchanged clients see them: NICOS's own client library straight
to the daemon, and the IBEX GUI's message flow through the proxy.

Every scenario runs with both. Stock clients know a status and a list of
requests: a queue that waits for a person must show as paused (INBREAK,
with the clients' continue button), say why in the log, and go on with
``continue``. With the stock client, what its events say must agree with
``getstatus`` after every step (a client, or the proxy, may follow the
events alone).
"""

import os
import signal
import threading
import uuid

import pytest

from nicos.clients.base import ConnectionData, NicosClient
from nicos.protocols.daemon import STATUS_INBREAK, STATUS_RUNNING

from test_proxy import connect, credentials
from waiting import wait_until

pytestmark = pytest.mark.integration

LONG = ('for i in range(2000):\n'
        '    pause_point()\n'
        '    sleep(0.02)\n')
# Its dry run fails: the demo's T_sample goes up to 300 K.
TOO_HOT = 'set_temperature(1000)\n'
CLIENTS = ('stock', 'ibex')


@pytest.fixture(scope='module')
def server_args():
    return {'proxy': True}


class StockEvents(NicosClient):
    """NICOS's client library, keeping a copy of the status and requests
    built from its events alone, as a GUI (or the proxy's mirror) does."""

    def __init__(self):
        NicosClient.__init__(self, lambda *args: None)
        self.lock = threading.Lock()
        self.errors = []
        self.status = None
        self.requests = []

    def start(self, status: dict) -> None:
        with self.lock:
            self.status = status['status'][0]
            self.requests = [dict(r) for r in status['requests']]

    def signal(self, name, *args):
        data = args[0] if args else None
        if name in ('error', 'broken', 'failed'):
            self.errors.append(data)
        with self.lock:
            if self.status is None:
                return
            requests = self.requests
            if name == 'status':
                self.status = data[0]
            elif name == 'request':
                requests.append(dict(data))
            elif name == 'updated':
                self.requests = [dict(data) if r['reqid'] == data['reqid']
                                 else r for r in requests]
            elif name == 'blocked':
                self.requests = [r for r in requests if r['reqid'] not in data]
            elif name == 'processing':
                self.requests = [r for r in requests
                                 if r['reqid'] != data['reqid']]
            elif name == 'rearranged':
                index = {r['reqid']: r for r in requests}
                self.requests = [index[i] for i in data]

    def view(self):
        with self.lock:
            return self.status, [(r['reqid'], r['name']) for r in self.requests]


class Stock:
    """The NICOS GUI's and console's library, straight to the daemon."""

    def __init__(self, server):
        self.client = StockEvents()
        self.client.connect(ConnectionData(
            '127.0.0.1', server.instance.daemon_port, 'user',
            server.passwords['user']))
        assert self.client.isconnected, self.client.errors
        self.client.start(self.status())

    def queue(self, name, code):
        reqid = self.client.run(code, name)
        assert reqid, self.client.errors
        return reqid

    def status(self):
        return self.client.ask('getstatus')

    def command(self, name, *args):
        assert self.client.tell(name, *args), self.client.errors

    def messages(self):
        return [m[3] for m in self.client.ask('getmessages', 50)]

    def check_events(self):
        """The events tell what getstatus tells (once they have arrived)."""
        seen = []

        def agree():
            reply = self.status()
            seen[:] = [self.client.view(), (reply['status'][0], [
                (r['reqid'], r['name']) for r in reply['requests']])]
            return seen[0] == seen[1]
        try:
            wait_until(agree, 10)
        except AssertionError:
            raise AssertionError(f'the events say {seen[0]}, getstatus '
                                 f'{seen[1]}') from None

    def close(self):
        assert not self.client.errors
        self.client.disconnect()


class Ibex:
    """What the IBEX GUI sends through the proxy (docs/PROXY.md): it polls
    getstatus and getmessages and sees no events."""

    def __init__(self, server):
        user, token = credentials(server)
        self.client = connect(server, timeout=5.0)
        assert self.client.login(user, token, encrypt=False) == 10

    def queue(self, name, code):
        return self.client.call('queue', name, code)

    def status(self):
        return self.client.call('getstatus')

    def command(self, name, *args):
        self.client.call(name, *args)

    def messages(self):
        return [m[3] for m in self.client.call('getmessages', '10')]

    def check_events(self):
        pass

    def close(self):
        self.client.close()


def open_client(kind, server):
    return Stock(server) if kind == 'stock' else Ibex(server)


def requests(gui):
    return [(r['reqid'], r['name']) for r in gui.status()['requests']]


def job(client, reqid):
    return client.call('ss_job', int(reqid))


def wait_state(client, reqid, *states, timeout=30):
    return wait_until(lambda: job(client, reqid)['state'] in states and
                      job(client, reqid), timeout)


def wait_running(gui, client, reqid):
    wait_state(client, reqid, 'running')
    wait_until(lambda: gui.status()['status'][0] == STATUS_RUNNING)


def script(name):
    """A short script that no other test queues."""
    return f'print({name!r}, {uuid.uuid4().hex!r})'


def ran_once_in_order(client, reqids):
    """Each of *reqids* finished (done) once, in this order, and no other job
    ran their scripts."""
    jobs = [job(client, reqid) for reqid in reqids]
    assert all(j['state'] == 'done' for j in jobs)
    scripts = {j['source'] for j in jobs}
    history = client.call('ss_history', 50)
    ran = [j['id'] for j in reversed(history) if j['source'] in scripts]
    assert ran == [j['id'] for j in jobs]


@pytest.mark.parametrize('kind', CLIENTS)
def test_a_job_queued_after_a_stop_into_an_empty_queue_runs(kind, server, client):
    gui = open_client(kind, server)
    long = gui.queue('long.py', LONG)
    wait_running(gui, client, long)
    gui.command('stop', 2)
    wait_state(client, long, 'aborted')
    wait_until(lambda: gui.status()['status'][0] < 0)
    assert requests(gui) == []
    gui.check_events()

    after = gui.queue('after.py', script('after the stop'))
    wait_state(client, after, 'done')
    wait_until(lambda: gui.status()['status'][0] < 0 and not requests(gui))
    assert not client.queue()['held']
    gui.check_events()
    gui.close()


@pytest.mark.parametrize('kind', CLIENTS)
def test_a_stop_with_jobs_waiting_shows_paused_and_continue_runs_them_once(
        kind, server, client):
    gui = open_client(kind, server)
    long = gui.queue('long.py', LONG)
    waiting = [gui.queue('d.py', script('d')), gui.queue('b.py', script('b'))]
    wait_running(gui, client, long)
    gui.command('stop', 2)
    wait_state(client, long, 'aborted')
    wait_until(lambda: gui.status()['status'][0] == STATUS_INBREAK)
    assert requests(gui) == [(waiting[0], 'd.py'), (waiting[1], 'b.py')]
    assert any('continue runs them' in m for m in gui.messages())
    gui.check_events()
    queue = client.queue()
    assert (queue['held'], queue['hold_kind']) == (True, 'safety')
    assert queue['protected'] == [int(i) for i in waiting]

    # A job queued now waits behind the ones the stop held; stopping what
    # the clients show as paused keeps them all waiting.
    later = gui.queue('later.py', script('later'))
    assert gui.status()['status'][0] == STATUS_INBREAK
    gui.command('stop', 2)
    assert gui.status()['status'][0] == STATUS_INBREAK
    assert [reqid for reqid, _ in requests(gui)] == waiting + [later]
    gui.check_events()
    gui.command('continue')
    for reqid in waiting + [later]:
        wait_state(client, reqid, 'done')
    wait_until(lambda: gui.status()['status'][0] < 0 and not requests(gui))
    ran_once_in_order(client, waiting + [later])
    assert any('released' in m and 'continue' in m for m in gui.messages())
    gui.check_events()
    gui.close()


@pytest.mark.parametrize('kind', CLIENTS)
def test_a_restart_after_sigkill_shows_paused_and_continue_runs_the_jobs_once(
        kind, server_factory, tmp_path):
    running = server_factory(datadir=tmp_path / 'data', proxy=kind == 'ibex')
    client = running.client('user')
    gui = open_client(kind, running)
    long = gui.queue('long.py', LONG)
    waiting = [gui.queue('d.py', script('d')), gui.queue('b.py', script('b'))]
    wait_running(gui, client, long)

    os.kill(running.processes.procs['daemon'].pid, signal.SIGKILL)
    running.processes.procs['daemon'].wait(30)
    running.processes.start_daemon()
    client = running.client('user')
    if kind == 'stock':
        gui.client.errors.clear()   # its connection broke with the daemon
        gui = open_client(kind, running)

    def status():
        try:
            return gui.status()['status'][0]
        except Exception:   # the proxy's link to the daemon is reopening
            return None
    wait_until(lambda: status() == STATUS_INBREAK)
    assert requests(gui) == [(waiting[0], 'd.py'), (waiting[1], 'b.py')]
    assert job(client, long)['state'] == 'interrupted'
    assert any('restart' in m and 'continue runs them' in m
               for m in gui.messages())
    gui.check_events()

    gui.command('continue')
    for reqid in waiting:
        wait_state(client, reqid, 'done')
    wait_until(lambda: gui.status()['status'][0] < 0 and not requests(gui))
    ran_once_in_order(client, waiting)
    assert job(client, long)['state'] == 'interrupted'
    gui.check_events()
    gui.close()


@pytest.mark.parametrize('kind', CLIENTS)
def test_a_held_back_job_is_listed_with_its_reason_and_an_update_releases_it(
        kind, server, client):
    gui = open_client(kind, server)
    hot = gui.queue('hot.py', TOO_HOT)
    wait_until(lambda: job(client, hot)['held'])
    # Through the proxy, getstatus comes from its mirror, which learns of a
    # hold the daemon decided by itself from the daemon's event, a moment
    # later; the IBEX GUI shows it on its next poll.
    (reqid, name), = wait_until(
        lambda: (listed := requests(gui)) and listed[0][1].startswith('[')
        and listed)
    assert reqid == hot
    assert name.startswith('[held: dry run: ') and name.endswith('] hot.py')
    assert 'T_sample' in name
    # Nothing else can run: the clients show it as paused, and say why.
    wait_until(lambda: gui.status()['status'][0] == STATUS_INBREAK)
    assert any(f'job {hot}' in m and 'held back' in m for m in gui.messages())
    gui.check_events()

    # An edit that fixes it releases it once its new dry run passes.
    gui.command('update', 'set_temperature(296)\n', 'cooler', hot)
    done = wait_state(client, hot, 'done')
    assert not done['held'] and done['estimate']['state'] == 'ok'
    wait_until(lambda: gui.status()['status'][0] < 0 and not requests(gui))
    gui.check_events()
    gui.close()


@pytest.mark.parametrize('kind', CLIENTS)
def test_continue_confirms_a_held_back_first_job(kind, server, client):
    gui = open_client(kind, server)
    hot = gui.queue('hot.py', TOO_HOT)
    wait_until(lambda: job(client, hot)['held'])
    wait_until(lambda: gui.status()['status'][0] == STATUS_INBREAK)
    gui.command('continue')
    # Confirmed, it runs as its user insists, and fails as its dry run said.
    failed = wait_state(client, hot, 'failed')
    assert failed['started_at'] and 'T_sample' in failed['error']['message']
    assert any(f'job {hot}' in m.lower() and 'confirmed' in m
               for m in gui.messages())
    wait_until(lambda: gui.status()['status'][0] < 0 and not requests(gui))
    gui.check_events()
    gui.close()
