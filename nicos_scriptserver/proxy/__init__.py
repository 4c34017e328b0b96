"""The localhost proxy for IBEX-like clients (docs/PROXY.md).

- `protocol`: frames, plain-JSON checks, the per-role command allowlist,
  the banner translation and reply encoding (sans-I/O)
- `login`: tier-1 login with a token made at each start and kept hashed,
  failure limits per local account and per connection, the RSA handshake
- `sessions`: one session per client connection, with expiry (sans-I/O)
- `zmtp`: the ZeroMQ wire protocol (ZMTP 3.1), server side (sans-I/O)
- `budget`: the bytes held for clients and their bounds (sans-I/O)
- `loop`, `transport`: the event loop and the client connections on it
  (loopback only)
- `daemonlink`, `links`: tier-2 classic-protocol links to the daemon, a
  few per role
- `server`: the serving loop's logic (handshake, login, forwarding)
- `client`: a client that speaks what the IBEX GUI speaks
- ``python -m nicos_scriptserver.proxy``: the process
"""
