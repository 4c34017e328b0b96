"""NICOS GUI configuration: the script server's panels next to NICOS's
console and devices panels.

Start it with ``python -m gui_panels.launch -c gui_panels/guiconfig.py
user@127.0.0.1:1303``; it asks for the password (see docs/GUI.md).
"""

# The ss_* event signals must exist before NICOS's GUI client module is
# imported, which happens after this file has been executed.
import gui_panels  # noqa: F401  pylint: disable=unused-import

main_window = docked(
    tabbed(
        ('Queue',
         vsplit(
             panel('gui_panels.queue.QueuePanel'),
             panel('gui_panels.current.CurrentJobPanel'),
         )),
        ('Commands', panel('gui_panels.commands.CommandsPanel')),
        ('Console', panel('nicos.clients.gui.panels.console.ConsolePanel')),
        ('Devices', panel('nicos.clients.gui.panels.devices.DevicesPanel')),
    ),
    # hasmenu=False: the Console tab's panel already adds the Output menu
    ('Log',
     panel('nicos.clients.gui.panels.console.ConsolePanel', hasinput=False,
           hasmenu=False, dockpos='bottom')),
)

windows = [
    window('Editor', 'editor',
           panel('nicos.clients.gui.panels.editor.EditorPanel')),
    window('Log files', 'find',
           panel('nicos.clients.gui.panels.logviewer.LogViewerPanel')),
]
