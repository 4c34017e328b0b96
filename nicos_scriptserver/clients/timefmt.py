"""Times of day and durations as every client shows them (pure)."""

import time
from typing import Optional


def clock(epoch: Optional[float], now: Optional[float] = None,
          missing: str = '') -> str:
    """Local time of *epoch*: ``14:03:07``, with the date if not today;
    *missing* for None."""
    if epoch is None:
        return missing
    moment = time.localtime(epoch)
    today = time.localtime(time.time() if now is None else now)
    if moment[:3] == today[:3]:
        return time.strftime('%H:%M:%S', moment)
    return time.strftime('%Y-%m-%d %H:%M', moment)


def duration(seconds: Optional[float], compact: bool = False,
             missing: str = '') -> str:
    """``45 s``, ``3 min``, ``3 min 05 s``, ``2 h 05 min``; *compact* for
    a terminal column: ``45s``, ``3m05s``, ``2h05m``; *missing* for None.

    Rounded to the second, and to the minute from an hour on: nobody
    reads seconds of a duration that long.
    """
    if seconds is None:
        return missing
    sec, minute, hour, gap = ('s', 'm', 'h', '') if compact else \
        (' s', ' min', ' h', ' ')
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f'{seconds}{sec}'
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f'{minutes}{minute}{gap}{seconds:02d}{sec}' if seconds \
            else f'{minutes}{minute}'
    hours, minutes = divmod(minutes, 60)
    return f'{hours}{hour}{gap}{minutes:02d}{minute}'
