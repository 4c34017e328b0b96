"""One installation of the script server: its files, ports and accounts.

Read by every process (setups, daemon, proxy, supervisor, tests):

- `config`: `Instance`, where an instance keeps its data and which ports
  it uses
- `accounts`: the NICOS login accounts and their secrets files
- `passwords`: salted, slow password hashes
"""
