"""Plain data only, wherever NICOS unpickles what another process sent.

The daemon's command frames are read by `transport.PlainDataSerializer`.
Two more places in NICOS call ``pickle.loads`` on bytes from outside the
daemon process, and both look the function up when they run, so pointing
them at `plainpickle.loads` covers every caller:

* cache values: the cache client turns a ``cache_unpickle("...")`` value
  into an object (``nicos.protocols.cache.ast_eval``); the value may come
  from any process that can write to the cache;
* NICOS's own dry-run supervisor (stock ``simulate``, ``sim()`` in a
  script) reads the simulation process's messages
  (``nicos.core.sessions.simulation.unserialize``).
"""

import pickle
import types

import nicos.core.sessions.simulation as simulation
import nicos.protocols.cache as cache_protocol

from nicos_scriptserver.wire import plainpickle


def install() -> None:
    """Make the daemon process read those pickles as plain data only."""
    cache_protocol.pickle = types.SimpleNamespace(dumps=pickle.dumps,
                                                  loads=plainpickle.loads)
    simulation.unserialize = plainpickle.loads
