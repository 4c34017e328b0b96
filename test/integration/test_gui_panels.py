"""The GUI panels against a real script server, on Qt's offscreen platform.

One NICOS GUI main window (from gui_panels/guiconfig.py) is logged in as
`user` for the whole module; another client plays the other users. Each
panel is saved as a screenshot in test-artifacts/gui/.
"""

import os
import time
from pathlib import Path

import pytest

os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')

from gui_panels.launch import ensure_gr  # noqa: E402

ensure_gr()

import gui_panels  # noqa: E402,F401  (registers the ss_* events first)
from gui_panels.commands import CALL_ROLE  # noqa: E402
from gui_panels.jobdialog import JobEditDialog  # noqa: E402
from gui_panels.layout import BOTTOM_DOCK_HEIGHT  # noqa: E402
from gui_panels.queuemodel import NAME_COLUMN  # noqa: E402
from nicos.clients.base import ConnectionData  # noqa: E402
from nicos.clients.gui.config import processGuiConfig  # noqa: E402
from nicos.clients.gui.panels.utils import showPanel  # noqa: E402
from nicos.guisupport.qt import QApplication, QDockWidget, QHeaderView, \
    QInputDialog, QMenu, QSplitter, Qt, QTimer  # noqa: E402
from nicos.utils.loggers import NicosLogger, initLoggers  # noqa: E402

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / 'test-artifacts' / 'gui'
# An aware job that runs for a while, pausable, reporting progress.
LOOP = ('for i in range({n}):\n'
        '    pause_point()\n'
        '    progress((i + 1) / {n}, f"step {{i + 1}} of {n}")\n'
        '    sleep({dt})\n')
NEW_COMMAND = '''
def greet(name: str = 'world', times: int = 1):
    """Says hello.

    Args:
        name: who to greet.
        times (1..5): how often.
    """
'''


@pytest.fixture(scope='module')
def extra_commands(tmp_path_factory):
    return tmp_path_factory.mktemp('commands')


@pytest.fixture(scope='module')
def server_args(extra_commands):
    return {'command_folders': [REPO / 'commands', extra_commands]}


@pytest.fixture(scope='module')
def window(server, qapp, tmp_path_factory):
    """The NICOS GUI main window with the script-server panels, logged in."""
    home = tmp_path_factory.mktemp('home')
    saved = {key: os.environ.get(key) for key in ('HOME', 'XDG_CONFIG_HOME')}
    os.environ.update(HOME=str(home), XDG_CONFIG_HOME=str(home / '.config'))
    from nicos.clients.gui.mainwindow import MainWindow  # pylint: disable=import-outside-toplevel
    initLoggers()
    log = NicosLogger('gui')
    log.parent = None
    conf = processGuiConfig((REPO / 'gui_panels' / 'guiconfig.py').read_bytes())
    main = MainWindow(log, conf)
    main.confirmexit = False
    # no connect dialog on show(): the fixture connects
    main.autoconnect = False
    main.resize(1600, 1000)
    main.show()
    main.client.connect(ConnectionData(server.instance.host,
                                       server.instance.daemon_port, 'user',
                                       server.passwords['user']))
    assert main.client.isconnected
    yield main
    main.client.disconnect()
    main.hide()
    main.deleteLater()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def panel(window, name):
    found = window.getPanel(name)
    assert found is not None, name
    return found


def shot(widget, name):
    """Save *widget* (a panel: brought to front first) as a PNG."""
    if widget is not widget.window():
        showPanel(widget)
    QApplication.processEvents()
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert widget.grab().save(str(SHOTS / f'{name}.png'))


def waiting_ids(client):
    return [job['id'] for job in client.queue()['waiting']]


