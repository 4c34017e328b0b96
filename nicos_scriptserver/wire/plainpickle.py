"""Unpickling that admits plain data only.

NICOS's classic protocol, its cache values (``cache_unpickle(...)``) and
its dry-run channel are pickles, and ``pickle.loads`` runs whatever code a
pickle names. Everywhere a pickle arrives from another process, the script
server reads it with `loads` instead: the pickle may build None, bools,
numbers, strings, bytes, lists, tuples, dicts, sets and NumPy arrays, and
nothing may be called but the constructors of those types. A pickle that
names anything else is refused with `UnpicklingError` before it runs.
"""

from __future__ import annotations

import codecs
import io
import pickle
from typing import Any, Callable, Dict, Tuple

UnpicklingError = pickle.UnpicklingError


def _latin1(text: str, encoding: str = 'latin1') -> bytes:
    # Protocol 2 writes bytes as _codecs.encode(text, 'latin1'); any other
    # codec (zlib, bz2, ...) is not how plain bytes are pickled.
    if codecs.lookup(encoding).name != 'iso8859-1':
        raise UnpicklingError(f'bytes encoded as {encoding!r} are not plain data')
    return text.encode('latin1')


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    # How protocol 2 writes subclasses of list and dict, such as NICOS's
    # readonlylist and readonlydict (which arrive here as list and dict).
    if cls not in (list, dict) or base is not cls:
        raise UnpicklingError(f'{cls.__name__} made from {base.__name__} is '
                              'not plain data')
    return cls(state)


def _numpy(module: str, name: str) -> Callable[[], Any]:
    def load():
        import numpy
        import numpy.core.multiarray as multiarray
        return {'ndarray': numpy.ndarray, 'dtype': numpy.dtype,
                '_reconstruct': multiarray._reconstruct,
                'scalar': multiarray.scalar}[name]
    return load


_BUILTINS = {'list': list, 'dict': dict, 'tuple': tuple, 'set': set,
             'frozenset': frozenset, 'bytes': bytes,
             'bytearray': bytearray, 'complex': complex, 'slice': slice,
             'range': range}

#: (module, name) -> what the pickle gets for it. NumPy arrays appear in
#: NICOS cache values of detectors; their elements are checked like any
#: other object, so an object array cannot smuggle anything in.
ALLOWED: Dict[Tuple[str, str], Callable[[], Any]] = {
    **{(module, name): (lambda value=value: value)
       for module in ('builtins', '__builtin__')
       for name, value in _BUILTINS.items()},
    ('_codecs', 'encode'): lambda: _latin1,
    **{(module, '_reconstructor'): lambda: _reconstructor
       for module in ('copyreg', 'copy_reg')},
    ('collections', 'OrderedDict'): lambda: dict,
    ('nicos.utils', 'readonlylist'): lambda: list,
    ('nicos.utils', 'readonlydict'): lambda: dict,
    **{(module, name): _numpy(module, name)
       for module, name in (('numpy', 'ndarray'), ('numpy', 'dtype'),
                            ('numpy.core.multiarray', '_reconstruct'),
                            ('numpy.core.multiarray', 'scalar'))},
}


class PlainUnpickler(pickle.Unpickler):
    """An unpickler whose pickles can name only the types in `ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[module, name]()
        except KeyError:
            raise UnpicklingError(f'{module}.{name} is not plain data') from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnpicklingError('persistent references are not plain data')


def loads(data: bytes, encoding: str = 'latin1') -> Any:
    """The plain data in *data*; `UnpicklingError` for anything else
    (``encoding`` as for `pickle.loads`: how Python 2 strings decode)."""
    # Buffered: an unpickler reads a stream that cannot peek one opcode
    # at a time, a call each; this was 3 times slower than pickle.loads
    # (a listing of 5,000 jobs: 8.9 ms against 2.3).
    return PlainUnpickler(io.BufferedReader(io.BytesIO(data)),
                          encoding=encoding).load()
