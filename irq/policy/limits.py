"""How much one job may ask for: far beyond any cluster's job, so that a typo (`--gpus
99999999999999999999`, `99999999TB`) is refused where it is typed (irq add, irq edit, an imported
queue.md), not written as a 20-digit #SBATCH line and refused by sbatch days later."""
from __future__ import annotations

from typing import Any

MAX_GPUS, MAX_CPUS = 1024, 100_000
MAX_MEMORY_MB, MAX_MINUTES = 1024 ** 3, 365 * 24 * 60  # 1 PB; a year


def beyond(res: dict[str, Any]) -> str | None:
    """What in a resources dict (gpus, cpus, memory_mb, time_minutes) is past these bounds, in words."""
    if res.get("gpus", 0) > MAX_GPUS:
        return f"{res['gpus']} GPUs: a job may ask for at most {MAX_GPUS}"
    if res.get("cpus", 0) > MAX_CPUS:
        return f"{res['cpus']} CPUs: a job may ask for at most {MAX_CPUS:,}"
    if res.get("memory_mb", 0) > MAX_MEMORY_MB:
        return f"{res['memory_mb']:,} MB of memory: a job may ask for at most {MAX_MEMORY_MB // 1024 ** 2:,} TB"
    if res.get("time_minutes", 0) > MAX_MINUTES:
        return f"{res['time_minutes']:,} minutes: a job may ask for at most {MAX_MINUTES // 1440} days"
    return None
