"""Kernel access shared by the inspector and the runtime: a leaf package.

Everything netlens does with the kernel directly lives here, once: the numbers
(:mod:`~netlens.kernel.consts`), the netlink codec (:mod:`~netlens.kernel.wire`
moves bytes, :mod:`~netlens.kernel.decode` walks attributes into plain tuples),
namespace entry (:mod:`~netlens.kernel.nsenter`), the discovery helper process
and its client (:mod:`~netlens.kernel.serve`, :mod:`~netlens.kernel.pump`), the C
walker beside its Python twin (``walk.c``, ``walk_decode.c``,
:mod:`~netlens.kernel.walker`), the trust rule for native programs
(:mod:`~netlens.kernel.native`) and the inert-text rule for the names the kernel
hands out (:mod:`~netlens.kernel.inert`).

A leaf: it imports nothing from the rest of netlens nor from netlens_runtime, so
discovery, stats and the runtime all stand on it without standing on each
other. It returns bytes, ints, strings and plain tuples; turning them into the
model is discovery's job (:mod:`netlens.discovery.builders`). Standard library
only, and light: the helper process imports parts of it before its first
namespace, and ``netlens run`` counts milliseconds.
"""
