"""Run the localhost proxy: ``python -m nicos_scriptserver.proxy --data DIR``.

It refuses to start on a non-loopback address, with a secrets file that
others can read, or when the daemon refuses its tier-2 logins. Once it
serves, it makes this start's token, publishes it with the login name on
the token/user PVs, and forgets it (only a salted hash stays). With
external PVs, it makes and publishes a new token whenever their server
comes back from a restart (`nicos_scriptserver.pvs.watch`).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import pwd
import signal
import sys
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from nicos_scriptserver.instance.accounts import InsecureFile, read_secrets
from nicos_scriptserver.proxy.classic import LinkError
from nicos_scriptserver.proxy.login import LoginPolicy, TokenLogin
from nicos_scriptserver.proxy.protocol import VIEWER, WRITER
from nicos_scriptserver.proxy.server import ConfigError, ProxyConfig, \
    ProxyServer
from nicos_scriptserver.pvs.external import PublishError

log = logging.getLogger('nicos_scriptserver.proxy')


def _address(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(':')
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f'{text!r} is not HOST:PORT')
    return host.strip('[]'), int(port)


def _account_uid(text: str) -> int:
    try:
        return int(text) if text.isdigit() else pwd.getpwnam(text).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError(f'there is no account {text!r}') from None


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m nicos_scriptserver.proxy',
        description='The script server\'s localhost proxy (two-tier login).')
    parser.add_argument('--data', type=Path, required=True,
                        help='the instance\'s data directory (etc/secrets.toml, log/)')
    parser.add_argument('--listen', type=_address, default=('127.0.0.1', 1301),
                        help='loopback HOST:PORT to serve (default 127.0.0.1:1301; '
                        'port 0 picks a free one); events on PORT + 1')
    parser.add_argument('--daemon', type=_address, default=('127.0.0.1', 1303),
                        help='the NICOS daemon (default 127.0.0.1:1303)')
    parser.add_argument('--daemon-user', type=_account_uid, default=None,
                        help='the account the daemon runs as, by name or uid '
                        '(default: the proxy\'s own); the proxy logs in to '
                        'nothing else listening on the daemon\'s port')
    parser.add_argument('--login', default='scriptserver',
                        help='the tier-1 login name that goes with the token')
    parser.add_argument('--viewer-login',
                        help='a tier-1 login name that may watch without the '
                        'token (default: no read-only logins)')
    parser.add_argument('--writer-account', default='user',
                        help='NICOS account (in secrets.toml) for token holders')
    parser.add_argument('--viewer-account', default='guest',
                        help='NICOS account (in secrets.toml) for viewers')
    parser.add_argument('--pvs', choices=('embedded', 'external', 'off'),
                        default='embedded',
                        help='publish token and user name on our own CA server '
                        '(embedded), on existing PVs (external), or not at all')
    parser.add_argument('--pv-prefix', default='SCRIPTSERVER:',
                        help='PV names are PREFIX + TOKEN and PREFIX + USER')
    parser.add_argument('--pv-port', type=int, default=5064,
                        help='CA server port of the embedded PV server')
    parser.add_argument('--token-reader', action='append', default=[],
                        help='CA user name that may read the token PV '
                        '(repeatable; default: the user running the proxy)')
    parser.add_argument('--token-reader-host', action='append', default=[],
                        help='CA host name a token reader must come from '
                        '(repeatable; default: any)')
    parser.add_argument('--private-user-pv', action='store_true',
                        help='the user-name PV is readable by token readers only')
    return parser.parse_args(argv)


def _setup_logging(logdir: Path) -> None:
    logdir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter('%(asctime)s %(levelname)s %(message)s')
    root = logging.getLogger('nicos_scriptserver')
    root.setLevel(logging.INFO)
    for handler in (logging.FileHandler(logdir / 'proxy.log'),
                    logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def _accounts(args: argparse.Namespace) -> dict:
    secrets = read_secrets(args.data)
    wanted = {WRITER: args.writer_account}
    if args.viewer_login:
        wanted[VIEWER] = args.viewer_account
    accounts = {}
    for role, name in wanted.items():
        if name not in secrets:
            raise ConfigError(f'account {name!r} for {role}s is not in the '
                              'secrets file')
        accounts[role] = (name, secrets[name][0])
    return accounts


def _publisher(args: argparse.Namespace):
    if args.pvs == 'off':
        return None
    if args.pvs == 'external':
        from nicos_scriptserver.pvs.external import ExternalPublisher
        return ExternalPublisher(args.pv_prefix)
    from nicos_scriptserver.pvs.acf import AccessRules
    from nicos_scriptserver.pvs.server import CredentialPVs
    me = getpass.getuser()
    rules = AccessRules(token_readers=tuple(args.token_reader or [me]),
                        token_reader_hosts=tuple(args.token_reader_host),
                        writers=(me,),
                        user_pv_public=not args.private_user_pv)
    pvs = CredentialPVs(args.pv_prefix, args.pv_port, rules,
                        args.data / 'run')
    pvs.start()
    return pvs


def _rotator(server: ProxyServer, login: TokenLogin) -> Callable[[], str]:
    """The token rotation for `Republisher`: hash off the loop (scrypt is
    slow), swap the hash on the loop, hand out the clear token once."""
    def rotate() -> str:
        token, digest = login.make_token()
        if not server.call_in_loop(lambda: login.install(digest)):
            raise RuntimeError('the serving loop did not take the new token')
        return token
    return rotate


def _watch(args: argparse.Namespace, publisher, server: ProxyServer,
           login: TokenLogin):
    """For external PVs: a `Republisher` that publishes a new token
    whenever their server comes back from a restart (started)."""
    if args.pvs != 'external':
        return None
    from nicos_scriptserver.pvs.watch import Republisher
    watcher = Republisher(publisher, args.login, _rotator(server, login))
    watcher.start()
    return watcher


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    _setup_logging(args.data / 'log')
    try:
        config = ProxyConfig(accounts=_accounts(args),
                             listen_host=args.listen[0], listen_port=args.listen[1],
                             daemon_host=args.daemon[0], daemon_port=args.daemon[1],
                             daemon_uid=args.daemon_user)
        login = TokenLogin(LoginPolicy(user=args.login, viewer=args.viewer_login))
        server = ProxyServer(config, login)
        port = server.bind()
        publisher = _publisher(args)
        if publisher is not None:
            publisher.publish(args.login, login.new_token())
            log.info('published the login name and a new token on %sUSER and '
                     '%sTOKEN', args.pv_prefix, args.pv_prefix)
        else:
            login.new_token()
            log.warning('no PVs: nobody can learn this start\'s token')
        watcher = _watch(args, publisher, server, login)
    except (ConfigError, InsecureFile, LinkError, PublishError, OSError,
            ValueError) as err:
        log.error('the proxy does not start: %s', err)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.stop())
    log.info('proxy serving on %s:%d (events on %d) for the daemon at %s:%d',
             config.listen_host, port, server.events_port, config.daemon_host,
             config.daemon_port)
    print(f'proxy ready on {config.listen_host}:{port}', flush=True)
    try:
        server.serve_forever()
    finally:
        for running in (watcher, publisher):
            if hasattr(running, 'stop'):
                running.stop()
    log.info('proxy stopped')
    return 0


if __name__ == '__main__':
    sys.exit(main())
