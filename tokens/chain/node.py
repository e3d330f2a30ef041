"""A local JSON-RPC node serving one embedded chain, so that processes can share it.

``python -m tokens.chain.node --host 127.0.0.1 --port 8545 --info-file var/chain.json``
builds the embedded chain (contracts deployed, treasury funded, pool seeded), writes the
info file that :func:`tokens.chain.config.config_from_settings` reads (mode 0600: it holds
the treasury key of this development chain) and serves until interrupted. The web server
and the Celery worker then point ``WEB3_PROVIDER_URI`` at it.

With ``--journal var/chain-journal.jsonl`` the chain survives restarts: every write to its
database is appended to the journal before the node answers, and the next start reopens the
chain from it (:mod:`tokens.chain.journal`). When the journal cannot be used (other contracts,
a corrupt file) the node moves it aside, starts a fresh chain, logs a banner and writes a
reset notice (``chain-reset.json`` next to the journal) saying why; ``make run`` then shows
the banner and runs ``manage.py chain_reconcile``. Without ``--journal`` the chain is lost
when the node stops (tests).

For development and tests only: one in-process chain.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from eth_abi import encode as abi_encode
from eth_tester.exceptions import TransactionFailed
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_utils.exceptions import ValidationError as EvmValidationError
from web3 import Web3

from tokens.chain.config import write_chain_info
from tokens.chain.embedded import EmbeddedChain, build_embedded_chain
from tokens.chain.journal import ChainJournal, open_or_reset

logger = logging.getLogger(__name__)

# JSON-RPC 2.0 error codes, and geth's code for a revert.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
EXECUTION_REVERTED = 3
ERROR_STRING_SELECTOR = "0x08c379a0"  # Error(string), as a revert reason is encoded

_MAX_BODY_BYTES = 10 * 1024 * 1024


class ChainNode:
    """An HTTP JSON-RPC server around one embedded chain, one request at a time."""

    def __init__(self, chain: EmbeddedChain, host: str = "127.0.0.1", port: int = 8545,
                 journal: ChainJournal | None = None) -> None:
        self.chain = chain
        self.journal = journal
        provider = chain.w3.provider
        # The tester provider's own middleware turns JSON-RPC parameters into eth-tester's
        # and eth-tester's results back: no other middleware.
        w3 = Web3(provider, middleware=[])
        self._request: Callable[[str, Any], dict[str, Any]] = provider.request_func(w3, w3.middleware_onion)
        self._lock = threading.Lock()  # the tester chain is not thread-safe
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        # Open keep-alive connections, closed by `shutdown` so that a stopped node answers no one.
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def provider_uri(self) -> str:
        host, port = self._server.server_address[:2]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    def info(self) -> dict[str, Any]:
        """What a client needs to use this chain (the content of the info file)."""
        chain = self.chain
        return {
            "provider_uri": self.provider_uri,
            "chain_id": chain.chain_id,
            "router": chain.router,
            "azr_token": chain.azr_token,
            "zar_token": chain.zar_token,
            "pair": chain.pair,
            "treasury_private_key": chain.treasury_private_key,
            "treasury_address": chain.treasury_address,
        }

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        """Stop serving and close the socket (from another thread while serving), and the
        connections still open: a client's kept-alive connection must not reach a stopped node."""
        self._server.shutdown()
        self._server.server_close()
        if self.journal is not None:
            with self._lock:
                self.journal.close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def handle(self, payload: Any) -> Any:
        """The JSON-RPC response to a decoded request or batch of requests."""
        if isinstance(payload, list):
            if not payload:
                return _error(None, INVALID_REQUEST, "empty batch")
            return [self._handle_one(request) for request in payload]
        return self._handle_one(payload)

    def _handle_one(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, INVALID_REQUEST, "invalid request")
        request_id = request.get("id")
        params = request.get("params", [])
        if not isinstance(params, list):
            return _error(request_id, INVALID_REQUEST, "params must be an array")
        try:
            with self._lock:
                try:
                    response = self._request(request["method"], params)
                finally:
                    if self.journal is not None:
                        self.journal.flush()  # on disk before anyone hears of it
        except TransactionFailed as exc:
            message = str(exc.args[0]) if exc.args else "execution reverted"
            reason = message.removeprefix("execution reverted").removeprefix(": ")
            data = ERROR_STRING_SELECTOR + abi_encode(["string"], [reason]).hex()
            return _error(request_id, EXECUTION_REVERTED, message, data=data)
        except (EvmValidationError, TesterValidationError) as exc:
            return _error(request_id, SERVER_ERROR, str(exc))
        except Exception as exc:
            logger.exception("%s failed", request["method"])
            return _error(request_id, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        if "error" in response:
            return _error(request_id, response["error"]["code"], response["error"]["message"])
        return {"jsonrpc": "2.0", "id": request_id, "result": _to_json_rpc(response["result"])}


def _error(request_id: Any, code: int, message: str, *, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _to_json_rpc(value: Any, key: str | None = None) -> Any:
    """eth-tester's result as JSON-RPC has it: integers as hex quantities, bytes as hex data."""
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        if key == "logsBloom":  # 256 bytes of data, not a quantity
            return "0x" + value.to_bytes(256, "big").hex()
        return hex(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {name: _to_json_rpc(item, name) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_rpc(item) for item in value]
    raise TypeError(f"cannot serialize {type(value).__name__} to JSON-RPC")


def _handler_for(node: ChainNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: web3's session reuses connections
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def setup(self) -> None:
            super().setup()
            node._track(self.connection, open_=True)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                node._track(self.connection, open_=False)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY_BYTES:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _error(None, INVALID_REQUEST, "too large"))
                return
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self._reply(HTTPStatus.OK, _error(None, PARSE_ERROR, "parse error"))
                return
            self._reply(HTTPStatus.OK, node.handle(payload))

        def do_GET(self) -> None:
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, _error(None, INVALID_REQUEST, "POST JSON-RPC"))

        def _reply(self, status: HTTPStatus, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s " + format, self.address_string(), *args)

    return Handler


def start_node(host: str, port: int, info_file: str | os.PathLike[str],
               journal: str | os.PathLike[str] | None = None) -> ChainNode:
    """Build the chain -- from ``journal`` when it holds one, else a new one (recorded there when
    given) -- bind the server and write the info file; not serving yet."""
    if journal is None:
        node = ChainNode(build_embedded_chain(), host, port)
    else:
        recorded = open_or_reset(Path(journal))
        node = ChainNode(recorded.chain, host, port, journal=recorded)
    write_chain_info(info_file, node.info())
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8545, help="0 picks a free port")
    parser.add_argument("--info-file", type=Path, default=Path("var/chain.json"))
    parser.add_argument("--journal", type=Path, default=None,
                        help="keep the chain in this file across restarts (e.g. var/chain-journal.jsonl)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    node = start_node(args.host, args.port, args.info_file, journal=args.journal)
    logger.info(
        "embedded chain %s served at %s; info in %s",
        node.chain.chain_id,
        node.provider_uri,
        args.info_file,
    )
    try:
        node.serve_forever()
    except KeyboardInterrupt:
        logger.info("stopping")
    finally:
        node.shutdown()
        args.info_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
