"""SIGINT and SIGTERM during training: stop after the step in progress, never inside it.

A signal handler that raised mid-step could interrupt an in-place optimiser update or an EMA
update and checkpoint a state that no unbroken run passes through. Here the handler only
records the signal; the batch iterator ends at the next step boundary, and the trainer then
saves a checkpoint at that step (see :meth:`Trainer._interrupted`).
"""
from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignals:
    """Records the first SIGINT/SIGTERM while installed; a second one acts as it would have."""

    def __init__(self, engine, log_every: int):
        self.engine, self.log_every = engine, log_every
        self.signum: int | None = None

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

        def handler(signum, frame):
            self.signum = signum
            signal.signal(signum, previous[signum])

        for sig in SIGNALS:
            signal.signal(sig, handler)
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def requested(self, step: int) -> bool:
        if not self.engine.distributed:
            return self.signum is not None
        # every rank must stop at the same step: they agree at log steps, where they synchronise anyway
        if step % self.log_every:
            return False
        return self.engine.all_reduce_mean({"stop": float(self.signum is not None)})["stop"] > 0

    def until_stopped(self, batches, start: int):
        """``batches``, ending early at the first step boundary after a signal."""
        step = start
        for batch in batches:
            if self.requested(step):
                return
            yield batch
            step += 1

    @property
    def name(self) -> str:
        # a DDP rank may stop because a peer got the signal: report it as the scheduler's SIGTERM
        return signal.Signals(self.signum if self.signum is not None else signal.SIGTERM).name

    @property
    def number(self) -> int:
        return int(self.signum if self.signum is not None else signal.SIGTERM)
