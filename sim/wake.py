"""``Wake``: a SimPy event with one callback, scheduled when it is made.

The engine loop of a replica and the arrival process run as callbacks on
these rather than as SimPy processes: a generator resume, and above all an
``Interrupt`` thrown into a generator, cost more than the work of a typical
engine step. The event goes through SimPy's own queue (``Environment.schedule``),
so its ordering against every other event is SimPy's: by time, then priority
(``URGENT`` before ``NORMAL``), then scheduling order.
"""

from __future__ import annotations

from typing import Callable

import simpy
from simpy.events import NORMAL, URGENT

__all__ = ["Wake", "NORMAL", "URGENT"]


class Wake(simpy.Event):
    """Calls ``callback(event)`` ``delay`` seconds from now."""

    def __init__(self, env: simpy.Environment, delay: float, callback: Callable, priority=NORMAL) -> None:
        # Event.__init__ is skipped on purpose (as simpy.Timeout does): the event is triggered at once.
        self.env = env
        self.callbacks = [callback]
        self._value = None
        self._ok = True
        env.schedule(self, priority, delay)
