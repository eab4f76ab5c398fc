"""Ctrl-C and SIGTERM held back while toyc changes an output and what describes it together.

An update writes the output, then records in the session what it wrote; a `toyc watch` that
stops saves that session as the state for the next build. A signal that lands in between would
leave a state describing neither the old output nor the new one. Inside `held()`, SIGINT and
SIGTERM are only noted; when the block ends, the first one noted is raised again, with the
disposition the process had before (KeyboardInterrupt, or the default action). Such blocks are
short (the writes of one update), so toyc still stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def held() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives Python's signal handlers
        return
    noted: list[int] = []
    before = {s: signal.signal(s, lambda signum, _frame: noted.append(signum)) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        if noted:
            signal.raise_signal(noted[0])
