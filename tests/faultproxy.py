"""A TCP proxy on loopback that passes bytes through, then cuts, stalls or garbles on cue.

Real servers do not drop a connection in the middle of a FETCH when a test asks them to;
this proxy sits between the client and a real server (Dovecot's plaintext port) and does.
Each accepted connection takes the next :class:`Fault` from the plan (none once the plan
is used up), so "the first connection breaks, the retry works" is one line::

    with FaultProxy(account.host, account.port) as proxy:
        proxy.plan(Fault.cut(after=50_000))
        ...  # connect to proxy.host:proxy.port

Byte counts are per connection and per direction ("down" = server to client, the
greeting included; "up" = client to server). Only loopback targets are accepted, every
stall is bounded, and :meth:`FaultProxy.stop` ends every connection and thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

log = logging.getLogger(__name__)

Direction = Literal["down", "up"]
Kind = Literal["none", "cut", "reset", "stall", "garbage"]

# No fault waits longer than this, so a test that forgets the proxy still ends.
MAX_STALL = 120.0
GARBAGE = b"\x00\x17\xff\xfe* \x01garbage \x80\x9b[0m that is not IMAP at all \xc3("


@dataclass(frozen=True)
class Fault:
    """What happens to one connection once ``after`` bytes passed in ``direction``."""

    kind: Kind = "none"
    after: int = 0
    direction: Direction = "down"
    seconds: float = MAX_STALL  # stall: how long (then the stream goes on)
    data: bytes = GARBAGE  # garbage: what the client gets instead of the rest
    # Fire instead at the first chunk that holds this, before passing it on (e.g. the
    # server's OK for an APPEND it has already carried out).
    before: bytes | None = None

    @classmethod
    def none(cls) -> Fault:
        return cls()

    @classmethod
    def cut(cls, after: int, direction: Direction = "down") -> Fault:
        """Close both sides (the client reads EOF) after ``after`` bytes."""
        return cls("cut", after, direction)

    @classmethod
    def cut_before(cls, pattern: bytes, direction: Direction = "down") -> Fault:
        """Close both sides just before ``pattern`` would reach the other side."""
        return cls("cut", 0, direction, before=pattern)

    @classmethod
    def stall_before(cls, pattern: bytes, seconds: float = MAX_STALL,
                     direction: Direction = "down") -> Fault:
        """Hold everything from the chunk holding ``pattern`` on, for ``seconds``."""
        return cls("stall", 0, direction, seconds=min(seconds, MAX_STALL), before=pattern)

    @classmethod
    def reset(cls, after: int, direction: Direction = "down") -> Fault:
        """Abort both sides with a TCP RST after ``after`` bytes."""
        return cls("reset", after, direction)

    @classmethod
    def stall(cls, after: int, seconds: float = MAX_STALL,
              direction: Direction = "down") -> Fault:
        """Pass nothing more for ``seconds`` (the connection stays open), then go on."""
        return cls("stall", after, direction, seconds=min(seconds, MAX_STALL))

    @classmethod
    def garbage(cls, after: int, data: bytes = GARBAGE) -> Fault:
        """Send ``data`` instead of the rest of the server's answer, then close."""
        return cls("garbage", after, "down", data=data)

    def __str__(self) -> str:
        if self.kind == "none":
            return "no fault"
        extra = f" for {self.seconds:g} s" if self.kind == "stall" else ""
        where = (f"before {self.before!r}" if self.before is not None
                 else f"after {self.after} bytes")
        return f"{self.kind}{extra} {where} {self.direction}"


