"""The demo's banner (issue #14): no password on a suggested command line.

A password in a command's arguments is visible to every local account
(``ps``, /proc/PID/cmdline) for as long as the command runs, and stays in
the shell's history. `test_foundation.py` checks the running demo's output
for the real passwords.
"""

import re
from pathlib import Path

from nicos_scriptserver.instance.config import Instance
from nicos_scriptserver.supervisor.serve import _banner

# NICOS's connect string with a password: user:password@host:port.
WITH_PASSWORD = re.compile(r'\w+:[^@\s/]*@[\w.-]+:\d+')


def test_the_banner_suggests_no_password_and_says_where_they_are():
    banner = _banner(Instance(datadir=Path('/srv/demo')))
    assert not WITH_PASSWORD.search(banner), banner
    # The form NICOS's console client asks the password for.
    assert 'nicos-client user@127.0.0.1:1303' in banner
    assert '/srv/demo/etc/secrets.toml' in banner
