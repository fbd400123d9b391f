"""Kernel access: netlink, procfs and namespace entry, below everything else."""
