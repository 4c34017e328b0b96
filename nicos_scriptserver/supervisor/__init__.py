"""Starts and stops the script server's processes.

- `serve`: the demo command (``python -m nicos_scriptserver.supervisor.serve``)
- `processes`: `ServerProcesses`, the cache, daemon, PV server and proxy
  as children that die with it
- `service`: one NICOS service (cache or daemon) as the service account,
  with a private umask and data directory
"""