def test_commands_panel_builds_checks_and_submits_a_generated_job(
        window, client, qtbot):
    commands = panel(window, 'Script-server commands')
    qtbot.waitUntil(lambda: 'move_sample' in commands.entries, timeout=10000)
    shown = [commands.commandList.item(i).text()
             for i in range(commands.commandList.count())]
    assert {'set_ei', 'measure', 'move_sample', 'scan_temperature'} <= set(shown)

    commands.search.setText('temperature')
    shown = [commands.commandList.item(i).text()
             for i in range(commands.commandList.count())]
    assert shown == ['scan_temperature', 'set_temperature']
    commands.search.clear()

    # Required arguments left empty: nothing is added, the fields say why.
    commands.show_command(commands.entries['move_sample'])
    x, theta = commands.fields['x'], commands.fields['theta']
    assert x.editor.placeholderText() == 'required, -50..50 mm'
    assert 'translation across the beam' in x.editor.toolTip()
    commands.addButton.click()
    assert commands.callList.count() == 0
    assert x.error.text() == 'required' and not x.error.isHidden()
    x.editor.setText('1.5')
    theta.editor.setText('30')
    assert x.error.isHidden()
    commands.addButton.click()

    # An exclusive limit the spin box cannot enforce: checked locally.
    commands.show_command(commands.entries['measure'])
    seconds = commands.fields['seconds']
    seconds.editor.setText('-0.5')
    assert seconds.error.text() == 'must be above 0 s'
    commands.addButton.click()
    assert commands.callList.count() == 1
    seconds.editor.setText('2')
    commands.addButton.click()

    commands.show_command(commands.entries['set_ei'])
    commands.fields['energy'].editor.setText('25')
    commands.addButton.click()
    assert [commands.callList.item(i).text()
            for i in range(commands.callList.count())] == [
        'move_sample(x=1.5 mm, theta=30 deg)', 'measure(seconds=2 s)',
        'set_ei(energy=25 meV, wait_for_choppers=True)']
    commands.callList.setCurrentRow(2)
    commands._move_call(-1)   # the Up button
    assert [c['command'] for c in commands.calls()] == [
        'move_sample', 'set_ei', 'measure']

    commands.dryRunButton.click()
    assert commands.report.toPlainText().startswith('Dry run ok: about')
    shot(commands, 'commands')

    commands.jobName.setText('from the form')
    commands.submitButton.click()
    assert commands.report.toPlainText().startswith('Submitted as job')
    assert commands.callList.count() == 0
    job_id = int(commands.report.toPlainText().split()[3])
    job = client.call('ss_job', job_id)
    assert job['name'] == 'from the form'
    assert job['calls'] == [
        {'command': 'move_sample', 'args': {'x': 1.5, 'theta': 30.0}},
        {'command': 'set_ei', 'args': {'energy': 25.0, 'wait_for_choppers': True}},
        {'command': 'measure', 'args': {'seconds': 2.0}}]


def test_commands_panel_shows_server_refusals_on_the_call(window, client):
    commands = panel(window, 'Script-server commands')
    commands._clear_calls()
    commands.show_command(commands.entries['set_ei'])
    commands.fields['energy'].editor.setText('25')
    commands.add_call()
    # as if the limits had changed on the server since the form was made
    item = commands.callList.item(0)
    item.setData(CALL_ROLE, {'command': 'set_ei', 'args': {'energy': 150}})
    commands.submitButton.click()
    assert 'above its maximum 100 meV' in commands.report.toPlainText()
    assert 'call 1 (set_ei)' in commands.callList.item(0).toolTip()
    assert commands.callList.count() == 1
    commands._clear_calls()


def test_commands_panel_follows_catalog_changes(window, qtbot, extra_commands):
    commands = panel(window, 'Script-server commands')
    (extra_commands / 'greetings.py').write_text(NEW_COMMAND)
    qtbot.waitUntil(lambda: 'greet' in commands.entries, timeout=15000)
    assert commands.commandList.findItems('greet', Qt.MatchExactly)
    commands.show_command(commands.entries['greet'])
    assert 'limits: 1..5' in commands.fields['times'].editor.toolTip()
    assert commands.fields['name'].editor.text() == 'world'


def submit(client, *sources, **spec):
    return [client.call('ss_submit', dict(spec, source=source, name=f'job {i}'))[0]
            for i, source in enumerate(sources, 1)]


def table_ids(queue):
    return [queue.model.job_at(row)['id'] for row in range(queue.model.rowCount())]


