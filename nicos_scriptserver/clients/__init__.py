"""Python clients of the script server (the GUI panels are in `gui_panels`).

- `daemonclient`: `ScriptServerClient`, a NICOS daemon client with the
  ``ss_*`` commands
- `proxyclient`: `ProxyClient`, speaking to the proxy what the IBEX GUI speaks
- `cli`: the ``nicos-scriptserver`` command line
- `queueview`: `QueueView`, a listing of the queue kept up to date by
  change numbers (``ss_changes``)
- `timefmt`: times of day and durations as every client shows them
"""
