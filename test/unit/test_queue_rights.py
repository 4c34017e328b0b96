"""Issue #14 in the queue core: a job never runs with more rights than the
person who last changed it.

Who submitted a job (``owner``) and who last changed what it runs
(``changed_by``), who may edit it, whom it runs as, how copies change
hands, and old queue files gaining ``changed_by``. Then a hypothesis state
machine: random operations by random accounts, checked against a model of
who last made each job what it is.
"""

import json
import re
import sqlite3

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant,
                                 precondition, rule)

from nicos_scriptserver.app.spec import parse_spec
from nicos_scriptserver.queue import (Caller, InvalidTransition, InvalidValue,
                                      JobNotFound, JobQueue, NotEditable,
                                      NotPermitted, QueueMachine, StoreError,
                                      UnknownAccount, runs_as)
from nicos_scriptserver.queue.rights import ADMIN
from nicos_scriptserver.queue.store import SCHEMA_VERSION

USER = 10
ALICE = Caller('alice', USER)
BOB = Caller('bob', USER)
ROOT = Caller('root', ADMIN)
LEVELS = {'alice': USER, 'bob': USER, 'root': ADMIN}


def spec(source='measure(1)'):
    return parse_spec({'kind': 'aware', 'source': source})


@pytest.fixture
def m():
    machine = QueueMachine()
    yield machine
    assert machine.data().problems() == []


def refused(error, message):
    return pytest.raises(error, match=f'^{re.escape(message)}$')


def who(job):
    return job.owner, job.changed_by


def test_admin_level_is_nicos_admin_level():
    from nicos.core import ADMIN as NICOS_ADMIN
    assert ADMIN == NICOS_ADMIN


def test_a_submitted_job_was_last_changed_by_its_submitter(m):
    job, = m.submit(spec(), 'alice', 1.0).result
    assert who(job) == ('alice', 'alice')
    assert job.to_dict()['changed_by'] == 'alice'


def test_another_users_edit_is_refused_and_changes_nothing(m):
    job, = m.submit(spec(), 'root', 1.0).result
    for changes in ({'source': 'evil()'}, {'name': 'x'},
                    {'calls': [{'command': 'x', 'args': {}}]}):
        with refused(NotPermitted, 'job 1 belongs to root: only root or an '
                                   'admin account may edit it'):
            m.edit(job.id, by=BOB, **changes)
    assert m.get(job.id) == job


def test_owner_edits_own_job_and_admin_edits_anyones(m):
    job, = m.submit(spec(), 'alice', 1.0).result
    assert who(m.edit(job.id, by=ALICE, name='mine').result) == \
        ('alice', 'alice')
    edited = m.edit(job.id, by=ROOT, source='measure(2)').result
    assert who(edited) == ('alice', 'root')
    # The owner's next edit, of the name only, makes it run as her again.
    assert who(m.edit(job.id, by=ALICE, name='again').result) == \
        ('alice', 'alice')
    # Still her job: bob may not edit it although root changed it.
    with pytest.raises(NotPermitted, match='belongs to alice'):
        m.edit(job.id, by=BOB, name='x')


def test_an_edit_that_changes_nothing_by_the_last_changer_is_no_change(m):
    job, = m.submit(spec(), 'alice', 1.0).result
    assert m.edit(job.id, by=ALICE, source=job.source).events == []


def test_rights_are_checked_after_the_job_is_found_waiting(m):
    with refused(JobNotFound, 'no job 9 in the queue'):
        m.edit(9, by=BOB, name='x')
    job, = m.submit(spec(), 'root', 1.0).result
    m.start(job.id, 2.0)
    with pytest.raises(NotEditable):
        m.edit(job.id, by=BOB, name='x')


def test_copies_belong_to_and_run_as_who_asked_for_them(m):
    job, = m.submit(spec(), 'root', 1.0).result
    m.edit(job.id, by=ROOT, name='root job')
    copies = m.repeat(job.id, 2, 2.0, owner='bob').result
    assert [who(copy) for copy in copies] == [('bob', 'bob')] * 2
    assert who(m.duplicate(job.id, 3.0, owner='alice').result) == \
        ('alice', 'alice')
    # Made by the queue itself (no one asked): the original's rights.
    assert who(m.duplicate(job.id, 4.0).result) == ('root', 'root')
    with refused(InvalidValue, 'a job needs an owner (a user name)'):
        m.repeat(job.id, 1, 5.0, owner='')


