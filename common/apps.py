"""The `common` app: process-wide guards that must run after every other app is loaded.

It is the last entry of INSTALLED_APPS, so its `ready()` runs after the other apps'
`ready()` — by then `tokens` has imported the chain libraries (web3, eth-account,
py_ecc, py-evm), and py_ecc has raised Python's recursion limit to 100,000.
"""

from __future__ import annotations

from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Common"

    def ready(self):
        from common.runtime import limit_recursion

        limit_recursion()
