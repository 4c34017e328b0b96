"""The finished jobs (``ss_history``), with their outcome and error
report; failed, aborted or interrupted ones can be queued again, as they
were or edited (``ss_requeue``), and any of them copied to the queue as a
new job (``ss_submit``)."""

from typing import Callable, List, Optional

from nicos.guisupport.qt import QAbstractItemView, QBrush, QColor, \
    QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit, QPushButton, \
    Qt, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from gui_panels import fmt
from gui_panels.daemon import Refused, request, watching_only
from gui_panels.jobdialog import JobEditDialog
from gui_panels.layout import splitter
from gui_panels.scriptview import monospace
from nicos_scriptserver.queue import JobState
from nicos_scriptserver.queue.model import REQUEUEABLE

OUTCOME_COLORS = {'done': '#2e7d32', 'failed': '#c62828',
                  'aborted': '#b26a00', 'interrupted': '#b26a00'}


def report_text(job: dict) -> str:
    """A finished job's outcome, result and error report."""
    lines = [f"Job {job['id']} “{job.get('name') or ''}” ({job.get('kind')}, "
             f"{fmt.people(job)}) {job['state']}"
             + (f" after {fmt.duration(job['finished_at'] - job['started_at'])}"
                if job.get('started_at') and job.get('finished_at') else '')
             + '.']
    if job.get('started_at'):
        seconds = (job.get('estimate') or {}).get('seconds')
        lines.append(f"Started {fmt.clock(job['started_at'])}, finished "
                     f"{fmt.clock(job.get('finished_at'))}"
                     + (f' (estimate {fmt.duration(seconds)})'
                        if seconds is not None else '') + '.')
    if job.get('requeued_from'):
        lines.append(f"Re-run of job {job['requeued_from']}.")
    if job.get('result'):
        lines.append(f"Result: {job['result']}")
    error = job.get('error')
    if error:
        where = f" (line {error['line']})" if error.get('line') else ''
        lines += ['', f"{error.get('type', 'Error')}{where}: "
                      f"{error.get('message', '')}"]
        if error.get('traceback'):
            lines += ['', error['traceback'].rstrip()]
    return '\n'.join(lines)


class HistoryView(QWidget):
    """Finished jobs, last finished first; select one to see its report."""

    def __init__(self, parent, client, commands=None):
        QWidget.__init__(self, parent)
        self.client = client
        # a callable giving the Commands panel, to edit generated jobs in
        self.commands = commands
        self.viewonly = False
        self.jobs: List[dict] = []
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(['ID', 'Name', 'Owner', 'Outcome',
                                   'Finished', 'Duration'])
        self.tree.setRootIsDecorated(False)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(1, QHeaderView.Stretch)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.currentItemChanged.connect(self._show_selected)
        self.details = QPlainTextEdit(self)
        self.details.setReadOnly(True)
        self.details.setFont(monospace())
        self.details.setPlaceholderText('Select a job to see its report.')
        self.requeueButton = QPushButton('Re-queue', self)
        self.requeueButton.setToolTip('Queue the selected job again, to run '
                                      'from the start')
        self.requeueButton.clicked.connect(self.requeue)
        self.editButton = QPushButton('Edit && re-queue…', self)
        self.editButton.setToolTip('Change the name or script of the selected '
                                   'job, then queue it again')
        self.editButton.clicked.connect(self.edit_and_requeue)
        self.copyButton = QPushButton('Copy to queue', self)
        self.copyButton.setToolTip('Queue a new job with the same name and '
                                   'script (also for jobs that ran to the end)')
        self.copyButton.clicked.connect(self.copy_to_queue)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        split = splitter(Qt.Vertical, self)
        split.addWidget(self.tree)
        split.addWidget(self.details)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        for button in (self.requeueButton, self.editButton, self.copyButton):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        layout.addLayout(buttons)

    def reload(self) -> None:
        """Fetch the history and show it, keeping the selection."""
        try:
            jobs = request(self.client, 'ss_history', 50)
        except Refused as err:
            self.status.setText(str(err))
            return
        selected = self.selected()
        self.jobs = jobs
        self.tree.clear()
        for job in jobs:
            duration = (job['finished_at'] - job['started_at']
                        if job.get('started_at') and job.get('finished_at')
                        else None)
            item = QTreeWidgetItem([str(job['id']), job.get('name') or '',
                                    job.get('owner') or '', job['state'],
                                    fmt.clock(job.get('finished_at')),
                                    fmt.duration(duration)])
            item.setData(0, Qt.UserRole, job)
            if job['state'] in OUTCOME_COLORS:
                item.setForeground(3, QBrush(QColor(OUTCOME_COLORS[job['state']])))
            if job.get('error'):
                item.setToolTip(3, job['error'].get('message', ''))
            self.tree.addTopLevelItem(item)
            if selected and job['id'] == selected['id']:
                self.tree.setCurrentItem(item)
        for column in (0, 2, 3, 4, 5):
            self.tree.resizeColumnToContents(column)
        self._update_buttons()

    def selected(self) -> Optional[dict]:
        """The selected finished job."""
        item = self.tree.currentItem()
        return item.data(0, Qt.UserRole) if item else None

    def setViewOnly(self, viewonly: bool) -> None:
        self.viewonly = viewonly
        self._update_buttons()

    def _show_selected(self, *_args) -> None:
        job = self.selected()
        self.details.setPlainText(report_text(job) if job else '')
        self._update_buttons()

    def _update_buttons(self) -> None:
        watching = watching_only(self.client, self.viewonly)
        job = None if watching else self.selected()
        requeueable = bool(job) and JobState(job['state']) in REQUEUEABLE
        self.requeueButton.setEnabled(requeueable)
        self.editButton.setEnabled(requeueable)
        self.copyButton.setEnabled(bool(job))

    def _queue(self, send: Callable[[dict], dict]) -> None:
        """Queue the selected job again by *send* (job -> new job)."""
        job = self.selected()
        if not job:
            return
        try:
            new = send(job)
        except Refused as err:
            self.status.setText(str(err))
            return
        self.status.setText(f"Job {job['id']} queued again as job {new['id']}.")

    def requeue(self) -> None:
        """Queue the selected job again as it was (``ss_requeue``)."""
        self._queue(lambda job: request(self.client, 'ss_requeue', job['id']))

    def copy_to_queue(self) -> None:
        """Queue a new job with the selected job's name and script."""
        self._queue(lambda job: request(self.client, 'ss_submit',
                                        copy_spec(job))[0])

    def edit_and_requeue(self) -> None:
        """Open the selected job in the edit dialog; its Queue button
        queues it again with the changes."""
        job = self.selected()
        if job:
            commands = self.commands() if self.commands else None
            JobEditDialog(self, self.client, job, commands,
                          requeue=True).open()


def copy_spec(job: dict) -> dict:
    """A job spec (``ss_submit``) for a new job like the finished *job*."""
    spec = {'kind': job['kind'], 'name': job.get('name') or ''}
    if job['kind'] == 'generated':
        spec['calls'] = job['calls']
    else:
        spec['source'] = job.get('source') or ''
    return spec

