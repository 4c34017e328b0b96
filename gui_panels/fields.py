"""Form fields generated from catalog parameters (docs/COMMANDS.md).

One editor per parameter type: a combo box for choices, a check box for
booleans, a line edit for numbers (with the unit after it), text, lists and
other values. Each field checks its value locally (`formcheck`) and shows
the problem right under the editor.

Numbers are typed into line edits, not spin boxes: a spin box's validator
throws away what leaves its range (``400`` became ``40`` for a limit of
350 K) where the user should see why, and its "required" text had to be
selected before a number could be typed.
"""

from typing import Any, Optional

from nicos.guisupport.qt import QCheckBox, QComboBox, QHBoxLayout, QLabel, \
    QLineEdit, QVBoxLayout, QWidget, pyqtSignal

from gui_panels import fmt
from gui_panels.formcheck import EMPTY, FieldError, check, parse_list, \
    parse_text


def limits_text(param: dict) -> str:
    """``0.5..100 meV``, ``> 0 s``, or empty."""
    low, high, unit = param.get('min'), param.get('max'), param.get('unit')
    if low is None and high is None:
        return ''
    if low is not None and high is not None:
        text = f'{low:g}..{high:g}'
        if not param.get('min_inclusive', True):
            text = f'> {low:g}, ' + (f'< {high:g}' if not param.get('max_inclusive', True)
                                     else f'<= {high:g}')
        elif not param.get('max_inclusive', True):
            text = f'>= {low:g}, < {high:g}'
    elif low is not None:
        text = f'{">=" if param.get("min_inclusive", True) else ">"} {low:g}'
    else:
        text = f'{"<=" if param.get("max_inclusive", True) else "<"} {high:g}'
    return f'{text} {unit}' if unit else text


def tooltip(param: dict) -> str:
    """What a user needs to know about an argument, for its tooltip."""
    lines = [param.get('description') or param['name']]
    kind = param['type']
    if kind == 'list':
        kind = f"list of {param.get('item_type') or 'values'}"
    lines.append(f'type: {kind}' + (' or None' if param.get('nullable') else ''))
    if limits_text(param):
        lines.append(f'limits: {limits_text(param)}')
    if param.get('choices') is not None:
        lines.append('choices: ' + ', '.join(map(repr, param['choices'])))
    if param.get('default_source'):
        lines.append(f"default: {param['default_source']}")
    elif param.get('has_default'):
        lines.append(f"default: {fmt.value(param['default'], param.get('unit'))}")
    else:
        lines.append('required')
    return '\n'.join(lines)


def unset_text(param: dict) -> Optional[str]:
    """What an editor shows when nothing is entered, or None if a value is
    always there (a default that the editor can show)."""
    if param.get('default_source'):
        return f"default ({param['default_source']})"
    if not param.get('has_default'):
        return 'not set' if param.get('nullable') else 'required'
    return 'not set' if param.get('default') is None else None


class Field(QWidget):
    """The editor of one argument and, under it, what is wrong with it."""

    changed = pyqtSignal()

    def __init__(self, param: dict, parent: Optional[QWidget] = None):
        QWidget.__init__(self, parent)
        self.param = param
        self.unset = unset_text(param)
        self.editor = self._make_editor()
        self.editor.setToolTip(tooltip(param))
        self.error = QLabel(self)
        self.error.setObjectName('fieldError')
        self.error.setStyleSheet('color: #c62828;')
        self.error.setWordWrap(True)
        self.error.hide()
        row = QHBoxLayout()
        row.addWidget(self.editor, 1)
        if param.get('unit'):
            row.addWidget(QLabel(param['unit'], self))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(row)
        layout.addWidget(self.error)
        if param.get('has_default') and param.get('default') is not None:
            self.set_value(param['default'])
        # Show problems as they are typed, not before (a fresh form would be
        # all red with "required").
        self.changed.connect(self.validate)

    def _make_editor(self) -> QWidget:
        param, kind = self.param, self.param['type']
        if param.get('choices') is not None or (kind == 'bool' and self.unset):
            return self._combo(param.get('choices') or [True, False])
        if kind == 'bool':
            box = QCheckBox(self)
            box.toggled.connect(self.changed)
            return box
        # "required, 1..350 K": what to type, where the number goes
        number_hint = ', '.join(text for text in (self.unset, limits_text(param))
                                if text)
        edit = QLineEdit(self)
        edit.setPlaceholderText({
            'str': self.unset or '',
            'float': number_hint,
            'int': number_hint,
            'list': 'values separated by commas, e.g. 1, 2.5, 4',
        }.get(kind, 'a Python value, e.g. 3 or \'text\''))
        edit.textChanged.connect(self.changed)
        return edit

    def _combo(self, choices: list) -> QComboBox:
        combo = QComboBox(self)
        if self.unset:
            combo.addItem(self.unset, EMPTY)
        for choice in choices:
            # text choices without quotes: they are picked, not typed
            combo.addItem(choice if isinstance(choice, str) else
                          fmt.value(choice, self.param.get('unit')), choice)
        combo.currentIndexChanged.connect(self.changed)
        return combo

    def set_value(self, value: Any) -> None:
        """Show *value* (e.g. the default, or a call being edited again)."""
        editor = self.editor
        if isinstance(editor, QComboBox):
            index = editor.findData(EMPTY if value is None else value)
            editor.setCurrentIndex(max(index, 0))
        elif isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif self.param['type'] == 'list' and isinstance(value, (list, tuple)):
            editor.setText(', '.join(fmt.value(item) for item in value))
        elif value is None:
            editor.setText('')
        elif self.param['type'] in ('float', 'int'):
            editor.setText(fmt.value(value))
        else:
            editor.setText(value if self.param['type'] == 'str' else repr(value))

    def raw_value(self) -> Any:
        """What the editor holds, or `EMPTY`; raises `FieldError` for text
        that cannot be read."""
        editor, kind = self.editor, self.param['type']
        if isinstance(editor, QComboBox):
            return editor.currentData()
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        text = editor.text()
        if not text.strip() and (self.unset or kind != 'str'):
            return EMPTY
        if kind == 'list':
            return parse_list(text, self.param.get('item_type'))
        return parse_text(text, kind)

    def value(self) -> Any:
        """The argument value, or `EMPTY` to leave it out; raises
        `FieldError` (and shows it) if the value is not acceptable."""
        try:
            result = check(self.raw_value(), self.param)
        except FieldError as err:
            self.show_error(str(err))
            raise
        self.show_error(None)
        return result

    def validate(self) -> bool:
        """Check the value now and show the problem, if any."""
        try:
            self.value()
        except FieldError:
            return False
        return True

    def show_error(self, text: Optional[str]) -> None:
        """Show *text* under the editor (None: no problem)."""
        self.error.setText(text or '')
        self.error.setVisible(bool(text))
