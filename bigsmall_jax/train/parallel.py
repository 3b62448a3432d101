"""Data parallelism: the pmap axis, device placement, batch sharding, processes and dispatch-ahead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

AXIS = "batch"


class OneBehind:
    """Hands each dispatched step's outputs to `fetch` only after the next step has been dispatched.

    A device runs asynchronously; reading a step's metrics (``jax.device_get``) makes the host wait for
    that step. Fetching step s after step s+1 is dispatched lets the host read and shard the next batch
    while the device computes, so the device never waits for the host. The trainer and the benchmark
    drive their loops with it::

        behind = OneBehind(record)
        for batch in batches:
            behind.push(step(batch))   # fetches the previous step's outputs, if any
        behind.flush()                 # the last one

    Args:
      fetch: called as ``fetch(*args)`` with what was pushed, one step late (or at `flush`).
    """

    def __init__(self, fetch: Callable[..., Any]):
        self._fetch = fetch
        self._pending: tuple | None = None

    def push(self, *args: Any) -> None:
        """Holds `args` (this step's outputs) and fetches the previous step's."""
        previous, self._pending = self._pending, args
        if previous is not None:
            self._fetch(*previous)

    def flush(self) -> None:
        """Fetches the held step now (before a checkpoint, at the end of an epoch, before stopping)."""
        if self._pending is not None:
            previous, self._pending = self._pending, None
            self._fetch(*previous)
