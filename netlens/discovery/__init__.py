"""Read-only discovery of every network namespace on the host.

Collectors read the live kernel (netlink, procfs, sysfs, engine state files) and
return plain model objects; nothing here creates or changes anything, and
objects that vanish mid-walk are skipped, never fatal.
"""
