"""Stock daemon commands whose NICOS semantics contradict the unified queue.

They are re-registered, under their stock names and arguments, so that the
NICOS GUI and console and the IBEX GUI act on the queue unchanged:
``getstatus`` reports the status and requests stock clients see
(`stockview`), ``continue`` also releases a queue that waits for a person,
``stop`` then keeps it waiting (stock clients show it as a paused script,
which they may stop), ``unqueue`` acts on jobs (``'*'`` clears the
waiting list), ``update`` edits waiting jobs also while idle, ``start`` runs at once without
waiting for a dry run and ``break`` pauses like ``ss_pause`` (refused for
black-box jobs). Each hands its arguments to the application
(`app.server.ScriptServer`); refusals are error replies (`queue_command`).
"""

import dataclasses

from nicos import session
from nicos.protocols.daemon import SIM_STATES
from nicos.services.daemon.handler import command_wrappers

from nicos_scriptserver.daemon.sscommands import queue_command
from nicos_scriptserver.queue import Caller
from nicos_scriptserver.queue.audit import Actor, acting, current_actor


@queue_command('getstatus')
def getstatus(self):
    """NICOS's getstatus (its fields in 3.12.2), with the status and
    requests stock clients see of the queue: paused while it waits for a
    person, held-back jobs listed with why."""
    controller = self.controller
    script = controller.current_script
    eta = (script.simstate, script.eta) if script \
        else (SIM_STATES['pending'], 0)
    status, requests = self.daemon.stock.snapshot()
    return dict(
        status=status,
        script=script and script.text or '',
        eta=eta,
        scriptname=script and script.name or '',
        watch=controller.eval_watch_expressions(),
        requests=requests,
        mode=session.mode,
        setups=(list(session.loaded_setups), session.explicit_setups),
        devices=list(session.devices),
        devicefailures=session.device_failures,
    )


@queue_command('continue')
def continue_(self):
    """Resume the paused job. With no job running, the queue that stock
    clients see as paused: release its hold (as ss_release), or let the
    first held-back job run (as ss_confirm)."""
    self.daemon.app.continue_(Caller.of(self.user))


@queue_command('stop')
def stop(self, level):
    """Abort the current job at the next point of *level*; the jobs queued
    then stay, held. With no job running but a queue that waits for a
    person (a paused script to stock clients), its jobs stay held."""
    self.daemon.app.stop(Caller.of(self.user), level)


@queue_command('unqueue')
def unqueue(self, reqid):
    """Remove a waiting job, or all of them with '*'."""
    if reqid == '*':
        self.daemon.app.clear()
    else:
        self.daemon.app.remove(reqid)


@queue_command('update')
def update(self, newcode, reason, reqid=None):
    """Replace the text of a waiting job (the current one cannot be edited),
    as ss_edit does; a job held back by its dry run gets a new one, and
    runs if it passes."""
    if reqid is None:
        raise ValueError('no job id given: the current job cannot be edited; '
                         'abort it, then edit and re-queue it')
    # The reason the client gave goes into the queue's audit trail.
    actor = current_actor() or Actor(self.user.name)
    with acting(dataclasses.replace(actor, why=str(reason or ''))):
        self.daemon.app.edit(reqid, {'source': newcode}, Caller.of(self.user))


def _start_now(stock_start):
    """NICOS's ``start`` ("run this now", refused while a job runs): the job
    does not wait for its dry run, as a console's user expects."""
    def start(handler, args):
        with handler.controller.starting_now():
            stock_start(handler, args)
    start.orig_function = getattr(stock_start, 'orig_function', stock_start)
    return start


command_wrappers['start'] = _start_now(command_wrappers['start'])


@queue_command('break')
def break_(self, level):
    """Pause the current job (as ss_pause; black-box jobs cannot pause)."""
    self.daemon.app.pause(Caller.of(self.user), level)
