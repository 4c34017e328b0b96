"""QueuePanel: the script server's queue, with the job history."""

from typing import List, Optional

from nicos.clients.gui.panels import Panel
from nicos.guisupport.qt import QAbstractItemView, QAction, QHBoxLayout, \
    QHeaderView, QInputDialog, QItemSelection, QItemSelectionModel, \
    QKeySequence, QLabel, QMenu, QMessageBox, QPushButton, QSize, QTableView, QTabWidget, \
    QTimer, QToolButton, Qt, QVBoxLayout, QWidget

from gui_panels.daemon import Conflict, Refused, request, subscribe, \
    version_of, watching_only
from gui_panels.history import HistoryView
from gui_panels.jobdialog import JobEditDialog
from gui_panels.layout import keep_in_splitters, lower_bottom_docks
from gui_panels.queuemodel import COLUMNS, NAME_COLUMN, PROGRESS_COLUMN, \
    STATE_COLUMN, ProgressDelegate, QueueModel
from nicos_scriptserver.clients.queueview import QueueView
from nicos_scriptserver.queue import JobState

COMMANDS_PANEL = 'Script-server commands'


class QueuePanel(Panel):
    """The queue: the current job first, then the waiting jobs in the
    order they will run, with estimates and expected start times.

    Reorder by dragging a row, or select jobs (Ctrl/Shift+click for
    several) and use the buttons, the row's right-click menu or the keys
    (Ctrl+Up/Down, Ctrl+Home/End); skip jobs to keep them in the queue
    without running them (Ctrl+K); queue copies right after them (Repeat,
    Ctrl+R, asks how many; Duplicate, Ctrl+D, one); edit a job's name and
    script (double click or Ctrl+E); remove them (Delete, asks first) or
    clear the queue. A job held back by its dry run ("held back: reason")
    runs in its turn once edited so that its new dry run passes, or once
    confirmed (Confirm, Ctrl+Y) as it is. "Hold queue" lets the current job
    finish without starting the next one; "Release" ends a hold. The
    History tab lists finished jobs with their outcome and error report;
    they can be queued again, edited or as they were.
    """

    panelName = 'Script-server queue'

    def __init__(self, parent, client, options):
        Panel.__init__(self, parent, client, options)
        self.summary: dict = {}
        # The listing as of a change number: a refresh fetches only what
        # changed since, also after the connection was down.
        self.view = QueueView()
        self.viewonly = False
        self.model = QueueModel(self)
        self.model.moveRequested.connect(self.move_job)
        self._build()
        # Coalesce bursts of events (a batch of jobs finishing) into one
        # history request at most every 300 ms; restarting the timer on
        # each event would put the reload off for as long as jobs finish.
        self.historyTimer = QTimer(self, singleShot=True, interval=300)
        self.historyTimer.timeout.connect(self.history.reload)
        client.connected.connect(self.on_client_connected)
        client.disconnected.connect(self.on_client_disconnected)
        client.ss_queue.connect(self.on_client_ss_queue)
        client.ss_job.connect(self.on_client_ss_job)
        client.ss_timeline.connect(self.on_client_ss_timeline)
        if client.isconnected:
            self.on_client_connected()

    def sizeHint(self) -> QSize:
        # NICOS's splitters share the window by the hints: in NICOS's
        # default window (889 x 766, with the Log dock) this leaves room
        # for about eight rows, and the current job panel for a few lines
        return QSize(900, 360)

    def postInit(self) -> None:
        keep_in_splitters(self)
        # the queue is what this window is for: a Log dock below it must
        # not take a third of it
        lower_bottom_docks(self.mainwindow)

    # layout

    def _build(self) -> None:
        self.conflictBox = QMessageBox(
            QMessageBox.Warning, 'Job changed by someone else', '',
            QMessageBox.Ok, self)
        self.conflictBox.setInformativeText(
            'Nothing was changed. The queue now shows the job as it is; '
            'look at it again before you change it.')
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(PROGRESS_COLUMN,
                                            ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.setDragDropMode(QAbstractItemView.InternalMove)
        self.table.setDefaultDropAction(Qt.MoveAction)
        self.table.setDragDropOverwriteMode(False)
        self.table.setDropIndicatorShown(True)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        # compact rows: more jobs in view
        self.table.verticalHeader().setDefaultSectionSize(
            self.table.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        # The name tells the jobs apart: it gets the spare width. State
        # (with a hold-back reason) and progress (with its message) can be
        # long; they are cut short, in full in the tooltip.
        header.setSectionResizeMode(NAME_COLUMN, QHeaderView.Stretch)
        for column, width in ((STATE_COLUMN, 150), (PROGRESS_COLUMN, 170)):
            header.setSectionResizeMode(column, QHeaderView.Interactive)
            header.resizeSection(column, width)
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(40)
        header.setHighlightSections(False)
        self.table.doubleClicked.connect(lambda _index: self.edit_job())
        self.table.selectionModel().selectionChanged.connect(
            self._selection_changed)
        self.model.modelReset.connect(self._update_actions)
        self.model.dataChanged.connect(self._update_actions)

        queue = QWidget(self)
        self.holdBanner = QWidget(queue)
        self.holdLabel = QLabel(self.holdBanner)
        self.holdLabel.setWordWrap(True)
        self.holdLabel.setStyleSheet('color: #b26a00; font-weight: bold;')
        self.releaseButton = QPushButton('Release', self.holdBanner)
        self.releaseButton.setToolTip('End the hold: waiting jobs start again')
        self.releaseButton.clicked.connect(self.release)
        banner = QHBoxLayout(self.holdBanner)
        banner.setContentsMargins(0, 0, 0, 0)
        banner.addWidget(self.holdLabel, 1)
        banner.addWidget(self.releaseButton, 0, Qt.AlignTop)
        self.holdBanner.hide()
        self.status = QLabel(queue)
        self.status.setWordWrap(True)
        layout = QVBoxLayout(queue)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(self._build_buttons(queue))
        layout.addWidget(self.holdBanner)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)

        self.history = HistoryView(self, self.client, self.commands_panel)
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
        self.actTop = self._action('Top', 'Run the selected jobs next',
                                   'Ctrl+Home', lambda: self.move_selected('top'))
        self.actUp = self._action('Up', 'Move the selected jobs up',
                                  'Ctrl+Up', lambda: self.move_selected('up'))
        self.actDown = self._action('Down', 'Move the selected jobs down',
                                    'Ctrl+Down', lambda: self.move_selected('down'))
        self.actBottom = self._action('Bottom', 'Move the selected jobs to the end',
                                      'Ctrl+End', lambda: self.move_selected('bottom'))
        self.actSkip = self._action('Skip', 'Skip the selected jobs, or run them '
                                    'again if skipped', 'Ctrl+K', self.toggle_skip)
        self.actRepeat = self._action('Repeat…', 'Queue copies right after each',
                                      'Ctrl+R', self.repeat_job)
        self.actDuplicate = self._action('Duplicate', 'Queue one copy right '
                                         'after each', 'Ctrl+D',
                                         lambda: self._for_selected('ss_duplicate'))
        self.actEdit = self._action('Edit…', 'Edit the name and script',
                                    'Ctrl+E', self.edit_job)
        self.actRemove = self._action('Remove…', 'Remove the selected jobs '
                                      '(asks first)', 'Delete', self.remove_jobs)
        self.actConfirm = self._action('Confirm', 'Run the selected held-back '
                                       'jobs anyway, in their turn', 'Ctrl+Y',
                                       self.confirm_jobs)
        self.actClear = QAction('Clear…', self)
        self.actClear.setToolTip('Remove every waiting job (asks first)')
        self.actClear.triggered.connect(self.clear_queue)
        self.actHold = QAction('Hold queue', self)
        self.actHold.setToolTip('Let the current job finish but start no other '
                                'until released')
        self.actHold.triggered.connect(self.hold)
        row = QHBoxLayout()
        row.setSpacing(2)
        for action in (self.actTop, self.actUp, self.actDown, self.actBottom,
                       None, self.actSkip, self.actRepeat, self.actDuplicate,
                       self.actEdit, self.actConfirm, self.actRemove, None,
                       self.actClear, self.actHold):
            if action is None:
                row.addSpacing(12)
                continue
            button = QToolButton(parent)
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonTextOnly)
            row.addWidget(button)
        row.addStretch()
        return row

    def _context_menu(self, pos) -> None:
        """The actions for the rows under the pointer (right click)."""
        menu = QMenu(self.table)
        for group in ((self.actEdit, self.actConfirm, self.actSkip),
                      (self.actTop, self.actUp, self.actDown, self.actBottom),
                      (self.actRepeat, self.actDuplicate),
                      (self.actRemove,)):
            if not menu.isEmpty():
                menu.addSeparator()
            menu.addActions(group)
        menu.popup(self.table.viewport().mapToGlobal(pos))

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
        """Bring the queue listing up to date (what changed since the
        one shown) and show it, keeping the selection."""
        try:
            self.view.apply(request(self.client, 'ss_changes', self.view.seq))
        except Refused as err:
            self.status.setText(str(err))
            return
        selected = [job['id'] for job in self.selected_jobs()]
        self.summary = self.view.listing()
        self.model.set_queue(self.view.current, self.view.waiting())
        self._show_hold(self.summary)
        self.select_jobs(selected)

    def on_client_ss_queue(self, _summary: dict) -> None:
        self.refresh()

    def on_client_ss_job(self, job: dict) -> None:
        finished = JobState(job['state']).finished
        if finished and not self.historyTimer.isActive():
            self.historyTimer.start()
        if self.view.missed(job.get('seq')):
            # Changes were missed: the events alone would leave the table
            # stale.
            self.refresh()
            return
        self.view.note(job.get('seq'))
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
        watching = watching_only(self.client, self.viewonly)
        self.actHold.setEnabled(not held and not watching)
        self.releaseButton.setEnabled(not watching)
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
        self.holdBanner.setVisible(held)

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.history:
            self.history.reload()

    # selection and actions

    def selected_jobs(self) -> List[dict]:
        """The selected jobs (listing fields), in table order."""
        rows = sorted(index.row() for index in
                      self.table.selectionModel().selectedRows())
        return [self.model.job_at(row) for row in rows]

    def selected(self) -> Optional[dict]:
        """The selected job if exactly one is selected, else None."""
        jobs = self.selected_jobs()
        return jobs[0] if len(jobs) == 1 else None

    def _selected_waiting(self) -> List[dict]:
        return [job for job in self.selected_jobs()
                if job is not self.model.current]

    def select_job(self, job_id: int) -> None:
        """Select the row of job *job_id* (only it), if it is shown."""
        self.select_jobs([job_id])

    def select_jobs(self, job_ids: List[int]) -> None:
        """Select the rows of the jobs *job_ids* that are shown."""
        selection = QItemSelection()
        for job_id in job_ids:
            row = self.model.row_of(job_id)
            if row is not None:
                selection.select(self.model.index(row, 0),
                                 self.model.index(row, len(COLUMNS) - 1))
        self.table.selectionModel().select(
            selection, QItemSelectionModel.ClearAndSelect)

    def _selection_changed(self, *_args) -> None:
        # a refusal is about the job that was selected then
        self.status.clear()
        self._update_actions()

    def setViewOnly(self, viewonly: bool) -> None:
        self.viewonly = viewonly
        self.history.setViewOnly(viewonly)
        self._show_hold(self.summary)
        self._update_actions()

    def _update_actions(self, *_args) -> None:
        watching = watching_only(self.client, self.viewonly)
        jobs = [] if watching else self.selected_jobs()
        waiting = [job for job in jobs if job is not self.model.current]
        for action in (self.actTop, self.actUp, self.actDown, self.actBottom,
                       self.actSkip, self.actRemove):
            action.setEnabled(bool(waiting))
        self.actEdit.setEnabled(len(jobs) == 1 and bool(waiting))
        self.actConfirm.setEnabled(any(job.get('held') for job in waiting))
        # the current job can be copied, not changed
        self.actRepeat.setEnabled(bool(jobs))
        self.actDuplicate.setEnabled(bool(jobs))
        self.actSkip.setText('Unskip' if waiting and all(map(_skipped, waiting))
                             else 'Skip')
        self.actClear.setEnabled(not watching and bool(self.model.waiting))

    def _do(self, command: str, *args) -> bool:
        try:
            request(self.client, command, *args)
        except Conflict as err:
            self.show_conflict(str(err))
            return False
        except Refused as err:
            self.status.setText(str(err))
            return False
        self.status.clear()
        return True

    def _do_job(self, command: str, job: dict, *args) -> bool:
        """*command* for *job* as the table shows it: with its version,
        so that a change meant for what the user saw is refused if
        someone changed the job since."""
        return self._do(command, job['id'], *args,
                        *version_of(command, job))

    def _for_each(self, command: str, jobs: List[dict], *args) -> None:
        """*command* for each job in turn; stops at the first refusal,
        which is shown. Then the table shows the jobs' new versions at
        once, so that the user's next change is not refused as if someone
        else had made this one."""
        for job in jobs:
            if not self._do_job(command, job, *args):
                return
        self.refresh()

    def show_conflict(self, message: str) -> None:
        """Someone changed a job since the table showed it: say who and
        what (the server's message) in the status line and in a message
        box that does not block, and show the queue as it is now."""
        self.status.setText(message)
        self.conflictBox.setText(message)
        self.conflictBox.open()
        self.refresh()

    def _for_selected(self, command: str, *args) -> None:
        self._for_each(command, self.selected_jobs(), *args)

    def move_job(self, job_id: int, to) -> None:
        """Move a job to a waiting-list index or to ``up``, ``down``,
        ``top``, ``bottom`` (a drop); it is selected."""
        row = self.model.row_of(job_id)
        job = self.model.job_at(row) if row is not None else {'id': job_id}
        if self._do_job('ss_move', job, to):
            self.refresh()
            self.select_job(job_id)

    def move_selected(self, to: str) -> None:
        """Move the selected waiting jobs ``up``, ``down``, to the ``top``
        or the ``bottom``, keeping their order; they stay selected."""
        jobs = self._selected_waiting()
        # the job that moves first must not jump over the others
        if to in ('top', 'down'):
            jobs.reverse()
        self._for_each('ss_move', jobs, to)
        # select them now; the ss_queue event's listing keeps them selected
        self.select_jobs([job['id'] for job in jobs])

    def repeat_job(self) -> None:
        """Ask how many copies of the selected jobs to queue after each."""
        jobs = self.selected_jobs()
        if not jobs:
            return
        times, ok = QInputDialog.getInt(
            self, 'Repeat', f'Copies of {_jobs_text(jobs)} to queue after '
            f'{"it" if len(jobs) == 1 else "each"}:', 1, 1, 1000)
        if ok:
            self._for_each('ss_repeat', jobs, times)

    def toggle_skip(self) -> None:
        """Skip the selected jobs, or un-skip them if all are skipped."""
        jobs = self._selected_waiting()
        if jobs and all(map(_skipped, jobs)):
            self._for_each('ss_unskip', jobs)
        else:
            self._for_each('ss_skip', [job for job in jobs
                                       if not _skipped(job)])

    def confirm_jobs(self) -> None:
        """Let the selected held-back jobs run in their turn as they are."""
        self._for_each('ss_confirm', [job for job in self._selected_waiting()
                                      if job.get('held')])

    def remove_jobs(self) -> None:
        """Remove the selected waiting jobs, after asking."""
        jobs = self._selected_waiting()
        if jobs and self.askQuestion(f'Remove {_jobs_text(jobs)} from the '
                                     'queue?', select_no=True):
            self._for_each('ss_remove', jobs)

    def clear_queue(self) -> None:
        """Remove every waiting job, after asking."""
        count = len(self.model.waiting)
        if count and self.askQuestion(
                f'Remove all {count} waiting job{"s" if count > 1 else ""}? '
                'The current job goes on.', select_no=True):
            self._do('ss_clear')

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
        JobEditDialog(self, self.client, full, self.commands_panel()).open()

    def commands_panel(self):
        """The Commands panel of this window, to edit a job's calls in."""
        return self.mainwindow.getPanel(COMMANDS_PANEL)

    def hold(self) -> None:
        """Hold the queue: start no other job until released."""
        self._do('ss_hold')

    def release(self) -> None:
        """End the hold."""
        self._do('ss_release')


def _skipped(job: dict) -> bool:
    return JobState(job['state']) is JobState.SKIPPED


def _jobs_text(jobs: List[dict]) -> str:
    """``job 12 “cool down”`` or ``3 jobs (12, 14, 15)``."""
    if len(jobs) == 1:
        name = jobs[0].get('name')
        return f"job {jobs[0]['id']}" + (f' “{name}”' if name else '')
    return f"{len(jobs)} jobs ({', '.join(str(job['id']) for job in jobs)})"
