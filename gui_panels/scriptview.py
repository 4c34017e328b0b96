"""A script in a fixed-width font with its line numbers in a margin: the
dry run's problems, errors and the highlighted line are given by number."""

from nicos.guisupport.qt import QColor, QFont, QFontDatabase, QPainter, \
    QPlainTextEdit, QRect, QSize, Qt, QWidget


def monospace() -> QFont:
    """The system's fixed-width font, for scripts."""
    return QFontDatabase.systemFont(QFontDatabase.FixedFont)


class ScriptView(QPlainTextEdit):
    """A plain-text script editor (or viewer) with line numbers."""

    def __init__(self, parent=None):
        QPlainTextEdit.__init__(self, parent)
        self.setFont(monospace())
        self.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.numbers = _LineNumbers(self)
        self.blockCountChanged.connect(self._fit_margin)
        self.updateRequest.connect(self._scroll_numbers)
        self._fit_margin()

    def margin_width(self) -> int:
        """Width of the line numbers' margin: the widest number and a gap."""
        digits = len(str(max(1, self.blockCount())))
        return self.fontMetrics().horizontalAdvance('9') * (digits + 1) + 6

    def _fit_margin(self, *_args) -> None:
        self.setViewportMargins(self.margin_width(), 0, 0, 0)

    def _scroll_numbers(self, rect: QRect, dy: int) -> None:
        if dy:
            self.numbers.scroll(0, dy)
        else:
            self.numbers.update(0, rect.y(), self.numbers.width(), rect.height())

    def resizeEvent(self, event) -> None:
        QPlainTextEdit.resizeEvent(self, event)
        area = self.contentsRect()
        self.numbers.setGeometry(QRect(area.left(), area.top(),
                                       self.margin_width(), area.height()))

    def paint_numbers(self, event) -> None:
        """Draw the numbers of the visible lines (the margin's paint)."""
        painter = QPainter(self.numbers)
        painter.fillRect(event.rect(), QColor('#f0f0f0'))
        painter.setPen(QColor('#888888'))
        block = self.firstVisibleBlock()
        top = round(self.blockBoundingGeometry(block)
                    .translated(self.contentOffset()).top())
        height = self.fontMetrics().height()
        while block.isValid() and top <= event.rect().bottom():
            bottom = top + round(self.blockBoundingRect(block).height())
            if block.isVisible() and bottom >= event.rect().top():
                painter.drawText(0, top, self.numbers.width() - 4, height,
                                 Qt.AlignRight, str(block.blockNumber() + 1))
            block = block.next()
            top = bottom


class _LineNumbers(QWidget):
    """The margin of a `ScriptView`; the view paints it."""

    def __init__(self, view: ScriptView):
        QWidget.__init__(self, view)
        self.view = view

    def sizeHint(self) -> QSize:
        return QSize(self.view.margin_width(), 0)

    def paintEvent(self, event) -> None:
        self.view.paint_numbers(event)
