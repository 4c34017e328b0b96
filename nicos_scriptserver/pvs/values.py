"""What may be published in the token and user-name PVs."""

#: A CA 'string' holds 40 bytes including the terminating NUL.
MAX_LENGTH = 39


def check_value(value: str, what: str = 'value') -> str:
    """Return *value* if it fits a CA string PV, else `ValueError`.

    Only printable ASCII: the limit is in bytes, and a value cut short by
    the server would be a token that silently does not work.
    """
    if not isinstance(value, str):
        raise ValueError(f'{what} must be a string, not {type(value).__name__}')
    if len(value) > MAX_LENGTH:
        raise ValueError(f'{what} is {len(value)} characters long; a CA string '
                         f'PV holds at most {MAX_LENGTH}')
    if not all(' ' <= ch <= '~' for ch in value):
        raise ValueError(f'{what} may only contain printable ASCII characters')
    return value
