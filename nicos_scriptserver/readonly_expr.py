"""Decide whether a Python expression only reads (free of NICOS imports).

Guest logins may evaluate expressions to watch the instrument, but NICOS's
``eval`` runs any code, and device access checks look at the running
script's user, not at the caller. So a guest's expression may only use
names, attributes, literals, operators and a fixed set of read-only calls.
"""

import ast

READ_ONLY_CALLS = frozenset({
    # device and session queries
    'read', 'status', 'format', 'info', 'valueInfo', 'isAllowed', 'history',
    'getSetupInfo', 'getDevice', 'doReadUnit',
    # harmless builtins
    'len', 'list', 'tuple', 'dict', 'set', 'sorted', 'repr', 'str', 'int',
    'float', 'bool', 'abs', 'min', 'max', 'round', 'items', 'keys', 'values',
})

_ALLOWED_NODES = (
    ast.Expression, ast.Name, ast.Load, ast.Attribute, ast.Subscript,
    ast.Slice, ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.Set,
    ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call,
    ast.keyword, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)


class NotReadOnly(ValueError):
    """The expression could change something (or cannot be parsed)."""


def check_read_only(expr: str) -> None:
    """Raise `NotReadOnly` naming the first construct that is not allowed."""
    try:
        tree = ast.parse(expr, mode='eval')
    except SyntaxError as err:
        raise NotReadOnly(f'not a valid expression: {err.msg}') from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise NotReadOnly(f'{type(node).__name__} is not allowed')
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name.startswith('_'):
                raise NotReadOnly(f'private name {name!r} is not allowed')
        if isinstance(node, ast.Call):
            func = node.func
            name = (func.id if isinstance(func, ast.Name) else
                    func.attr if isinstance(func, ast.Attribute) else None)
            if name not in READ_ONLY_CALLS:
                raise NotReadOnly(f'calling {name or "this"}() is not allowed')
