"""The script server's NICOS daemon device."""

from nicos.services.daemon import NicosDaemon

from nicos_scriptserver.daemon import access


class ScriptServerDaemon(NicosDaemon):
    """NICOS daemon of a script server.

    Behaves like the stock daemon, except that guest logins may only watch:
    every command that runs, edits or steers scripts needs user level.
    """

    def doInit(self, mode):
        access.install()
        NicosDaemon.doInit(self, mode)
