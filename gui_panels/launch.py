"""Start the stock NICOS GUI, with the `gr` stand-in if GR is missing.

Usage (same arguments as ``nicos-gui``; without a password in the connect
string, which others could read in the process list, the GUI asks for it
in its connect dialog)::

    python -m gui_panels.launch -c gui_panels/guiconfig.py user@host:port
"""

import os
import sys

SHIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'grshim')


def ensure_gr() -> bool:
    """Make ``import gr`` work; True if the stand-in had to be used.

    The real GR always wins: the stand-in directory is only added when
    importing GR fails.
    """
    try:
        import gr  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        sys.path.insert(0, SHIM_DIR)
        return True
    return False


def main(argv=None) -> int:
    """Run NICOS's GUI main program with *argv* (default: sys.argv)."""
    ensure_gr()
    # The ss_* event signals must exist before NICOS's GUI client is imported.
    from nicos_scriptserver.wire import protocol  # pylint: disable=import-outside-toplevel
    protocol.register()
    from nicos.clients.gui.main import main as gui_main  # pylint: disable=import-outside-toplevel
    return gui_main(sys.argv if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
