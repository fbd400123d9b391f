"""Logging for CLI runs goes to a file, never to the terminal the user is reading.

The dashboard owns the screen and scripts parse stdout, so log records must not
land on either. ``NETLENS_LOG`` overrides the path; ``NETLENS_LOG_LEVEL`` the level.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path


def default_log_path() -> Path:
    """Return the log file path: $NETLENS_LOG, else $XDG_STATE_HOME/netlens/netlens.log."""
    env = os.environ.get("NETLENS_LOG")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "netlens" / "netlens.log"


def setup_logging(verbose: bool = False) -> Path | None:
    """Attach one file handler to the ``netlens`` and ``runtime`` loggers.

    Returns the path in use, or None when no writable location exists (then
    logging is silently dropped: a read-only home must not break the tool).
    """
    level_name = os.environ.get("NETLENS_LOG_LEVEL", "DEBUG" if verbose else "INFO")
    level = getattr(logging, level_name.upper(), logging.INFO)
    path = default_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
        path = None  # type: ignore[assignment]
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    )
    for name in ("netlens", "netlens_runtime"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = [handler]
        logger.propagate = False
    return path
