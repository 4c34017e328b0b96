"""Entry point: parse the command line, log in, run one subcommand.

Expected failures end with one line on stderr and an exit status that
says what kind of failure it was (see `errors`), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, List, Optional

from nicos_scriptserver.clients.cli import credentials
from nicos_scriptserver.clients.cli.subcommands import HANDLERS
from nicos_scriptserver.clients.cli.connection import Connection, check_listening, \
    parse_address, via_daemon, via_proxy
from nicos_scriptserver.clients.cli.errors import OK, CliError
from nicos_scriptserver.clients.cli.parser import build_parser

# Exit status after Ctrl-C, as shells report a SIGINT.
INTERRUPTED = 130
# Exit status when the reader of our output went away (``| head``), as
# shells report a process killed by SIGPIPE.
BROKEN_PIPE = 141


def connect(parser: argparse.ArgumentParser,
            args: argparse.Namespace) -> Connection:
    """Log in as the options say; usage errors exit through *parser*."""
    try:
        host, port = parse_address(args.daemon or args.proxy)
    except ValueError as err:
        parser.error(str(err))
    if args.daemon:
        if not args.user:
            parser.error('--daemon needs --user NAME (a NICOS account)')
        if args.token_prompt or args.token_file:
            parser.error('--token-prompt and --token-file are for the proxy; '
                         f'with --daemon, use a password '
                         f'(${credentials.PASSWORD_ENV} or the prompt)')
        check_listening(host, port, 'NICOS daemon')
        return via_daemon(host, port, args.user,
                          credentials.daemon_password(args.user))
    check_listening(host, port, 'proxy')
    credentials.configure_channel_access(args.pv_port)
    user, token = credentials.proxy_credentials(
        args.pv_prefix, args.user, args.token_prompt, args.token_file)
    return via_proxy(host, port, user, token)


def printer(as_json: bool):
    """``show(data, text)``: print the data as one JSON line, or the text."""
    def show(data: Any, text: str) -> None:
        print(json.dumps(data) if as_json else text, flush=True)
    return show


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line *argv* (default sys.argv); the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        conn = connect(parser, args)
        try:
            HANDLERS[args.command](conn, args, printer(args.json))
        finally:
            conn.close()
    except CliError as err:
        print(f'{parser.prog}: {err}', file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # Python flushes stdout once more at exit, which would fail again
        # and print a warning; what is left unwritten nobody reads.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    return OK
