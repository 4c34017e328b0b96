"""QueuePanel: the script server's queue, with the job history."""

from typing import Optional

from nicos.clients.gui.panels import Panel
from nicos.guisupport.qt import QAbstractItemView, QAction, QHBoxLayout, \
    QHeaderView, QInputDialog, QKeySequence, QLabel, QTableView, \
    QTabWidget, QTimer, QToolButton, Qt, QVBoxLayout, QWidget

from gui_panels.daemon import Refused, request, subscribe
from gui_panels.history import HistoryView
from gui_panels.jobdialog import JobEditDialog
from gui_panels.queuemodel import JOB_ROLE, PROGRESS_COLUMN, \
    ProgressDelegate, QueueModel
from nicos_scriptserver.queue import JobState


class QueuePanel(Panel):
    """The queue: the current job first, then the waiting jobs in the
    order they will run, with estimates and expected start times.

    Reorder by dragging a row, or select a job and use the buttons (or
    Ctrl+Up/Down, Ctrl+Home/End); skip a job to keep it in the queue
    without running it (Ctrl+K); queue copies of it right after it (Repeat,
    Ctrl+R, asks how many; Duplicate, Ctrl+D, one);
    edit its name and script (double click or Ctrl+E); remove it (Delete).
    A job held back by its dry run ("held back", the reason in its tooltip)
    runs in its turn once edited so that its new dry run passes, or once
    confirmed (Confirm, Ctrl+Y) as it is. "Hold queue" lets the current job
    finish without starting the next one. The History tab lists finished
    jobs with their outcome and error report; a failed, aborted or
    interrupted job can be queued again.
    """

    panelName = 'Script-server queue'

    def __init__(self, parent, client, options):
        Panel.__init__(self, parent, client, options)
        self.summary: dict = {}
        self.viewonly = False
        self.model = QueueModel(self)
        self.model.moveRequested.connect(self.move_job)
        self._build()
        # Coalesce bursts of events (a batch of jobs finishing) into one
        # history request.
        self.historyTimer = QTimer(self, singleShot=True, interval=300)
        self.historyTimer.timeout.connect(self.history.reload)
        client.connected.connect(self.on_client_connected)
        client.disconnected.connect(self.on_client_disconnected)
        client.ss_queue.connect(self.on_client_ss_queue)
        client.ss_job.connect(self.on_client_ss_job)
        client.ss_timeline.connect(self.on_client_ss_timeline)
        if client.isconnected:
            self.on_client_connected()

    # layout

    def _build(self) -> None:
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(PROGRESS_COLUMN,
                                            ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setDragDropMode(QAbstractItemView.InternalMove)
        self.table.setDefaultDropAction(Qt.MoveAction)
        self.table.setDragDropOverwriteMode(False)
        self.table.setDropIndicatorShown(True)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        # names vary most; the progress bar takes what is left
        header.setSectionResizeMode(PROGRESS_COLUMN, QHeaderView.Stretch)
        header.setMinimumSectionSize(40)
        header.setHighlightSections(False)
        self.table.doubleClicked.connect(lambda _index: self.edit_job())
        self.table.selectionModel().selectionChanged.connect(
            self._selection_changed)
        self.model.modelReset.connect(self._update_actions)
        self.model.dataChanged.connect(self._update_actions)

        queue = QWidget(self)
        self.holdLabel = QLabel(queue)
        self.holdLabel.setWordWrap(True)
        self.holdLabel.setStyleSheet('color: #b26a00; font-weight: bold;')
        self.holdLabel.hide()
        self.status = QLabel(queue)
        self.status.setWordWrap(True)
        layout = QVBoxLayout(queue)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(self._build_buttons(queue))
        layout.addWidget(self.holdLabel)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)

        self.history = HistoryView(self, self.client)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(queue, 'Queue')
        self.tabs.addTab(self.history, 'History')
        self.tabs.currentChanged.connect(self._tab_changed)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.addWidget(self.tabs)

    def _action(self, text: str, tip: str, shortcut, slot) -> QAction:
        action = QAction(text, self)
        action.setToolTip(f'{tip} ({QKeySequence(shortcut).toString()})')
        action.setShortcut(QKeySequence(shortcut))
        # only while the table has the focus: the console has its own keys
        action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.table.addAction(action)
        return action

    def _build_buttons(self, parent) -> QHBoxLayout:
        self.actTop = self._action('Top', 'Run the selected job next',
                                   'Ctrl+Home', lambda: self.move_job(None, 'top'))
        self.actUp = self._action('Up', 'Move the selected job up',
                                  'Ctrl+Up', lambda: self.move_job(None, 'up'))
        self.actDown = self._action('Down', 'Move the selected job down',
                                    'Ctrl+Down', lambda: self.move_job(None, 'down'))
        self.actBottom = self._action('Bottom', 'Move the selected job to the end',
                                      'Ctrl+End', lambda: self.move_job(None, 'bottom'))
        self.actSkip = self._action('Skip', 'Skip the selected job, or run it '
                                    'again if skipped', 'Ctrl+K', self.toggle_skip)
        self.actRepeat = self._action('Repeat…', 'Queue copies right after it',
                                      'Ctrl+R', self.repeat_job)
        self.actDuplicate = self._action('Duplicate', 'Queue one copy right '
                                         'after it', 'Ctrl+D',
                                         lambda: self._job_command('ss_duplicate'))
        self.actEdit = self._action('Edit…', 'Edit the name and script',
                                    'Ctrl+E', self.edit_job)
        self.actRemove = self._action('Remove', 'Remove the selected job',
                                      'Delete', lambda: self._job_command('ss_remove'))
        self.actConfirm = self._action('Confirm', 'Run the selected held-back '
                                       'job anyway, in its turn', 'Ctrl+Y',
                                       lambda: self._job_command('ss_confirm'))
        self.actHold = QAction('Hold queue', self, checkable=True)
        self.actHold.setToolTip('Let the current job finish but start no other '
                                '(uncheck to release)')
        self.actHold.triggered.connect(self.set_held)
        row = QHBoxLayout()
        row.setSpacing(2)
        for action in (self.actTop, self.actUp, self.actDown, self.actBottom,
                       None, self.actSkip, self.actRepeat, self.actDuplicate,
                       self.actEdit, self.actRemove, self.actConfirm, None,
                       self.actHold):
            if action is None:
                row.addSpacing(12)
                continue
            button = QToolButton(parent)
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonTextOnly)
            row.addWidget(button)
        row.addStretch()
        return row

    # server state

    def on_client_connected(self) -> None:
        subscribe(self.client)
        self.refresh()
        try:
            self.model.set_timeline(request(self.client, 'ss_timeline'))
        except Refused:
            pass  # shown again with the next ss_timeline event
        self.history.reload()

    def on_client_disconnected(self) -> None:
        self.model.set_queue(None, [])
        self.status.setText('Not connected.')

    def refresh(self) -> None:
        """Fetch the queue listing and show it, keeping the selection."""
        try:
            reply = request(self.client, 'ss_queue')
        except Refused as err:
            self.status.setText(str(err))
            return
        waiting = [dict(zip(reply['columns'], row)) for row in reply['waiting']]
        selected = self.selected()
        self.summary = reply
        self.model.set_queue(reply.get('current'), waiting)
        self._show_hold(reply)
        if selected:
            self.select_job(selected['id'])

    def on_client_ss_queue(self, _summary: dict) -> None:
        self.refresh()

    def on_client_ss_job(self, job: dict) -> None:
        finished = JobState(job['state']).finished
        if finished:
            self.historyTimer.start()
        if self.model.update_job(job):
            return
        # A job started, appeared or finished: its row comes from a new
        # listing. A finished job's row goes at once: the next ss_queue
        # event may come much later (none while nothing waits).
        if not finished or self.model.row_of(job['id']) is not None:
            self.refresh()

    def on_client_ss_timeline(self, timeline: dict) -> None:
        self.model.set_timeline(timeline)

    def _show_hold(self, queue: dict) -> None:
        """Whether the queue is held, by whom, why and what waits for it."""
        held, reason = bool(queue.get('held')), queue.get('hold_reason')
        self.actHold.setChecked(held)
        text = 'Queue held' + (f': {reason}' if reason else '') + '. '
        protected = queue.get('protected') or []
        if queue.get('hold_kind') == 'safety' and protected:
            ids = ', '.join(map(str, protected))
            text += (f'Held for safety: job{"s" if len(protected) > 1 else ""} '
                     f'{ids} and every job queued later wait until it is '
                     'released; removing them releases it too.')
        else:
            text += 'No new job starts until it is released.'
        self.holdLabel.setText(text)
        self.holdLabel.setVisible(held)

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.history:
            self.history.reload()

    # selection and actions

    def selected(self) -> Optional[dict]:
        """The selected job (listing fields), or None."""
        rows = self.table.selectionModel().selectedRows()
        return self.model.data(rows[0], JOB_ROLE) if rows else None

    def select_job(self, job_id: int) -> None:
        """Select the row of job *job_id*, if it is shown."""
        row = self.model.row_of(job_id)
        if row is not None:
            self.table.selectRow(row)

    def _selection_changed(self, *_args) -> None:
        # a refusal is about the job that was selected then
        self.status.clear()
        self._update_actions()

    def setViewOnly(self, viewonly: bool) -> None:
        self.viewonly = viewonly
        self.actHold.setEnabled(not viewonly)
        self._update_actions()

    def _update_actions(self, *_args) -> None:
        job = None if self.viewonly else self.selected()
        waiting = job is not None and job is not self.model.current
        for action in (self.actTop, self.actUp, self.actDown, self.actBottom,
                       self.actSkip, self.actEdit, self.actRemove):
            action.setEnabled(waiting)
        self.actConfirm.setEnabled(waiting and bool(job.get('held')))
        # the current job can be copied, not changed
        self.actRepeat.setEnabled(job is not None)
        self.actDuplicate.setEnabled(job is not None)
        self.actSkip.setText('Unskip' if waiting and _skipped(job)
                             else 'Skip')

    def _do(self, command: str, *args) -> bool:
        try:
            request(self.client, command, *args)
        except Refused as err:
            self.status.setText(str(err))
            return False
        self.status.clear()
        return True

    def _job_command(self, command: str, *args) -> None:
        job = self.selected()
        if job:
            self._do(command, job['id'], *args)

    def move_job(self, job_id: Optional[int], to) -> None:
        """Move a job (None: the selected one) to a waiting-list index or
        to ``up``, ``down``, ``top``, ``bottom``; it stays selected."""
        if job_id is None:
            job = self.selected()
            if not job:
                return
            job_id = job['id']
        if self._do('ss_move', job_id, to):
            # select it now; the ss_queue event's listing keeps it selected
            self.refresh()
            self.select_job(job_id)

    def repeat_job(self) -> None:
        """Ask how many copies of the selected job to queue after it."""
        job = self.selected()
        if not job:
            return
        times, ok = QInputDialog.getInt(
            self, 'Repeat job', f"Copies of job {job['id']} to queue after it:",
            1, 1, 1000)
        if ok:
            self._do('ss_repeat', job['id'], times)

    def toggle_skip(self) -> None:
        """Skip the selected job, or un-skip it if it is skipped."""
        job = self.selected()
        if job:
            self._do('ss_unskip' if _skipped(job) else 'ss_skip',
                     job['id'])

    def edit_job(self) -> None:
        """Open the selected waiting job in the edit dialog."""
        job = self.selected()
        if not job or job is self.model.current:
            return
        try:
            full = request(self.client, 'ss_job', job['id'])
        except Refused as err:
            self.status.setText(str(err))
            return
        JobEditDialog(self, self.client, full).open()

    def set_held(self, held: bool) -> None:
        """Hold the queue or release it."""
        if not self._do('ss_hold' if held else 'ss_release'):
            self.actHold.setChecked(not held)


def _skipped(job: dict) -> bool:
    return JobState(job['state']) is JobState.SKIPPED
