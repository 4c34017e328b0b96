"""Times of day as every client shows them (pure)."""

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
