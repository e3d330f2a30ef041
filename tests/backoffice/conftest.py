"""Fixtures of the back-office tests: a real embedded chain, and a node that never answers."""

from __future__ import annotations

import socket
import threading

import pytest

from tokens import services
from tokens.chain.client import ChainClient
from tokens.chain.embedded import build_embedded_chain


@pytest.fixture
def silent_node():
    """A TCP port that accepts connections and never answers (a hung node): its URI."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    server.close()


@pytest.fixture
def point_chain_at():
    """``point_chain_at(uri)``: the services' client talks to ``uri`` (contracts of a real chain)."""

    def point(uri: str) -> None:
        config = build_embedded_chain().config(provider_uri=uri, request_timeout=5.0)
        services.chain_client_set(ChainClient(config))

    yield point
    services.chain_client_set(None)
