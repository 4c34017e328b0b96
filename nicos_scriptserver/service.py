"""Run one NICOS service (cache or daemon) of a script-server instance.

``python -m nicos_scriptserver.service daemon`` is what ``nicos-daemon``
does, plus two things NICOS leaves to a site's nicos.conf: absolute log and
pid directories inside the instance's data directory, and an explicit,
opt-in way to run as root inside throw-away containers (CI, tests).

NICOS refuses to run as root unless nicos.conf names a user and group to
switch to. A deployment keeps that rule and names its service account; only
``--allow-root`` (never the default) lets a root process keep running as
root, and it says so in the log.
"""

import argparse
import grp
import os
import sys

from nicos_scriptserver.instance import INSTRUMENT, Instance


def _prepare_config(instance: Instance, allow_root: bool) -> None:
    from nicos import config
    config.logging_path = str(instance.logdir)
    config.pid_path = str(instance.datadir / 'pid')
    if os.geteuid() == 0 and not config.user:
        if not allow_root:
            sys.exit('refusing to run as root: name a service user and group '
                     'in nicos.conf, or pass --allow-root in a container')
        config.user = 'root'
        config.group = grp.getgrgid(0).gr_name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('service', choices=['cache', 'daemon'])
    parser.add_argument('--allow-root', action='store_true',
                        help='keep running as root (containers and CI only)')
    args = parser.parse_args(argv)

    os.environ.setdefault('INSTRUMENT', INSTRUMENT)
    instance = Instance.from_env()
    for sub in ('log', 'pid'):
        (instance.datadir / sub).mkdir(parents=True, exist_ok=True)
    _prepare_config(instance, args.allow_root)

    if args.service == 'cache':
        from nicos.core.sessions.simple import NoninteractiveSession
        return NoninteractiveSession.run('cache', 'Server', setupname='cache')
    from nicos.services.daemon.session import DaemonSession
    return DaemonSession.run('daemon', 'Daemon')


if __name__ == '__main__':
    sys.exit(main())
