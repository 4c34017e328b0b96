"""Plain-text rendering: tables, durations, clock times, progress bars.

Pure functions, so that what users read is unit-tested without a server.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

from nicos_scriptserver.clients import timefmt

# What a missing value looks like in every table and line.
NONE = '-'


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces, header underlined."""
    cells = [[text(value) for value in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells])
              for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return '  '.join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    out = [line(headers), line(['-' * w for w in widths])]
    out.extend(line(row) for row in cells)
    return '\n'.join(out)


def text(value: Any) -> str:
    """A table cell: None and '' as NONE, everything else as str."""
    return NONE if value is None or value == '' else str(value)


def duration(seconds: Optional[float]) -> str:
    """Seconds as ``45s``, ``12m05s`` or ``3h02m``; None as NONE."""
    return timefmt.duration(seconds, compact=True, missing=NONE)


def clock(epoch: Optional[float], now: Optional[float] = None) -> str:
    """Local time of *epoch*, or NONE."""
    return timefmt.clock(epoch, now, NONE)


def percent(fraction: Optional[float]) -> str:
    """0.42 as ``42%``; None as NONE."""
    return NONE if fraction is None else f'{fraction * 100:.0f}%'


def progress_bar(fraction: Optional[float], width: int = 30) -> str:
    """``[#########.....]  42%``; an unknown fraction shows an empty bar."""
    if fraction is None:
        return f'[{"." * width}]    ?'
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(fraction * width)
    return f'[{"#" * filled}{"." * (width - filled)}] {percent(fraction):>4}'


def estimate_text(estimate: Optional[dict]) -> str:
    """A job's estimate summary: the duration, or the dry run's state."""
    if not estimate:
        return NONE
    if estimate.get('seconds') is not None:
        return duration(estimate['seconds'])
    return estimate.get('state') or NONE


def key_values(pairs: Sequence[tuple]) -> str:
    """``key: value`` lines with the values aligned."""
    width = max(len(key) for key, _ in pairs)
    return '\n'.join(f'{key + ":":<{width + 1}} {text(value)}'
                     for key, value in pairs)


def first_line(doc: Optional[str]) -> str:
    """The first non-empty line of *doc* ('' if none)."""
    lines: List[str] = [line.strip() for line in (doc or '').splitlines()]
    return next((line for line in lines if line), '')
