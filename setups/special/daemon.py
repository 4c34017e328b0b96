description = 'NICOS daemon of the script server, bound to loopback'
group = 'special'

from nicos_scriptserver.instance.accounts import accounts_path
from nicos_scriptserver.instance.config import Instance

instance = Instance.from_env()

devices = dict(
    Auth = device('nicos_scriptserver.daemon.auth.HashedAccounts',
        accountsfile = str(accounts_path(instance.datadir)),
    ),
    Daemon = device('nicos_scriptserver.daemon.device.ScriptServerDaemon',
        authenticators = ['Auth'],
        server = instance.daemon_address,
        queuefile = str(instance.datadir / 'queue.sqlite'),
        dryrunpolicy = instance.dry_run_policy,
        dryrunlimit = instance.dry_run_limit,
        bridgeddryrunlimit = instance.bridged_dry_run_limit,
        historydays = instance.history_days,
        loglevel = 'info',
    ),
)
