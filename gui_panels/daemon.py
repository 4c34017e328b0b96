"""Talking to the script server from panels: requests whose refusals the
panel shows itself, and the event subscription."""

from typing import Any, Tuple

from nicos.core.utils import GUEST

from nicos_scriptserver.queue.versions import CHANGED_SINCE
from nicos_scriptserver.wire import protocol
from nicos_scriptserver.wire.commandtable import COMMANDS, needs_user

SS_EVENTS = sorted(protocol.EVENTS)


class Refused(Exception):
    """The daemon refused a request; the text says why."""


class Conflict(Refused):
    """Refused because someone changed the job since the panel showed it;
    the text says who and what."""


def version_of(command: str, job: dict) -> Tuple:
    """The last argument of *command* for *job* as the panel shows it: its
    version if the command takes one (the server then refuses the change
    if someone changed the job since), else nothing."""
    takes = any(arg.name == 'version' for arg in COMMANDS[command].args)
    return (job.get('version'),) if takes else ()


def request(client, command: str, *args) -> Any:
    """Send *command* and return the reply; a refusal raises `Refused`.

    ``client.ask`` reports refusals in NICOS's error window and returns
    None, but a panel has to show the reason where the user acted (on the
    form field, next to the button). Broken connections are still handled
    by the client as usual.
    """
    if not client.isconnected:
        raise Refused('not connected to a server')
    if client.viewonly and needs_user(command):
        raise Refused('the GUI is in view-only mode')
    try:
        with client.lock:
            client.transport.send_command(command, args)
            ok, data = client.transport.recv_reply()
    except Exception as err:
        client.handle_error(err)
        raise Refused(f'connection to the server broke: {err}') from err
    if not ok:
        raise (Conflict if CHANGED_SINCE in str(data) else Refused)(str(data))
    return data


def watching_only(client, viewonly: bool) -> bool:
    """Whether the panels may only watch: the GUI is in view-only mode, or
    logged in as a guest, whom the server refuses every change (so the
    buttons for changes are disabled instead of failing)."""
    level = client.user_level if client.isconnected else None
    return viewonly or (level is not None and level <= GUEST)


def subscribe(client) -> None:
    """Ask the daemon for the ss_* events, which it masks at first."""
    client.ask('eventunmask', SS_EVENTS, quiet=True)


__all__ = ['Conflict', 'Refused', 'request', 'subscribe', 'version_of',
           'watching_only']
