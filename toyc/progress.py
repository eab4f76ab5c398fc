"""A full build's progress bar: on a terminal, through tqdm; nothing anywhere else.

A long build (thousands of declarations take seconds) says how far it is: parsing,
generating code, linking, each a bar on stderr that tqdm draws only once the step has taken
`DELAY_S` (so a build of a small program shows nothing; the environment variable
TOYC_PROGRESS_DELAY sets another number of seconds), and erases when it ends. When stderr is
not a terminal, or `--quiet` is given, there is no bar and tqdm is not even imported.
"""

from __future__ import annotations

import os
import sys

DELAY_S = 0.5


class Progress:
    """One bar at a time: `step` starts one (ending the last), `advance` moves it."""

    def __init__(self, stream=None):
        self.stream = stream
        self.bar = None

    @classmethod
    def for_terminal(cls, quiet: bool = False) -> Progress:
        """A progress that draws on stderr if it is a terminal (and not `quiet`)."""
        return cls(sys.stderr if not quiet and sys.stderr.isatty() else None)

    def step(self, name: str, total: int) -> None:
        self.close()
        if self.stream is None:
            return
        from tqdm import tqdm

        try:
            delay = float(os.environ.get("TOYC_PROGRESS_DELAY", DELAY_S))
        except ValueError:
            delay = DELAY_S
        self.bar = tqdm(total=total, desc=name, unit="decl", file=self.stream, leave=False,
                        delay=delay, mininterval=0.1, dynamic_ncols=True)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
