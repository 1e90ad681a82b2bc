"""How the store reaches Redis: through Sentinel (following a failover) and over TLS.

Real processes only: a redis-server master and replica and a real sentinel (the same
binary, ``--sentinel``), and a TLS redis-server with certificates made here by the
``cryptography`` package. The store is built the way ``tocsin run`` builds it: config
document → :func:`build_config` → :func:`make_store`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.store import Store, StoreUnavailable, make_store
from config.loader import ConfigError, build_config
from config.redis_urls import SentinelURL, parse_sentinel_url
from tests.redis_server import find_redis_server, free_port

SERVICE = "tocsin-master"
PASSWORD = "redis-pass-0001"
SENTINEL_PASSWORD = "sentinel-pass-0002"
FAILOVER_DEADLINE = 20.0


class Process:
    """One redis-server (or sentinel) process of a test, logging to its own file."""

    def __init__(self, directory: Path, name: str, args: list[str], port: int) -> None:
        self.directory = directory
        self.name = name
        self.port = port
        self.log = directory / f"{name}.log"
        self.args = [find_redis_server(), *args]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_listening()
        return self

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not listen on {self.port}: {self.log.read_text()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def server_args(directory: Path, port: int, *extra: str) -> list[str]:
    return [
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
        *extra,
    ]


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Every process a test starts is killed at its end, whatever happened."""
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


async def opened(document: dict[str, Any]) -> Store:
    store = make_store(build_config({"providers": [], "store": document}).store)
    await store.open()
    return store


# -- URL forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        (
            "redis+sentinel://:pw@10.0.0.1:26380,10.0.0.2/mymaster/3",
            SentinelURL((("10.0.0.1", 26380), ("10.0.0.2", 26379)), "mymaster", 3, None, "pw"),
        ),
        (
            "redis+sentinel://app:p%40ss@[::1]:5000,sentinel-b/cache",
            SentinelURL((("::1", 5000), ("sentinel-b", 26379)), "cache", 0, "app", "p@ss"),
        ),
        (
            "redis+sentinel://sentinel/mymaster/",
            SentinelURL((("sentinel", 26379),), "mymaster", 0, None, None),
        ),
    ],
)
def test_sentinel_url_forms(url: str, parsed: SentinelURL) -> None:
    assert parse_sentinel_url(url) == parsed
    config = build_config({"providers": [], "store": {"url": url}})
    assert config.store.url is not None  # the schema accepts what the store will parse


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://s1:26390", "the path names the master's service name"),
        ("redis+sentinel://:hunter2@s1:26390/", "the path names the master's service name"),
        ("redis+sentinel:///mymaster", "name at least one sentinel host"),
        ("redis+sentinel://s1,,s2/mymaster", "name at least one sentinel host"),
        ("redis+sentinel://s1:port/mymaster", "'port' is not a port"),
        ("redis+sentinel://s1/mymaster/zero", "the database must be a number"),
        ("redis+sentinel://s1/mymaster/0/extra", "the path names the master's service name"),
        ("redis+sentinel://s1/mymaster?db=2", "takes no ?query"),
    ],
)
def test_bad_sentinel_urls_are_config_errors(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"providers": [], "store": {"url": url}})
    [line] = caught.value.errors
    assert line.startswith("store.url: "), line
    assert says in line
    assert "hunter2" not in line


@pytest.mark.parametrize(
    ("store", "path", "says"),
    [
        ({"url": "redis://r:6400/0", "tls": {"ca_file": "ca.pem"}}, "store.tls", "rediss://"),
        ({"url": "rediss://r:6400/0", "tls": {"key_file": "k.pem"}}, "store.tls", "cert_file"),
        (
            {"url": "rediss://r:6400/0", "sentinel_password": "x"},
            "store.sentinel_password",
            "redis+sentinel://",
        ),
    ],
)
def test_settings_that_would_be_ignored_are_errors(
    store: dict[str, Any], path: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"providers": [], "store": store})
    [line] = caught.value.errors
    assert line.startswith(f"{path}: "), line
    assert says in line


# -- Sentinel ----------------------------------------------------------------------------------


