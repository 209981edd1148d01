"""Ctrl-C for ``make run``: the cluster stops gracefully and ``make`` exits 0.

A terminal's Ctrl-C sends SIGINT to its whole foreground process group, ``make`` included. GNU
make answers SIGINT by re-raising it on itself once its child returns, so ``make run`` would end
"killed by SIGINT" (130) however cleanly every service stopped. Taking the terminal's foreground
for this process's own group lets Ctrl-C reach only the cluster; ``make`` just sees it exit 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def own_foreground_group() -> Iterator[None]:
    """Hold the controlling terminal's foreground in a process group of our own, then hand it back.

    Does nothing without a controlling terminal (tests, CI, a service manager) or when this
    process is not in the foreground group (a background job must not steal the terminal).
    """
    try:
        terminal = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        yield
        return
    # A process outside the foreground group that calls tcsetpgrp gets SIGTTOU, which stops it.
    previous_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    original_group: int | None = None
    try:
        foreground = os.tcgetpgrp(terminal)
        if foreground == os.getpgrp() and os.getpgrp() != os.getpid():
            os.setpgid(0, 0)
            os.tcsetpgrp(terminal, os.getpgrp())
            original_group = foreground
    except OSError:
        original_group = None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if original_group is not None:
                os.tcsetpgrp(terminal, original_group)
        signal.signal(signal.SIGTTOU, previous_ttou)
        os.close(terminal)