def test_queue_panel_shows_jobs_of_other_clients_and_reorders_them(
        window, client, server, qtbot, monkeypatch):
    queue = panel(window, 'Script-server queue')
    other = server.client('admin')
    client.call('ss_hold')
    jobs = submit(other, 'print(1)', 'print(2)', 'print(3)', 'print(4)')
    ids = [job['id'] for job in jobs]
    qtbot.waitUntil(lambda: table_ids(queue) == ids, timeout=10000)
    assert queue.model.job_at(0)['owner'] == 'admin'
    qtbot.waitUntil(lambda: not queue.holdLabel.isHidden(), timeout=5000)

    # drag job 4 onto the row of job 2: it takes that place
    model = queue.model
    data = model.mimeData([model.index(3, 0)])
    assert model.dropMimeData(data, Qt.MoveAction, -1, -1, model.index(1, 0))
    expected = [ids[0], ids[3], ids[1], ids[2]]
    qtbot.waitUntil(lambda: waiting_ids(client) == expected, timeout=5000)
    qtbot.waitUntil(lambda: table_ids(queue) == expected, timeout=5000)

    # buttons act on the selected job, which stays selected
    queue.select_job(ids[1])
    queue.actTop.trigger()
    expected = [ids[1], ids[0], ids[3], ids[2]]
    assert waiting_ids(client) == expected
    assert queue.selected()['id'] == ids[1]
    queue.actDown.trigger()
    assert waiting_ids(client) == [ids[0], ids[1], ids[3], ids[2]]

    queue.select_job(ids[2])
    queue.actSkip.trigger()
    assert client.call('ss_job', ids[2])['state'] == 'skipped'
    qtbot.waitUntil(lambda: queue.actSkip.text() == 'Unskip', timeout=5000)
    monkeypatch.setattr(QInputDialog, 'getInt', lambda *args: (2, True))
    queue.actRepeat.trigger()
    queue.actDuplicate.trigger()
    qtbot.waitUntil(lambda: len(table_ids(queue)) == 7, timeout=5000)
    assert len(waiting_ids(client)) == 7

    queue.select_job(ids[0])
    monkeypatch.setattr(queue, 'askQuestion', lambda *args, **kwds: True)
    queue.actRemove.trigger()
    qtbot.waitUntil(lambda: ids[0] not in table_ids(queue), timeout=5000)
    assert ids[0] not in waiting_ids(client)

    # a refusal is shown in the panel, not in a popup
    queue.move_job(ids[1], 99)
    assert 'cannot move job' in queue.status.text()
    other.disconnect()


def test_queue_panel_catches_up_when_the_change_numbers_jump(
        window, client, qtbot):
    queue = panel(window, 'Script-server queue')
    client.call('ss_hold')
    first, second = submit(client, 'print(1)', 'print(2)')
    # Their dry runs are over: no later event shows the first job again.
    qtbot.waitUntil(lambda: table_ids(queue) == [first['id'], second['id']]
                    and all((queue.model.job_at(row)['estimate'] or {})
                            .get('state') == 'ok' for row in (0, 1)),
                    timeout=30000)
    shown = lambda: [(queue.model.job_at(row)['name'],  # noqa: E731
                      queue.model.job_at(row)['state'])
                     for row in range(queue.model.rowCount())]
    watched = ['ss_queue', 'ss_job']
    window.client.ask('eventmask', watched)  # as if these were lost
    client.call('ss_skip', first['id'])
    window.client.ask('eventunmask', watched)
    client.call('ss_edit', second['id'], {'name': 'renamed'})
    # Only the second job's event arrives; its number shows one was missed.
    qtbot.waitUntil(lambda: shown() == [('job 1', 'skipped'),
                                        ('renamed', 'queued')], timeout=10000)


def test_queue_panel_changes_only_the_job_it_showed_and_says_who_changed_it(
        window, client, server, qtbot):
    queue = panel(window, 'Script-server queue')
    other = server.client('admin')
    client.call('ss_hold')
    first, second = submit(client, 'print(1)', 'print(2)')
    qtbot.waitUntil(lambda: table_ids(queue) == [first['id'], second['id']],
                    timeout=10000)
    stale = client.call('ss_job', second['id'])  # as an open edit dialog has it
    watched = ['ss_queue', 'ss_job']
    window.client.ask('eventmask', watched)  # the panel has not seen it yet
    other.call('ss_edit', second['id'], {'source': 'print(20)'})
    conflict = (f"job {second['id']} was changed after you saw it "
                '(version 1): admin edited its script (now version 2)')

    queue.move_job(second['id'], 'top')
    assert conflict in queue.status.text()
    assert queue.conflictBox.isVisible()
    assert conflict in queue.conflictBox.text()
    assert waiting_ids(client) == [first['id'], second['id']]
    # It shows the job as it is now: a second try would be meant for it.
    row = queue.model.row_of(second['id'])
    assert queue.model.job_at(row)['version'] == 2
    queue.conflictBox.close()

    window.client.ask('eventunmask', watched)
    dialog = JobEditDialog(queue, window.client, stale, None)
    dialog.source.setPlainText('print(99)')
    dialog.save()
    assert conflict in dialog.error.text()
    assert client.call('ss_job', second['id'])['source'] == 'print(20)'
    dialog.reject()
    dialog.setParent(None)  # later tests look for the panel's dialog
    other.disconnect()
    client.call('ss_clear')


