"""The command catalog: instrument commands as data for GUI clients.

Pure Python (stdlib only): command files are parsed with `ast`, never
imported, so this package does not need NICOS. The convention for command
files is in docs/COMMANDS.md.

- `catalog`: `Catalog` over command folders (scan, cheap refresh for hot
  reload, errors that never take other files down), `CatalogChanges`
- `parse`: one file's source to catalog entries (`parse_source`,
  `parse_file`); `docstring` and `annotation` read docstrings and types
- `validate`: `validate_calls` for generated jobs (`ValidationError`),
  `render_script`, `describe_calls`, `check_syntax` (`ScriptSyntaxError`)
- `readback`: `read_calls`, a script of command calls back into calls
  (`NotCalls` if it is more than that)
"""

from nicos_scriptserver.catalog.catalog import (STALE_WARNING, Catalog,
                                                CatalogChanges)
from nicos_scriptserver.catalog.parse import (ParsedFile, parse_file,
                                              parse_source)
from nicos_scriptserver.catalog.validate import (ScriptSyntaxError,
                                                 ValidationError,
                                                 check_syntax, describe_calls,
                                                 render_script, validate_calls)

__all__ = [
    'STALE_WARNING', 'Catalog', 'CatalogChanges', 'ParsedFile',
    'ScriptSyntaxError', 'ValidationError', 'check_syntax', 'describe_calls',
    'parse_file', 'parse_source', 'render_script', 'validate_calls',
]
