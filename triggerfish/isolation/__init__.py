"""Each app's code in a box of its own: namespaces through bubblewrap, a uid per app, a seccomp filter.

`box.py` builds the box, `seccomp.py` its filter, `pids.py` names boxed
processes from outside, `uids.py` gives each app its uid, `install.py`
runs pip in a box, and `policy.py` is the server's choice of whether and
how to box. See docs/security.md.
"""