def test_queue_panel_confirms_a_held_back_job(window, client, qtbot):
    queue = panel(window, 'Script-server queue')
    client.call('ss_hold')
    fine, = submit(client, 'print("fine")')
    job, = submit(client, 'set_temperature(1000)\n')
    qtbot.waitUntil(lambda: table_ids(queue) == [fine['id'], job['id']]
                    and queue.model.job_at(1).get('held'), timeout=30000)
    assert queue.model.data(queue.model.index(1, 4)).startswith('held back: ')
    queue.select_job(fine['id'])
    assert not queue.actConfirm.isEnabled()
    queue.select_job(job['id'])
    assert queue.actConfirm.isEnabled()
    queue.actConfirm.trigger()
    assert not client.call('ss_job', job['id'])['held']
    qtbot.waitUntil(lambda: not queue.actConfirm.isEnabled(), timeout=5000)
    client.call('ss_release')
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and d['state'] == 'failed', 30)


def test_queue_panel_edits_a_job_in_its_dialog(window, client, qtbot):
    queue = panel(window, 'Script-server queue')
    client.call('ss_hold')
    job, = submit(client, 'print("old")')
    qtbot.waitUntil(lambda: table_ids(queue) == [job['id']], timeout=5000)
    queue.select_job(job['id'])
    queue.actEdit.trigger()
    dialog = queue.findChild(JobEditDialog)
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    dialog.source.setPlainText('if True:\n')
    dialog.save()
    assert 'syntax error' in dialog.error.text() and dialog.isVisible()
    dialog.source.setPlainText('print("new")\n')
    dialog.name.setText('renamed')
    dialog.save()
    assert not dialog.isVisible()
    edited = client.call('ss_job', job['id'])
    assert (edited['name'], edited['source']) == ('renamed', 'print("new")\n')
    qtbot.waitUntil(lambda: queue.model.job_at(0)['name'] == 'renamed',
                    timeout=5000)
    dialog.deleteLater()


