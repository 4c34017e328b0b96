"""The ``nicos-scriptserver`` command-line client (see docs/CLI.md)."""

from nicos_scriptserver.clients.cli.main import main

__all__ = ['main']