def test_requeue_belongs_to_and_runs_as_the_requeuer(m):
    job, = m.submit(spec(), 'root', 1.0).result
    m.start(job.id, 2.0)
    m.finish('failed', 3.0)
    new = m.requeue(job.id, 4.0, owner='bob').result
    assert who(new) == ('bob', 'bob')
    edited = m.requeue(job.id, 5.0, source='x()', owner='alice').result
    assert who(edited) == ('alice', 'alice')
    assert who(m.get(job.id)) == ('root', 'root')


def test_a_job_runs_as_its_last_changer_at_that_accounts_level_now(m):
    job, = m.submit(spec(), 'root', 1.0).result
    assert runs_as(job, LEVELS.get) == Caller('root', ADMIN)
    demoted = {**LEVELS, 'root': USER}
    assert runs_as(job, demoted.get) == Caller('root', USER)
    alices = m.submit(spec(), 'alice', 2.0).result[0]
    alices = m.edit(alices.id, by=ROOT, name='x').result
    assert runs_as(alices, LEVELS.get) == Caller('root', ADMIN)


def test_a_job_of_a_removed_account_does_not_run(m):
    job, = m.submit(spec(), 'carol', 1.0).result
    with refused(UnknownAccount,
                 "job 1 was last changed by 'carol', but there is no account "
                 "'carol' any more; it does not run with a guessed user "
                 'level: re-queue it to run it as yourself'):
        runs_as(job, LEVELS.get)


# -- old queue files -----------------------------------------------------------

# A queue file as version 1 wrote it: jobs without changed_by.
FORMAT_1 = """
CREATE TABLE jobs (id INTEGER PRIMARY KEY, state TEXT NOT NULL, pos INTEGER,
                   hist INTEGER, data TEXT NOT NULL);
CREATE INDEX jobs_history ON jobs (hist) WHERE hist IS NOT NULL;
CREATE INDEX jobs_live ON jobs (id) WHERE hist IS NULL;
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
INSERT INTO meta VALUES ('next_id', '4');
"""


def old_job(job_id, owner, state, **values):
    return dict({
        'id': job_id, 'kind': 'aware', 'source': f'measure({job_id})',
        'owner': owner, 'state': state, 'created': 1.0, 'name': '',
        'calls': None, 'batch_id': None, 'batch_index': None,
        'batch_size': None, 'queued_at': 1.0, 'started_at': None,
        'finished_at': None, 'paused_total': 0.0, 'paused_since': None,
        'progress': None, 'progress_message': '', 'current_line': None,
        'result': None, 'error': None, 'requeued_from': None,
        'estimate': None, 'held': False, 'hold_reason': ''}, **values)


def format_1_file(path):
    db = sqlite3.connect(path)
    db.executescript(FORMAT_1)
    rows = [(1, 'done', None, 0, old_job(1, 'root', 'done', started_at=2.0,
                                         finished_at=3.0)),
            (2, 'queued', 10, None, old_job(2, 'root', 'queued')),
            (3, 'queued', 20, None, old_job(3, 'alice', 'queued'))]
    db.executemany('INSERT INTO jobs VALUES (?, ?, ?, ?, ?)',
                   [row[:4] + (json.dumps(row[4]),) for row in rows])
    db.commit()
    db.close()


def test_an_old_queue_file_gets_changed_by_owner_and_keeps_working(tmp_path):
    path = tmp_path / 'old.db'
    format_1_file(path)
    with JobQueue(path, keep_history=0) as queue:
        assert [who(job) for job in queue.waiting()] == \
            [('root', 'root'), ('alice', 'alice')]
        assert who(queue.get(1)) == ('root', 'root')  # from the archive
        assert who(queue.history()[0]) == ('root', 'root')
        with pytest.raises(NotPermitted):
            queue.edit(2, by=ALICE, name='x')
        assert who(queue.edit(2, by=ROOT, name='x')) == ('root', 'root')
        assert who(queue.repeat(2, owner='bob')[0]) == ('bob', 'bob')
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE name = 'schema'"
                      ).fetchone() == (str(SCHEMA_VERSION),)
    assert all(json.loads(data)['changed_by'] == json.loads(data)['owner']
               for data, in db.execute('SELECT data FROM jobs WHERE id <= 3'))
    db.close()
    with JobQueue(path) as again:  # opening an upgraded file changes nothing
        assert [job.id for job in again.waiting()] == [2, 4, 3]