def test_current_job_panel_follows_and_controls_the_running_job(
        window, client, qtbot, monkeypatch):
    current = panel(window, 'Script-server current job')
    queue = panel(window, 'Script-server queue')
    long_job, = client.call('ss_submit', {
        'name': 'temperature loop', 'source': 'print("cooling down")\n'
        + LOOP.format(n=150, dt=0.1)})
    waiting = [
        client.call('ss_submit', {'kind': 'generated', 'name': 'align sample',
                                  'calls': [{'command': 'move_sample',
                                             'args': {'x': 2.0, 'theta': 45.0}},
                                            {'command': 'measure',
                                             'args': {'seconds': 30}}]})[0],
        client.call('ss_submit', {'name': 'energy scan', 'source':
                                  'for e in (10, 20, 40):\n'
                                  '    set_ei(e)\n    measure(seconds=60)\n'})[0],
        client.call('ss_submit', {'kind': 'blackbox', 'name': 'export data',
                                  'source': '# estimate: 2 min\n'
                                            'print("exporting")\n'})[0]]
    qtbot.waitUntil(lambda: current.job is not None
                    and current.job['id'] == long_job['id']
                    and (current.job.get('progress') or 0) >= 0.2, timeout=20000)
    qtbot.waitUntil(lambda: 'cooling down' in current.output.toPlainText(),
                    timeout=5000)
    assert current.script.toPlainText().startswith('print("cooling down")')
    assert current.progress.value() >= 200
    assert 'of 150' in current.progress.format()
    assert current.pauseButton.isEnabled() and not current.resumeButton.isEnabled()
    # the queue shows the same, with estimates from the dry runs
    qtbot.waitUntil(lambda: table_ids(queue) == [long_job['id']] + [
        job['id'] for job in waiting], timeout=5000)
    qtbot.waitUntil(lambda: all(queue.model.data(queue.model.index(row, 6))
                                for row in range(1, 4)), timeout=20000)
    queue.select_job(waiting[1]['id'])
    assert queue.actEdit.isEnabled() and queue.actTop.isEnabled()
    shot(current, 'current-job')
    shot(queue, 'queue')
    shot(window, 'main-window')

    current.pauseButton.click()
    qtbot.waitUntil(lambda: current.job['state'] == 'paused', timeout=10000)
    assert client.call('ss_job', long_job['id'])['state'] == 'paused'
    assert current.resumeButton.isEnabled() and not current.pauseButton.isEnabled()
    assert current.script.extraSelections()
    assert current.times['paused'].text().endswith(' s')
    shot(current, 'current-job-paused')
    current.resumeButton.click()
    qtbot.waitUntil(lambda: current.job['state'] == 'running', timeout=10000)

    monkeypatch.setattr(current, 'askQuestion', lambda *args, **kwds: True)
    current.abortButton.click()
    qtbot.waitUntil(lambda: current.job['state'] == 'aborted', timeout=10000)
    assert not current.abortButton.isEnabled()
    qtbot.waitUntil(lambda: not queue.holdLabel.isHidden(), timeout=5000)
    ids = ', '.join(str(job['id']) for job in waiting)
    assert f'Held for safety: jobs {ids} and every job' in \
        queue.holdLabel.text()

    # a job that fails: its dry run fails too, so it is confirmed to run
    for job in waiting:
        client.call('ss_remove', job['id'])
    failing, = client.call('ss_submit', {
        'name': 'align with camera', 'source':
            'move_sample(1, 0)\nraise RuntimeError("camera not found")\n'})
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == failing['id']
                    and d['held'])
    client.call('ss_confirm', failing['id'])
    client.call('ss_release')
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == failing['id']
                    and d['state'] == 'failed')

    # the history shows the outcomes; the aborted job can be queued again
    queue.tabs.setCurrentWidget(queue.history)
    history = queue.history
    qtbot.waitUntil(lambda: [job['id'] for job in history.jobs[:2]]
                    == [failing['id'], long_job['id']], timeout=5000)
    history.tree.setCurrentItem(history.tree.topLevelItem(0))
    assert 'camera not found' in history.details.toPlainText()
    assert history.requeueButton.isEnabled()
    shot(queue, 'history')
    history.tree.setCurrentItem(history.tree.topLevelItem(1))
    assert 'aborted' in history.details.toPlainText()
    client.call('ss_hold')   # nothing waited when it failed: nothing is held
    history.requeueButton.click()
    assert 'queued again as job' in history.status.text()
    requeued = client.queue()['waiting'][-1]
    assert requeued['requeued_from'] == long_job['id']
    queue.tabs.setCurrentIndex(0)


def test_black_box_jobs_cannot_be_paused(window):
    current = panel(window, 'Script-server current job')
    saved = current.job
    current._show_job({'id': -1, 'kind': 'blackbox', 'state': 'running',
                       'source': 'print(1)\n', 'current_line': 1})
    assert not current.pauseButton.isEnabled()
    assert not current.script.extraSelections()   # no line is known
    assert current.abortButton.isEnabled()
    current._show_job(saved)


def empty_queue(client):
    """No waiting job and no hold: the next job submitted starts."""
    client.call('ss_clear')
    if client.queue()['held']:
        client.call('ss_release')


def test_queue_panel_drops_an_aborted_job_at_once(window, client, qtbot):
    queue = panel(window, 'Script-server queue')
    empty_queue(client)
    job, = submit(client, LOOP.format(n=300, dt=0.1))
    qtbot.waitUntil(lambda: queue.model.current is not None
                    and queue.model.current['id'] == job['id']
                    and bool(queue.model.current.get('progress')), timeout=20000)
    start = len(client.events)
    client.call('ss_abort')
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and d['state'] == 'aborted', 30, start)
    # no "running 10 %" row for a job the current-job panel calls aborted
    qtbot.waitUntil(lambda: queue.model.current is None, timeout=1500)


def test_current_job_output_names_the_device_like_the_log(
        window, client, qtbot):
    current = panel(window, 'Script-server current job')
    empty_queue(client)
    job, = submit(client, 'maw(T_sample, 10)\nprint("settled")\n')
    qtbot.waitUntil(lambda: current.job is not None
                    and current.job['id'] == job['id']
                    and 'settled' in current.output.toPlainText(),
                    timeout=20000)
    lines = current.output.toPlainText().splitlines()
    assert any(line.startswith('T_sample') and ': moving to 10' in line
               for line in lines), lines


