"""Dialog for editing a waiting job's name and script (``ss_edit``)."""

from nicos.guisupport.qt import QDialog, QDialogButtonBox, QFont, \
    QFontDatabase, QFormLayout, QLabel, QLineEdit, QPlainTextEdit, \
    QVBoxLayout

from gui_panels.daemon import Refused, request


def monospace() -> QFont:
    """The system's fixed-width font, for scripts."""
    return QFontDatabase.systemFont(QFontDatabase.FixedFont)


class JobEditDialog(QDialog):
    """Edit a waiting job: its name and, except for generated jobs (whose
    script is made from command calls), its script.

    The dialog stays open and shows the server's reason if the edit is
    refused (e.g. a syntax error, or the job has started meanwhile).
    """

    def __init__(self, parent, client, job: dict):
        QDialog.__init__(self, parent)
        self.client = client
        self.job = job
        self.setWindowTitle(f"Edit job {job['id']}")
        self.resize(640, 480)
        self.name = QLineEdit(job.get('name') or '', self)
        self.source = QPlainTextEdit(self)
        self.source.setFont(monospace())
        self.source.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.source.setPlainText(job.get('source') or '')
        generated = job.get('kind') == 'generated'
        self.source.setReadOnly(generated)
        form = QFormLayout()
        form.addRow('Name', self.name)
        hint = QLabel('Generated from command calls: build a new job in the '
                      'Commands panel to change them.' if generated else
                      'Saving starts a new dry run of the job.', self)
        hint.setWordWrap(True)
        self.error = QLabel(self)
        self.error.setWordWrap(True)
        self.error.setStyleSheet('color: #c62828;')
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.Save |
                                   QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.source, 1)
        layout.addWidget(hint)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def changes(self) -> dict:
        """What the user changed, as ``ss_edit`` takes it."""
        changes = {}
        if self.name.text() != (self.job.get('name') or ''):
            changes['name'] = self.name.text()
        if not self.source.isReadOnly() and \
                self.source.toPlainText() != (self.job.get('source') or ''):
            changes['source'] = self.source.toPlainText()
        return changes

    def save(self) -> None:
        """Send the changes; close on success, show the refusal otherwise."""
        changes = self.changes()
        if changes:
            try:
                request(self.client, 'ss_edit', self.job['id'], changes)
            except Refused as err:
                self.error.setText(str(err))
                self.error.show()
                return
        self.accept()
