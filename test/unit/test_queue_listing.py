"""Numbered changes: a client that missed some catches up with `listing`.

The property: a client holding the listing as of change N that applies
the changes since N (`JobQueue.listing(N)`, as `ss_changes` sends them)
holds the listing of now, whatever happened in between, reopening the
queue (after a crash too) included. The random operations are those of
`test_queue_properties`; changes kept in memory only (a dry run
pending) are tested on their own, as reopening loses them.
"""

import copy

from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant, rule

from nicos_scriptserver.app.listing import Listings
from nicos_scriptserver.app.spec import parse_specs
from nicos_scriptserver.clients.queueview import QueueView
from nicos_scriptserver.queue import JobQueue, jobqueue

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
