"""The environment of the server's child processes, from an allowlist.

Cache, daemon, proxy, dry runs and black-box jobs get what they need to
run, never the rest of the environment of whoever started the supervisor
(tokens, credentials, agent sockets): job scripts run inside the daemon
and its children and can read their environment at will.
"""

import os
import pwd
from pathlib import Path
from typing import Dict, Mapping, Optional

from nicos_scriptserver.instance.config import Instance

#: Passed on unchanged when set: how to find programs and the Python
#: packages (PYTHONPATH as the supervisor set it), what the interpreter
#: may need to start at all, locale and time zone, where temporary files
#: go, and the instance's own variables (INSTRUMENT among them).
NAMES = frozenset({
    'PATH', 'PYTHONPATH', 'PYTHONHOME', 'LD_LIBRARY_PATH',
    'LANG', 'LANGUAGE', 'TZ', 'TMPDIR',
    *Instance(datadir=Path()).to_env(),
    # Where pyepics finds libca, if not in its own package.
    'PYEPICS_LIBCA',
})
#: Locale categories, and the Channel Access settings of the proxy's PVs
#: and of any EPICS devices an instrument's setups use.
PREFIXES = ('LC_', 'EPICS_')


def child_env(extra: Optional[Mapping[str, str]] = None,
              environ: Mapping[str, str] = os.environ) -> Dict[str, str]:
    """The environment of a child: the allowed variables of *environ*,
    HOME, USER and LOGNAME of this process's account, then *extra*."""
    env = {name: value for name, value in environ.items()
           if name in NAMES or name.startswith(PREFIXES)}
    env.update(_account(environ))
    env.update(extra or {})
    return env


def _account(environ: Mapping[str, str]) -> Dict[str, str]:
    # The account's own, not the caller's (sudo may keep the caller's HOME).
    try:
        entry = pwd.getpwuid(os.geteuid())
    except KeyError:  # a uid without an entry (some containers)
        return {name: environ[name] for name in ('HOME', 'USER', 'LOGNAME')
                if name in environ}
    return {'HOME': entry.pw_dir, 'USER': entry.pw_name,
            'LOGNAME': entry.pw_name}
