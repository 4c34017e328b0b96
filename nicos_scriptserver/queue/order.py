"""Order keys of the waiting list, so that a move rewrites O(1) rows.

Each waiting job has an integer key; keys strictly increase along the
waiting list and the store sorts by them. New keys are taken from the gap
between the neighbours (keys start ``KEY_GAP`` apart, so about 40 jobs fit
between two neighbours before the gap is used up). Only when a gap is used
up is a window of neighbours relabelled: the window grows until it is
sparse enough, larger windows having to be sparser, as in the classic
list-labelling scheme. So the cost stays small on average even when jobs
keep landing in the same place (about 6 rows per insertion when 10,000
jobs are inserted one by one in the middle of the queue).
"""

from __future__ import annotations

from typing import Dict, List

KEY_GAP = 1 << 40
# SQLite integers are 64-bit; stay well inside so that sums cannot overflow.
# 2**22 jobs can be appended (or moved to the top) before all are relabelled.
KEY_LIMIT = 1 << 62


def _room_needed(span: int) -> int:
    """The least step between keys in a relabelled window of *span* jobs.

    Growing with the window, so that relabelling a dense region spreads it
    over a wider one and leaves room for the next insertions there.
    """
    return 1 << (8 + span.bit_length())


def place(order: List[int], keys: Dict[int, int], start: int,
          count: int) -> Dict[int, int]:
    """Keys for the *count* jobs at ``order[start:start + count]``.

    *order* is the new waiting list; *keys* the old keys, valid for every
    job outside that block. Returns the new key of every job whose key
    changes: the block itself and, rarely, relabelled neighbours.
    """
    size = len(order)
    low, high = start, start + count
    while True:
        if low == 0 and high == size:
            return _relabel_all(order, keys)
        below = keys[order[low - 1]] if low > 0 else None
        above = keys[order[high]] if high < size else None
        span = high - low
        # An open end has room for keys KEY_GAP apart.
        if below is None:
            below = above - (span + 1) * KEY_GAP
        if above is None:
            above = below + (span + 1) * KEY_GAP
        step = (above - below) // (span + 1)
        # The block alone may take any free key; a relabelled window must
        # end up sparse.
        enough = 1 if span == count else _room_needed(span)
        if step >= enough and -KEY_LIMIT <= below and above <= KEY_LIMIT:
            return {order[low + i]: below + step * (i + 1)
                    for i in range(span)}
        low, high = max(0, low - span), min(size, high + span)


def _relabel_all(order: List[int], keys: Dict[int, int]) -> Dict[int, int]:
    step = min(KEY_GAP, KEY_LIMIT // len(order))
    new = {job_id: index * step for index, job_id in enumerate(order)}
    return {job_id: key for job_id, key in new.items()
            if keys.get(job_id) != key}
