"""Parsing what users type: ``ARG=VALUE`` pairs and queue positions."""

from __future__ import annotations

import ast
from typing import Any, Dict, Sequence, Union

from nicos_scriptserver.clients.cli.errors import UsageError

# Named places in the waiting list that ss_move and ss_submit accept.
MOVE_WORDS = ('up', 'down', 'top', 'bottom')


def literal(text: str) -> Any:
    """A Python literal (``25``, ``True``, ``[1, 2]``, ``'a'``) or the text.

    Falling back to the text lets users write ``mode=fast`` without quotes.
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def call_args(pairs: Sequence[str]) -> Dict[str, Any]:
    """``['energy=25', 'wait=False']`` as ``{'energy': 25, 'wait': False}``."""
    args: Dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition('=')
        name = name.strip()
        if not sep or not name.isidentifier():
            raise UsageError(f'{pair!r} is not ARG=VALUE')
        if name in args:
            raise UsageError(f'argument {name!r} is given twice')
        args[name] = literal(value.strip())
    return args


def position(text: str, words: Sequence[str] = MOVE_WORDS) -> Union[int, str]:
    """A queue position: an index (from 0) or one of *words*."""
    if text in words:
        return text
    try:
        return int(text)
    except ValueError:
        raise UsageError(f'position {text!r} is neither an index nor one of '
                         f'{", ".join(words)}') from None