def test_queue_panel_acts_on_several_jobs_and_asks_before_removing(
        window, client, qtbot, monkeypatch):
    queue = panel(window, 'Script-server queue')
    empty_queue(client)
    client.call('ss_hold')
    ids = [job['id'] for job in submit(client, 'print(1)', 'print(2)',
                                       'print(3)', 'print(4)')]
    qtbot.waitUntil(lambda: table_ids(queue) == ids, timeout=5000)
    queue.select_jobs([ids[1], ids[3]])
    queue.actTop.trigger()
    assert waiting_ids(client) == [ids[1], ids[3], ids[0], ids[2]]
    assert [job['id'] for job in queue.selected_jobs()] == [ids[1], ids[3]]
    queue.actSkip.trigger()
    assert {client.call('ss_job', i)['state'] for i in ids[1::2]} == {'skipped'}
    qtbot.waitUntil(lambda: queue.actSkip.text() == 'Unskip', timeout=5000)

    # the right-click menu offers the row's actions
    queue._context_menu(queue.table.visualRect(queue.model.index(0, 0)).center())
    menu = queue.table.findChild(QMenu)
    assert {'Edit…', 'Confirm', 'Unskip', 'Top', 'Remove…'} <= {
        action.text() for action in menu.actions()}
    menu.close()
    menu.deleteLater()

    questions = []
    monkeypatch.setattr(queue, 'askQuestion',
                        lambda text, **kwds: questions.append(text) or False)
    queue.actRemove.trigger()
    assert questions == [f'Remove 2 jobs ({ids[1]}, {ids[3]}) from the queue?']
    assert len(waiting_ids(client)) == 4
    monkeypatch.setattr(queue, 'askQuestion', lambda *args, **kwds: True)
    queue.actRemove.trigger()
    assert waiting_ids(client) == [ids[0], ids[2]]
    qtbot.waitUntil(lambda: queue.actClear.isEnabled(), timeout=5000)
    queue.actClear.trigger()
    assert waiting_ids(client) == []

    # a hold is ended with a button that says so
    qtbot.waitUntil(lambda: queue.holdBanner.isVisible(), timeout=5000)
    assert not queue.actHold.isEnabled()
    queue.releaseButton.click()
    assert not client.queue()['held']
    qtbot.waitUntil(lambda: not queue.holdBanner.isVisible(), timeout=5000)
    assert queue.actHold.isEnabled()


def test_held_back_jobs_say_why_in_the_row_and_the_edit_dialog(
        window, client, qtbot):
    queue = panel(window, 'Script-server queue')
    empty_queue(client)
    client.call('ss_hold')
    job, = submit(client, 'set_temperature(400)\n')
    qtbot.waitUntil(lambda: table_ids(queue) == [job['id']]
                    and queue.model.job_at(0).get('held'), timeout=30000)
    reason = client.call('ss_job', job['id'])['hold_reason']
    state = queue.model.data(queue.model.index(0, 4))
    assert state.startswith('held back: ') and reason.splitlines()[0] in state
    queue.select_job(job['id'])
    queue.actEdit.trigger()
    dialog = queue.findChild(JobEditDialog)
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    assert reason.splitlines()[0] in dialog.heldLabel.text()
    dialog.confirmButton.click()
    assert not dialog.isVisible()
    assert not client.call('ss_job', job['id'])['held']
    dialog.deleteLater()
    client.call('ss_clear')


