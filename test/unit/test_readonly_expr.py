import re

import pytest

from nicos_scriptserver.readonly_expr import NotReadOnly, check_read_only


@pytest.mark.parametrize('expr', [
    'sample_x.read(0)', '(sample_x.read(), T_sample.status(0))',
    'session.experiment.name', 'sorted(session.devices)',
    "session.getDevice('det').read()[0] > 3", 'chopper1_speed.target',
    'len(session.explicit_setups) == 1 and 2 or 3',
])
def test_read_only_expressions_pass(expr):
    check_read_only(expr)


@pytest.mark.parametrize('expr, reason', [
    ('sample_x.move(11)', 'calling move() is not allowed'),
    ('maw(sample_x, 1)', 'calling maw() is not allowed'),
    ("__import__('os').system('id')", 'calling system() is not allowed'),
    ("__import__('os')", 'calling __import__() is not allowed'),
    ('__builtins__', "private name '__builtins__' is not allowed"),
    ('sample_x.__class__', "private name '__class__' is not allowed"),
    ('session._exported_names', "private name '_exported_names' is not allowed"),
    ('[d for d in session.devices]', 'ListComp is not allowed'),
    ('(lambda: 1)', 'Lambda is not allowed'),
    ('(x := 1)', 'NamedExpr is not allowed'),
    ('sample_x.read()(1)', 'calling this() is not allowed'),
    ('1 +', 'not a valid expression'),
])
def test_expressions_that_could_act_are_refused(expr, reason):
    with pytest.raises(NotReadOnly, match=re.escape(reason)):
        check_read_only(expr)
