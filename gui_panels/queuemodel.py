"""The table model behind the queue panel: the current job, then the
waiting jobs, with their expected times; rows can be dragged to reorder."""

from typing import Any, Dict, List, Optional

from nicos.guisupport.qt import QAbstractTableModel, QApplication, QBrush, \
    QColor, QFont, QMimeData, QModelIndex, QStyle, QStyledItemDelegate, \
    QStyleOptionProgressBar, Qt, pyqtSignal

from gui_panels import fmt
from nicos_scriptserver.queue import JobState
from nicos_scriptserver.queue.lifecycle import describe

COLUMNS = ('ID', 'Kind', 'Name', 'Owner', 'State', 'Estimate', 'Start',
           'Progress')
NAME_COLUMN = COLUMNS.index('Name')
STATE_COLUMN = COLUMNS.index('State')
START_COLUMN = COLUMNS.index('Start')
PROGRESS_COLUMN = COLUMNS.index('Progress')
MIME_TYPE = 'application/x-nicos-scriptserver-job'
JOB_ROLE = Qt.UserRole


def estimate_tooltip(summary: Optional[dict]) -> str:
    """Where an estimate comes from, or what the dry run found."""
    if not summary:
        return ''
    problems = summary.get('problems')
    if isinstance(problems, list):
        return '\n'.join(f"line {p.get('line')}: {p['message']}"
                         if p.get('line') else p['message'] for p in problems)
    return summary.get('problem') or ''


