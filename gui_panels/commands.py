"""CommandsPanel: build jobs from the instrument's command catalog."""

import json
from typing import Dict, List, Optional

from nicos.clients.gui.panels import Panel
from nicos.guisupport.qt import QAbstractItemView, QComboBox, QFont, \
    QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, \
    QListWidgetItem, QPlainTextEdit, QPushButton, QScrollArea, Qt, \
    QVBoxLayout, QWidget

from gui_panels import fmt
from gui_panels.daemon import Refused, request, subscribe, watching_only
from gui_panels.fields import Field
from gui_panels.formcheck import EMPTY, FieldError
from gui_panels.layout import splitter

# Arguments a form cannot give: *args and positional-only ones need
# positional values, which only a script can give in order.
FORMLESS_KINDS = ('var_positional', 'var_keyword', 'positional_only')
CALL_ROLE = Qt.UserRole
# Where Submit puts the job (ss_submit's position).
POSITIONS = (('Queue last', None), ('Queue next', 'top'))


def matches(entry: dict, text: str) -> bool:
    """Whether a catalog entry matches the search *text* (all words, in
    the name, summary, description or argument names)."""
    haystack = ' '.join([entry['name'], entry.get('summary') or '',
                         entry.get('description') or '']
                        + [p['name'] for p in entry.get('params', [])]).lower()
    return all(word in haystack for word in text.lower().split())


def call_line(entry: Optional[dict], call: dict) -> str:
    """A call as shown in the job list, with units from the catalog."""
    units = {p['name']: p.get('unit') for p in (entry or {}).get('params', [])}
    return fmt.call(call['command'], call['args'], units)


