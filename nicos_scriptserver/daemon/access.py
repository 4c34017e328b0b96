"""The daemon's access guard: every command passes the command table.

NICOS dispatches each request to ``command_wrappers[name]``. `install`
wraps every one of them with the policy of `commandtable`: a command that
is not in the table is refused (an allowlist), a login below the
command's level is refused with what it needs, arguments of the wrong
number or type are refused naming the argument, and a guest's ``eval``
and ``watch`` expressions must pass the read-only check, because NICOS
evaluates them in the script namespace and checks device access against
the running script's user, not against the guest. ``complete`` never
offers private names.
"""

from typing import Any, Callable, List, Optional

from nicos import session
from nicos.services.daemon.handler import command_wrappers

from nicos_scriptserver.wire.commandtable import ADMIN, COMMANDS, USER, Command
from nicos_scriptserver.daemon.sscommands import queue_command
from nicos_scriptserver.daemon.readonly_expr import NotReadOnly, check_read_only
from nicos_scriptserver.queue.audit import Actor, acting

_REFUSALS = {
    USER: 'guest logins can only watch; log in with a user account to run '
          'or change scripts',
    ADMIN: 'needs an admin login',
}


def _guest_expressions(name: str, args: List[Any]) -> List[str]:
    """The expressions in a request of *name* that a guest sends."""
    if name == 'eval':
        return [args[0]]
    # NICOS's watch entries are "expression:group"
    return [str(entry).partition(':')[0] for entry in args[0]]


def refusal(command: Optional[Command], name: str, level: int,
            args: List[Any]) -> Optional[str]:
    """Why a login of *level* may not send *name* with *args*, or None."""
    if command is None:
        return f'{name}: not a command of this server'
    if level < command.level:
        return f'{name}: {_REFUSALS[command.level]}'
    problem = command.check_args(args)
    if problem:
        return problem
    if command.guest_expressions and level < USER:
        for expr in _guest_expressions(name, args):
            try:
                check_read_only(expr, session.devices)
            except NotReadOnly as err:
                return (f'{name}: guest logins may only evaluate read-only '
                        f'expressions ({err})')
    return None


def _guarded(name: str, wrapper: Callable) -> Callable:
    def guarded(handler, args):
        reason = refusal(COMMANDS.get(name), name, handler.user.level, args)
        if reason:
            handler.send_error_reply(reason)
            return None
        # The queue's audit trail records its changes as this login's.
        with acting(Actor(handler.user.name, _client(handler, name))):
            return wrapper(handler, args)

    guarded.__name__ = wrapper.__name__
    guarded.orig_function = getattr(wrapper, 'orig_function', wrapper)
    guarded.guarded = True
    return guarded


def _client(handler, name: str) -> str:
    """Which client sent command *name*, as the audit trail names it."""
    hosts = getattr(handler, 'clientnames', None) or ['?']
    return f"{name} from {hosts[0]}, connection {getattr(handler, 'ident', '?')}"


def _is_private(completion: str) -> bool:
    return any(part.startswith('_') for part in completion.split('.'))


@queue_command('complete')
def complete(self, line, lastword):
    """Completions of a typed line, without private names."""
    matches = self.controller.complete_line(line, lastword)
    return sorted({match for match in matches if not _is_private(match)})


def install() -> None:
    """Guard every daemon command (once the handlers are registered)."""
    for name, wrapper in list(command_wrappers.items()):
        if not getattr(wrapper, 'guarded', False):
            command_wrappers[name] = _guarded(name, wrapper)