class QueueModel(QAbstractTableModel):
    """Rows: the current job (if any), then the waiting jobs in order.

    A drop asks for a move (`moveRequested`) instead of moving rows: the
    server decides, and its ``ss_queue`` event then reorders the table.
    """

    moveRequested = pyqtSignal(int, int)

    def __init__(self, parent=None):
        QAbstractTableModel.__init__(self, parent)
        self.current: Optional[dict] = None
        self.waiting: List[dict] = []
        self.times: Dict[int, dict] = {}

    # contents

    def set_queue(self, current: Optional[dict], waiting: List[dict]) -> None:
        """Show a new queue listing (`ss_queue` reply, rows as dicts)."""
        self.beginResetModel()
        self.current = current
        self.waiting = waiting
        self.endResetModel()

    def update_job(self, job: dict) -> bool:
        """Take changed fields of *job* (an ``ss_job`` event); False if the
        table does not show it in that state (then it needs a new listing)."""
        row = self.row_of(job['id'])
        if row is None:
            return False
        shown = self.job_at(row)
        is_current = shown is self.current
        if is_current != JobState(job['state']).current:
            return False
        if is_current:
            self.current = job
        else:
            shown.update({key: job[key] for key in shown if key in job})
            if isinstance(job.get('estimate'), dict):
                shown['estimate'] = job['estimate']
        self.dataChanged.emit(self.index(row, 0),
                              self.index(row, len(COLUMNS) - 1))
        return True

    def set_timeline(self, timeline: dict) -> None:
        """Take expected times from an ``ss_timeline`` reply or event."""
        self.times = {entry['id']: entry for entry in timeline.get('jobs', [])}
        current = timeline.get('current')
        if current:
            self.times[current['id']] = current
        if self.rowCount():
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(self.rowCount() - 1, len(COLUMNS) - 1))

    def job_at(self, row: int) -> Optional[dict]:
        """The job shown in *row*."""
        if self.current is not None:
            if row == 0:
                return self.current
            row -= 1
        return self.waiting[row] if 0 <= row < len(self.waiting) else None

    def row_of(self, job_id: int) -> Optional[int]:
        """The row showing job *job_id*, or None."""
        offset = 0
        if self.current is not None:
            if self.current['id'] == job_id:
                return 0
            offset = 1
        for index, job in enumerate(self.waiting):
            if job['id'] == job_id:
                return index + offset
        return None

    def waiting_index(self, row: int) -> int:
        """Position in the waiting list of table row *row*."""
        return row - (1 if self.current is not None else 0)

    # Qt model interface

    def rowCount(self, parent=QModelIndex()) -> int:
        if parent.isValid():
            return 0
        return len(self.waiting) + (1 if self.current is not None else 0)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation != Qt.Horizontal:
            return None
        if role == Qt.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ToolTipRole and section == START_COLUMN:
            return 'When the job started, or is expected to start'
        return None

    def data(self, index, role=Qt.DisplayRole) -> Any:
        job = self.job_at(index.row())
        if job is None:
            return None
        column = index.column()
        if role == JOB_ROLE:
            return job
        if role == Qt.DisplayRole:
            return self._text(job, column)
        if role == Qt.ToolTipRole:
            return self._tooltip(job, column)
        if role == Qt.FontRole and job is self.current:
            font = QFont(QApplication.font())
            font.setBold(True)
            return font
        state = JobState(job['state'])
        # skipped: greyed out, it will not run; held back: orange text like
        # the queue's hold, someone has to decide on it (an orange
        # background is the paused current job's)
        if role == Qt.ForegroundRole and state is JobState.SKIPPED:
            return QBrush(QColor('#888888'))
        if role == Qt.FontRole and state is JobState.SKIPPED:
            font = QFont(QApplication.font())
            font.setItalic(True)
            return font
        if role == Qt.ForegroundRole and job.get('held'):
            return QBrush(QColor('#b26a00'))
        if role == Qt.BackgroundRole and job is self.current:
            return QBrush(QColor('#e3f2fd' if state is JobState.RUNNING
                                 else '#fff3e0'))
        return None

    def _text(self, job: dict, column: int) -> Any:
        times = self.times.get(job['id'], {})
        if column == 0:
            return str(job['id'])
        if column == 1:
            return job.get('kind', '')
        if column == NAME_COLUMN:
            return job.get('name') or ''
        if column == 3:
            return job.get('owner', '')
        if column == STATE_COLUMN:
            # why a job is held back matters to whoever decides on it: in
            # the row, not only in a tooltip
            reason = job.get('hold_reason') if job.get('held') else None
            return describe(job) + (f": {reason.splitlines()[0]}" if reason
                                    else '')
        if column == 5:
            return fmt.estimate(job.get('estimate'))
        if column == START_COLUMN:
            # the current job's real start, the others' expected one
            return fmt.clock(job.get('started_at') if job is self.current
                             else times.get('expected_start'))
        if column == PROGRESS_COLUMN:
            return job.get('progress_message') or ''
        return None

    def _tooltip(self, job: dict, column: int) -> str:
        if column == STATE_COLUMN and job.get('hold_reason'):
            return job['hold_reason']
        if column == 5:
            return estimate_tooltip(job.get('estimate'))
        if column == PROGRESS_COLUMN:
            return job.get('progress_message') or ''
        if column == START_COLUMN:
            end = self.times.get(job['id'], {}).get('expected_end')
            start = 'started' if job is self.current else 'expected start'
            return f'{start}; expected end {fmt.clock(end)}' if end else start
        return ''

    def flags(self, index):
        base = Qt.ItemIsEnabled | Qt.ItemIsSelectable
        if not index.isValid():
            return Qt.ItemIsDropEnabled
        if self.job_at(index.row()) is self.current:
            return base
        return base | Qt.ItemIsDragEnabled | Qt.ItemIsDropEnabled

    def supportedDropActions(self):
        return Qt.MoveAction

    def mimeTypes(self) -> List[str]:
        return [MIME_TYPE]

    def mimeData(self, indexes) -> QMimeData:
        data = QMimeData()
        rows = sorted({index.row() for index in indexes})
        if rows:
            data.setData(MIME_TYPE, str(self.job_at(rows[0])['id']).encode())
        return data

    def dropMimeData(self, data, action, row, column, parent) -> bool:
        if action != Qt.MoveAction or not data.hasFormat(MIME_TYPE):
            return False
        job_id = int(bytes(data.data(MIME_TYPE)).decode())
        source = self.row_of(job_id)
        if source is None:
            return False
        if row < 0:
            # dropped onto a row: take its place; onto empty space: the end
            target = parent.row() if parent.isValid() else self.rowCount()
        else:
            # dropped between rows: insertion point, before the job leaves
            target = row - 1 if row > source else row
        target = min(max(self.waiting_index(target), 0), len(self.waiting) - 1)
        if target != self.waiting_index(source):
            self.moveRequested.emit(job_id, target)
        # the rows are moved by the server's ss_queue event, not by the view
        return True


class ProgressDelegate(QStyledItemDelegate):
    """Draws the progress column as a progress bar with its message."""

    def paint(self, painter, option, index):
        job = index.data(JOB_ROLE)
        if index.column() != PROGRESS_COLUMN or not job or \
                job.get('progress') is None:
            QStyledItemDelegate.paint(self, painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(round(job['progress'] * 1000))
        message = job.get('progress_message')
        percent = f"{job['progress'] * 100:.0f} %"
        # cut to the cell: a centred text wider than the bar loses its
        # start, the percentage (the tooltip has the message in full)
        bar.text = option.fontMetrics.elidedText(
            f'{percent}  {message}' if message else percent, Qt.ElideRight,
            bar.rect.width() - 8)
        bar.textVisible = True
        bar.textAlignment = Qt.AlignCenter
        bar.state = option.state | QStyle.State_Enabled
        QApplication.style().drawControl(QStyle.CE_ProgressBar, bar, painter)
