"""What crosses a process boundary, shared by the daemon, the proxy and clients.

- `protocol`: the script server's daemon commands and events, registered
  in NICOS's protocol tables
- `commandtable`: every daemon command once: who may send it, directly
  and through the proxy, and its arguments
- `plainpickle`: unpickling that builds plain data and nothing else
- `peers`: which local account is on the other end of a loopback connection
"""
