"""Run one callable in several threads at once, as concurrent workers would."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection


def run_concurrently(func: Callable[..., Any], args: Sequence[tuple] | int) -> tuple[list[Any], list[BaseException]]:
    """Call `func(*a)` for each tuple in `args` (or `args` times with no arguments), each in
    its own thread, released together by a barrier. Each thread closes its own database
    connection. Returns (results, exceptions), in completion order."""
    calls = [()] * args if isinstance(args, int) else list(args)
    barrier = threading.Barrier(len(calls))
    lock = threading.Lock()
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker(call_args: tuple) -> None:
        try:
            barrier.wait()
            outcome, bucket = func(*call_args), results
        except BaseException as exc:  # collected for the caller's assertions
            outcome, bucket = exc, errors
        finally:
            connection.close()
        with lock:
            bucket.append(outcome)

    threads = [threading.Thread(target=worker, args=(a,)) for a in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors
