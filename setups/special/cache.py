description = 'NICOS cache of the script server, bound to loopback'
group = 'special'

from nicos_scriptserver.instance.config import Instance

instance = Instance.from_env()

devices = dict(
    DB = device('nicos.services.cache.database.FlatfileCacheDatabase',
        storepath = str(instance.datadir / 'cache'),
        loglevel = 'info',
    ),
    Server = device('nicos_scriptserver.daemon.cache.PrivateCacheServer',
        db = 'DB',
        server = instance.cache_address,
        loglevel = 'info',
    ),
)
