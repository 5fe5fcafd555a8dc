"""A real, throwaway PostgreSQL server for the ledger's tests: one cluster a test session, in
pytest's temp folder, on a free loopback port, with a fresh database a test. ``why_unavailable()``
says why none can be had (the tests that need one skip with that sentence); CI installs Debian's
``postgresql`` package, and ``RENDER_TEST_PG_BIN`` points at other server binaries."""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

# The server refuses to run as root; as root, it runs as this user.
SERVER_USER = "postgres"
# The superuser initdb creates, whom every URL names (trust authentication: no password).
SUPERUSER = "render"

_NEEDED = ("initdb", "pg_ctl")
_numbers = itertools.count(1)


def _holds_server(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in _NEEDED)


def _version_key(directory: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` → ``(15,)``; so 16 sorts above 9.6, which text would not."""
    try:
        return tuple(int(part) for part in directory.parent.name.split("."))
    except ValueError:
        return ()


def find_bin_dir() -> Path:
    """The folder of the server binaries (initdb, pg_ctl, postgres); LookupError saying why not."""
    chosen = os.environ.get("RENDER_TEST_PG_BIN")
    if chosen:
        # An explicit choice that does not hold a server is a mistake to report, not to paper over
        # with whichever server happens to be installed.
        if _holds_server(Path(chosen)):
            return Path(chosen)
        raise LookupError(f"RENDER_TEST_PG_BIN={chosen} holds no initdb and pg_ctl")
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for directory in debian:
        if _holds_server(directory):
            return directory
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        # Debian's pg_config comes with libpq-dev, without a server: check what it names.
        answer = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if answer.returncode == 0 and _holds_server(Path(answer.stdout.strip())):
            return Path(answer.stdout.strip())
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and _holds_server(Path(entry)):
            return Path(entry)
    raise LookupError(
        "no PostgreSQL server binaries (initdb, pg_ctl) were found: install Debian's postgresql "
        "package (.ci/run does) or set RENDER_TEST_PG_BIN to their folder"
    )


def _runuser() -> str | None:
    # root's PATH may lack the sbin folders where runuser lives.
    return shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")


def _server_account() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        return None


def why_unavailable() -> str | None:
    """A sentence saying why no server can be had here, or None when one can."""
    try:
        find_bin_dir()
    except LookupError as missing:
        return str(missing)
    if os.geteuid() == 0:
        if _server_account() is None:
            return (
                f"running as root, and PostgreSQL refuses root: there is no `{SERVER_USER}` user "
                "to run the server as"
            )
        if _runuser() is None:
            return (
                "running as root, and PostgreSQL refuses root: runuser (util-linux) is missing to "
                f"run the server as `{SERVER_USER}`"
            )
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _can_search(account: pwd.struct_passwd, directory: Path) -> bool:
    """Whether ``account`` may pass through ``directory`` (its x bit), as the kernel decides."""
    info = directory.stat()
    if info.st_uid == account.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in os.getgrouplist(account.pw_name, account.pw_gid):
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _let_reach(account: pwd.struct_passwd, directory: Path) -> None:
    """Let ``account`` pass through the folders above ``directory``.

    pytest makes its temp folders 0700 for their owner, root: the server user could not reach a
    cluster inside them. Only the search bit is given, never read (nobody may list them), and only
    inside the system temp folder: a --basetemp under /root fails, saying so, rather than this
    opening /root. pytest takes the bit back from pytest-of-root at its next session, which is why
    ``Cluster.start`` calls this each time.
    """
    temp = Path(tempfile.gettempdir()).resolve()
    for parent in reversed(directory.resolve().parents):
        if _can_search(account, parent):
            continue
        if parent == temp or temp not in parent.parents:
            raise RuntimeError(
                f"the `{account.pw_name}` user cannot reach {directory} through {parent}: put "
                f"pytest's temp folders under {temp}"
            )
        parent.chmod(stat.S_IMODE(parent.stat().st_mode) | stat.S_IXOTH)


class Cluster:
    """A PostgreSQL cluster in ``directory`` (data, socket and log), served on a free port of
    127.0.0.1. ``start()`` creates it on first call; ``stop()`` ends it for good, ``kill_server()``
    then ``start()`` takes the server away and brings it back on the same port and data."""

    def __init__(self, directory: Path, bin_dir: Path | None = None) -> None:
        self.directory = directory
        self.bin_dir = bin_dir if bin_dir is not None else find_bin_dir()
        self.data = directory / "data"
        self.log = directory / "server.log"
        self.port = _free_port()
        self._running = False
        # PostgreSQL refuses to run as root: as root, every server command runs as SERVER_USER.
        self._account = _server_account() if os.geteuid() == 0 else None
        if os.geteuid() == 0 and self._account is None:
            raise RuntimeError(why_unavailable())

    @property
    def url(self) -> str:
        """The URL of the ``postgres`` database, for administration."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """The URL of ``database``, over TCP to 127.0.0.1 as the superuser."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._running

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / program), *args]
        if self._account is None:
            return command
        runuser = _runuser()
        if runuser is None:
            raise RuntimeError(why_unavailable())
        return [runuser, "-u", self._account.pw_name, "--", *command]

    def _run(self, program: str, *args: str) -> None:
        # The folder is the server user's working folder: the caller's may be closed to it.
        done = subprocess.run(
            self._command(program, *args),
            cwd=self.directory,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n{self.log}:\n{log}"
            )

    def _initdb(self) -> None:
        if self._account is not None:
            os.chown(self.directory, self._account.pw_uid, self._account.pw_gid)
        # --locale=C: the same collation on every machine, and no dependence on which locales the
        # machine has generated. --no-sync: a throwaway cluster needs no fsync at creation.
        self._run(
            "initdb",
            *("-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"),
            *("--locale=C", "--no-sync", "--no-instructions"),
        )

    def start(self) -> None:
        """Start the server (creating the cluster on first call); ``pg_ctl -w`` returns once it
        accepts connections."""
        if self._running:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._account is not None:
            _let_reach(self._account, self.directory)
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        # Each start repeats the options rather than writing them into postgresql.conf, so the
        # cluster's configuration is all here. The socket folder is the cluster's own, never the
        # system's /var/run/postgresql. pg_ctl runs these through sh: hence the quoting.
        options = " ".join(
            [
                f"-k {shlex.quote(str(self.directory))}",
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                # A throwaway cluster need not survive the machine crashing.
                "-c fsync=off",
                "-c full_page_writes=off",
                # On, though fsync is off: a synchronous commit then costs one write(2), nothing
                # measurable, while off, kill_server() loses the last commits (20 of 20 in a trial)
                # and a test that kills the server mid-run could not trust what it committed.
                "-c synchronous_commit=on",
                # Tests run several worker processes, each with its connections.
                "-c max_connections=200",
            ]
        )
        try:
            self._run(
                "pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l", str(self.log), "start"
            )
        except RuntimeError:
            # pg_ctl gives up waiting after a minute on a server that may yet come up: stop it
            # rather than leave it running.
            subprocess.run(
                self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"),
                cwd=self.directory,
                capture_output=True,
                check=False,
            )
            raise
        self._running = True
        # A session that ends without its fixture's teardown (an internal error, a second Ctrl-C)
        # still must not leave a server running.
        atexit.register(self.stop)

    def kill_server(self) -> None:
        """Take the server away as a crash does (``pg_ctl stop -m immediate``): open connections
        break, new ones are refused, until ``start()`` brings it back on the same port and data."""
        if not self._running:
            raise RuntimeError("the server is not running")
        self.stop()

    def stop(self) -> None:
        """Stop the server without a checkpoint (the cluster is thrown away with pytest's temp
        folder); stopping a stopped one does nothing."""
        if not self._running:
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self._running = False
        atexit.unregister(self.stop)

    def create_database(self, name: str) -> str:
        """Create database ``name`` (quoted: any text) and return its URL."""
        # CREATE DATABASE cannot run inside a transaction block.
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)


def start_session_cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """A started cluster in a new folder of the system's temp folder (not pytest's: another
    pytest session on the machine closes its folders to other users as it starts, and the server
    runs as another user); the caller stops it and removes ``cluster.directory``."""
    del tmp_path_factory
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="render-pg-")))
    cluster.start()
    return cluster


def fresh_database(cluster: Cluster, request_or_name: pytest.FixtureRequest | str) -> str:
    """The URL of a new, empty database named after the test (or ``request_or_name``), with a
    number that makes it unique in the session."""
    name = request_or_name if isinstance(request_or_name, str) else request_or_name.node.name
    # Names stay plain (no quoting needed in psql by hand) and within PostgreSQL's 63 bytes.
    base = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:50] or "test"
    return cluster.create_database(f"{base}_{next(_numbers)}")
