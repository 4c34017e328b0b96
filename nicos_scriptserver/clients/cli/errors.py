"""The failures the command-line tool reports, each with its exit code.

Every expected failure becomes one of these; `main` prints its text and
exits with its code, so users never see a traceback for them.
"""

# Exit codes, documented in --help and docs/CLI.md.
OK = 0
REFUSED = 1
USAGE = 2
CANNOT_CONNECT = 3
LOGIN_FAILED = 4


class CliError(Exception):
    """A failure with the exit code that tells scripts what went wrong."""

    code = REFUSED


class RequestRefused(CliError):
    """The server refused a request (its text says why)."""

    code = REFUSED


class UsageError(CliError):
    """The command line makes no sense (found after argparse accepted it)."""

    code = USAGE


class CannotConnect(CliError):
    """Nothing answers at the address."""

    code = CANNOT_CONNECT


class LoginFailed(CliError):
    """Wrong token or password, or the token PV could not be read."""

    code = LOGIN_FAILED
