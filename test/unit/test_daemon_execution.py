"""The daemon's execution controller: around the start-up setup, and its
breaks on NICOS's C controller."""

import gc

import pytest
from nicos.protocols.daemon import BREAK_AFTER_STEP, STATUS_RUNNING
from nicos.services.daemon.pyctl import Controller
from nicos.services.daemon.script import ExecutionController
from nicos.services.daemon.utils import splitBlocks

from nicos_scriptserver.daemon.execution import ScriptServerController


def test_the_start_up_setup_loads_without_cyclic_collections(monkeypatch):
    # Collections while NICOS, the devices and the command files load walk
    # the growing heap again and again (bench_catalog_daemon: the start
    # with 1,000 command files); one at the end, then freezing, suffices.
    seen = []
    monkeypatch.setattr(ExecutionController, '_setup',
                        lambda self: seen.append(gc.isenabled()))
    frozen = gc.get_freeze_count()
    try:
        ScriptServerController._setup(None)   # NICOS's part is replaced
        assert seen == [False]
        assert gc.isenabled() and gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.enable()


def test_collections_run_again_if_the_setup_fails(monkeypatch):
    def fail(self):
        raise RuntimeError('setup failed')
    monkeypatch.setattr(ExecutionController, '_setup', fail)
    with pytest.raises(RuntimeError):
        ScriptServerController._setup(None)
    assert gc.isenabled()


class Stopped(Exception):
    """Ends the test's script where the job would wait to be resumed."""


class PauseRecorder:
    """The application, as far as a pause concerns it."""

    def __init__(self):
        self.pauses = []

    def paused(self, line):
        self.pauses.append(line)
        raise Stopped


def bare_controller(app):
    """The script server's controller on NICOS's C controller, without the
    NICOS session around it (its breaks and observer are all that run)."""
    controller = ScriptServerController.__new__(ScriptServerController)
    Controller.__init__(controller, break_only_in_filename='<script>')
    controller.app, controller.bridge = app, None
    controller._break_flag = None
    return controller


def test_a_pause_asked_for_while_a_block_starts_is_not_lost():
    # When a block starts, the C controller calls its observer (which
    # sends the status to clients, and lets other threads run) and only
    # then clears the flag of the last break request; a pause asked for
    # from another thread in that moment left a break without a flag, and
    # the job failed with "_breakfunc() missing 1 required positional
    # argument" instead of pausing. The observer here asks for the pause
    # in that moment, as the thread of the client's request did.
    app = PauseRecorder()
    controller = bare_controller(app)
    asked = []

    def observer(status, lineno):
        if status == STATUS_RUNNING and not asked:   # the block starts
            asked.append(status)
            controller.set_break(('break', BREAK_AFTER_STEP, 'user'))
    controller.set_observer(observer)
    # NICOS's second block of this script: line 4 on.
    code = splitBlocks('x = 1\n\n\ny = 2\nz = 3\n')[0][1]
    with pytest.raises(Stopped):
        controller.start_exec(code, {})
    # Before its first line, and shown there (not at line 0).
    assert app.pauses == [4]
