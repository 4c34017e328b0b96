"""Reading and checking form values against a catalog parameter, before
anything is sent (the server checks again; see docs/COMMANDS.md)."""

import ast
import math
from typing import Any, Optional

# Nothing entered: the argument is left out (or None when it is nullable).
EMPTY = object()


class FieldError(ValueError):
    """A value the parameter does not accept; the text says why."""


_KIND_WORDS = {'float': 'a number', 'int': 'a whole number', 'str': 'text',
               'bool': 'true or false', 'list': 'a list'}


def _number(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (kind == 'float' and isinstance(value, float))


def _type_ok(value: Any, kind: str) -> bool:
    if kind in ('float', 'int'):
        return _number(value, kind)
    if kind == 'str':
        return isinstance(value, str)
    if kind == 'bool':
        return isinstance(value, bool)
    if kind == 'list':
        return isinstance(value, (list, tuple))
    return True


def _limits(value: Any, param: dict) -> None:
    unit = f" {param['unit']}" if param.get('unit') else ''
    low, high = param.get('min'), param.get('max')
    if low is not None:
        if param.get('min_inclusive', True) and value < low:
            raise FieldError(f'must be at least {low:g}{unit}')
        if not param.get('min_inclusive', True) and value <= low:
            raise FieldError(f'must be above {low:g}{unit}')
    if high is not None:
        if param.get('max_inclusive', True) and value > high:
            raise FieldError(f'must be at most {high:g}{unit}')
        if not param.get('max_inclusive', True) and value >= high:
            raise FieldError(f'must be below {high:g}{unit}')


def check_item(value: Any, kind: str, param: dict) -> None:
    """Check one value of type *kind* (for lists: one item) against the
    parameter's type, choices and limits."""
    if not _type_ok(value, kind):
        raise FieldError('must be ' + _KIND_WORDS.get(kind, kind))
    choices = param.get('choices')
    if choices is not None and value not in choices:
        raise FieldError('must be one of ' + ', '.join(map(repr, choices)))
    if kind in ('float', 'int'):
        _limits(value, param)


def check(value: Any, param: dict) -> Any:
    """The argument value for *value* as read from a field, or `EMPTY` to
    leave the argument out; raises `FieldError`."""
    if value is EMPTY or value is None:
        if param.get('has_default'):
            return EMPTY
        if param.get('nullable'):
            return None
        raise FieldError('required')
    if param['type'] == 'list':
        if not isinstance(value, (list, tuple)):
            raise FieldError('must be a list')
        for index, item in enumerate(value, 1):
            try:
                check_item(item, param.get('item_type') or 'any', param)
            except FieldError as err:
                raise FieldError(f'item {index} {err}') from None
        return list(value)
    check_item(value, param['type'], param)
    return value


def parse_text(text: str, kind: str) -> Any:
    """A value typed as text into a field of type *kind* (``str``, ``any``,
    or the item type of a comma-separated ``list``)."""
    text = text.strip()
    if kind == 'str':
        return text
    if kind in ('float', 'int'):
        return _parse_number(text, kind)
    if kind == 'bool' and text.lower() in ('true', 'false'):
        return text.lower() == 'true'
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise FieldError(f'{text!r} is not a Python value '
                         '(quote text: \'like this\')') from None


def _parse_number(text: str, kind: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        raise FieldError(f'{text!r} is not a number') from None
    # nan passes every limit check; inf is no setting either
    if not math.isfinite(number):
        raise FieldError(f'{text!r} is not a number')
    if kind == 'float':
        return number
    try:
        return int(text)
    except ValueError:
        raise FieldError('must be a whole number') from None


def parse_list(text: str, item_type: Optional[str]) -> list:
    """Comma-separated items, e.g. ``1.5, 2, 3`` (text items unquoted)."""
    if not text.strip():
        return []
    if item_type == 'str':
        return [part.strip() for part in text.split(',')]
    # item types are checked by check(); literal_eval keeps 2 as typed
    return parse_text(f'[{text}]', 'any')
