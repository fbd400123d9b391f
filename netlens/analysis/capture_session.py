"""A capture running in a background thread, for callers that must not block (the dashboard).

The dashboard's ``w`` key starts one on the selected node and stops it with ``w``
again. All the work (entering namespaces, reading rings, writing pcapng) runs in
the thread; the caller only reads :attr:`BackgroundCapture.count` to show a live
number and calls :meth:`BackgroundCapture.stop`, which sets the same stop event
``netlens capture`` sets on Ctrl-C, so the file is complete (drained, statistics
blocks written) when ``stop`` returns.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from netlens.analysis import capture
from netlens.analysis.capture_targets import Target
from netlens.kernel.pcapng import PcapngWriter
from netlens.outfile import open_output

DASHBOARD_SNAPLEN = 262144


class BackgroundCapture:
    """``targets`` captured into ``path`` (pcapng) until :meth:`stop`.

    Opening happens in the thread too (entering namespaces, binding); a failure
    there or later lands in :attr:`error` and ends the thread, nothing is raised
    into the caller's event loop.
    """

    def __init__(self, targets: list[Target], path: Path, snaplen: int = DASHBOARD_SNAPLEN):
        self.targets = targets
        self.path = path
        self.snaplen = snaplen
        self.count = 0
        self.error: str | None = None
        self.result: capture.Result | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="netlens capture", daemon=True)

    @property
    def label(self) -> str:
        return ", ".join(t.label for t in self.targets)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> BackgroundCapture:
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the thread to stop (it drains and closes the file); returns at once, for
        an event loop that polls :attr:`running`."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> capture.Result | None:
        """Stop, drain and close the file; the result (None if it never opened)."""
        self._stop.set()
        self._thread.join(timeout)
        return self.result

    def _run(self) -> None:
        try:
            opened = capture.open_targets(self.targets, "", self.snaplen)
        except Exception as err:  # a gone namespace, EPERM: shown, never raised
            self.error = str(err) or type(err).__name__
            return
        try:
            # A new file only (O_EXCL, no symlink followed): the name is predictable
            # and the directory may be /tmp (netlens.outfile).
            with open_output(str(self.path), exclusive=True) as out:
                writer = PcapngWriter(
                    out,
                    [(o.linktype, self.snaplen, o.target.label) for o in opened],
                    "netlens dashboard",
                )

                def sink(batch: list[capture.Out]) -> None:
                    writer.write(batch)
                    self.count += len(batch)

                self.result = capture.run(opened, sink, stop=self._stop)
                writer.close([(o.index, o.received, o.dropped) for o in opened], time.time_ns())
        except Exception as err:
            self.error = str(err) or type(err).__name__
        finally:
            for o in opened:
                if o.gone is None:
                    o.source.close()
