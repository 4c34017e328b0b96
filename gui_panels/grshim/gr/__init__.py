"""Stand-in for the GR plotting library, for NICOS GUIs without plots.

NICOS's GUI main window and ``nicos.guisupport.utils`` import ``gr`` at
module level but only use these names (for the About box and the list of
image file types). GR itself cannot be installed from PyPI offline, so
`gui_panels.launch` puts this package on ``sys.path`` when the real one is
missing. Panels that plot (plots, history, scans, live data) need
``gr.pygr`` and stay unavailable.
"""

__version__ = 'none (stand-in without plotting)'

PRINT_TYPE: dict = {}
GRAPHIC_TYPE: dict = {}


def runtime_version() -> str:
    """GR runtime version, shown in the GUI's About box."""
    return 'none'
