"""SQLite persistence of the queue: a change counts once it is on disk.

One row per job (its `Job.to_dict` as JSON, plus the columns that place
it: ``pos``, the order key of a waiting job, and ``hist``, the position of
a finished job in the history) and a key/value table for the queue's own
state. WAL with ``synchronous=FULL``: a change is durable when `commit`
returns (a note committed with ``wait_for_disk=False`` once the next
change is, or the WAL is checkpointed; a crash of the process loses
neither). Moving a job rewrites only its ``pos`` (see `order.place`).

Opening reads the waiting and current jobs and only the newest finished
ones; the store also serves as the machine's `Archive` of older ones.
A file of an older format is brought up to date first (`_upgrade`).
Not thread-safe by itself: `service.JobQueue` serializes all calls.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing, suppress
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from nicos_scriptserver.queue.change import Change
from nicos_scriptserver.queue.errors import JobNotFound, StoreError
from nicos_scriptserver.queue.historyfilter import HistoryFilter
from nicos_scriptserver.queue.model import MANUAL, Job, QueueData, QueueState

# 2: jobs record ``changed_by``. 3: a hold records its kind (a person's or
# the server's) and the jobs a safety hold protects; jobs record whether
# their dry run held them back. A bump also keeps older versions (which
# would run a job as its owner, or run jobs a safety hold protects) from
# opening a newer file.
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    pos INTEGER,
    hist INTEGER,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_history ON jobs (hist) WHERE hist IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_live ON jobs (id) WHERE hist IS NULL;
-- History pages filtered by owner, by state or by time, in the order of
-- (finish time, history position) (see history_page).
CREATE INDEX IF NOT EXISTS jobs_history_finished
    ON jobs (json_extract(data, '$.finished_at'), hist)
    WHERE hist IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_history_owner
    ON jobs (json_extract(data, '$.owner'),
             json_extract(data, '$.finished_at'), hist)
    WHERE hist IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_history_state
    ON jobs (state, json_extract(data, '$.finished_at'), hist)
    WHERE hist IS NOT NULL;
-- Owner and state together: one index range for each state asked for,
-- however rare the combination (with the owner's index alone, a page of
-- one owner's failed jobs read all the owner's jobs until it had 50).
CREATE INDEX IF NOT EXISTS jobs_history_owner_state
    ON jobs (json_extract(data, '$.owner'), state,
             json_extract(data, '$.finished_at'), hist)
    WHERE hist IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    who TEXT NOT NULL,
    client TEXT NOT NULL,
    action TEXT NOT NULL,
    jobs TEXT NOT NULL,
    why TEXT NOT NULL
);
-- The audit entries of each job, for ss_audit(job_id) at millions of rows.
CREATE TABLE IF NOT EXISTS audit_jobs (
    job INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (job, seq)
) WITHOUT ROWID;
"""
# The archive of old finished jobs (see `archive_finished`): the columns
# of ``jobs`` that a finished job uses.
_ARCHIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    hist INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_history ON jobs (hist);
"""
#: Finished jobs moved to the archive per transaction.
ARCHIVE_BATCH = 1000
# The audit trail (see `audit`) and the history's indexes need no format
# change: older versions leave its tables alone, and SQLite keeps the
# indexes up to date whoever writes.

# The indexed expressions, written as in the indexes (SQLite uses an index
# on an expression only for the same expression).
_OWNER = "json_extract(data, '$.owner')"
_FINISHED = "json_extract(data, '$.finished_at')"


def _json(value) -> str:
    return json.dumps(value, separators=(',', ':'), allow_nan=False)


def write_audit(db: sqlite3.Connection, entries: List[Dict[str, Any]]
                ) -> Optional[int]:
    """Append *entries* (see `audit.entry`) to the audit trail, in the
    transaction *db* has open; the number (`seq`) of the last one."""
    seq = None
    for entry in entries:
        seq = db.execute('INSERT INTO audit (at, who, client, action, jobs, '
                         'why) VALUES (?, ?, ?, ?, ?, ?)',
                         (entry['at'], entry['who'], entry['client'],
                          entry['action'],
                          ''.join(f',{i}' for i in entry['jobs']) + ',',
                          entry['why'])).lastrowid
        db.executemany('INSERT OR IGNORE INTO audit_jobs VALUES (?, ?)',
                       [(job, seq) for job in entry['jobs']])
    return seq


class QueueStore:
    """The queue's SQLite file at *path* (created if missing)."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as err:
            raise StoreError(f'cannot open the queue database {self.path}: '
                             f'{err}') from None
        try:
            self._db.execute('PRAGMA journal_mode=WAL')
            self._db.execute('PRAGMA synchronous=FULL')
            self._db.executescript(_SCHEMA)
            self._db.execute('INSERT OR IGNORE INTO meta VALUES (?, ?)',
                             ('schema', str(SCHEMA_VERSION)))
            version = self._meta('schema')
            if version in range(1, SCHEMA_VERSION):
                self._upgrade(version)
                version = SCHEMA_VERSION
        except sqlite3.Error as err:
            self._db.close()
            raise StoreError(f'cannot open the queue database {self.path}: '
                             f'{err}') from None
        except (ValueError, KeyError, TypeError) as err:
            self._db.close()
            raise StoreError(f'the queue database {self.path} is damaged: '
                             f'{err!r}') from None
        if version != SCHEMA_VERSION:
            self._db.close()
            raise StoreError(f'the queue database {self.path} has format '
                             f'{version}, this version reads formats 1 to '
                             f'{SCHEMA_VERSION}')

    def _upgrade(self, version: int) -> None:
        """From format *version* to the current one, in one transaction.

        1 to 2: jobs saved before jobs recorded ``changed_by`` were last
        changed by their owner as far as anyone knows, and ran as the
        owner. 2 to 3: who set an old hold is not known, so it becomes a
        person's hold, as strong as it was (nothing starts until somebody
        releases it); a job held back with a reason of its dry run
        ("dry run: ...", the only reason the server gave) was held back
        by its dry run.
        """
        db = self._db
        db.execute('BEGIN IMMEDIATE')
        try:
            rows = []
            for job_id, text in db.execute('SELECT id, data FROM jobs'):
                data = json.loads(text)
                data.setdefault('changed_by', data['owner'])
                data.setdefault('held_by_dry_run', bool(
                    data['held'] and data['hold_reason'].startswith('dry run: ')))
                rows.append((_json(data), job_id))
            db.executemany('UPDATE jobs SET data = ? WHERE id = ?', rows)
            queue = self._meta('queue')
            if queue is not None and version < 3:
                queue.update(hold_kind=MANUAL if queue['held'] else '',
                             protected=[])
                db.execute("UPDATE meta SET value = ? WHERE name = 'queue'",
                           (_json(queue),))
            db.execute("UPDATE meta SET value = ? WHERE name = 'schema'",
                       (str(SCHEMA_VERSION),))
            db.execute('COMMIT')
        except BaseException:
            db.execute('ROLLBACK')
            raise

    def _meta(self, name: str):
        row = self._db.execute('SELECT value FROM meta WHERE name = ?',
                               (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def load(self, keep_history: int) -> QueueData:
        """What the queue keeps in memory: the waiting and current jobs, the
        newest *keep_history* finished jobs and the queue's state."""
        data = QueueData()
        waiting, finished = [], []
        try:
            total = self._db.execute('SELECT max(hist) + 1 FROM jobs '
                                     'WHERE hist IS NOT NULL').fetchone()[0] or 0
            data.history_start = max(0, total - keep_history)
            rows = self._db.execute(
                'SELECT id, pos, hist, data FROM jobs WHERE hist IS NULL '
                'UNION ALL SELECT id, pos, hist, data FROM jobs '
                'WHERE hist >= ?', (data.history_start,)).fetchall()
            for job_id, pos, hist, text in rows:
                job = Job.from_dict(json.loads(text))
                data.jobs[job_id] = job
                if job.state.waiting:
                    waiting.append((pos, job_id))
                elif job.state.finished:
                    finished.append((hist, job_id))
            queue = self._meta('queue')
            next_id = self._meta('next_id') or 1
            last_id = self._db.execute('SELECT max(id) FROM jobs').fetchone()[0]
        except sqlite3.Error as err:
            raise StoreError(f'cannot read the queue database {self.path}: '
                             f'{err}') from None
        except (ValueError, KeyError, TypeError) as err:
            raise StoreError(f'the queue database {self.path} is damaged: '
                             f'{err!r}') from None
        waiting.sort()
        finished.sort()
        data.order = [job_id for _, job_id in waiting]
        data.keys = {job_id: pos for pos, job_id in waiting}
        data.history = [job_id for _, job_id in finished]
        if queue is not None:
            data.queue = QueueState.from_dict(queue)
        data.next_id = max(next_id, (last_id or 0) + 1)
        problems = data.problems()
        if [hist for hist, _ in finished] != list(range(data.history_start,
                                                        total)):
            problems.append('the history has gaps')
        if problems:
            raise StoreError(f'the queue database {self.path} is damaged: '
                             f'{"; ".join(problems)}')
        return data

    def finished_job(self, job_id: int) -> Optional[Tuple[int, Job]]:
        """The finished job *job_id* and its position in the history."""
        row = self._read('SELECT hist, data FROM jobs WHERE id = ? AND '
                         'hist IS NOT NULL', (job_id,))
        return (row[0][0], Job.from_dict(json.loads(row[0][1]))) if row else None

    def finished_before(self, position: int, limit: int) -> List[Job]:
        """Up to *limit* finished jobs before *position* in the history,
        newest first."""
        rows = self._read('SELECT data FROM jobs WHERE hist IS NOT NULL AND '
                          'hist < ? ORDER BY hist DESC LIMIT ?',
                          (position, limit))
        return [Job.from_dict(json.loads(text)) for text, in rows]

    def history_page(self, limit: int, before_id: Optional[int],
                     where: HistoryFilter) -> List[Job]:
        """Up to *limit* finished jobs that *where* lets through, newest
        first; *before_id*: the last job of the previous page.

        Keyset paging on an index, so a deep page costs what the first
        one does. The order is that of (finish time, history position):
        the history's unless the clock was set back, and one index per
        filter (and one for owner and state together) serves it for any
        time range.
        """
        terms, args = ['hist IS NOT NULL'], []
        if before_id is not None:
            row = self._read(f'SELECT {_FINISHED}, hist FROM jobs WHERE '
                             'id = ? AND hist IS NOT NULL', (before_id,))
            if not row:
                raise JobNotFound(f'no job {before_id} in the history')
            # Written so that the first term bounds the index range.
            terms.append(f'{_FINISHED} <= ? AND ({_FINISHED} < ? OR hist < ?)')
            args.extend((row[0][0], row[0][0], row[0][1]))
        if where.owner is not None:
            terms.append(f'{_OWNER} = ?')
            args.append(where.owner)
        if where.since is not None:
            terms.append(f'{_FINISHED} >= ?')
            args.append(where.since)
        if where.until is not None:
            terms.append(f'{_FINISHED} < ?')
            args.append(where.until)
        query = (f'SELECT {_FINISHED}, hist, data FROM jobs WHERE '
                 f'{" AND ".join(terms)}')
        if where.states is None:
            rows = self._page(query, args, limit)
        else:
            # One index range per state, merged: "state IN (...)" would
            # sort all jobs of those states.
            rows = sorted((row for state in where.states for row in
                           self._page(f'{query} AND state = ?',
                                      [*args, state], limit)),
                          key=lambda row: (row[0], row[1]),
                          reverse=True)[:limit]
        return [Job.from_dict(json.loads(text)) for _, _, text in rows]

    def _page(self, query: str, args: list, limit: int) -> list:
        return self._read(f'{query} ORDER BY {_FINISHED} DESC, hist DESC '
                          'LIMIT ?', (*args, limit))

    def archive_finished(self, before: float, keep: int, archive: Path,
                         batch: int = ARCHIVE_BATCH) -> int:
        """Move up to *batch* of the finished jobs that finished before
        *before* (epoch seconds), oldest first and never the newest *keep*
        (those the queue holds in memory), to the SQLite file *archive*
        (created private); how many were moved.

        The archive commits first, then the jobs leave this file: a crash
        between leaves a job in both (the next run settles it), never in
        neither.
        """
        total = self._read('SELECT max(hist) + 1 FROM jobs WHERE hist IS NOT '
                           'NULL', ())[0][0] or 0
        rows = self._read(f'SELECT id, state, hist, data FROM jobs WHERE '
                          f'hist IS NOT NULL AND {_FINISHED} < ? AND hist < ? '
                          'ORDER BY hist LIMIT ?',
                          (before, total - keep, batch))
        if not rows:
            return 0
        try:
            os.close(os.open(archive, os.O_CREAT | os.O_RDWR, 0o600))
            with closing(sqlite3.connect(str(archive), isolation_level=None)
                         ) as db:
                db.execute('PRAGMA synchronous=FULL')
                db.executescript(_ARCHIVE_SCHEMA)
                db.execute('BEGIN IMMEDIATE')
                db.executemany('INSERT OR REPLACE INTO jobs VALUES '
                               '(?, ?, ?, ?)', rows)
                db.execute('COMMIT')
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f'could not write the history archive {archive}: '
                             f'{err}; nothing was moved') from None
        try:
            self._db.execute('BEGIN IMMEDIATE')
            self._db.executemany('DELETE FROM jobs WHERE id = ?',
                                 [(row[0],) for row in rows])
            self._db.execute('COMMIT')
        except sqlite3.Error as err:
            with suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute('ROLLBACK')
            raise StoreError(f'could not remove archived jobs from the queue '
                             f'database {self.path}: {err}; they are in both '
                             f'files') from None
        return len(rows)

    def _read(self, query: str, args: tuple) -> list:
        try:
            return self._db.execute(query, args).fetchall()
        except sqlite3.Error as err:
            raise StoreError(f'cannot read the queue database {self.path}: '
                             f'{err}') from None

    def audit(self, limit: int, job_id: Optional[int] = None
              ) -> List[Dict[str, Any]]:
        """The newest *limit* entries of the audit trail (of *job_id*
        only, if given), newest first."""
        columns = 'seq, at, who, client, action, jobs, why'
        if job_id is None:
            rows = self._read(f'SELECT {columns} FROM audit '
                              'ORDER BY seq DESC LIMIT ?', (limit,))
        else:
            rows = self._read(f'SELECT {columns} FROM audit WHERE seq IN '
                              '(SELECT seq FROM audit_jobs WHERE job = ? '
                              'ORDER BY seq DESC LIMIT ?) ORDER BY seq DESC',
                              (job_id, limit))
        return [{'seq': seq, 'at': at, 'who': who, 'client': client,
                 'action': action,
                 'jobs': [int(i) for i in jobs.strip(',').split(',') if i],
                 'why': why}
                for seq, at, who, client, action, jobs, why in rows]

    def last_seq(self) -> int:
        """The sequence number of the newest audit entry (0: none)."""
        return self._read('SELECT max(seq) FROM audit', ())[0][0] or 0

    def changed_since(self, seq: int, limit: int) -> Optional[List[int]]:
        """The ids of the jobs changed after audit entry *seq*, or None if
        more than *limit* entries followed it."""
        rows = self._read('SELECT jobs FROM audit WHERE seq > ? ORDER BY seq '
                          'LIMIT ?', (seq, limit + 1))
        if len(rows) > limit:
            return None
        return sorted({int(i) for jobs, in rows
                       for i in jobs.strip(',').split(',') if i})

    def commit(self, change: Change,
               audit: Optional[Dict[str, Any]] = None,
               wait_for_disk: bool = True) -> Optional[int]:
        """Write *change*, and its *audit* entry (see `audit.entry`), in one
        transaction; return the entry's sequence number (None without
        one). Raise `StoreError` (and write nothing) if that fails.

        Without *wait_for_disk* the transaction is not synced to the disk
        (``synchronous=NORMAL``): it survives a crash of the process; a
        power cut or a crash of the system may lose it, never what was
        committed before it, and the next synced commit makes it durable
        too. For notes that the next one replaces."""
        rows = [(job.id, job.state.value,
                 change.keys.get(job.id) if job.state.waiting else None,
                 change.history.get(job.id), _json(job.to_dict()))
                for job in change.put.values()]
        moved = change.moved
        positions = [(key, job_id) for job_id, key in change.keys.items()
                     if job_id not in change.put and
                     (moved is None or job_id != moved.id)]
        meta = []
        if change.next_id is not None:
            meta.append(('next_id', _json(change.next_id)))
        if change.queue is not None:
            meta.append(('queue', _json(change.queue.to_dict())))
        db = self._db
        try:
            if not wait_for_disk:
                db.execute('PRAGMA synchronous=NORMAL')
            db.execute('BEGIN IMMEDIATE')
            if change.deleted:
                db.executemany('DELETE FROM jobs WHERE id = ?',
                               [(job_id,) for job_id in change.deleted])
            if rows:
                db.executemany('INSERT OR REPLACE INTO jobs '
                               '(id, state, pos, hist, data) '
                               'VALUES (?, ?, ?, ?, ?)', rows)
            if positions:
                db.executemany('UPDATE jobs SET pos = ? WHERE id = ?',
                               positions)
            if moved is not None:
                # Its position and version only: the row is not rewritten.
                db.execute("UPDATE jobs SET pos = ?, data = json_set(data, "
                           "'$.version', ?, '$.last_change', json(?)) "
                           'WHERE id = ?',
                           (change.keys[moved.id], moved.version,
                            _json(moved.last_change), moved.id))
            if meta:
                # An update in place: a REPLACE gives the row a new rowid,
                # which rewrites the name's index page too (one more page
                # to write and sync per change).
                db.executemany('INSERT INTO meta VALUES (?, ?) ON CONFLICT '
                               '(name) DO UPDATE SET value = excluded.value',
                               meta)
            seq = None
            if audit is not None:
                seq = write_audit(db, [audit])
            db.execute('COMMIT')
        except sqlite3.Error as err:
            with suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute('ROLLBACK')
            raise StoreError(f'could not save to the queue database '
                             f'{self.path}: {err}; nothing was changed'
                             ) from None
        finally:
            if not wait_for_disk:
                with suppress(sqlite3.Error):
                    db.execute('PRAGMA synchronous=FULL')
        return seq

    def close(self) -> None:
        """Close the file; further commits fail with `StoreError`."""
        self._db.close()
