"""Daemon authenticator over salted scrypt hashes in an accounts file."""

from nicos.core import GUEST, USER, ADMIN, Param, User
from nicos.services.daemon.auth import AuthenticationError, \
    Authenticator as BaseAuthenticator

from nicos_scriptserver.instance.accounts import read_accounts
from nicos_scriptserver.instance.passwords import verify_secret

_LEVELS = {'guest': GUEST, 'user': USER, 'admin': ADMIN}


class HashedAccounts(BaseAuthenticator):
    """Authenticates NICOS logins against an accounts.toml file.

    The file holds, per account, a user level (guest, user or admin) and a
    salted scrypt hash of the password (see `nicos_scriptserver.instance.accounts`),
    never the password itself. It is read when the daemon starts.
    """

    parameters = {
        'accountsfile': Param('Path of the accounts.toml file', type=str,
                              mandatory=True),
    }

    def doInit(self, mode):
        self._accounts = read_accounts(self.accountsfile)

    def level_of(self, username):
        """The NICOS user level of an account, or None if there is none."""
        entry = self._accounts.get(username)
        return _LEVELS[entry[1]] if entry else None

    def authenticate(self, username, password):
        entry = self._accounts.get(username)
        # Hash even for unknown users so timing does not reveal valid names.
        stored = entry[0] if entry else next(iter(self._accounts.values()))[0]
        if verify_secret(password, stored) and entry:
            return User(username, _LEVELS[entry[1]])
        raise AuthenticationError('Invalid username or password!')
