"""Reads a generated job's edited script back into command calls.

A generated job is a list of command calls and its script is rendered
from them. When someone edits the script instead (a stock client's
``update``, the CLI's ``edit``), `read_calls` finds the calls again if the
text is still nothing but calls of catalog commands with literal
arguments; otherwise it says why not, and the job is no longer generated.
"""

from __future__ import annotations

import ast
import io
import tokenize
from typing import Any, Dict, List, Mapping, Union

from nicos_scriptserver.catalog.validate import CommandLookup, plain_problem

Call = Dict[str, Any]


class NotCalls(ValueError):
    """The script is not only command calls; the message says where."""


def read_calls(source: str, catalog: CommandLookup) -> List[Call]:
    """The command calls *source* consists of, in the shape generated jobs
    keep (arguments by name where the command allows it, ``posargs``
    otherwise); `NotCalls` if it is anything else.

    The calls are not validated here (`validate_calls` does that), but
    every command must be in *catalog*: a call of anything else (``print``,
    a device method) makes the script an ordinary one. Comments also do,
    since calls cannot keep them.
    """
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError, ValueError) as err:
        raise NotCalls(f'it does not parse: {err}') from None
    comment = next((token for token in tokens
                    if token.type == tokenize.COMMENT), None)
    if comment is not None:
        raise NotCalls(f'line {comment.start[0]} has a comment, which command '
                       'calls cannot keep')
    if not tree.body:
        raise NotCalls('it has no command calls')
    return [_call(statement, catalog) for statement in tree.body]


def _call(statement: ast.stmt, catalog: CommandLookup) -> Call:
    where = f'line {statement.lineno}'
    node = statement.value if isinstance(statement, ast.Expr) else None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise NotCalls(f'{where} is not a command call')
    name = node.func.id
    entry = catalog.get(name)
    if entry is None:
        raise NotCalls(f'{where} calls {name}, which is not an instrument '
                       'command')
    if any(isinstance(arg, ast.Starred) for arg in node.args) or \
            any(keyword.arg is None for keyword in node.keywords):
        raise NotCalls(f'{where} passes arguments with * or **')
    posargs = [_literal(arg, where) for arg in node.args]
    args = {keyword.arg: _literal(keyword.value, where)
            for keyword in node.keywords}
    named = _by_name(entry, posargs)
    call: Call = {'command': name, 'args': args}
    if named is None or set(named) & set(args):
        # Kept as written: validation then names what does not fit.
        call['posargs'] = posargs
    else:
        call['args'] = {**named, **args}
    return call


def _literal(node: ast.expr, where: str) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise NotCalls(f'{where} has an argument that is not a literal '
                       'value') from None
    if plain_problem(value) is not None:
        raise NotCalls(f'{where} has an argument that is not a number, text, '
                       'True/False, None, or a list or dict of them')
    return value


def _by_name(entry: Mapping[str, Any], posargs: List[Any]
             ) -> Union[Dict[str, Any], None]:
    """*posargs* given by the names of ordinary parameters, as a script
    generator gives them; None if some must stay positional (positional-
    only parameters, ``*args``)."""
    params = [param for param in entry['params']
              if param['kind'] in ('positional_only', 'positional',
                                   'var_positional')]
    if len(posargs) > len(params) or \
            any(param['kind'] != 'positional' for param in params[:len(posargs)]):
        return None
    return {param['name']: value for param, value in zip(params, posargs)}
