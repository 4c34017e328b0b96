"""The localhost proxy for IBEX-like clients (docs/PROXY.md).

- `protocol`: frames, plain-JSON checks, the per-role command allowlist,
  the banner translation and reply encoding (sans-I/O)
- `login`: tier-1 login with a token made at each start and kept hashed,
  per-peer failure limits, the RSA handshake
- `sessions`: one session per ZeroMQ identity, with expiry (sans-I/O)
- `daemonlink`, `links`: tier-2 classic-protocol links to the daemon, a
  few per role
- `server`: the serving loop (ZeroMQ ROUTER on loopback, ZAP check)
- `client`: a client that speaks what the IBEX GUI speaks
- ``python -m nicos_scriptserver.proxy``: the process
"""
