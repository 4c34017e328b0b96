"""Layout helpers shared by the panels."""

from nicos.guisupport.qt import QDockWidget, QSplitter, Qt, QWidget

# Height of the docks below the panels in the default layout: NICOS gives
# its Log dock its full size hint, 30 % of its default window.
BOTTOM_DOCK_HEIGHT = 130


def splitter(orientation, parent: QWidget) -> QSplitter:
    """A splitter whose parts can be made small but not dragged away: a
    part collapsed to nothing looks as if it were gone."""
    split = QSplitter(orientation, parent)
    split.setChildrenCollapsible(False)
    return split


def keep_in_splitters(widget: QWidget) -> None:
    """Do not let the splitters that hold *widget* (the guiconfig's
    ``vsplit``/``hsplit``, made by NICOS) collapse their parts."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QSplitter):
            parent.setChildrenCollapsible(False)
        parent = parent.parentWidget()


def lower_bottom_docks(window) -> None:
    """Make the docks at the bottom of *window* low, so that the panels
    above get the room; a layout the user saved is restored after this."""
    docks = [dock for dock in window.findChildren(QDockWidget)
             if window.dockWidgetArea(dock) == Qt.BottomDockWidgetArea]
    if docks:
        window.resizeDocks(docks, [BOTTOM_DOCK_HEIGHT] * len(docks),
                           Qt.Vertical)
