"""Switching a Channel Access client process to another local account.

pyepics finds and loads libca lazily, from the virtualenv, which the other
account may not be able to read (a checkout under a 0700 home). The
snippet loads libca while the process is still root and points pyepics at
the loaded copy: loading a library again by the same name needs no file
access. The CA context is still made after the switch, so the server sees
the other account's name.
"""

#: Defines ``become(uid, gid)`` in a client script (run with ``-c``).
BECOME = '''
def become(uid, gid):
    import ctypes, os
    import epics.ca
    libca = epics.ca.find_libca()
    ctypes.CDLL(libca)
    epics.ca.find_libca = lambda: libca
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
'''
