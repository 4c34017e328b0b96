"""The daemon's execution controller around the start-up setup."""

import gc

import pytest
from nicos.services.daemon.script import ExecutionController

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
