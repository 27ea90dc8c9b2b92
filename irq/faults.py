"""Named fault points that tests trigger to prove crash safety (a killed process, a dropped
connection) at the worst moments. Inert unless IRQ_FAULT names the point."""
from __future__ import annotations

import os
import signal

from irq import errors


def point(name: str) -> None:
    """IRQ_FAULT=<name> [IRQ_FAULT_ACTION=kill|drop]: die like `kill -9`, or lose the link."""
    wanted = os.environ.get("IRQ_FAULT", "")
    if not wanted or name not in wanted.split(","):
        return
    if os.environ.get("IRQ_FAULT_ACTION", "kill") == "drop":
        raise errors.BackendError(f"connection dropped (fault injected at {name})")
    os.kill(os.getpid(), signal.SIGKILL)
