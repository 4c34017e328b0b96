"""When the queue waits for a person: nothing runs although jobs are queued.

Clients that know nothing of holds (the NICOS GUI and console, the IBEX
GUI) see such a queue as a paused script (`daemon.stockview`), and their
``continue`` lets it go on (`server.ScriptServer.continue_`).
"""

from typing import Optional, Tuple

#: Why the queue waits: it is held, or every queued job is held back.
HELD, HELD_BACK = 'held', 'held back'
#: The reason, and with HELD_BACK the first queued job.
Attention = Tuple[str, Optional[int]]


def attention(running: bool, queued: int, held_back: int,
              first: Optional[int], held: bool) -> Optional[Attention]:
    """Why nothing runs although jobs are queued: the queue is *held*
    (`HELD`), or all *queued* jobs are held back (`HELD_BACK`, with the
    *first* of them); None while a job runs or none is queued."""
    if running or not queued:
        return None
    if held:
        return HELD, None
    if held_back == queued:
        return HELD_BACK, first
    return None
