"""Job ids as clients give them."""

import pytest

from nicos_scriptserver.queue import QueueError
from nicos_scriptserver.app.spec import parse_job_id


@pytest.mark.parametrize('value, expected', [(7, 7), ('7', 7), (' 12 ', 12), (3.0, 3)])
def test_ids_as_numbers_or_text(value, expected):
    assert parse_job_id(value) == expected


@pytest.mark.parametrize('value', [True, False, None, 'x', '1.5', 1.5, float('inf'), [], {}, 1j])
def test_anything_else_is_refused_with_its_value_named(value):
    with pytest.raises(QueueError, match='is not a job id'):
        parse_job_id(value)
