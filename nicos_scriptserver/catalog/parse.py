"""Turns a command file into catalog entries by reading its syntax tree.

Nothing is imported or executed: parsing is fast, safe for files being
edited, and a syntax error is reported with its line and column.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import math
import re
from dataclasses import dataclass, field, replace
from types import CodeType
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from nicos_scriptserver.catalog.annotation import (ANY, TypeInfo,
                                                   from_default, interpret,
                                                   type_from_text)
from nicos_scriptserver.catalog.docstring import (Docstring, ParamDoc,
                                                  parse_docstring)
from nicos_scriptserver.catalog.validate import value_problem

ESTIMATE_PREFIX = 'estimate_'
# A parenthesised text in a docstring that was probably meant as limits.
_LOOKS_LIKE_LIMITS = re.compile(r'\d|\.\.|[<>=≤≥]')
# Calls that make a command pausable / report its progress.
PAUSE_CALLS = frozenset({'pause_point'})
PROGRESS_CALLS = frozenset({'progress', 'step'})
# Decorators that hide a function from the user (NICOS's own).
HIDDEN_DECORATORS = frozenset({'hiddenusercommand'})

NO_DOCSTRING = 'no docstring: add one with a summary and an Args section'

FunctionDef = Union[ast.FunctionDef, ast.AsyncFunctionDef]


@dataclass
class ParsedFile:
    """One command file: its commands, or the error that stopped parsing.

    *file* is the path relative to its command folder, *path* absolute;
    *digest* (sha256 of the file's bytes) tells a touched file from an
    edited one. *compiled* is the text parsed and the module's code
    compiled from it: parsing compiles anyway (to find every syntax
    error), so whoever imports the file need not compile it again.
    """

    path: str
    file: str
    commands: List[Dict[str, Any]] = field(default_factory=list)
    error: Optional[Dict[str, Any]] = None
    digest: Optional[str] = None
    compiled: Optional[Tuple[str, CodeType]] = field(default=None, repr=False,
                                                     compare=False)


def file_error(kind: str, file: str, path: str, line: Optional[int],
               column: Optional[int], message: str) -> Dict[str, Any]:
    """A catalog error entry (line and column count from 1, or are None)."""
    return {'kind': kind, 'file': file, 'path': path, 'line': line,
            'column': column, 'message': message}


def json_literal(node: ast.expr) -> Tuple[bool, Any]:
    """(True, value) if *node* is a literal JSON can carry, else (False, None).

    Tuples become lists, as they would in JSON.
    """
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None

    def convert(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {k: convert(v) for k, v in value.items()}
        raise ValueError(value)

    try:
        return True, convert(value)
    except ValueError:
        return False, None


def _called_names(function: FunctionDef) -> Set[str]:
    # A hand-rolled walk: ast.walk is several times slower, and this is a
    # large share of the time a cold scan takes.
    names = set()
    todo: List[Any] = list(function.body)
    while todo:
        node = todo.pop()
        if not isinstance(node, ast.AST):   # e.g. the names of `global`
            continue
        if type(node) is ast.Call:
            func = node.func
            if type(func) is ast.Name:
                names.add(func.id)
            elif type(func) is ast.Attribute:
                names.add(func.attr)
        for name in node._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                todo.extend(value)
            elif isinstance(value, ast.AST):
                todo.append(value)
    return names


def _decorator_name(node: ast.expr) -> Optional[str]:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _reaches(start: str, calls: Dict[str, Set[str]],
             targets: frozenset) -> bool:
    """Whether *start* calls one of *targets*, also via the file's functions.

    Following calls within the file makes a command that pauses in a
    helper (or in another command of the file) pausable too.
    """
    seen, todo = {start}, [start]
    while todo:
        called = calls[todo.pop()]
        if called & targets:
            return True
        for name in called & calls.keys():
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return False


def _type_of(arg: ast.arg, doc: Optional[ParamDoc], has_literal: bool,
             default: Any) -> TypeInfo:
    info = interpret(arg.annotation)
    if info == ANY and doc is not None and doc.type_text:
        info = type_from_text(doc.type_text)
    if info == ANY and has_literal:
        info = from_default(default)
    if has_literal and default is None and not info.nullable:
        # ``x: float = None`` means "a float, or nothing".
        info = replace(info, nullable=True)
    return info


def _param(arg: ast.arg, kind: str, default: Optional[ast.expr],
           doc: Optional[ParamDoc], source: str,
           warnings: List[str]) -> Dict[str, Any]:
    has_literal, value = (False, None) if default is None else \
        json_literal(default)
    info = _type_of(arg, doc, has_literal, value)
    limits = doc.limits if doc else None
    param = {
        'name': arg.arg, 'kind': kind, 'type': info.type,
        'nullable': info.nullable, 'item_type': info.item_type,
        'choices': info.choices, 'unit': doc.unit if doc else None,
        'min': limits.min if limits else None,
        'max': limits.max if limits else None,
        'min_inclusive': limits.min_inclusive if limits else None,
        'max_inclusive': limits.max_inclusive if limits else None,
        'default': value, 'has_default': default is not None,
        # Set only for a default computed when the command runs.
        'default_source': None if default is None or has_literal else
        ast.get_source_segment(source, default) or ast.unparse(default),
        'required': default is None and kind in ('positional_only',
                                                  'positional', 'keyword'),
        'description': doc.description if doc else '',
    }
    if limits and ('str' in (info.type, info.item_type) or
                   'bool' in (info.type, info.item_type)):
        warnings.append(f"'{arg.arg}' has limits but is not a number")
    if limits and None not in (limits.min, limits.max) and \
            limits.min > limits.max:
        warnings.append(f"'{arg.arg}' has limits with minimum above maximum")
    if has_literal and value is not None:
        problem = value_problem(param, value)
        if problem:
            warnings.append(f"the default of '{arg.arg}' {problem}")
    return param


def _params(function: FunctionDef, docstring: Docstring, source: str,
            warnings: List[str]) -> List[Dict[str, Any]]:
    args = function.args
    positional = args.posonlyargs + args.args
    defaults: List[Optional[ast.expr]] = [None] * (
        len(positional) - len(args.defaults)) + list(args.defaults)
    signature: List[Tuple[ast.arg, str, Optional[ast.expr]]] = [
        (arg, 'positional_only' if i < len(args.posonlyargs) else
         'positional', defaults[i]) for i, arg in enumerate(positional)]
    if args.vararg:
        signature.append((args.vararg, 'var_positional', None))
    signature += [(arg, 'keyword', default)
                  for arg, default in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        signature.append((args.kwarg, 'var_keyword', None))
    names = {arg.arg for arg, _, _ in signature}
    for name, doc in docstring.params.items():
        if name not in names:
            warnings.append(f"the docstring documents '{name}', which is "
                            f"not a parameter")
        elif doc.type_text and _LOOKS_LIKE_LIMITS.search(doc.type_text) \
                and type_from_text(doc.type_text) == ANY:
            warnings.append(f"cannot read the limits ({doc.type_text}) of "
                            f"'{name}': write lo..hi, >= lo, <= hi, > lo "
                            f"or < hi")
    return [_param(arg, kind, default, docstring.params.get(arg.arg), source,
                   warnings) for arg, kind, default in signature]


def _estimate_warning(command: FunctionDef,
                      estimate: FunctionDef) -> Optional[str]:
    def names(function: FunctionDef) -> List[str]:
        args = function.args
        return [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]

    if estimate.args.vararg or estimate.args.kwarg or \
            names(command) == names(estimate):
        return None
    return (f"{estimate.name} takes ({', '.join(names(estimate))}) but "
            f"{command.name} takes ({', '.join(names(command))})")


def _entry(function: FunctionDef, lines: List[str], source: str,
           parsed: ParsedFile, calls: Dict[str, Set[str]],
           functions: Dict[str, FunctionDef]) -> Dict[str, Any]:
    raw_doc = ast.get_docstring(function)
    docstring = parse_docstring(raw_doc)
    warnings = [] if raw_doc else [NO_DOCSTRING]
    params = _params(function, docstring, source, warnings)
    estimate = functions.get(ESTIMATE_PREFIX + function.name)
    if estimate is not None:
        problem = _estimate_warning(function, estimate)
        if problem:
            warnings.append(problem)
    first = min([d.lineno for d in function.decorator_list] +
                [function.lineno])
    text = '\n'.join(lines[first - 1:function.end_lineno])
    return {
        'name': function.name,
        'summary': docstring.summary,
        'description': docstring.description,
        'file': parsed.file,
        'path': parsed.path,
        'line': function.lineno,
        'hash': hashlib.sha256(text.encode('utf-8', 'surrogatepass'))
        .hexdigest(),
        'flags': {'pause_points': _reaches(function.name, calls, PAUSE_CALLS),
                  'progress': _reaches(function.name, calls, PROGRESS_CALLS),
                  'estimate': estimate is not None},
        'warnings': warnings,
        'params': params,
    }


def parse_source(source: str, path: str, file: str) -> ParsedFile:
    """The commands defined in *source*, the text of the file *path*.

    A command is a public top-level ``def`` (not async, not nested, not a
    lambda) whose name does not start with ``estimate_`` and that is not
    decorated ``@hiddenusercommand``. If a name is defined twice, the later
    definition counts, as it does when the file runs.
    """
    parsed = ParsedFile(path=path, file=file)
    try:
        tree = ast.parse(source, path)
        # Compiling finds what parsing lets through (e.g. ``return`` at
        # module level) and would fail the import just the same.
        parsed.compiled = source, compile(tree, path, 'exec',
                                          dont_inherit=True)
    except SyntaxError as err:
        parsed.error = file_error('syntax', file, path, err.lineno,
                                  err.offset, err.msg)
        return parsed
    except (ValueError, RecursionError, MemoryError) as err:
        parsed.error = file_error('syntax', file, path, None, None,
                                  f'cannot be parsed: {err}')
        return parsed
    functions: Dict[str, FunctionDef] = {}
    redefined: Dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name in functions:
                redefined[node.name] = functions.pop(node.name).lineno
            functions[node.name] = node   # in the order of the last ones
    calls = {name: _called_names(f) for name, f in functions.items()}
    # Only the line ends Python knows: str.splitlines also splits at form
    # feeds and the like, which would shift the line numbers.
    lines = re.split(r'\r\n|\r|\n', source)
    for name, function in functions.items():
        if (isinstance(function, ast.FunctionDef) and
                not name.startswith(('_', ESTIMATE_PREFIX)) and
                not any(_decorator_name(d) in HIDDEN_DECORATORS
                        for d in function.decorator_list)):
            entry = _entry(function, lines, source, parsed, calls, functions)
            if name in redefined:
                entry['warnings'].append(
                    f'also defined at line {redefined[name]}; this later '
                    f'definition is the one used')
            parsed.commands.append(entry)
    return parsed


def parse_file(path: str, file: str) -> ParsedFile:
    """Read and parse the command file *path* (*file* relative to its folder).

    The encoding follows Python's rules (UTF-8 unless the file declares
    another); an unreadable file is reported like a syntax error.
    """
    try:
        with open(path, 'rb') as stream:
            data = stream.read()
    except OSError as err:
        return ParsedFile(path=path, file=file, error=file_error(
            'read', file, path, None, None, f'cannot be read: {err}'))
    digest = hashlib.sha256(data).hexdigest()
    try:
        source = importlib.util.decode_source(data)
    except (UnicodeDecodeError, SyntaxError, LookupError) as err:
        parsed = ParsedFile(path=path, file=file, error=file_error(
            'read', file, path, None, None, f'cannot be decoded: {err}'))
    else:
        parsed = parse_source(source, path, file)
    parsed.digest = digest
    return parsed