def test_generated_jobs_go_next_and_their_calls_are_edited_in_the_form(
        window, client, qtbot):
    queue = panel(window, 'Script-server queue')
    commands = panel(window, 'Script-server commands')
    empty_queue(client)
    client.call('ss_hold')
    first, = submit(client, 'print(1)')
    commands.load_job(None)
    commands.show_command(commands.entries['set_ei'])
    commands.fields['energy'].editor.setText('25')
    commands.add_call()
    commands.position.setCurrentIndex(commands.position.findText('Queue next'))
    commands.submitButton.click()
    qtbot.waitUntil(lambda: len(table_ids(queue)) == 2, timeout=5000)
    generated = table_ids(queue)[0]
    assert table_ids(queue) == [generated, first['id']]

    queue.select_job(generated)
    queue.actEdit.trigger()
    dialog = queue.findChild(JobEditDialog)
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    dialog.callsButton.click()
    assert commands.isVisible()
    assert commands.submitButton.text() == f'Save to job {generated}'
    assert [c['command'] for c in commands.calls()] == ['set_ei']
    # a double-clicked call comes back into the form, to be replaced
    commands._edit_call(commands.callList.item(0))
    assert commands.fields['energy'].editor.text() == '25'
    assert commands.replaceButton.text() == 'Replace call 1'
    commands.fields['energy'].editor.setText('27')
    commands.replaceButton.click()
    assert commands.replaceButton.isHidden()
    commands.fields['energy'].editor.setText('30')
    commands.add_call()
    commands.submitButton.click()
    calls = client.call('ss_job', generated)['calls']
    assert [c['args']['energy'] for c in calls] == [27.0, 30.0]
    assert commands.submitButton.text() == 'Submit'
    dialog.deleteLater()
    client.call('ss_clear')
    queue.tabs.setCurrentWidget(queue)


def test_history_entries_go_back_to_the_queue_edited_or_as_they_were(
        window, client, qtbot):
    queue = panel(window, 'Script-server queue')
    history = queue.history
    empty_queue(client)
    done, = submit(client, 'print("done")')
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == done['id']
                    and d['state'] == 'done')
    failed, = client.call('ss_submit', {'name': 'fails', 'source':
                                        'raise RuntimeError("no")\n'})
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == failed['id']
                    and d['held'])
    client.call('ss_confirm', failed['id'])
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == failed['id']
                    and d['state'] == 'failed')
    empty_queue(client)
    client.call('ss_hold')
    queue.tabs.setCurrentWidget(history)
    qtbot.waitUntil(lambda: [job['id'] for job in history.jobs[:2]]
                    == [failed['id'], done['id']], timeout=5000)

    history.tree.setCurrentItem(history.tree.topLevelItem(1))
    assert not history.requeueButton.isEnabled()
    history.copyButton.click()
    copy = client.queue()['waiting'][-1]
    assert (copy['name'], client.call('ss_job', copy['id'])['source']) == \
        ('job 1', 'print("done")')

    history.tree.setCurrentItem(history.tree.topLevelItem(0))
    history.editButton.click()
    dialog = history.findChild(JobEditDialog)
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    dialog.name.setText('fails, fixed')
    dialog.source.setPlainText('print("fixed")\n')
    dialog.save()
    assert not dialog.isVisible()
    again = client.queue()['waiting'][-1]
    assert again['requeued_from'] == failed['id']
    assert again['name'] == 'fails, fixed'
    dialog.deleteLater()
    client.call('ss_clear')
    queue.tabs.setCurrentIndex(0)


@pytest.mark.parametrize('watcher', ['view-only', 'guest'])
def test_guests_see_no_action_that_changes_the_queue(
        window, client, qtbot, monkeypatch, watcher):
    queue = panel(window, 'Script-server queue')
    current = panel(window, 'Script-server current job')
    commands = panel(window, 'Script-server commands')
    empty_queue(client)
    client.call('ss_hold')
    job, = submit(client, 'print(1)')
    qtbot.waitUntil(lambda: table_ids(queue) == [job['id']], timeout=5000)
    queue.select_job(job['id'])
    history = queue.history
    history.tree.setCurrentItem(history.tree.topLevelItem(0))
    commands.show_command(commands.entries['measure'])
    commands.fields['seconds'].editor.setText('2')
    commands.add_call()
    if watcher == 'view-only':
        for each in (queue, current, commands):
            each.setViewOnly(True)
    else:
        # what NICOS's client knows after a guest logged in
        monkeypatch.setattr(window.client, 'user_level', 0)
        queue.refresh()
        history.reload()
        current.on_client_connected()
        commands.on_client_connected()
    try:
        assert not any(action.isEnabled() for action in queue.table.actions())
        assert not queue.actClear.isEnabled() and not queue.actHold.isEnabled()
        assert not queue.releaseButton.isEnabled()
        assert not history.copyButton.isEnabled()
        assert not current.abortButton.isEnabled()
        assert not commands.submitButton.isEnabled()
    finally:
        monkeypatch.undo()
        for each in (queue, current, commands):
            each.setViewOnly(False)
        commands.load_job(None)
    client.call('ss_clear')
    client.call('ss_release')


