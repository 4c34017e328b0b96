"""Numbered changes: a client that missed some catches up with `listing`.

The property: a client holding the listing as of change N that applies
the changes since N (`JobQueue.listing(N)`, as `ss_changes` sends them)
holds the listing of now, whatever happened in between, reopening the
queue (after a crash too) included. The random operations are those of
`test_queue_properties`; changes kept in memory only (a dry run
pending) are tested on their own, as reopening loses them.
"""

import copy
import dataclasses
import pickle

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from nicos_scriptserver.app.listing import Listings, row
from nicos_scriptserver.app.spec import parse_specs
from nicos_scriptserver.clients.queueview import QueueView, jobs_of_rows
from nicos_scriptserver.queue import Caller, JobQueue, jobqueue
from nicos_scriptserver.wire.protocol import LISTING_COLUMNS

from test_queue_properties import QueueInvariants


def as_sent(queue, since=None, listings=None):
    """The reply to ss_queue/ss_changes, by *listings* (fresh: None)."""
    return (listings or Listings()).reply(queue.listing(since),
                                          lambda job: job.to_dict())


def view_of(queue):
    view = QueueView()
    view.apply(as_sent(queue))
    return view


class ListingInvariants(QueueInvariants):
    """Listings taken at random moments, brought up to date at every step."""

    def __init__(self):
        super().__init__()
        self.views = []
        # One for the whole run, as the server keeps it: its rows of jobs
        # that did not change are reused.
        self.listings = Listings()

    @rule()
    def look(self):
        self.views = self.views[-3:] + [view_of(self.queue)]

    @invariant()
    def reused_rows_make_the_listing_made_afresh(self):
        assert as_sent(self.queue, listings=self.listings) == \
            as_sent(self.queue)
        for view in self.views:
            assert as_sent(self.queue, view.seq, self.listings) == \
                as_sent(self.queue, view.seq)

    @invariant()
    def changes_since_a_listing_give_the_listing_of_now(self):
        now = view_of(self.queue).listing()
        for view in self.views:
            caught_up = copy.deepcopy(view)
            changes = as_sent(self.queue, view.seq)
            assert not changes['full']
            caught_up.apply(changes)
            assert caught_up.listing() == now


TestListingInvariants = ListingInvariants.TestCase
TestListingInvariants.settings = settings(
    max_examples=30, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])


def jobs(count):
    return parse_specs([{'kind': 'aware', 'source': f'measure({n})'}
                        for n in range(count)])


def test_events_carry_the_number_of_the_change_progress_keeps_it(tmp_path):
    with JobQueue(tmp_path / 'q.db') as queue:
        seen = []
        queue.add_numbered_listener(
            lambda seq, events: seen.append((seq, [n for n, _ in events])))
        first, second = queue.submit(jobs(2), 'alice')
        queue.move(second.id, 'top')
        queue.start_next()
        queue.report_progress(0.5, 'half')
        assert [seq for seq, _ in seen] == [1, 2, 3, 3]
        assert queue.listing().seq == 3
        # Only the job that changed since 2 is sent; the order in full.
        changes = queue.listing(2)
        assert not changes.full
        assert changes.current.id == second.id
        assert changes.current.progress == 0.5
        assert (changes.waiting, changes.order) == ([], [first.id])
        assert changes.removed == []


def test_changes_kept_in_memory_only_are_among_the_changes_since(tmp_path):
    with JobQueue(tmp_path / 'q.db') as queue:
        first, second = queue.submit(jobs(2), 'alice')
        view = view_of(queue)
        queue.mark_unestimated({'state': 'pending', 'seconds': None})
        assert queue.listing().seq == view.seq  # no number of its own
        changes = as_sent(queue, view.seq)
        assert [row[0] for row in changes['waiting']] == [first.id, second.id]
        view.apply(changes)
        assert view.listing() == view_of(queue).listing()
        # Once a numbered change names the job, the audit trail has it.
        queue.move(second.id, 'top')
        assert queue.listing(view.seq + 1).waiting == []