class CommandsPanel(Panel):
    """Instrument commands: pick one, fill in its form, build a job.

    The list on the left is the server's command catalog (search by name,
    summary or argument); it follows changes to the command files while
    the GUI runs. The form has one field per argument, with its unit,
    limits and description (hover over a field), and checks the values
    before anything is sent. "Add to job" appends the call to the job on
    the right, where calls can be reordered (drag or the arrows) and
    removed; "Dry run" asks the server how long the job would take and
    what would go wrong, "Submit" queues it last or next. The calls of a
    waiting generated job can be loaded here (its edit dialog's "Edit
    calls…") and saved back to it.
    """

    panelName = 'Script-server commands'

    def __init__(self, parent, client, options):
        Panel.__init__(self, parent, client, options)
        self.entries: Dict[str, dict] = {}
        self.generation = None
        self.entry: Optional[dict] = None
        self.fields: Dict[str, Field] = {}
        self.viewonly = False
        # the waiting job whose calls are being edited, or None
        self.editing: Optional[dict] = None
        # the job list's row whose call the form shows (double click), or None
        self.loadedRow: Optional[int] = None
        self._build()
        client.connected.connect(self.on_client_connected)
        client.disconnected.connect(self.on_client_disconnected)
        client.ss_catalog.connect(self.on_client_ss_catalog)
        if client.isconnected:
            self.on_client_connected()

    # layout

    def _build(self) -> None:
        split = splitter(Qt.Horizontal, self)
        split.addWidget(self._build_catalog())
        split.addWidget(self._build_form())
        split.addWidget(self._build_job())
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 2)
        split.setStretchFactor(2, 2)
        split.setSizes([220, 420, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)

    def _build_catalog(self) -> QWidget:
        box = QGroupBox('Commands', self)
        self.search = QLineEdit(box)
        self.search.setPlaceholderText('Search commands…')
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._fill_list)
        self.commandList = QListWidget(box)
        self.commandList.currentItemChanged.connect(self._on_command_selected)
        self.catalogErrors = QLabel(box)
        self.catalogErrors.setWordWrap(True)
        self.catalogErrors.setStyleSheet('color: #b26a00;')
        self.catalogErrors.hide()
        layout = QVBoxLayout(box)
        layout.addWidget(self.search)
        layout.addWidget(self.commandList)
        layout.addWidget(self.catalogErrors)
        return box

    def _build_form(self) -> QWidget:
        box = QGroupBox('Arguments', self)
        self.title = QLabel('Choose a command on the left.', box)
        font = QFont(self.title.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        self.summary = QLabel(box)
        self.summary.setWordWrap(True)
        self.notes = QLabel(box)
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet('color: #666;')
        self.formHolder = QWidget()
        self.form = QFormLayout(self.formHolder)
        self.form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        # names above their fields: a long argument name would leave the
        # fields (and the error messages under them) a sliver of the width
        self.form.setRowWrapPolicy(QFormLayout.WrapAllRows)
        scroll = QScrollArea(box)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setWidget(self.formHolder)
        # the form should look like part of the group box, not a well
        scroll.viewport().setAutoFillBackground(False)
        self.formHolder.setAutoFillBackground(False)
        self.addButton = QPushButton('Add to job', box)
        self.addButton.setEnabled(False)
        self.addButton.clicked.connect(self.add_call)
        self.replaceButton = QPushButton(box)
        self.replaceButton.setToolTip('Put the form\'s call in place of the '
                                      'call loaded from the job')
        self.replaceButton.clicked.connect(self.replace_call)
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(self.replaceButton)
        buttons.addWidget(self.addButton)
        layout = QVBoxLayout(box)
        layout.addWidget(self.title)
        layout.addWidget(self.summary)
        layout.addWidget(self.notes)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        return box

    def _build_job(self) -> QWidget:
        box = QGroupBox('Job', self)
        self.jobName = QLineEdit(box)
        self.jobName.setPlaceholderText('Job name (optional)')
        self.callList = QListWidget(box)
        self.callList.setDragDropMode(QAbstractItemView.InternalMove)
        self.callList.setSelectionMode(QAbstractItemView.SingleSelection)
        self.callList.setWordWrap(True)
        self.callList.model().rowsMoved.connect(self._job_changed)
        self.callList.itemDoubleClicked.connect(self._edit_call)
        edit = QHBoxLayout()
        for text, tip, slot in (
                ('Up', 'Move the selected call up', lambda: self._move_call(-1)),
                ('Down', 'Move the selected call down', lambda: self._move_call(1)),
                ('Remove', 'Remove the selected call', self._remove_call),
                ('Clear', 'Remove all calls', self._clear_calls)):
            button = QPushButton(text, box)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            edit.addWidget(button)
        self.dryRunButton = QPushButton('Dry run', box)
        self.dryRunButton.setToolTip('Check the job on the server and '
                                     'estimate its duration; nothing is queued')
        self.dryRunButton.clicked.connect(self.dry_run)
        self.position = QComboBox(box)
        for text, position in POSITIONS:
            self.position.addItem(text, position)
        self.position.setToolTip('Where Submit puts the job: after the '
                                 'waiting jobs, or before them')
        self.submitButton = QPushButton('Submit', box)
        self.submitButton.setToolTip('Queue the job')
        self.submitButton.clicked.connect(self.submit)
        self.newJobButton = QPushButton('New job', box)
        self.newJobButton.setToolTip('Stop editing the queued job; its '
                                     'calls stay as they are in the queue')
        self.newJobButton.clicked.connect(lambda: self.load_job(None))
        send = QHBoxLayout()
        send.addStretch()
        send.addWidget(self.newJobButton)
        send.addWidget(self.dryRunButton)
        send.addWidget(self.position)
        send.addWidget(self.submitButton)
        self.report = QPlainTextEdit(box)
        self.report.setReadOnly(True)
        self.report.setPlaceholderText('Dry-run reports and server replies '
                                       'appear here.')
        self.report.setMaximumHeight(140)
        layout = QVBoxLayout(box)
        layout.addWidget(self.jobName)
        layout.addWidget(self.callList, 1)
        layout.addLayout(edit)
        layout.addLayout(send)
        layout.addWidget(self.report)
        self.jobBox = box
        self.load_job(None)
        return box

    # the catalog

    def on_client_connected(self) -> None:
        subscribe(self.client)
        self.reload_catalog()
        self._job_changed()   # a guest may not submit

    def on_client_disconnected(self) -> None:
        self.generation = None

    def on_client_ss_catalog(self, change: dict) -> None:
        if change.get('generation') != self.generation:
            self.reload_catalog()

    def reload_catalog(self) -> None:
        """Fetch the catalog and show it, keeping the chosen command."""
        try:
            catalog = json.loads(request(self.client, 'ss_catalog'))
        except Refused as err:
            self._report(f'Could not read the command catalog: {err}')
            return
        self.generation = catalog['generation']
        old = self.entry
        self.entries = {entry['name']: entry for entry in catalog['commands']}
        self._show_errors(catalog.get('errors', []))
        self._fill_list()
        if old and old['name'] in self.entries:
            if self.entries[old['name']].get('hash') != old.get('hash'):
                self.show_command(self.entries[old['name']])
            else:
                self.entry = self.entries[old['name']]
        elif old:
            self.show_command(None)
        self._refresh_call_lines()

    def _show_errors(self, errors: List[dict]) -> None:
        lines = [f"{err.get('file') or err.get('path')}"
                 + (f", line {err['line']}" if err.get('line') else '')
                 + f": {err['message']}" for err in errors]
        self.catalogErrors.setText('Command files with problems:\n'
                                   + '\n'.join(lines) if lines else '')
        self.catalogErrors.setVisible(bool(lines))

    def _fill_list(self) -> None:
        chosen = self.entry['name'] if self.entry else None
        self.commandList.blockSignals(True)
        self.commandList.clear()
        text = self.search.text()
        for name in sorted(self.entries):
            entry = self.entries[name]
            if not matches(entry, text):
                continue
            item = QListWidgetItem(name, self.commandList)
            item.setToolTip(entry.get('summary') or '')
            if name == chosen:
                self.commandList.setCurrentItem(item)
        self.commandList.blockSignals(False)

    def _on_command_selected(self, item, _previous=None) -> None:
        if item is not None:
            self.show_command(self.entries.get(item.text()))

    # the form

    def show_command(self, entry: Optional[dict], args: Optional[dict] = None) -> None:
        """Show the form of *entry* (None: no command), filled with *args*."""
        self.entry = entry
        self._set_loaded_row(None)
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        if entry is None:
            self.title.setText('Choose a command on the left.')
            self.summary.clear()
            self.notes.clear()
            self.addButton.setEnabled(False)
            return
        self.title.setText(entry['name'])
        self.summary.setText(fmt.reflow('\n\n'.join(
            part for part in (entry.get('summary'), entry.get('description'))
            if part)))
        formless = []
        for param in entry['params']:
            if param['kind'] in FORMLESS_KINDS:
                formless.append(param)
                continue
            field = Field(param, self.formHolder)
            if args and param['name'] in args:
                field.set_value(args[param['name']])
            label = QLabel(param['name'] + ('' if param['required'] else
                                            ' (optional)'))
            label.setToolTip(field.editor.toolTip())
            self.form.addRow(label, field)
            self.fields[param['name']] = field
        if not entry['params']:
            self.form.addRow(QLabel('This command takes no arguments.'))
        self.notes.setText(self._notes(entry, formless))
        # a required argument the form cannot give makes the form useless
        self.addButton.setEnabled(not any(p['required'] for p in formless))

    @staticmethod
    def _notes(entry: dict, formless: List[dict]) -> str:
        flags = entry.get('flags', {})
        notes = [text for flag, text in (
            ('pause_points', 'can pause between steps'),
            ('progress', 'reports its progress'),
            ('estimate', 'has a duration estimate')) if flags.get(flag)]
        lines = ['This command ' + ', '.join(notes) + '.'] if notes else []
        if formless:
            lines.append('Only a script can give: '
                         + ', '.join(p['name'] for p in formless) + '.')
        lines += [f'Note: {warning}' for warning in entry.get('warnings', [])]
        return '\n'.join(lines)

    def form_call(self) -> Optional[dict]:
        """The call the form describes, or None (problems shown on the
        fields)."""
        args, ok = {}, True
        for name, field in self.fields.items():
            try:
                value = field.value()
            except FieldError:
                ok = False
                continue
            if value is not EMPTY:
                args[name] = value
        if not ok or self.entry is None:
            return None
        return {'command': self.entry['name'], 'args': args}

    def add_call(self) -> None:
        """Append the form's call to the job, if its values are fine."""
        call = self.form_call()
        if call is None:
            return
        item = QListWidgetItem(call_line(self.entry, call), self.callList)
        item.setData(CALL_ROLE, call)
        self.callList.setCurrentItem(item)
        self._job_changed()

    def replace_call(self) -> None:
        """Put the form's call in place of the one it was loaded from."""
        call = self.form_call()
        if call is None or self.loadedRow is None:
            return
        item = self.callList.item(self.loadedRow)
        item.setText(call_line(self.entry, call))
        item.setData(CALL_ROLE, call)
        self._job_changed()

    def _set_loaded_row(self, row: Optional[int]) -> None:
        self.loadedRow = row
        self.replaceButton.setVisible(row is not None)
        if row is not None:
            self.replaceButton.setText(f'Replace call {row + 1}')

    # the job

    def calls(self) -> List[dict]:
        """The calls of the job being built, in order."""
        return [self.callList.item(row).data(CALL_ROLE)
                for row in range(self.callList.count())]

    def job_spec(self) -> dict:
        """The job as ``ss_submit``/``ss_dryrun`` take it."""
        spec = {'kind': 'generated', 'calls': self.calls()}
        if self.jobName.text().strip():
            spec['name'] = self.jobName.text().strip()
        return spec

    def _refresh_call_lines(self) -> None:
        for row in range(self.callList.count()):
            item = self.callList.item(row)
            call = item.data(CALL_ROLE)
            item.setText(call_line(self.entries.get(call['command']), call))

    def load_job(self, job: Optional[dict], edit: bool = False) -> None:
        """Put *job*'s name and calls in the job list (None: empty it); with
        *edit*, Save changes that waiting job instead of queueing a new
        one."""
        self.editing = job if edit else None
        self.callList.clear()
        self.jobName.setText((job or {}).get('name') or '')
        for call in (job or {}).get('calls') or []:
            item = QListWidgetItem(call_line(self.entries.get(call['command']),
                                             call), self.callList)
            item.setData(CALL_ROLE, call)
        editing = self.editing is not None
        self.jobBox.setTitle(f"Editing waiting job {job['id']}" if editing
                             else 'Job')
        self.submitButton.setText(f"Save to job {job['id']}" if editing
                                  else 'Submit')
        self.submitButton.setToolTip('Change the waiting job to these calls'
                                     if editing else 'Queue the job')
        self.position.setVisible(not editing)
        self.newJobButton.setVisible(editing)
        self._job_changed()

    def setViewOnly(self, viewonly: bool) -> None:
        self.viewonly = viewonly
        self._job_changed()

    def _job_changed(self, *_args) -> None:
        # the loaded call may have moved or gone: add, do not replace
        self._set_loaded_row(None)
        has_calls = self.callList.count() > 0 and \
            not watching_only(self.client, self.viewonly)
        self.dryRunButton.setEnabled(has_calls)
        self.submitButton.setEnabled(has_calls)
        for row in range(self.callList.count()):
            self._mark_call(row, None)

    def _mark_call(self, row: int, problem: Optional[str]) -> None:
        item = self.callList.item(row)
        item.setForeground(Qt.red if problem else self.palette().text())
        item.setToolTip(problem or '')

    def _move_call(self, delta: int) -> None:
        row = self.callList.currentRow()
        if row < 0 or not 0 <= row + delta < self.callList.count():
            return
        item = self.callList.takeItem(row)
        self.callList.insertItem(row + delta, item)
        self.callList.setCurrentRow(row + delta)
        self._job_changed()

    def _remove_call(self) -> None:
        row = self.callList.currentRow()
        if row >= 0:
            self.callList.takeItem(row)
            self._job_changed()

    def _clear_calls(self) -> None:
        self.callList.clear()
        self._job_changed()

    def _edit_call(self, item: QListWidgetItem) -> None:
        """Load a call back into the form (double click), to replace it or
        to add it again with other values."""
        call = item.data(CALL_ROLE)
        entry = self.entries.get(call['command'])
        if entry:
            self.show_command(entry, call['args'])
            self._fill_list()
            self._set_loaded_row(self.callList.row(item))

    def dry_run(self) -> None:
        """Ask the server to dry-run the job; show its report."""
        try:
            report = request(self.client, 'ss_dryrun', self.job_spec())
        except Refused as err:
            self._show_refusal(err)
            return
        self._report(self.describe_report(report))
        for problem in report.get('problems', []):
            # a generated job has one script line per call
            if problem.get('line') and problem['line'] <= self.callList.count():
                self._mark_call(problem['line'] - 1, problem['message'])

    def submit(self) -> None:
        """Queue the job where the position box says (or save the calls
        to the job being edited); on success the job list is emptied."""
        spec = self.job_spec()
        try:
            if self.editing:
                changes = {'calls': spec['calls']}
                if spec.get('name', '') != (self.editing.get('name') or ''):
                    changes['name'] = spec.get('name', '')
                job = request(self.client, 'ss_edit', self.editing['id'],
                              changes, self.editing.get('version'))
            else:
                job, = request(self.client, 'ss_submit', spec,
                               self.position.currentData())
        except Refused as err:
            self._show_refusal(err)
            return
        self._report(f"{'Saved to' if self.editing else 'Submitted as'} job "
                     f"{job['id']}"
                     + (f" ({job['name']})" if job.get('name') else '') + '.')
        self.load_job(None)

    def _show_refusal(self, err: Refused) -> None:
        """Show a server refusal, and mark the calls it names."""
        text = str(err)
        self._report(text)
        for row in range(self.callList.count()):
            tag = f'call {row + 1} ('
            lines = [line.strip() for line in text.splitlines() if tag in line]
            if lines:
                self._mark_call(row, '\n'.join(lines))

    @staticmethod
    def describe_report(report: dict) -> str:
        """A dry-run report as text for the user."""
        state = report.get('state')
        if state == 'ok':
            head = f"Dry run ok: about {fmt.duration(report.get('seconds'))}."
        else:
            head = f'Dry run: {state}.'
        lines = [head]
        for problem in report.get('problems', []):
            where = f"line {problem['line']}: " if problem.get('line') else ''
            lines.append(f"{problem.get('kind', 'problem')}: {where}"
                         f"{problem['message']}")
        devices = report.get('devices') or {}
        if devices:
            lines.append('Moves ' + ', '.join(
                f"{name} to {span.get('last')}" for name, span in devices.items())
                         + '.')
        return '\n'.join(lines)

    def _report(self, text: str) -> None:
        self.report.setPlainText(text)
