"""CurrentJobPanel: the job that is running now."""

import time
from typing import Optional

from nicos.clients.gui.panels import Panel
from nicos.guisupport.qt import QColor, QFont, QGridLayout, QHBoxLayout, \
    QLabel, QPlainTextEdit, QProgressBar, QPushButton, QSize, \
    Qt, QTextCursor, QTextEdit, QTextFormat, QTimer, QVBoxLayout, QWidget
from nicos.utils.loggers import ACTION, INPUT

from gui_panels import fmt
from gui_panels.daemon import Refused, request, subscribe, watching_only
from gui_panels.layout import keep_in_splitters, splitter
from gui_panels.scriptview import ScriptView, monospace
from nicos_scriptserver.queue import JobState
from nicos_scriptserver.queue.lifecycle import allows, describe

# Lines of output kept; older ones are dropped so that a chatty job
# cannot make the GUI slow.
MAX_OUTPUT_LINES = 5000
# Recent NICOS messages asked for on connecting, as NICOS's console does.
MESSAGES_KEPT = 10000


class CurrentJobPanel(Panel):
    """The current job: its script with the line being executed
    highlighted, its progress, how long it has run and when it should end,
    and what it prints.

    Pause stops the job at its next pause point (black-box jobs cannot be
    paused), Resume continues it, Abort stops it at the next safe point and
    holds the jobs waiting then.
    """

    panelName = 'Script-server current job'

    def __init__(self, parent, client, options):
        Panel.__init__(self, parent, client, options)
        self.job: Optional[dict] = None
        self.viewonly = False
        self.timeline: dict = {}
        # server time at which this panel saw the job pause: how long it
        # has been paused while the server does not say (no paused_for)
        self.paused_seen: Optional[float] = None
        # server clock minus ours, so that expected ends computed by the
        # server read right here
        self.clock_offset = 0.0
        self._build()
        self.ticker = QTimer(self, interval=1000)
        self.ticker.timeout.connect(self._show_times)
        self.ticker.start()
        client.connected.connect(self.on_client_connected)
        client.disconnected.connect(self.on_client_disconnected)
        client.ss_queue.connect(self.on_client_ss_queue)
        client.ss_job.connect(self.on_client_ss_job)
        client.ss_timeline.connect(self.on_client_ss_timeline)
        client.ss_output.connect(self.on_client_ss_output)
        client.message.connect(self.on_client_message)
        client.status.connect(self.on_client_status)
        if client.isconnected:
            self.on_client_connected()

    def sizeHint(self) -> QSize:
        # less than the queue above it (NICOS's splitters share the window
        # by the hints), enough for a few lines of script and output
        return QSize(900, 240)

    def postInit(self) -> None:
        keep_in_splitters(self)

    # layout

    def _build(self) -> None:
        self.title = QLabel('No job is running.', self)
        font = QFont(self.title.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat('')
        self.times = {}
        grid = QGridLayout()
        for column, (key, label) in enumerate((
                ('elapsed', 'Elapsed'), ('remaining', 'Remaining'),
                ('end', 'Expected end'), ('estimate', 'Estimate'),
                ('paused', 'Paused for'))):
            caption = QLabel(label, self)
            caption.setStyleSheet('color: #666;')
            value = QLabel('–', self)
            grid.addWidget(caption, 0, column)
            grid.addWidget(value, 1, column)
            self.times[key] = value
        self.pausedCaption = caption
        self.times['paused'].setStyleSheet('color: #b26a00; font-weight: bold;')
        grid.setHorizontalSpacing(24)
        self.pauseButton = QPushButton('Pause', self)
        self.pauseButton.clicked.connect(self.pause)
        self.resumeButton = QPushButton('Resume', self)
        self.resumeButton.setToolTip('Continue the paused job')
        self.resumeButton.clicked.connect(self.resume)
        self.abortButton = QPushButton('Abort', self)
        self.abortButton.setToolTip('Stop the job at its next safe point and '
                                    'hold the waiting jobs')
        self.abortButton.clicked.connect(self.abort)
        row = QHBoxLayout()
        row.addLayout(grid)
        row.addStretch()
        for button in (self.pauseButton, self.resumeButton, self.abortButton):
            row.addWidget(button, 0, Qt.AlignBottom)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setStyleSheet('color: #c62828;')
        self.status.hide()

        self.script = ScriptView(self)
        self.script.setReadOnly(True)
        self.output = QPlainTextEdit(self)
        self.output.setReadOnly(True)
        self.output.setFont(monospace())
        self.output.setMaximumBlockCount(MAX_OUTPUT_LINES)
        self.output.setPlaceholderText('Output of the current job')
        split = splitter(Qt.Horizontal, self)
        split.addWidget(_titled('Script', self.script))
        split.addWidget(_titled('Output', self.output))
        split.setSizes([500, 400])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.progress)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)
        self._show_job(None)

    # server state

    def on_client_connected(self) -> None:
        subscribe(self.client)
        try:
            current = request(self.client, 'ss_queue').get('current')
            self.on_client_ss_timeline(request(self.client, 'ss_timeline'))
        except Refused as err:
            self._set_status(str(err))
            return
        self._show_job(current)
        self._show_earlier_output()

    def _show_earlier_output(self) -> None:
        """What the current job printed before this GUI connected (NICOS
        keeps the recent messages)."""
        if self.job is None or self.job.get('kind') == 'blackbox':
            return
        try:
            messages = request(self.client, 'getmessages', str(MESSAGES_KEPT))
        except Refused:
            return  # only the earlier output is missing
        for message in messages:
            self.on_client_message(message)

    def on_client_disconnected(self) -> None:
        self._show_job(None)

    def on_client_ss_queue(self, summary: dict) -> None:
        current = summary.get('current')
        if current is None:
            if self.job is not None and _current(self.job):
                self._show_job(None)
        elif self.job is None or self.job['id'] != current:
            try:
                self._show_job(request(self.client, 'ss_job', current))
            except Refused as err:
                self._set_status(str(err))

    def on_client_ss_job(self, job: dict) -> None:
        if _current(job):
            self._show_job(job)
        elif self.job is not None and job['id'] == self.job['id']:
            # finished: keep showing it, with its outcome, until the next
            self._show_job(job)

    def on_client_ss_timeline(self, timeline: dict) -> None:
        self.timeline = timeline
        if timeline.get('now'):
            self.clock_offset = timeline['now'] - time.time()
        self._show_times()

    def on_client_ss_output(self, data: dict) -> None:
        if self.job is not None and data.get('id') == self.job['id']:
            self._append(data.get('text', ''))

    def on_client_message(self, message) -> None:
        # NICOS log messages: [logger, time, level, text, exc_text, reqid];
        # the script server's request id is the job id. ACTION messages
        # ("Sleeping", "Counting") say what runs now: the console's status
        # line shows them, output would drown in them. INPUT is the echo
        # of the script, shown above already.
        if self.job is None or self.job.get('kind') == 'blackbox':
            return
        if len(message) > 5 and str(message[5]) == str(self.job['id']) \
                and message[2] not in (ACTION, INPUT):
            # one block per message: a trailing newline would leave an
            # empty last line that scrolls the first one out of a low pane
            self.output.appendPlainText(fmt.log_line(message).rstrip('\n'))

    def on_client_status(self, status) -> None:
        # NICOS's (status, line) of the running script: the job's line as
        # it runs (ss_job events carry it only when the job changes)
        if self.job and JobState(self.job['state']) is JobState.RUNNING and \
                self.job.get('kind') != 'blackbox' and status[1] > 0:
            self.job['current_line'] = status[1]
            self._highlight_line()

    # showing it

    def _show_job(self, job: Optional[dict]) -> None:
        new = job is None or self.job is None or job['id'] != self.job['id']
        if job is None or not _paused(job):
            self.paused_seen = None
        elif not new and not _paused(self.job):
            self.paused_seen = time.time() + self.clock_offset
        self.job = job
        if job is None:
            self.title.setText('No job is running.')
            self.script.clear()
            self.progress.setValue(0)
            self.progress.setFormat('')
        else:
            self.title.setText(f"Job {job['id']}: {job.get('name') or job['kind']}"
                               f" — {describe(job)}"
                               + (f' ({fmt.people(job)})' if job.get('owner') else ''))
            if new or self.script.toPlainText() != (job.get('source') or ''):
                self.script.setPlainText(job.get('source') or '')
            self._show_progress()
        if new:
            self.output.clear()
            self._set_status('')
        self._highlight_line()
        self._update_buttons()
        self._show_times()

    def _highlight_line(self) -> None:
        line = self.job.get('current_line') if self.job else None
        # a black-box job runs in a process of its own: no line is known
        if not line or not _current(self.job) or \
                self.job.get('kind') == 'blackbox':
            self.script.setExtraSelections([])
            return
        block = self.script.document().findBlockByLineNumber(line - 1)
        selection = QTextEdit.ExtraSelection()
        selection.format.setBackground(QColor(
            '#ffe0b2' if _paused(self.job) else '#c8e6c9'))
        selection.format.setProperty(QTextFormat.FullWidthSelection, True)
        selection.cursor = QTextCursor(block)
        self.script.setExtraSelections([selection])
        self.script.setTextCursor(QTextCursor(block))
        self.script.centerCursor()

    def setViewOnly(self, viewonly: bool) -> None:
        self.viewonly = viewonly
        self._update_buttons()

    def _update_buttons(self) -> None:
        job = None if watching_only(self.client, self.viewonly) else self.job
        blackbox = bool(self.job) and self.job.get('kind') == 'blackbox'
        # What the server would allow, from the job's stage.
        self.pauseButton.setEnabled(bool(job) and not blackbox and
                                    allows(job, 'request pause'))
        self.pauseButton.setToolTip('Black-box jobs cannot be paused; abort '
                                    'them instead' if blackbox else
                                    'Pause at the next pause point')
        self.resumeButton.setEnabled(bool(job) and allows(job, 'resume'))
        self.abortButton.setEnabled(bool(job) and
                                    allows(job, 'request abort'))

    def _show_progress(self) -> None:
        """The job's progress, or for a black-box job, which cannot report
        any, how much of its estimated time has passed."""
        job = self.job
        fraction, message = job.get('progress'), job.get('progress_message') or ''
        if fraction is None and _current(job):
            fraction = self._progress_by_time()
            if fraction is not None:
                message = 'of its estimated time'
        self.progress.setValue(int(round((fraction or 0) * 1000)))
        self.progress.setFormat(
            (f'{fraction * 100:.0f} %' if fraction is not None else '')
            + (f'  {message}' if message else ''))

    def _timeline_current(self) -> dict:
        """The timeline's data of the shown job, if it is the current one."""
        current = self.timeline.get('current') or {}
        return current if self.job and current.get('id') == self.job['id'] else {}

    def _progress_by_time(self) -> Optional[float]:
        # the server's fraction as of its last timeline, moved on with the
        # clock while the job runs
        fraction = self._timeline_current().get('progress_by_time')
        seconds = (self.job.get('estimate') or {}).get('seconds')
        if fraction is None or not seconds or _paused(self.job):
            return fraction
        since = time.time() + self.clock_offset - self.timeline.get('now', 0)
        return min(1.0, fraction + max(since, 0) / seconds)

    def _paused_for(self, now: float) -> Optional[float]:
        """Seconds the shown job has been paused, None if unknown."""
        paused_for = self._timeline_current().get('paused_for')
        if paused_for is not None:
            return paused_for + now - self.timeline.get('now', now)
        return None if self.paused_seen is None else now - self.paused_seen

    def _show_times(self) -> None:
        job = self.job
        current = self._timeline_current()
        paused = job is not None and _paused(job)
        for widget in (self.pausedCaption, self.times['paused']):
            widget.setVisible(paused)
        if job is None or not _current(job):
            for key, label in self.times.items():
                label.setText(fmt.estimate(job.get('estimate')) if job and
                              key == 'estimate' else '–')
            return
        now = time.time() + self.clock_offset
        if paused:
            self.times['paused'].setText(fmt.duration(self._paused_for(now),
                                                      missing='–'))
        if job.get('kind') == 'blackbox':
            self._show_progress()
        if job.get('started_at'):
            self.times['elapsed'].setText(fmt.duration(now - job['started_at']))
        if current.get('expected_end'):
            end = current['expected_end']
            if _paused(job):
                # paused time does not count: the end moves on with the clock
                end += now - self.timeline.get('now', now)
            self.times['end'].setText(fmt.clock(end))
            self.times['remaining'].setText(fmt.duration(max(end - now, 0)))
        else:
            self.times['end'].setText('unknown')
            self.times['remaining'].setText('unknown')
        self.times['estimate'].setText(fmt.estimate(job.get('estimate')) or
                                       'unknown')

    def _append(self, text: str) -> None:
        self.output.moveCursor(QTextCursor.End)
        self.output.insertPlainText(text)
        self.output.moveCursor(QTextCursor.End)

    # actions

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _do(self, command: str) -> None:
        try:
            request(self.client, command)
        except Refused as err:
            self._set_status(str(err))
            return
        self._set_status('')

    def pause(self) -> None:
        """Pause the current job at its next pause point."""
        self._do('ss_pause')

    def resume(self) -> None:
        """Resume the paused job."""
        self._do('ss_resume')

    def abort(self) -> None:
        """Abort the current job, after asking."""
        if self.job and self.askQuestion(
                f"Abort job {self.job['id']}? The waiting jobs will be "
                'held.'):
            self._do('ss_abort')


def _current(job: dict) -> bool:
    return JobState(job['state']).current


def _paused(job: dict) -> bool:
    return JobState(job['state']) is JobState.PAUSED


def _titled(title: str, widget: QWidget) -> QWidget:
    """*widget* with a small caption above it."""
    holder = QWidget()
    caption = QLabel(title, holder)
    caption.setStyleSheet('color: #666;')
    layout = QVBoxLayout(holder)
    layout.setContentsMargins(0, 4, 0, 0)
    layout.setSpacing(2)
    layout.addWidget(caption)
    layout.addWidget(widget)
    return holder