def test_numbers_go_on_after_a_restart(tmp_path):
    with JobQueue(tmp_path / 'q.db') as queue:
        queue.submit(jobs(1), 'alice')
        queue.hold()
    with JobQueue(tmp_path / 'q.db') as queue:
        assert queue.listing().seq == 2
        job, = queue.submit(jobs(1), 'alice')
        changes = queue.listing(2)
        assert [j.id for j in changes.waiting] == [job.id]
        assert changes.seq == 3


def test_too_far_back_or_unknown_numbers_get_the_full_listing(
        tmp_path, monkeypatch):
    monkeypatch.setattr(jobqueue, 'KEEP_CHANGES', 2)
    with JobQueue(tmp_path / 'q.db') as queue:
        for _ in range(4):
            queue.submit(jobs(1), 'alice')
        waiting = [job.id for job in queue.waiting()]
        assert not queue.listing(2).full
        for since in (None, 1, 5, -1):
            changes = queue.listing(since)
            assert changes.full, since
            assert [job.id for job in changes.waiting] == waiting


def test_a_view_notices_a_jump_in_the_numbers():
    view = QueueView()
    assert not view.missed(7)  # nothing to compare with yet
    view.note(3)
    assert not view.missed(3) and not view.missed(4)
    assert view.missed(5)
    assert not view.missed(None)


REPORTS = st.one_of(st.none(), st.fixed_dictionaries({
    'state': st.sampled_from(['pending', 'running', 'ok', 'failed',
                              'not possible']),
    'seconds': st.one_of(st.none(), st.floats(0, 1e6)),
    'problems': st.lists(st.fixed_dictionaries({
        'kind': st.sampled_from(['warning', 'limit', 'error']),
        'line': st.one_of(st.none(), st.integers(1, 99)),
        'message': st.text(max_size=20)}), max_size=3)}))


def test_a_row_holds_plain_values_and_clients_get_the_estimate_back(tmp_path):
    with JobQueue(tmp_path / 'q.db') as queue:
        waiting, = queue.submit(jobs(1), 'alice')

    @given(report=REPORTS)
    @settings(deadline=None)
    def check(report):
        job = dataclasses.replace(waiting, estimate=report)
        sent = row(job)
        # Nothing nested: pickling and unpickling stay cheap per row.
        assert all(value is None or type(value) in (bool, int, float, str)
                   for value in sent)
        shown, = jobs_of_rows(LISTING_COLUMNS,
                              [pickle.loads(pickle.dumps(sent, 2))])
        if report is None:
            assert shown['estimate'] is None
        else:
            real = [p for p in report['problems'] if p['kind'] != 'warning']
            assert shown['estimate'] == {
                'state': report['state'], 'seconds': report['seconds'],
                'problems': len(report['problems']),
                'problem': real[0]['message'] if real else None}
        full = job.to_dict()
        assert {key: value for key, value in shown.items()
                if key != 'estimate'} == \
            {key: full[key] for key in shown if key != 'estimate'}
    check()


def test_a_client_shows_a_pending_dry_run_of_a_waiting_job(tmp_path):
    with JobQueue(tmp_path / 'q.db') as queue:
        queue.submit(jobs(1), 'alice')
        assert view_of(queue).waiting()[0]['estimate'] is None
        queue.mark_unestimated({'state': 'pending', 'seconds': None})
        assert view_of(queue).waiting()[0]['estimate'] == {
            'state': 'pending', 'seconds': None, 'problems': 0, 'problem': None}


def test_a_view_shows_each_change_and_hands_out_copies(tmp_path):
    with JobQueue(tmp_path / 'q.db') as queue:
        first, second = queue.submit(jobs(2), 'alice')
        view = view_of(queue)
        shown = view.waiting()
        shown[0]['name'] = 'scribbled on by a caller'
        queue.edit(second.id, by=Caller('alice', 20), name='renamed')
        queue.set_estimate(first.id, {'state': 'ok', 'seconds': 30.0})
        queue.move(second.id, 'top')
        view.apply(as_sent(queue, view.seq))
        again = view.waiting()
        assert [(job['id'], job['name']) for job in again] == \
            [(second.id, 'renamed'), (first.id, first.name)]
        assert again[1]['estimate'] == {'state': 'ok', 'seconds': 30.0,
                                        'problems': 0, 'problem': None}
        assert again == jobs_of_rows(LISTING_COLUMNS,
                                     as_sent(queue)['waiting'])