def test_history_shows_a_finished_job_while_it_is_open(window, client, qtbot):
    queue = panel(window, 'Script-server queue')
    empty_queue(client)
    queue.tabs.setCurrentWidget(queue.history)
    job, = submit(client, 'print("quick")')
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and d['state'] == 'done')
    qtbot.waitUntil(lambda: bool(queue.history.jobs)
                    and queue.history.jobs[0]['id'] == job['id'], timeout=2000)
    assert queue.history.tree.topLevelItem(0).text(0) == str(job['id'])
    queue.tabs.setCurrentIndex(0)


def test_layout_gives_the_queue_room_and_keeps_every_part_visible(window):
    queue = panel(window, 'Script-server queue')
    showPanel(queue)
    QApplication.processEvents()
    log = window.findChild(QDockWidget, 'Log')
    assert log.height() <= BOTTOM_DOCK_HEIGHT + 20
    rows = queue.table.viewport().height() // \
        queue.table.verticalHeader().defaultSectionSize()
    assert rows >= 8
    header = queue.table.horizontalHeader()
    assert header.sectionResizeMode(NAME_COLUMN) == QHeaderView.Stretch
    splitters = [w for w in window.findChildren(QSplitter) if w.isVisible()]
    assert splitters and not any(s.childrenCollapsible() for s in splitters)

    showPanel(panel(window, 'Console'))
    QApplication.processEvents()
    menus = [action.text() for action in window.menuBar().actions()]
    assert menus.count('&Output') == 1, menus
    showPanel(queue)


def test_current_job_panel_shows_pause_time_time_progress_and_line_numbers(
        window):
    current = panel(window, 'Script-server current job')
    saved, timeline = current.job, current.timeline
    now = time.time() + current.clock_offset
    try:
        script = 'print(1)\n' * 12
        running = {'id': -1, 'kind': 'aware', 'state': 'running',
                   'source': script}
        current._show_job(running)
        assert current.script.viewportMargins().left() >= \
            current.script.fontMetrics().horizontalAdvance('12')
        assert current.pausedCaption.isHidden()
        # without paused_for from the server: since the panel saw it pause
        current._show_job(dict(running, state='paused'))
        assert not current.pausedCaption.isHidden()
        assert current.times['paused'].text() == '0 s'
        current.on_client_ss_timeline({'now': now, 'current': {
            'id': -1, 'paused_for': 125.0}})
        assert current.times['paused'].text() == '2 min 05 s'

        current._show_job({'id': -2, 'kind': 'blackbox', 'state': 'running',
                           'source': 'print(1)\n', 'progress': None,
                           'estimate': {'state': 'ok', 'seconds': 600}})
        current.on_client_ss_timeline({'now': now, 'current': {
            'id': -2, 'progress_by_time': 0.5}})
        assert current.progress.format() == '50 %  of its estimated time'
        assert current.progress.value() == 500
    finally:
        current.timeline = timeline
        current._show_job(saved)


def test_current_job_output_printed_before_connecting_is_shown(
        window, client, qtbot):
    current = panel(window, 'Script-server current job')
    empty_queue(client)
    job, = submit(client, 'print("before you came")\n'
                  + LOOP.format(n=300, dt=0.1))
    qtbot.waitUntil(lambda: current.job is not None
                    and current.job['id'] == job['id']
                    and 'before you came' in current.output.toPlainText(),
                    timeout=20000)
    current.output.clear()
    current.on_client_connected()   # as a GUI that connects now
    assert 'before you came' in current.output.toPlainText()
    client.call('ss_abort')
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and d['state'] == 'aborted')


def test_history_follows_while_jobs_keep_finishing(window, client, qtbot):
    queue = panel(window, 'Script-server queue')
    history = queue.history
    empty_queue(client)
    queue.tabs.setCurrentWidget(history)
    job, = submit(client, 'print("one of many")')
    client.wait_for(lambda n, d: n == 'ss_job' and d['id'] == job['id']
                    and d['state'] == 'done')
    # other jobs finishing every 100 ms, as a batch of short ones does
    stream = QTimer(interval=100)
    stream.timeout.connect(lambda: queue.on_client_ss_job(
        {'id': -99, 'state': 'done'}))
    stream.start()
    try:
        qtbot.waitUntil(lambda: bool(history.jobs)
                        and history.jobs[0]['id'] == job['id'], timeout=1500)
    finally:
        stream.stop()
    queue.tabs.setCurrentIndex(0)
