"""Kernel access: netlink requests, namespace entry, and nothing that interprets them."""
