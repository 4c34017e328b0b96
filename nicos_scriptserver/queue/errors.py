"""Refusals of the job queue.

Every message is meant to be shown to the user as it is: it names the job
and the rule that was broken, and where possible what to do instead.
"""


class QueueError(Exception):
    """An operation on the queue was refused; nothing was changed."""


class JobNotFound(QueueError):
    """No job with this id (in the place the operation looks for it)."""


class NotEditable(QueueError):
    """The job is not waiting: it is the current job or already finished."""


class NotPermitted(QueueError):
    """The caller's account may not do this to the job (someone else's)."""


class UnknownAccount(QueueError):
    """The account a job would run as does not exist (any more)."""


class Conflict(QueueError):
    """The job was changed by someone else since the client saw it (its
    version is not the one the client gave)."""


class BadPosition(QueueError):
    """A position in the waiting list is out of range or not understood."""


class InvalidTransition(QueueError):
    """The job or the queue is not in a state that allows the operation."""


class InvalidValue(QueueError, ValueError):
    """A value given to an operation (a job spec, a fraction, ...) is wrong."""


class StoreError(QueueError):
    """The queue database could not be read or written.

    When raised by an operation, the change was not saved and the queue in
    memory is unchanged as well.
    """
