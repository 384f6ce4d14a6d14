"""The raw-Celery baseline of figure 3: a task that does nothing but say when it started.

Imported by the benchmark's worker (`--include benchmarks.noop_task`) and by the benchmark
itself to send it; Station's own workers never load it.
"""

from __future__ import annotations

import time

from station.celery import app

# Results of this benchmark's tasks (both kinds) need not outlive the run.
app.conf.result_expires = 600


@app.task(name="benchmarks.noop")
def noop(sent_at: float) -> float:
    """Returns the wall-clock time it started (same machine, same clock as the sender)."""
    return time.time()
