"""The order of the stock events a job's start brings, in a real daemon
with many clients: a client that follows the events alone (the NICOS GUI,
the proxy's mirror) must never get a job's ``request`` after its
``processing``, or it lists the running job as waiting. (Before the
fix, 1 to 5 jobs of 60 did so in most runs.)"""

import pytest

from nicos.clients.base import ConnectionData

from test_holds import StockEvents
from waiting import wait_until

pytestmark = pytest.mark.integration

WATCHERS = 30
JOBS = 60


@pytest.fixture(scope='module')
def server_args():
    # No dry runs: a submitted job starts at once.
    return {'dry_run_policy': 'off'}


class Recorder(StockEvents):
    """A stock client that also keeps the order of the job events."""

    def __init__(self):
        StockEvents.__init__(self)
        self.order = []

    def signal(self, name, *args):
        if name in ('request', 'processing'):
            self.order.append((name, args[0]['reqid']))
        StockEvents.signal(self, name, *args)


def connected(server, client):
    client.connect(ConnectionData('127.0.0.1', server.instance.daemon_port,
                                  'user', server.passwords['user']))
    assert client.isconnected, client.errors
    client.start(client.ask('getstatus'))
    return client


def test_a_job_that_starts_at_once_is_never_listed_after_it_started(server,
                                                                     client):
    watchers = [connected(server, StockEvents()) for _ in range(WATCHERS)]
    recorder = connected(server, Recorder())
    try:
        client.call('ss_release')
        ids = []
        for n in range(JOBS):
            job, = client.call('ss_submit', {'kind': 'aware',
                                             'name': f'order {n}',
                                             'source': 'pass'})
            ids.append(str(job['id']))
            wait_until(lambda: client.call('ss_job', job['id'])['state']
                       == 'done')
        wait_until(lambda: all(('processing', reqid) in recorder.order
                               for reqid in ids))
        order = recorder.order
        late = [reqid for reqid in ids if ('request', reqid) in
                order[order.index(('processing', reqid)):]]
        assert late == []
        reply = client.call('getstatus')
        expected = (reply['status'][0], [(r['reqid'], r['name'])
                                         for r in reply['requests']])

        def differing():
            return [view for view in (w.view() for w in [recorder, *watchers])
                    if view != expected]
        try:
            wait_until(lambda: not differing(), 10)
        except AssertionError:
            assert differing() == []
    finally:
        for watcher in [recorder, *watchers]:
            watcher.disconnect()
