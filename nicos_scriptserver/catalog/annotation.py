"""The catalog type of an argument, from its annotation, docstring or default.

Types are ``float``, ``int``, ``str``, ``bool``, ``list`` (with an item
type) and ``any``; ``Literal[...]`` gives choices, ``Optional[X]`` and
``X | None`` make a type nullable. Only the AST is looked at: the names
are recognised by spelling (``typing.Optional``, ``t.Literal``, ...).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from typing import Any, List, Optional

SCALARS = ('float', 'int', 'str', 'bool')
_LISTS = ('list', 'List', 'Sequence', 'MutableSequence', 'tuple', 'Tuple')
# Words a docstring may use for a type (``(number)``, ``: integer``).
_WORDS = {'float': 'float', 'number': 'float', 'real': 'float',
          'int': 'int', 'integer': 'int', 'str': 'str', 'string': 'str',
          'text': 'str', 'bool': 'bool', 'boolean': 'bool'}


@dataclass(frozen=True)
class TypeInfo:
    """An argument's type; for lists, *choices* apply to each item."""

    type: str = 'any'
    nullable: bool = False
    item_type: Optional[str] = None
    choices: Optional[List[Any]] = None


ANY = TypeInfo()


def value_type(value: Any) -> str:
    """The catalog type name of a JSON value (``any`` for None and dicts)."""
    if isinstance(value, bool):
        return 'bool'
    for name, kind in (('int', int), ('float', float), ('str', str)):
        if isinstance(value, kind):
            return name
    return 'any'


def common_type(values: List[Any]) -> str:
    """The one type all *values* have; int and float together are float."""
    types = {value_type(v) for v in values}
    if types == {'int', 'float'}:
        return 'float'
    return types.pop() if len(types) == 1 else 'any'


def _dotted_tail(node: ast.expr) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _elements(node: ast.expr) -> List[ast.expr]:
    return list(node.elts) if isinstance(node, ast.Tuple) else [node]


def _choices(nodes: List[ast.expr]) -> TypeInfo:
    try:
        values = [ast.literal_eval(n) for n in nodes]
    except ValueError:
        return ANY
    nullable = None in values
    values = [v for v in values if v is not None]
    if not values or common_type(values) == 'any':
        return TypeInfo(nullable=nullable)
    return TypeInfo(type=common_type(values), nullable=nullable,
                    choices=values)


def _union(members: List[ast.expr]) -> TypeInfo:
    nullable = any(_is_none(m) for m in members)
    infos = [interpret(m) for m in members if not _is_none(m)]
    if len(infos) == 1:
        return replace(infos[0], nullable=nullable or infos[0].nullable)
    nullable = nullable or any(i.nullable for i in infos)
    if infos and all(i.choices for i in infos):
        values = [v for i in infos for v in i.choices or ()]
        if common_type(values) != 'any':
            return TypeInfo(type=common_type(values), nullable=nullable,
                            choices=values)
    if {i.type for i in infos} == {'int', 'float'} and not any(
            i.choices for i in infos):
        return TypeInfo(type='float', nullable=nullable)
    return TypeInfo(nullable=nullable)


def _flatten_or(node: ast.expr) -> List[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _flatten_or(node.left) + _flatten_or(node.right)
    return [node]


def _list_of(item: Optional[ast.expr]) -> TypeInfo:
    info = ANY if item is None else interpret(item)
    if info.type not in SCALARS:
        return TypeInfo(type='list', item_type='any')
    return TypeInfo(type='list', item_type=info.type, choices=info.choices)


def _subscript(node: ast.Subscript) -> TypeInfo:
    base = _dotted_tail(node.value)
    args = _elements(node.slice)
    if base == 'Optional' and len(args) == 1:
        return replace(interpret(args[0]), nullable=True)
    if base == 'Union':
        return _union(args)
    if base == 'Literal':
        return _choices(args)
    if base == 'Annotated':
        return interpret(args[0])
    if base in _LISTS:
        # tuple[float, float] is a fixed-length list of floats as much as
        # tuple[float, ...] is a list of any length.
        items = [a for a in args if not (isinstance(a, ast.Constant)
                                         and a.value is Ellipsis)]
        infos = [interpret(a) for a in items]
        same = bool(infos) and all(i == infos[0] for i in infos)
        return _list_of(items[0] if same else None)
    return ANY


def interpret(node: Optional[ast.expr]) -> TypeInfo:
    """The type an annotation (or a docstring's type expression) names."""
    if node is None:
        return ANY
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        # A string annotation (forward reference) holds an expression.
        return type_from_text(node.value)
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted_tail(node)
        if name in SCALARS:
            return TypeInfo(type=name)
        if name in _LISTS:
            return _list_of(None)
        return ANY
    if isinstance(node, ast.Subscript):
        return _subscript(node)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union(_flatten_or(node))
    if isinstance(node, ast.Set):
        # numpy style writes choices as a set: ``mode : {'fast', 'slow'}``.
        return _choices(list(node.elts))
    return ANY


def type_from_text(text: str) -> TypeInfo:
    """The type written as text: an annotation or a word like ``integer``."""
    words = text.strip().split()
    if len(words) == 1 and words[0].lower() in _WORDS:
        return TypeInfo(type=_WORDS[words[0].lower()])
    if len(words) == 3 and words[:2] == ['list', 'of']:
        item = type_from_text(words[2])
        return TypeInfo(type='list', item_type=item.type
                        if item.type in SCALARS else 'any')
    try:
        tree = ast.parse(text.strip(), mode='eval')
    except (SyntaxError, ValueError):
        return ANY
    return interpret(tree.body)


def from_default(value: Any) -> TypeInfo:
    """The type a literal default suggests when there is no annotation."""
    if value is None:
        return TypeInfo(nullable=True)
    if isinstance(value, list):
        if not value or common_type(value) not in SCALARS:
            return TypeInfo(type='list', item_type='any')
        return TypeInfo(type='list', item_type=common_type(value))
    kind = value_type(value)
    return TypeInfo(type=kind) if kind in SCALARS else ANY
