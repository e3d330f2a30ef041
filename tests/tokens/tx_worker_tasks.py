"""A task for the two-worker test only (loaded with ``celery worker --include``): transactions
for the treasury key, with the nonces of the database's ledger."""

from __future__ import annotations

import os
from decimal import Decimal

from celery import shared_task
from django.db import connection


@shared_task(name="tests.tokens.burn_for_key", ignore_result=False, acks_late=False)
def burn_for_key(times: int) -> dict:
    from tokens.chain.runtime import chain_client
    from tokens.chain.txmanager import DbLedger

    try:
        client = chain_client()
        hashes = [client.burn(Decimal("0.001"), ledger=DbLedger()) for _ in range(times)]
        return {"pid": os.getpid(), "hashes": hashes}
    finally:
        connection.close()
