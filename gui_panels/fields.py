"""Form fields generated from catalog parameters (docs/COMMANDS.md).

One editor per parameter type: spin boxes with the limits and the unit for
numbers, a combo box for choices, a check box for booleans, a line edit for
text, lists and other values. Each field checks its value locally
(`formcheck`) and shows the problem right under the editor.
"""

from typing import Any, Optional

from nicos.guisupport.qt import QCheckBox, QComboBox, QDoubleSpinBox, \
    QLabel, QLineEdit, QSpinBox, QVBoxLayout, QWidget, pyqtSignal

from gui_panels import fmt
from gui_panels.formcheck import EMPTY, FieldError, check, parse_list, \
    parse_text

# Bounds of unbounded numbers: what a spin box needs, far beyond any limit
# an instrument command documents.
UNBOUNDED = 1e9
INT_UNBOUNDED = 2**31 - 2


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


class _NumberBox(QDoubleSpinBox):
    """A spin box for floats that shows 12.5 as ``12.5``, not ``12.500000``."""

    def textFromValue(self, value: float) -> str:
        return (f'{value:.{self.decimals()}f}').rstrip('0').rstrip('.')


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
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.editor)
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
        if kind in ('float', 'int'):
            return self._spinbox(kind)
        edit = QLineEdit(self)
        edit.setPlaceholderText({
            'str': self.unset or '',
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

    def _spinbox(self, kind: str) -> QWidget:
        param = self.param
        if kind == 'int':
            box, bound, number = QSpinBox(self), INT_UNBOUNDED, int
        else:
            box, bound, number = _NumberBox(self), UNBOUNDED, float
            box.setDecimals(6)
        low = number(param['min'] if param.get('min') is not None else -bound)
        high = number(param['max'] if param.get('max') is not None else bound)
        step = 1 if kind == 'int' or high - low > 20 else 0.1
        box.setSingleStep(step)
        if self.unset:
            # one step below the range means "nothing entered"
            low -= step
            box.setSpecialValueText(self.unset)
        box.setRange(low, high)
        box.setValue(low)
        if param.get('unit'):
            box.setSuffix(f" {param['unit']}")
        box.valueChanged.connect(self.changed)
        return box

    def set_value(self, value: Any) -> None:
        """Show *value* (e.g. the default, or a call being edited again)."""
        editor = self.editor
        if isinstance(editor, QComboBox):
            index = editor.findData(EMPTY if value is None else value)
            editor.setCurrentIndex(max(index, 0))
        elif isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            editor.setValue(editor.minimum() if value is None else value)
        elif self.param['type'] == 'list' and isinstance(value, (list, tuple)):
            editor.setText(', '.join(fmt.value(item) for item in value))
        else:
            editor.setText('' if value is None else
                           value if self.param['type'] == 'str' else repr(value))

    def raw_value(self) -> Any:
        """What the editor holds, or `EMPTY`; raises `FieldError` for text
        that cannot be read."""
        editor, kind = self.editor, self.param['type']
        if isinstance(editor, QComboBox):
            return editor.currentData()
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            if self.unset and editor.value() == editor.minimum():
                return EMPTY
            return editor.value()
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
