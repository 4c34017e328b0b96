"""Reads a command's docstring: summary, description and per-argument docs.

Google style (``Args:``) and numpy style (``Parameters`` + dashes) argument
sections are understood; an entry may carry a unit in brackets and limits
in parentheses: ``energy [meV] (0.5..100): incident energy``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

Number = Union[int, float]

_GOOGLE_HEADER = re.compile(
    r'^(\s*)(?:Args|Arguments|Parameters|Params|Keyword Args|'
    r'Keyword Arguments|Other Parameters)\s*:\s*$')
_NUMPY_HEADER = re.compile(
    r'^(\s*)(?:Parameters|Other Parameters|Arguments|Args)\s*$')
# Any numpy section header, so that an argument section ends at the next one.
_NUMPY_ANY_HEADER = re.compile(r'^\s*[A-Z][A-Za-z ]*\s*$')
_DASHES = re.compile(r'^\s*-{3,}\s*$')

_NAME = r'\*{0,2}[A-Za-z_]\w*'
_DECORATIONS = r'((?:\s*(?:\[[^\]]*\]|\([^)]*\)))*)'
_GOOGLE_ENTRY = re.compile(rf'^\s*({_NAME}){_DECORATIONS}\s*:(.*)$')
_NUMPY_ENTRY = re.compile(
    rf'^\s*({_NAME}(?:\s*,\s*{_NAME})*){_DECORATIONS}\s*(?::(.*))?$')
_DECORATION = re.compile(r'\[([^\]]*)\]|\(([^)]*)\)')

_NUMBER = r'[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?'
_RANGE = re.compile(rf'^\s*({_NUMBER})?\s*\.\.\s*({_NUMBER})?\s*$')
_BOUND = re.compile(rf'^\s*(>=|<=|>|<|≥|≤)\s*({_NUMBER})\s*$')
_INTEGER = re.compile(r'^[-+]?\d+$')


@dataclass
class Limits:
    """Numeric limits of an argument; a bound of None means unbounded."""

    min: Optional[Number] = None
    max: Optional[Number] = None
    min_inclusive: Optional[bool] = None
    max_inclusive: Optional[bool] = None


@dataclass
class ParamDoc:
    """What the docstring says about one argument."""

    description: str = ''
    unit: Optional[str] = None
    limits: Optional[Limits] = None
    # Type text given in the docstring (``(float)``, ``: int, optional``);
    # the signature's annotation takes precedence over it.
    type_text: Optional[str] = None


@dataclass
class Docstring:
    """A docstring split into the parts the catalog shows."""

    summary: str = ''
    description: str = ''
    params: Dict[str, ParamDoc] = field(default_factory=dict)


def _number(text: str) -> Number:
    return int(text) if _INTEGER.match(text) else float(text)


def parse_limits(text: str) -> Optional[Limits]:
    """Limits written as ``lo..hi``, ``>= lo``, ``<= hi``, ``> lo``, ``< hi``.

    Returns None if *text* is not limits. Either end of ``lo..hi`` may be
    left out (``0..`` means at least 0).
    """
    match = _RANGE.match(text)
    if match and (match.group(1) or match.group(2)):
        lo, hi = match.groups()
        return Limits(min=None if lo is None else _number(lo),
                      max=None if hi is None else _number(hi),
                      min_inclusive=None if lo is None else True,
                      max_inclusive=None if hi is None else True)
    match = _BOUND.match(text)
    if not match:
        return None
    op, value = match.group(1), _number(match.group(2))
    inclusive = op in ('>=', '<=', '≥', '≤')
    if op in ('>=', '>', '≥'):
        return Limits(min=value, min_inclusive=inclusive)
    return Limits(max=value, max_inclusive=inclusive)


def _split_top_level(text: str) -> List[str]:
    """*text* split at commas that are not inside brackets or quotes."""
    parts, depth, quote, start = [], 0, '', 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ''
        elif char in '\'"':
            quote = char
        elif char in '([{':
            depth += 1
        elif char in ')]}':
            depth -= 1
        elif char == ',' and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _apply_parenthesised(doc: ParamDoc, text: str) -> None:
    # Google style puts the type in parentheses, our convention the limits:
    # accept both, and both at once (``(float, 0..10)``).
    limits = parse_limits(text)
    if limits is not None:
        doc.limits = limits
        return
    for part in _split_top_level(text):
        limits = parse_limits(part)
        if limits is not None:
            doc.limits = limits
        elif part.lower() != 'optional':
            doc.type_text = part


def _apply_decorations(doc: ParamDoc, text: str) -> None:
    for match in _DECORATION.finditer(text):
        unit, parenthesised = match.groups()
        if unit is not None:
            doc.unit = unit.strip() or None
        else:
            _apply_parenthesised(doc, parenthesised)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _join(lines: List[str]) -> str:
    """Description lines joined into text; blank lines separate paragraphs."""
    paragraphs: List[List[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    return '\n\n'.join(' '.join(p) for p in paragraphs if p)


def _parse_google(body: List[str], params: Dict[str, ParamDoc]) -> None:
    base = min((_indent(line) for line in body if line.strip()), default=0)
    current: Optional[Tuple[ParamDoc, List[str]]] = None
    for line in body:
        match = _GOOGLE_ENTRY.match(line) if _indent(line) == base else None
        if match:
            if current:
                current[0].description = _join(current[1])
            name, decorations, first = match.groups()
            doc = params.setdefault(name.lstrip('*'), ParamDoc())
            _apply_decorations(doc, decorations)
            current = (doc, [first])
        elif current:
            current[1].append(line)
    if current:
        current[0].description = _join(current[1])


def _parse_numpy(body: List[str], params: Dict[str, ParamDoc]) -> None:
    base = min((_indent(line) for line in body if line.strip()), default=0)
    # Several names may share one entry: ``x, y : float``.
    entries: List[Tuple[List[ParamDoc], List[str]]] = []
    for line in body:
        match = _NUMPY_ENTRY.match(line) if (
            line.strip() and _indent(line) == base) else None
        if match:
            names, decorations, type_text = match.groups()
            docs = [params.setdefault(name.strip().lstrip('*'), ParamDoc())
                    for name in names.split(',')]
            for doc in docs:
                _apply_decorations(doc, decorations)
                if type_text and type_text.strip():
                    _apply_parenthesised(doc, type_text.strip())
            entries.append((docs, []))
        elif entries:
            entries[-1][1].append(line)
    for docs, lines in entries:
        for doc in docs:
            doc.description = _join(lines)


def _numpy_header_at(lines: List[str], i: int) -> bool:
    return (i + 1 < len(lines) and bool(_DASHES.match(lines[i + 1]))
            and bool(_NUMPY_ANY_HEADER.match(lines[i])))


def parse_docstring(text: Optional[str]) -> Docstring:
    """Split a cleaned docstring (as `ast.get_docstring` returns it)."""
    result = Docstring()
    if not text:
        return result
    lines = text.splitlines()
    kept: List[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        google = _GOOGLE_HEADER.match(line)
        if google:
            indent = _indent(line)
            end = i + 1
            while end < len(lines) and (not lines[end].strip()
                                        or _indent(lines[end]) > indent):
                end += 1
            _parse_google(lines[i + 1:end], result.params)
            i = end
            continue
        if _NUMPY_HEADER.match(line) and _numpy_header_at(lines, i):
            end = i + 2
            while end < len(lines) and not _numpy_header_at(lines, end):
                end += 1
            _parse_numpy(lines[i + 2:end], result.params)
            i = end
            continue
        kept.append(line)
        i += 1
    paragraphs = re.split(r'\n[ \t]*\n', '\n'.join(kept).strip())
    result.summary = ' '.join(paragraphs[0].split())
    # Removing a section can leave runs of blank lines behind.
    result.description = '\n\n'.join(
        p.strip('\n') for p in paragraphs[1:] if p.strip())
    return result
