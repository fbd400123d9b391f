"""The netlens bundled container runtime.

It makes real namespaces, veths, bridges, NAT rules and cgroups so a user can build
a lab in milliseconds. It never imports the ``netlens`` inspector: the inspector
finds runtime containers the same way it finds Docker's.
"""
