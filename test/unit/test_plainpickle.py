"""Plain-data unpickling: what NICOS's stock clients send passes, nothing
that names code does."""

import os
import pickle

import numpy
import pytest
from hypothesis import given, strategies as st

from nicos.utils import readonlydict, readonlylist

from nicos_scriptserver.wire import plainpickle

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    | st.frozensets(st.integers(), max_size=4),
    max_leaves=20)


@given(plain, st.sampled_from([0, 2, 4, 5]))
def test_plain_data_comes_back_as_it_went(value, protocol):
    assert plainpickle.loads(pickle.dumps(value, protocol)) == value


def test_what_stock_clients_and_nicos_send():
    login = {'login': 'user', 'passwd': 'RSA:abc', 'display': 'host'}
    sets = [{1, 2}, frozenset({'a'}), bytearray(b'xy'), 1 + 2j]
    assert plainpickle.loads(pickle.dumps([login], 2)) == [login]
    assert plainpickle.loads(pickle.dumps(sets, 2)) == sets
    nicos = pickle.dumps([readonlylist([1, 2]), readonlydict({'a': 1})], 2)
    assert plainpickle.loads(nicos) == [[1, 2], {'a': 1}]


def test_numpy_arrays_of_detectors_pass():
    array = numpy.arange(12, dtype=float).reshape(3, 4)
    for protocol in (0, 2, 4):
        loaded = plainpickle.loads(pickle.dumps(array, protocol))
        assert (loaded == array).all() and loaded.dtype == array.dtype
    assert plainpickle.loads(pickle.dumps(numpy.float64(2.5), 2)) == 2.5


class Call:
    """Unpickling this calls *func* with *args*."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def gadgets(marker):
    path = str(marker)
    return [
        Call(open, path, 'w'),
        Call(os.system, f'touch {path}'),
        Call(eval, f'open({path!r}, "w")'),
        Call(exec, f'open({path!r}, "w")'),
        [1, {'deep': (Call(open, path, 'w'),)}],
        numpy.array([Call(open, path, 'w')], dtype=object),
        Call(getattr, 'text', 'upper'),
        Call(pickle.loads, pickle.dumps(Call(open, path, 'w'))),
        # a subclass of list whose constructor would run code
        Call(__import__('copyreg')._reconstructor, Marker, list, [path]),
    ]


class Marker(list):
    def __init__(self, paths):
        open(paths[0], 'w').close()


@pytest.mark.parametrize('index', range(9))
@pytest.mark.parametrize('protocol', [0, 2, 5])
def test_a_pickle_that_names_code_is_refused_and_runs_nothing(tmp_path, index,
                                                              protocol):
    marker = tmp_path / 'ran'
    data = pickle.dumps(gadgets(marker)[index], protocol)
    with pytest.raises(plainpickle.UnpicklingError, match='not plain data'):
        plainpickle.loads(data)
    assert not marker.exists()


def test_bytes_only_through_latin1():
    # protocol 2 writes bytes as _codecs.encode(text, 'latin1'); another
    # codec is no way to write plain bytes
    data = pickle.dumps(b'\x00\xff', 2)
    assert plainpickle.loads(data) == b'\x00\xff'
    with pytest.raises(plainpickle.UnpicklingError, match="'zlib"):
        plainpickle.loads(data.replace(b'latin1', b'zlib  '[:6]))
