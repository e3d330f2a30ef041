"""Process guards shared by the web server and the Celery worker.

py_ecc (imported through web3 / eth-account) sets `sys.setrecursionlimit(100000)` on
import, and py-evm sets at least 12,288. With such a limit, C code that recurses once per
nesting level (the C JSON parser, `repr`, `pickle`) overflows the C stack long before
Python's RecursionError can stop it: a 100,000-deep JSON body killed the web worker with
SIGSEGV. `limit_recursion()` puts the limit back to a sane value; it runs in
`CommonConfig.ready()` (web, worker, beat and management commands, after the chain
libraries are imported) and again when a Celery worker (or its pool child) starts.
The JSON parser (`common.parsers`) refuses over-deep bodies before parsing in any case.
"""

from __future__ import annotations

import sys

from django.conf import settings

DEFAULT_RECURSION_LIMIT = 3000


def limit_recursion() -> int:
    """Set the interpreter's recursion limit to `PYTHON_RECURSION_LIMIT` (default 3,000);
    returns the limit in force."""
    limit = int(getattr(settings, "PYTHON_RECURSION_LIMIT", DEFAULT_RECURSION_LIMIT))
    if sys.getrecursionlimit() != limit:
        sys.setrecursionlimit(limit)
    return limit
