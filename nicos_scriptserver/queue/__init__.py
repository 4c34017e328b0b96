"""The job queue core: pure Python (stdlib and sqlite3 only).

It never imports NICOS, zmq, EPICS or Qt: the daemon adapter drives it.

- `model`: `Job`, `JobKind`, `JobState`, `Request`, `QueueState` (plain,
  immutable data) and `JobSpec`, a job as submitted
- `rights`: `Caller` (an account as plain data), who may edit a job and
  whom a job runs as
- `machine`: `QueueMachine`, the pure state machine; every operation
  returns a `Change` (`change`: result, what to save, events for
  clients) or raises a `QueueError` (`errors`). The operations are
  functions of the state as `view` shows it: `waiting` (the waiting
  list), `current` (the current job), `holds` (the queue's hold);
  `lifecycle` says which operation a job allows where it is in its life;
  `validate` checks the values operations take besides job specs
- `versions`: a waiting job's version, and changes refused (`Conflict`)
  when the job changed since the client saw it
- `checks`: what the server's check of waiting jobs against a changed
  command catalog does to them (hold back, release, re-estimate)
- `audit`: the audit trail's entries (who, when, from where, why) and
  the `Actor` of the changes made now
- `listing`: the queue for a client, whole or the changes since a
  change number (the audit entry's), for clients that missed events
- `order`: order keys that make moving a job a one-row write
- `store`: `QueueStore`, the SQLite file (also the archive of old
  finished jobs, which are not kept in memory)
- `service`: `JobQueue`, the thread-safe, durable facade the daemon uses
"""

from nicos_scriptserver.queue.change import Change, Event
from nicos_scriptserver.queue.errors import (BadPosition, Conflict,
                                             InvalidTransition,
                                             InvalidValue, JobNotFound,
                                             NotEditable, NotPermitted,
                                             QueueError, StoreError,
                                             UnknownAccount)
from nicos_scriptserver.queue.machine import QueueMachine
from nicos_scriptserver.queue.model import (Job, JobKind, JobSpec, JobState,
                                            QueueData, QueueState, Request)
from nicos_scriptserver.queue.rights import Caller, runs_as
from nicos_scriptserver.queue.jobqueue import JobQueue
from nicos_scriptserver.queue.store import QueueStore

__all__ = [
    'BadPosition', 'Caller', 'Change', 'Conflict', 'Event', 'InvalidTransition',
    'InvalidValue', 'Job', 'JobKind', 'JobNotFound', 'JobQueue', 'JobSpec',
    'JobState', 'NotEditable', 'NotPermitted', 'QueueData', 'QueueError',
    'QueueMachine', 'QueueState', 'QueueStore', 'Request', 'StoreError',
    'UnknownAccount', 'runs_as',
]