@dataclass
class SentinelSetup:
    master: Process
    replica: Process
    sentinel: Process

    @property
    def url(self) -> str:
        """A dead sentinel first: the store must go on to the next one in the list."""
        hosts = f"127.0.0.1:{free_port()},127.0.0.1:{self.sentinel.port}"
        return f"redis+sentinel://:{PASSWORD}@{hosts}/{SERVICE}/0"

    def master_port(self) -> int:
        with redis.Redis(port=self.sentinel.port, password=SENTINEL_PASSWORD) as client:
            _, port = client.sentinel_get_master_addr_by_name(SERVICE)
        return int(port)


def _wait(predicate: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _replica_in_sync(port: int) -> bool:
    with redis.Redis(port=port, password=PASSWORD) as client:
        return client.info("replication").get("master_link_status") == "up"


def _sentinel_knows_replica(port: int) -> bool:
    with redis.Redis(port=port, password=SENTINEL_PASSWORD) as client:
        return bool(client.sentinel_slaves(SERVICE))


@pytest.fixture
def sentinel_setup(tmp_path: Path, processes: list[Process]) -> SentinelSetup:
    """Master, replica (in sync), then one sentinel that already sees both: started in that
    order, its first INFO finds the replica (else it would wait for a 10 s refresh)."""
    auth = ("--requirepass", PASSWORD, "--masterauth", PASSWORD)
    auth += ("--repl-diskless-sync-delay", "0")  # the replica syncs at once, not after 5 s
    master_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
    master = Process(tmp_path, "master", server_args(tmp_path, master_port, *auth), master_port)
    processes.append(master.start())
    replica_args = server_args(
        tmp_path, replica_port, *auth, "--replicaof", "127.0.0.1", str(master_port)
    )
    replica = Process(tmp_path, "replica", replica_args, replica_port)
    processes.append(replica.start())
    _wait(lambda: _replica_in_sync(replica_port), "the replica to sync")
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"requirepass {SENTINEL_PASSWORD}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 1\n"
        f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 5000\n"
    )
    sentinel = Process(tmp_path, "sentinel", [str(conf), "--sentinel"], sentinel_port)
    processes.append(sentinel.start())
    _wait(lambda: _sentinel_knows_replica(sentinel_port), "the sentinel to see the replica")
    return SentinelSetup(master, replica, sentinel)


@pytest.fixture
async def sentinel_store(sentinel_setup: SentinelSetup) -> AsyncIterator[Store]:
    store = await opened({"url": sentinel_setup.url, "sentinel_password": SENTINEL_PASSWORD})
    yield store
    await store.close()


async def test_the_store_writes_to_the_master_the_sentinels_name(
    sentinel_setup: SentinelSetup, sentinel_store: Store
) -> None:
    await sentinel_store.set_value("greeting", "hello")
    assert await sentinel_store.get_value("greeting") == "hello"
    with redis.Redis(port=sentinel_setup.master.port, password=PASSWORD) as master:
        assert master.get("tocsin:kv:greeting") == b"hello"  # on the master, under the prefix


async def test_the_store_follows_a_failover_to_the_promoted_replica(
    sentinel_setup: SentinelSetup, sentinel_store: Store
) -> None:
    await sentinel_store.set_value("before", "1")
    with redis.Redis(port=sentinel_setup.replica.port, password=PASSWORD) as replica:
        _wait(lambda: replica.get("tocsin:kv:before") == b"1", "replication")
    sentinel_setup.master.kill()
    started = time.monotonic()
    failures = 0
    while True:
        try:
            await sentinel_store.set_value("after", "2")
            break
        except StoreUnavailable:
            failures += 1  # the callers' part: buffer, retry
            assert time.monotonic() - started < FAILOVER_DEADLINE, "no failover in time"
            await asyncio.sleep(0.2)
    assert failures > 0, "the write went through before the master was replaced"
    assert sentinel_setup.master_port() == sentinel_setup.replica.port
    assert await sentinel_store.get_value("before") == "1"
    with redis.Redis(port=sentinel_setup.replica.port, password=PASSWORD) as promoted:
        assert promoted.get("tocsin:kv:after") == b"2"
        assert promoted.info("replication")["role"] == "master"


async def test_without_the_sentinel_password_the_store_is_unavailable_not_broken(
    sentinel_setup: SentinelSetup,
) -> None:
    config = build_config({"providers": [], "store": {"url": sentinel_setup.url}})
    store = make_store(config.store)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.open()
        assert str(caught.value) == (
            f"redis unreachable: No master found for {SERVICE!r} "
            "(sentinels: network:ConnectionError, auth:AuthenticationError)"
        )  # one line: the dead sentinel, then the one that refused the login
        assert await store.ping() is False
    finally:
        await store.close()