def test_a_damaged_old_file_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / 'old.db'
    format_1_file(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE jobs SET data = '{}' WHERE id = 3")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match='is damaged'):
        JobQueue(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE name = 'schema'"
                      ).fetchone() == ('1',)
    assert 'changed_by' not in db.execute('SELECT data FROM jobs WHERE id = 2'
                                          ).fetchone()[0]
    db.close()


# -- random operations by random accounts ----------------------------------------

ACCOUNTS = [ALICE, BOB, ROOT, Caller('carol', USER)]
# carol queues and copies jobs, then her account is gone.
KNOWN = {caller.name: caller.level for caller in ACCOUNTS[:3]}
CALLERS = st.sampled_from(ACCOUNTS)


class RightsMachine(RuleBasedStateMachine):
    """Random submits, edits, copies, re-queues and runs by random accounts.

    The model is who last made each job what it is: its submitter, its
    last editor, or whoever asked for it as a copy or re-queued it.
    """

    def __init__(self):
        super().__init__()
        self.queue = QueueMachine()
        self.now = 0.0
        self.made_by = {}   # job id -> who last made it what it runs
        self.owner = {}     # job id -> who it belongs to

    def tick(self):
        self.now += 1.0
        return self.now

    def pick(self, data, ids):
        return data.draw(st.sampled_from(sorted(ids) + [999]))

    def added(self, jobs, caller):
        for job in jobs:
            self.made_by[job.id] = self.owner[job.id] = caller.name

    @rule(caller=CALLERS)
    def submit(self, caller):
        self.added(self.queue.submit(spec(), caller.name, self.tick()).result,
                   caller)

    @rule(data=st.data(), caller=CALLERS, source=st.sampled_from(['a()',
                                                                  'b()']))
    def edit(self, data, caller, source):
        job_id = self.pick(data, self.made_by)
        before = self.queue.get(job_id) if job_id in self.made_by else None
        allowed = caller.name == self.owner.get(job_id) or \
            caller.level >= ADMIN
        try:
            self.queue.edit(job_id, by=caller, source=source)
        except NotPermitted:
            assert before.state.waiting and not allowed
            assert self.queue.get(job_id) == before
        except (JobNotFound, NotEditable):
            assert before is None or not before.state.waiting
        else:
            assert before.state.waiting and allowed
            self.made_by[job_id] = caller.name

    @rule(data=st.data(), caller=CALLERS, once=st.booleans())
    def copy(self, data, caller, once):
        job_id = self.pick(data, self.made_by)
        try:
            if once:
                copies = [self.queue.duplicate(job_id, self.tick(),
                                               caller.name).result]
            else:
                copies = self.queue.repeat(job_id, 2, self.tick(),
                                           caller.name).result
        except (JobNotFound, NotEditable):
            return
        self.added(copies, caller)

    @rule(data=st.data(), caller=CALLERS)
    def requeue(self, data, caller):
        job_id = self.pick(data, self.made_by)
        try:
            new = self.queue.requeue(job_id, self.tick(), owner=caller.name,
                                     position='top').result
        except (JobNotFound, InvalidTransition):
            return
        self.added([new], caller)

    @precondition(lambda self: self.queue.current() is None)
    @rule(outcome=st.sampled_from(['done', 'failed', 'aborted']))
    def run(self, outcome):
        job = self.queue.next_job()
        if job is not None:
            self.queue.start(job.id, self.tick())
            self.queue.finish(outcome, self.tick())

    @invariant()
    def changed_by_is_who_last_made_the_job(self):
        for job_id, name in self.made_by.items():
            job = self.queue.get(job_id)
            assert (job.owner, job.changed_by) == (self.owner[job_id], name)

    @invariant()
    def no_job_runs_above_who_last_made_it(self):
        for job_id, name in self.made_by.items():
            job = self.queue.get(job_id)
            if name not in KNOWN:
                with pytest.raises(UnknownAccount):
                    runs_as(job, KNOWN.get)
                continue
            account = runs_as(job, KNOWN.get)
            assert account.name == name and account.level <= KNOWN[name]


TestRights = RightsMachine.TestCase
TestRights.settings = settings(max_examples=60, stateful_step_count=30,
                               deadline=None,
                               suppress_health_check=[HealthCheck.too_slow])