@dataclass
class Connection:
    """One proxied connection: its fault, the bytes each way, and what happened."""

    number: int
    fault: Fault
    client: socket.socket = field(repr=False)
    server: socket.socket | None = field(default=None, repr=False)
    bytes_down: int = 0
    bytes_up: int = 0
    fault_fired: bool = False
    upstream: bytearray = field(default_factory=bytearray, repr=False)
    closed: threading.Event = field(default_factory=threading.Event, repr=False)
    _close_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def close(self, reset: bool = False) -> None:
        """End both sides; shutdown() first, because close() alone does not wake a thread
        blocked in recv() on the same socket."""
        with self._close_lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for sock in (self.client, self.server):
            if sock is None:
                continue
            if reset:
                # SO_LINGER with a zero timeout turns the close into a RST; SHUT_RD wakes
                # the other pump without sending a FIN first.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    b"\x01\x00\x00\x00\x00\x00\x00\x00")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class FaultProxy:
    """Forward 127.0.0.1:<port> to a loopback server, applying planned faults."""

    def __init__(self, target_host: str, target_port: int, *,
                 rewrite_down: Callable[[bytes], bytes] | None = None,
                 rewrite_up: Callable[[bytes], bytes] | None = None,
                 record_upstream: bool = False,
                 on_fault: Callable[[Connection], None] | None = None) -> None:
        if not ipaddress.ip_address(socket.gethostbyname(target_host)).is_loopback:
            raise ValueError(f"the fault proxy only talks to loopback, not {target_host}")
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.rewrite_down = rewrite_down
        self.rewrite_up = rewrite_up  # what the client says, changed before the server hears
        self.record_upstream = record_upstream
        self.on_fault = on_fault  # called as a fault fires (e.g. to kill the client then)
        self.connections: list[Connection] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ control

    def plan(self, *faults: Fault) -> None:
        """The faults for the next connections, in order (replaces any unused plan)."""
        with self._lock:
            self._faults = deque(faults)

    @property
    def unused(self) -> int:
        """Planned faults no connection has taken yet."""
        with self._lock:
            return len(self._faults)

    def fired(self) -> list[Connection]:
        with self._lock:
            return [c for c in self.connections if c.fault_fired]

    def describe(self) -> str:
        """One line per connection, for assertion messages."""
        with self._lock:
            return "\n".join(
                f"#{c.number}: {c.fault} ({'fired' if c.fault_fired else 'not fired'}), "
                f"{c.bytes_down} bytes down, {c.bytes_up} up" for c in self.connections)

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(16)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept_loop, "faultproxy-accept")

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            connections = list(self.connections)
        for connection in connections:
            connection.close()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ plumbing

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                fault = self._faults.popleft() if self._faults else Fault.none()
                connection = Connection(len(self.connections) + 1, fault, client)
                self.connections.append(connection)
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                connection.close()
                continue
            server.settimeout(None)
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.server = server
            self._spawn(self._pump, f"faultproxy-{connection.number}-down", connection, "down")
            self._spawn(self._pump, f"faultproxy-{connection.number}-up", connection, "up")

    def _pump(self, connection: Connection, direction: Direction) -> None:
        source, sink = ((connection.server, connection.client) if direction == "down"
                        else (connection.client, connection.server))
        assert source is not None and sink is not None
        fault = connection.fault if connection.fault.direction == direction else Fault.none()
        passed = 0
        try:
            while not connection.closed.is_set():
                chunk = source.recv(65536)
                if not chunk:
                    break
                if direction == "down" and self.rewrite_down is not None:
                    chunk = self.rewrite_down(chunk)
                elif direction == "up":
                    if self.record_upstream:
                        connection.upstream += chunk
                    if self.rewrite_up is not None:
                        chunk = self.rewrite_up(chunk)
                if fault.kind != "none" and not connection.fault_fired and (
                        fault.before in chunk if fault.before is not None
                        else passed + len(chunk) > fault.after):
                    head = (b"" if fault.before is not None
                            else chunk[:max(fault.after - passed, 0)])
                    sink.sendall(head)
                    self._count(connection, direction, len(head))
                    passed += len(head)
                    connection.fault_fired = True
                    log.info("proxy connection %d: %s", connection.number, fault)
                    if self.on_fault is not None:
                        self.on_fault(connection)
                    if not self._fire(connection, fault, sink):
                        return
                    chunk = chunk[len(head):]  # a stall is over: the rest goes on
                sink.sendall(chunk)
                self._count(connection, direction, len(chunk))
                passed += len(chunk)
        except OSError:
            pass
        connection.close()

    def _fire(self, connection: Connection, fault: Fault, sink: socket.socket) -> bool:
        """Apply ``fault``; True when the stream goes on afterwards."""
        if fault.kind == "stall":
            deadline = time.monotonic() + fault.seconds
            while time.monotonic() < deadline and not self._stop.is_set():
                if connection.closed.is_set():
                    return False  # the client gave up (its timeout) and closed
                # time.sleep, not Event.wait(timeout): under `faketime` a timed wait on a
                # lock never times out (libfaketime shifts CLOCK_MONOTONIC, and the lock's
                # absolute deadline is then months ahead of the kernel's clock).
                time.sleep(0.05)
            return not connection.closed.is_set()
        if fault.kind == "garbage":
            with contextlib.suppress(OSError):
                sink.sendall(fault.data)
        connection.close(reset=fault.kind == "reset")
        return False

    def _count(self, connection: Connection, direction: Direction, n: int) -> None:
        if direction == "down":
            connection.bytes_down += n
        else:
            connection.bytes_up += n


def strip_capability(name: bytes) -> Callable[[bytes], bytes]:
    """A ``rewrite_down`` that removes one capability from everything the server says:
    a man in the middle hiding STARTTLS to keep the connection in plaintext."""

    def rewrite(chunk: bytes) -> bytes:
        return chunk.replace(b" " + name, b"")

    return rewrite


def total_down(connections: Sequence[Connection]) -> int:
    return sum(c.bytes_down for c in connections)
