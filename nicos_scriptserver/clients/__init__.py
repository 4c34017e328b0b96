"""Python clients of the script server (the GUI panels are in `gui_panels`).

- `daemonclient`: `ScriptServerClient`, a NICOS daemon client with the
  ``ss_*`` commands
- `proxyclient`: `ProxyClient`, speaking to the proxy what the IBEX GUI speaks
- `cli`: the ``nicos-scriptserver`` command line
- `timefmt`: times of day and durations as every client shows them
"""
