"""Security probes of issue #14: a job never runs with more rights than the
person who last changed it.

A ``user`` login goes after a job that ``admin`` queued: it tries to change
its script (``ss_edit``, and NICOS's stock ``update`` as the NICOS GUI and
IBEX send it) and to copy it (``ss_repeat``, ``ss_duplicate``). The edits
must be refused and the copies must run as ``user`` at user level. The job
scripts print the NICOS user they run as, which comes back as messages.
"""

import re

import pytest

from nicos.core import ADMIN, USER

from nicos_scriptserver.instance.accounts import accounts_path, ensure_accounts
from nicos_scriptserver.clients.daemonclient import ServerError
from test_queue import stock_login, wait_finished

pytestmark = pytest.mark.integration

# What a job prints: who it runs as, and a tag saying whose text it is.
WHO = ('from nicos import session\n'
       'me = session.getExecutingUser()\n'
       'print(f"{tag} ran as {{me.name}} {{me.level}}")\n')
RAN_AS = re.compile(r'(\w+) ran as (\w+) (\d+)')


def ran_as(client, job_ids):
    """``{job id: (tag, user name, level)}`` from the jobs' printed lines."""
    found = {}
    for name, data in client.events:
        # Messages between jobs (e.g. why the queue is held) carry the
        # request id of NICOS's start-up script, which is not a number.
        if name == 'message' and str(data[-1]).isdigit() and \
                int(data[-1]) in job_ids:
            match = RAN_AS.search(data[3])
            if match:
                found[int(data[-1])] = (match[1], match[2], int(match[3]))
    return found


def test_user_cannot_edit_an_admin_job_and_its_copies_run_as_user(server,
                                                                    client):
    admin = server.client('admin')
    admin.call('ss_hold')
    job, = admin.call('ss_submit', {'source': WHO.format(tag='admin'),
                                    'name': 'admin job'})
    problems = []

    # ss_edit (the script server's own clients, the CLI's edit)
    try:
        client.call('ss_edit', job['id'], {'source': WHO.format(tag='edited')})
        problems.append('ss_edit by user was accepted')
    except ServerError as err:
        print('ss_edit refused:', err)
        if 'belongs to admin' not in str(err):
            problems.append(f'ss_edit refused without saying why: {err}')

    # stock update, as NICOS's GUI and IBEX send it
    with stock_login(server) as stock:
        if stock.tell('update', WHO.format(tag='updated'), 'probe',
                      str(job['id'])):
            problems.append('stock update by user was accepted')
        else:
            print('update refused:', stock.errors)
            if not any('belongs to admin' in str(error)
                       for error in stock.errors):
                problems.append(f'stock update refused without saying why: '
                                f'{stock.errors}')

    source = client.call('ss_job', job['id'])['source']
    if source != WHO.format(tag='admin'):
        problems.append(f'the admin job\'s text was changed to {source!r}')

    # Copies are the asker's own submissions.
    repeated, = client.call('ss_repeat', job['id'], 1)
    duplicated = client.call('ss_duplicate', job['id'])
    for copy in (repeated, duplicated):
        who = (copy['owner'], copy.get('changed_by'))
        if who != ('user', 'user'):
            problems.append(f'copy {copy["id"]} has owner/changed_by {who}')

    client.call('ss_release')
    ids = [job['id'], repeated['id'], duplicated['id']]
    for job_id in ids:
        wait_finished(client, job_id)
    runs = ran_as(client, ids)
    print('ran as:', runs)
    expected = {job['id']: ('admin', 'admin', ADMIN),
                repeated['id']: ('admin', 'user', USER),
                duplicated['id']: ('admin', 'user', USER)}
    for job_id, wanted in expected.items():
        if runs.get(job_id) != wanted:
            problems.append(f'job {job_id} ran as {runs.get(job_id)}, '
                            f'expected {wanted}')
    assert not problems, '\n'.join(problems)


def test_a_job_whose_changer_has_no_account_any_more_fails_at_start(
        server_factory, tmp_path):
    data = tmp_path / 'data'
    ensure_accounts(data, (('guest', 'guest'), ('user', 'user'),
                           ('admin', 'admin'), ('bob', 'user')))
    first = server_factory(datadir=data)
    bob = first.client('bob')
    bob.call('ss_hold')
    job, = bob.call('ss_submit', {'source': WHO.format(tag='bob')})
    first.stop()

    # bob's account is removed while his job waits
    path = accounts_path(data)
    text = path.read_text()
    path.write_text(re.sub(r'\[accounts\."bob"\][^\[]*', '', text))

    second = server_factory(datadir=data)
    admin = second.client('admin')
    admin.call('ss_release')
    failed = wait_finished(admin, job['id'])
    print('outcome:', failed['state'], failed.get('error'),
          ran_as(admin, [job['id']]))
    assert failed['state'] == 'failed'
    assert "no account 'bob'" in failed['error']['message']
    assert not ran_as(admin, [job['id']])