# -- TLS ---------------------------------------------------------------------------------------


@dataclass
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
) -> x509.Certificate:
    """Signed by ``issuer`` (name, key), or self-signed as a CA when there is none."""
    issuer_name, issuer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(directory: Path) -> Certificates:
    """A CA of the test's own, a server certificate for 127.0.0.1 and a client certificate."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("tocsin test CA", ca_key)
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"tocsin test {name}", key, ("tocsin test CA", ca_key))
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}-key.pem").write_bytes(_key_pem(key))
    return Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
    )


@functools.cache
def tls_support() -> str | None:
    """``None`` when the redis-server binary speaks TLS, else why not (for the skip).

    A build without TLS rejects the ``tls-port`` directive at once; a build with it accepts
    it and then exits because ``--port 0 --tls-port 0`` listens nowhere.
    """
    binary = find_redis_server()
    done = subprocess.run(
        [binary, "--port", "0", "--tls-port", "0", "--save", ""],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if "Bad directive" in done.stdout + done.stderr:
        version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
        return f"{binary} ({version}) was built without TLS support: it rejects tls-port"
    return None


@pytest.fixture
def tls_server(tmp_path: Path, processes: list[Process]) -> tuple[Process, Certificates]:
    """A redis-server that speaks only TLS and wants a client certificate from our CA."""
    reason = tls_support()
    if reason is not None:
        pytest.skip(reason)
    certs = make_certificates(tmp_path)
    port = free_port()
    args = server_args(tmp_path, 0, "--tls-port", str(port))
    args += ["--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key)]
    args += ["--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "yes"]
    server = Process(tmp_path, "tls", args, port)
    processes.append(server.start())
    return server, certs


async def test_rediss_with_store_tls_writes_and_reads(
    tls_server: tuple[Process, Certificates],
) -> None:
    server, certs = tls_server
    tls = {"ca_file": str(certs.ca), "cert_file": str(certs.client_cert)}
    tls["key_file"] = str(certs.client_key)
    store = await opened({"url": f"rediss://127.0.0.1:{server.port}/0", "tls": tls})
    try:
        await store.set_value("over", "tls")
        assert await store.get_value("over") == "tls"  # the server listens on TLS only
    finally:
        await store.close()


async def test_rediss_options_in_the_url_serve_environment_only_setups(
    tls_server: tuple[Process, Certificates],
) -> None:
    """REDIS_URL alone can carry redis-py's own ``ssl_*`` query parameters."""
    server, certs = tls_server
    query = (
        f"ssl_ca_certs={certs.ca}&ssl_certfile={certs.client_cert}&ssl_keyfile={certs.client_key}"
    )
    store = await opened({"url": f"rediss://127.0.0.1:{server.port}/0?{query}"})
    try:
        await store.set_value("from", "url")
        assert await store.get_value("from") == "url"
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("tls", "says"),
    [
        ({"cert": True}, "certificate verify failed"),  # our CA is not the system's
        ({"ca": True}, "redis unreachable"),  # no client certificate: the server hangs up
    ],
    ids=["unknown-ca", "no-client-certificate"],
)
async def test_a_tls_handshake_that_fails_is_store_unavailable(
    tls_server: tuple[Process, Certificates], tls: dict[str, bool], says: str
) -> None:
    server, certs = tls_server
    options: dict[str, str] = {}
    if tls.get("ca"):
        options["ca_file"] = str(certs.ca)
    if tls.get("cert"):
        options.update(cert_file=str(certs.client_cert), key_file=str(certs.client_key))
    config = build_config(
        {"providers": [], "store": {"url": f"rediss://127.0.0.1:{server.port}/0", "tls": options}}
    )
    store = make_store(config.store)
    try:
        with pytest.raises(StoreUnavailable, match=says):
            await store.open()
    finally:
        await store.close()


async def test_verify_false_encrypts_without_checking_the_server(
    tls_server: tuple[Process, Certificates],
) -> None:
    server, certs = tls_server
    tls = {"verify": False, "cert_file": str(certs.client_cert), "key_file": str(certs.client_key)}
    store = await opened({"url": f"rediss://127.0.0.1:{server.port}/0", "tls": tls})
    try:
        assert await store.ping()
    finally:
        await store.close()
