"""The queue panel's table model and form fields, without a server."""

import os

import pytest

os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')

from nicos.guisupport.qt import Qt  # noqa: E402

from gui_panels.fields import Field, limits_text  # noqa: E402
from gui_panels.formcheck import EMPTY, FieldError  # noqa: E402
from gui_panels.queuemodel import QueueModel  # noqa: E402


def job(job_id, state='queued', **fields):
    return dict({'id': job_id, 'kind': 'aware', 'name': f'job {job_id}',
                 'owner': 'user', 'state': state, 'estimate': None,
                 'held': False, 'hold_reason': None}, **fields)


@pytest.fixture
def model(qapp):
    model = QueueModel()
    model.set_queue(job(1, 'running', progress=0.5, progress_message='half'),
                    [job(2), job(3), job(4), job(5)])
    moves = []
    model.moveRequested.connect(lambda job_id, to: moves.append((job_id, to)))
    model.moves = moves
    return model


def drop(model, source_row, row, parent_row=None):
    data = model.mimeData([model.index(source_row, 0)])
    parent = model.index(parent_row, 0) if parent_row is not None else \
        model.index(-1, -1)
    assert model.dropMimeData(data, Qt.MoveAction, row, 0, parent)


def test_drops_ask_the_server_for_the_final_waiting_position(model):
    drop(model, 4, -1, parent_row=2)   # job 5 onto job 3: takes its place
    drop(model, 1, 4)                  # job 2 between job 4 and job 5
    drop(model, 3, 1)                  # job 4 before job 2: the top
    drop(model, 2, -1)                 # job 3 onto empty space: the end
    drop(model, 1, 2)                  # job 2 just below itself: no move
    assert model.moves == [(5, 1), (2, 2), (4, 0), (3, 3)]


def test_the_current_job_is_first_and_not_draggable(model):
    assert model.data(model.index(0, 4)) == 'running'
    assert not model.flags(model.index(0, 0)) & Qt.ItemIsDragEnabled
    assert model.flags(model.index(1, 0)) & Qt.ItemIsDragEnabled


def test_job_events_update_rows_or_ask_for_a_new_listing(model):
    assert model.update_job(job(3, 'skipped'))
    assert model.data(model.index(2, 4)) == 'skipped'
    assert not model.update_job(job(2, 'running'))    # started: new listing
    assert not model.update_job(job(9))               # unknown job
    model.set_timeline({'jobs': [{'id': 2, 'expected_start': 0.0,
                                  'expected_end': 60.0}]})
    assert model.data(model.index(1, 6))


def test_fields_follow_the_parameter(qapp):
    energy = Field({'name': 'energy', 'type': 'float', 'unit': 'meV',
                    'min': 0.5, 'max': 100, 'min_inclusive': True,
                    'max_inclusive': True, 'has_default': False,
                    'required': True, 'description': 'incident energy'})
    assert energy.editor.placeholderText() == 'required, 0.5..100 meV'
    with pytest.raises(FieldError):
        energy.value()
    energy.set_value(12.25)
    assert energy.value() == 12.25 and energy.editor.text() == '12.25'
    mode = Field({'name': 'mode', 'type': 'str', 'choices': ['fast', 'slow'],
                  'has_default': True, 'default': 'slow', 'required': False})
    assert mode.editor.currentText() == 'slow' and mode.value() == 'slow'
    frames = Field({'name': 'frames', 'type': 'int', 'nullable': True,
                    'min': 1, 'min_inclusive': True, 'has_default': True,
                    'default': None, 'required': False})
    assert frames.value() is EMPTY
    assert limits_text({'min': 0, 'min_inclusive': False, 'unit': 's'}) == '> 0 s'


KELVIN = {'name': 'kelvin', 'type': 'float', 'unit': 'K', 'min': 1,
          'max': 350, 'min_inclusive': True, 'max_inclusive': True,
          'has_default': False, 'required': True,
          'description': 'target temperature'}


def typed(qtbot, param, text):
    """A field of *param* after a click into it and typing *text*."""
    field = Field(param)
    qtbot.addWidget(field)
    field.show()
    qtbot.mouseClick(field.editor, Qt.LeftButton)
    qtbot.keyClicks(field.editor, text)
    return field


def test_typing_into_an_empty_required_number_field_enters_the_number(qtbot):
    assert typed(qtbot, KELVIN, '25').value() == 25


def test_out_of_limit_numbers_are_kept_and_shown_in_red(qtbot):
    field = typed(qtbot, KELVIN, '400')
    assert field.error.text() == 'must be at most 350 K'
    assert not field.error.isHidden()
    with pytest.raises(FieldError):
        field.value()
    assert '400' in field.editor.text()


def test_skipped_and_held_back_rows_look_different(model):
    model.update_job(job(3, 'skipped'))
    model.update_job(job(4, held=True, hold_reason='dry run: too hot\nmore'))
    looks = [(model.data(model.index(row, 2), Qt.ForegroundRole),
              model.data(model.index(row, 2), Qt.BackgroundRole))
             for row in (2, 3)]
    assert looks[0] != looks[1]
    assert model.data(model.index(3, 4)) == 'held back: dry run: too hot'
