"""Names for jobs submitted without one, made from what they run.

A queue of blank names (a console line, a script generator that sends
none) says nothing about what will run; every client shows the job's
name, so the server names it from its content once, when it is queued:
a generated job after its first call (``set_temperature(kelvin=10)
(+1)`` when more calls follow), a script after its first line that does
something (not blank, not a comment).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

#: Longest name made; the rest of a long line is cut to an ellipsis.
MAX_LENGTH = 60


def job_name(source: str,
             calls: Optional[Sequence[Mapping[str, Any]]] = None) -> str:
    """The name of a job running *source*, or *calls* (a generated job's
    ``{command, args}`` calls) if given; '' if there is nothing to say."""
    if calls:
        first = calls[0]
        args = ', '.join(f'{key}={value!r}'
                         for key, value in (first.get('args') or {}).items())
        more = f' (+{len(calls) - 1})' if len(calls) > 1 else ''
        return _shortened(f'{first.get("command")}({args})', len(more)) + more
    line = next((line.strip() for line in source.splitlines()
                 if line.strip() and not line.lstrip().startswith('#')), '')
    return _shortened(line)


def _shortened(text: str, reserved: int = 0) -> str:
    """*text*, cut with an ellipsis to leave *reserved* characters of
    MAX_LENGTH for a suffix."""
    room = MAX_LENGTH - reserved
    return text if len(text) <= room else text[:room - 1] + '…'
