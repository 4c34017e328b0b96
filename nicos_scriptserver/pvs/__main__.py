"""A standalone server for the token and user-name PVs.

    python -m nicos_scriptserver.pvs --prefix P --port N --reader USER \\
        [--reader ...] [--reader-host HOST ...] --writer USER \\
        [--private-user-pv] --workdir DIR

Serves ``<P>TOKEN`` and ``<P>USER`` (both empty until a writer puts
values) on 127.0.0.1:N until SIGTERM or SIGINT, and prints ``pvs ready on
127.0.0.1:<N>`` once serving. It stands in for an existing PV server
(IBEX's block server) that hosts the PVs the proxy publishes to.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

from nicos_scriptserver.pvs.acf import AccessRules
from nicos_scriptserver.pvs.server import LOOPBACK, CredentialPVs


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m nicos_scriptserver.pvs',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--reader', action='append', default=[],
                        help='CA user allowed to read the token (repeatable)')
    parser.add_argument('--reader-host', action='append', default=[],
                        help='host a token reader must connect from '
                             '(repeatable; default: any host)')
    parser.add_argument('--writer', action='append', required=True,
                        help='CA user allowed to write both PVs (repeatable)')
    parser.add_argument('--private-user-pv', action='store_true',
                        help='only token readers may read the user name')
    parser.add_argument('--workdir', type=Path, required=True,
                        help='directory for the access-security file')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    rules = AccessRules(token_readers=tuple(args.reader),
                        writers=tuple(args.writer),
                        token_reader_hosts=tuple(args.reader_host),
                        user_pv_public=not args.private_user_pv)
    stop = threading.Event()
    # The handlers only set the event, so stopping happens on the main
    # thread, never inside pcaspy's processing.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    pvs = CredentialPVs(args.prefix, args.port, rules, args.workdir)
    try:
        pvs.start()
    except (ValueError, OSError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'pvs ready on {LOOPBACK}:{args.port}', flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        pvs.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
