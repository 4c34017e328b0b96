"""Dialog for editing a waiting job's name and script (``ss_edit``), or a
finished one's before it is queued again (``ss_requeue``)."""

from typing import Optional

from nicos.clients.gui.panels.utils import showPanel
from nicos.guisupport.qt import QDialog, QDialogButtonBox, QFormLayout, \
    QLabel, QLineEdit, QVBoxLayout

from gui_panels.daemon import Refused, request
from gui_panels.scriptview import ScriptView


class JobEditDialog(QDialog):
    """Edit a job: its name and, except for generated jobs (whose script
    is made from command calls: "Edit calls…" loads them into the Commands
    panel), its script.

    A waiting job is changed in place; a finished job (*requeue*) is
    queued again with the changes. A held-back job shows why it is held
    and can be confirmed to run as it is. The dialog stays open and shows
    the server's reason if the change is refused (e.g. a syntax error, or
    the job has started meanwhile).
    """

    def __init__(self, parent, client, job: dict, commands=None,
                 requeue: bool = False):
        QDialog.__init__(self, parent)
        self.client = client
        self.job = job
        self.commands = commands
        self.requeue = requeue
        self.setWindowTitle(f"{'Queue again' if requeue else 'Edit'} "
                            f"job {job['id']}")
        self.resize(640, 480)
        self.name = QLineEdit(job.get('name') or '', self)
        self.source = ScriptView(self)
        self.source.setPlainText(job.get('source') or '')
        generated = job.get('kind') == 'generated'
        self.source.setReadOnly(generated)
        form = QFormLayout()
        form.addRow('Name', self.name)
        self.heldLabel = QLabel(self)
        self.heldLabel.setWordWrap(True)
        self.heldLabel.setStyleSheet('color: #b26a00;')
        held = job.get('held') and not requeue
        reason = job.get('hold_reason') or 'by its dry run'
        self.heldLabel.setText(f'Held back: {reason}\nSave a change whose dry '
                               'run passes, or Confirm to run it as it is.'
                               if held else '')
        self.heldLabel.setVisible(bool(held))
        if not generated:
            hint = 'Saving starts a new dry run of the job.'
        elif commands is not None:
            hint = ('Generated from command calls: Edit calls… opens them in '
                    'the Commands panel.')
        else:
            hint = ('Generated from command calls: build a new job in the '
                    'Commands panel to change them.')
        hint = QLabel(hint, self)
        hint.setWordWrap(True)
        self.error = QLabel(self)
        self.error.setWordWrap(True)
        self.error.setStyleSheet('color: #c62828;')
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.Save |
                                   QDialogButtonBox.Cancel, self)
        if requeue:
            buttons.button(QDialogButtonBox.Save).setText('Queue')
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.confirmButton = buttons.addButton('Confirm',
                                               QDialogButtonBox.ActionRole)
        self.confirmButton.setToolTip('Run the job as it is, in its turn')
        self.confirmButton.clicked.connect(self.confirm)
        self.confirmButton.setVisible(bool(held))
        self.callsButton = buttons.addButton('Edit calls…',
                                             QDialogButtonBox.ActionRole)
        self.callsButton.setToolTip('Load the calls into the Commands panel')
        self.callsButton.clicked.connect(self.edit_calls)
        self.callsButton.setVisible(generated and commands is not None)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heldLabel)
        layout.addLayout(form)
        layout.addWidget(self.source, 1)
        layout.addWidget(hint)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def changes(self) -> dict:
        """What the user changed, as ``ss_edit`` and ``ss_requeue`` take it."""
        changes = {}
        if self.name.text() != (self.job.get('name') or ''):
            changes['name'] = self.name.text()
        if not self.source.isReadOnly() and \
                self.source.toPlainText() != (self.job.get('source') or ''):
            changes['source'] = self.source.toPlainText()
        return changes

    def _send(self, command: str, *args) -> Optional[object]:
        try:
            return request(self.client, command, *args)
        except Refused as err:
            self.error.setText(str(err))
            self.error.show()
            return None

    def save(self) -> None:
        """Send the changes (or queue the job again); close on success,
        show the refusal otherwise."""
        changes = self.changes()
        if self.requeue:
            if self._send('ss_requeue', self.job['id'], changes or None):
                self.accept()
        # With the version shown: refused if someone changed the job since.
        elif not changes or self._send('ss_edit', self.job['id'], changes,
                                       self.job.get('version')):
            self.accept()

    def confirm(self) -> None:
        """Let the held-back job run as it is (unsaved changes are lost)."""
        if self._send('ss_confirm', self.job['id'], self.job.get('version')):
            self.accept()

    def edit_calls(self) -> None:
        """Load the job's calls into the Commands panel and show it there."""
        self.commands.load_job(self.job, edit=not self.requeue)
        showPanel(self.commands)
        self.accept()
