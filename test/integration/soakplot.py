"""Draw a soak's samples as a PNG: one panel per quantity over time.

Drawn with QPainter (PyQt5 is a dependency already; matplotlib is not),
on the offscreen platform when there is no display.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from soak import PROCESSES, SoakResult

WIDTH, PANEL_HEIGHT, MARGIN, LEGEND = 1100, 230, 70, 250
COLOURS = {'cache': '#1f77b4', 'daemon': '#d62728', 'proxy': '#2ca02c',
           'sqlite_kib': '#9467bd', 'wal_kib': '#e377c2', 'logs_kib': '#8c564b'}
#: (title, unit, {legend: sample key})
PANELS: List[Tuple[str, str, Dict[str, str]]] = [
    ('Resident memory', 'MiB', {p: f'{p}.rss' for p in PROCESSES}),
    ('Open file descriptors', '', {p: f'{p}.fds' for p in PROCESSES}),
    ('Threads', '', {p: f'{p}.threads' for p in PROCESSES}),
    ('Size on disk', 'KiB', {'queue.sqlite': 'sqlite_kib',
                             'queue.sqlite-wal': 'wal_kib', 'logs': 'logs_kib'}),
]


def _nice_range(values: Sequence[float]) -> Tuple[float, float]:
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    pad = (high - low) * 0.1
    return max(0.0, low - pad), high + pad


def write_plot(result: SoakResult, path: Path, title: str) -> Path:
    """Write *result*'s samples to the PNG *path*; return the path."""
    os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')
    from PyQt5.QtCore import QPointF, QRectF, Qt
    from PyQt5.QtGui import QColor, QFont, QImage, QPainter, QPen
    from PyQt5.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841 (fonts)
    height = 40 + PANEL_HEIGHT * len(PANELS)
    image = QImage(WIDTH, height, QImage.Format_RGB32)
    image.fill(QColor('white'))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setFont(QFont('Sans', 10, QFont.Bold))
    painter.drawText(QRectF(0, 5, WIDTH, 25), Qt.AlignCenter, title)
    minutes = [s.elapsed / 60 for s in result.samples]
    t_end = max(minutes[-1], 1e-6)
    for index, (name, unit, lines) in enumerate(PANELS):
        top = 40 + index * PANEL_HEIGHT
        plot = QRectF(MARGIN, top + 20, WIDTH - MARGIN - LEGEND, PANEL_HEIGHT - 55)
        series = {label: result.series(key) for label, key in lines.items()}
        low, high = _nice_range([v for values in series.values() for v in values])
        painter.setFont(QFont('Sans', 9, QFont.Bold))
        painter.setPen(QColor('black'))
        painter.drawText(QRectF(MARGIN, top, plot.width(), 18), Qt.AlignLeft,
                         f'{name}' + (f' ({unit})' if unit else ''))
        painter.setFont(QFont('Sans', 8))
        painter.setPen(QPen(QColor('#999999'), 1))
        painter.drawRect(plot)
        for frac in (0.0, 0.5, 1.0):
            y = plot.bottom() - frac * plot.height()
            painter.drawText(QRectF(0, y - 8, MARGIN - 6, 16),
                             Qt.AlignRight | Qt.AlignVCenter,
                             f'{low + frac * (high - low):.4g}')
            x = plot.left() + frac * plot.width()
            painter.drawText(QRectF(x - 40, plot.bottom() + 2, 80, 16),
                             Qt.AlignCenter, f'{frac * t_end:.1f} min')
        for row, (label, values) in enumerate(series.items()):
            colour = QColor(COLOURS.get(lines[label], COLOURS.get(label, 'black')))
            painter.setPen(QPen(colour, 2))
            points = [QPointF(plot.left() + m / t_end * plot.width(),
                              plot.bottom() - (v - low) / (high - low) * plot.height())
                      for m, v in zip(minutes, values)]
            for start, end in zip(points, points[1:]):
                painter.drawLine(start, end)
            legend_y = plot.top() + 6 + row * 18
            painter.drawLine(QPointF(plot.right() + 12, legend_y),
                             QPointF(plot.right() + 32, legend_y))
            painter.setPen(QColor('black'))
            painter.drawText(QPointF(plot.right() + 38, legend_y + 4),
                             f'{label}  {values[0]:.4g} -> {values[-1]:.4g}')
    painter.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(path), 'PNG'):
        raise OSError(f'cannot write the plot {path}')
    return path
