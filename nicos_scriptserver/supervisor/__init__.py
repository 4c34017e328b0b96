"""Starts and stops the script server's processes.

- `serve`: the demo command (``python -m nicos_scriptserver.supervisor.serve``)
- `processes`: `ServerProcesses`, the cache, daemon, PV server and proxy
  as children that die with it
- `watchdog`: restarts a crashed service, gives up when one keeps failing
- `backoff`: when to restart and when to give up (pure)
- `service`: one NICOS service (cache or daemon) as the service account,
  with a private umask and data directory
"""
