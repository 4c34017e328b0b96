"""Guest logins watch; only user level and above change anything.

Stock NICOS lets a guest queue scripts. A script server hands guest
accounts to read-only viewers, so every command that starts, edits or
steers scripts is refused below user level. ``eval`` stays open to
guests (GUIs watch through it) but only for read-only expressions, because
NICOS checks device access against the running script's user, not against
the caller of ``eval``.
"""

from nicos.core import USER
from nicos.protocols.daemon import ACTIVE_COMMANDS
from nicos.services.daemon.handler import command_wrappers

from nicos_scriptserver.protocol import WRITING_COMMANDS
from nicos_scriptserver.readonly_expr import NotReadOnly, check_read_only

# Besides ACTIVE_COMMANDS: commands that run code or touch files.
_MORE_WRITING_COMMANDS = {'simulate', 'transfer', 'debug', 'debuginput'}


def require_user_level(names) -> None:
    """Wrap the daemon commands *names* so that guests get an error reply."""
    for name in names:
        wrapper = command_wrappers[name]
        if getattr(wrapper, 'requires_user_level', False):
            continue

        def guarded(handler, args, _name=name, _wrapper=wrapper):
            if handler.user.level < USER:
                handler.send_error_reply(
                    f'{_name}: guest logins can only watch; log in with a '
                    'user account to run or change scripts')
                return None
            return _wrapper(handler, args)

        guarded.__name__ = wrapper.__name__
        guarded.orig_function = getattr(wrapper, 'orig_function', wrapper)
        guarded.requires_user_level = True
        command_wrappers[name] = guarded


def _guard_guest_eval() -> None:
    wrapper = command_wrappers['eval']
    if getattr(wrapper, 'guards_guest_eval', False):
        return

    def guarded(handler, args):
        if handler.user.level < USER and args:
            try:
                check_read_only(str(args[0]))
            except NotReadOnly as err:
                handler.send_error_reply(
                    f'eval: guest logins may only evaluate read-only '
                    f'expressions ({err})')
                return None
        return wrapper(handler, args)

    guarded.__name__ = wrapper.__name__
    guarded.orig_function = getattr(wrapper, 'orig_function', wrapper)
    guarded.guards_guest_eval = True
    command_wrappers['eval'] = guarded


def install() -> None:
    """Apply the policy to the stock and the script server's writing commands."""
    require_user_level(sorted(ACTIVE_COMMANDS | _MORE_WRITING_COMMANDS |
                              WRITING_COMMANDS))
    _guard_guest_eval()
