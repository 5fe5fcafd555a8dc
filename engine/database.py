"""The ledger's database: a SQLite file (the zero-setup default) or PostgreSQL (a team's shared
ledger, through psycopg 3), behind one small interface: statements with ``?`` marks, rows read by
name or position, transactions that keep the writers that must not interleave apart, and the
schema's version.

SQLite serializes every write transaction (``BEGIN IMMEDIATE`` takes the file's write lock), so a
transaction's ``lock`` name means nothing there. PostgreSQL runs transactions side by side, so the
ledger names what must be serialized (a request id, a pool) and the transaction takes a
transaction-scoped advisory lock on it: two processes settling one request, or reserving from one
pool, take turns, and processes working on different ones do not wait for each other.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from engine.errors import LedgerError, LedgerUnreachable

if TYPE_CHECKING:
    import psycopg

__all__ = ["Database", "Dialect", "Rows", "is_url", "open_database", "shown"]

Dialect = Literal["sqlite", "postgresql"]
# How long to wait for a PostgreSQL server that does not answer before saying it is unreachable.
_CONNECT_TIMEOUT_S = 5
# The advisory lock migrations take: any constant, the same in every process.
_MIGRATION_LOCK = "render-ledger-migrations"
# A database that stopped answering is asked again at most this often (a write in between fails
# at once rather than wait for a connection on the event loop).
_RECONNECT_EVERY_S = 2.0
# How long a SQLite ledger waits for another process's lock before it gives up.
_SQLITE_WAIT_S = 30.0


class Rows(Protocol):
    """A cursor over a statement's rows (sqlite3's and psycopg's both are one)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


def is_url(target: str) -> bool:
    """Whether a ledger target names a PostgreSQL server (else it is a SQLite file)."""
    return target.startswith(("postgresql://", "postgres://"))


def shown(target: str) -> str:
    """The target as it may be printed: a URL without its password."""
    if not is_url(target):
        return target
    parts = urlsplit(target)
    if parts.password is None:
        return target
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def open_database(target: str | Path) -> Database:
    """The database ``target`` names: a ``postgresql://`` URL, else a SQLite file's path (its
    folder is created). Raises LedgerError, saying which and why, when it cannot be opened."""
    text = str(target)
    if is_url(text):
        return _Postgres(text)
    if text.startswith("sqlite:///"):
        text = text.removeprefix("sqlite://")
    return _Sqlite(Path(text))


class Database:
    """One connection, shared by the threads of one process: a statement waits for another
    thread's transaction to end rather than run inside it."""

    dialect: Dialect
    where: str

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        with self._lock:
            return self._execute(sql, params)

    @contextlib.contextmanager
    def transaction(self, lock: str | Sequence[str] | None = None) -> Iterator[None]:
        """Several statements other processes see all or none of; ``lock`` names what other
        processes' transactions on the same thing must wait for (several names are taken in one
        order, so two transactions never wait for each other). A transaction inside another is
        part of it."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            names = (lock,) if isinstance(lock, str) else tuple(lock or ())
            self._begin(tuple(sorted(set(names))))
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._end(commit=False)
                raise
            self._depth = 0
            self._end(commit=True)

    def script(self, sql: str) -> None:
        """A migration's statements, one by one (inside the caller's transaction)."""
        for statement in (part.strip() for part in sql.split(";")):
            if statement:
                self.execute(self.ddl(statement))

    def ddl(self, statement: str) -> str:
        return statement

    def version(self) -> int:
        raise NotImplementedError

    def set_version(self, number: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _execute(self, sql: str, params: Sequence[Any]) -> Rows:
        raise NotImplementedError

    def _begin(self, locks: tuple[str, ...]) -> None:
        raise NotImplementedError

    def _end(self, *, commit: bool) -> None:
        raise NotImplementedError


class _Sqlite(Database):
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.where = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Another process may hold the write lock for a moment: wait for it rather than fail.
            self.db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=_SQLITE_WAIT_S
            )
            self.db.row_factory = sqlite3.Row
            _write_ahead(self.db)
        except (OSError, sqlite3.Error) as problem:
            raise LedgerError(f"the ledger {path} cannot be opened: {problem}") from problem
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # A row replaced (INSERT OR REPLACE) fires its delete triggers too: the ledger's running
        # totals (money_days) must see the old row go.
        self.db.execute("PRAGMA recursive_triggers=ON")

    def _execute(self, sql: str, params: Sequence[Any]) -> Rows:
        return self.db.execute(sql, tuple(params))

    def _begin(self, locks: tuple[str, ...]) -> None:
        # The write lock at once: a transaction that reads, then writes, must not find the file
        # changed under it (every process's writes take turns, whatever ``locks`` name).
        del locks
        self.db.execute("BEGIN IMMEDIATE")

    def _end(self, *, commit: bool) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT" if commit else "ROLLBACK")

    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def set_version(self, number: int) -> None:
        self.db.execute(f"PRAGMA user_version = {int(number)}")

    def close(self) -> None:
        self.db.close()


def _write_ahead(db: sqlite3.Connection) -> None:
    """The file in WAL mode. Switching a new file takes its lock without SQLite's busy wait, so a
    second process creating the same ledger at that moment is told "database is locked": it asks
    again until the first is done (a few milliseconds), as the busy wait would."""
    deadline = time.monotonic() + _SQLITE_WAIT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as problem:
            if "locked" not in str(problem) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


class _Row(tuple[Any, ...]):
    """A row read by position, by column name, or as a dict (as sqlite3.Row is)."""

    _names: tuple[str, ...] = ()
    _index: dict[str, int] = {}  # noqa: RUF012 - set on each subclass, never mutated

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._index[key])
        return super().__getitem__(key)

    def keys(self) -> tuple[str, ...]:
        return self._names


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[_Row]:
    return type("Row", (_Row,), {"_names": names, "_index": {n: i for i, n in enumerate(names)}})


def _rows(cursor: Any) -> Any:
    """psycopg's row factory: rows like sqlite3.Row."""
    names = tuple(column.name for column in cursor.description or ())
    kind = _row_class(names)

    def make(values: Sequence[Any]) -> _Row:
        return kind(values)

    return make


@functools.lru_cache(maxsize=512)
def _postgres_sql(sql: str) -> str:
    """``?`` marks as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Postgres(Database):
    dialect: Dialect = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.where = shown(url)
        try:
            import psycopg  # noqa: PLC0415 - only a team's ledger needs it
        except ImportError as missing:  # pragma: no cover - psycopg is a dependency
            raise LedgerError(
                f"the ledger {self.where} is PostgreSQL, which needs psycopg: pip install 'psycopg[binary]'"
            ) from missing
        self._psycopg = psycopg
        self._url = url
        try:
            self.db: psycopg.Connection[Any] = self._connect()
        except psycopg.Error as problem:
            raise LedgerUnreachable(
                f"the ledger's database {self.where} is unreachable: {_first_line(problem)}. "
                "Nothing was sent; start the server, or check RENDER_LEDGER_URL (--ledger)"
            ) from problem
        self._transaction: Any = None
        self._lost_at: float | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        return self._psycopg.connect(
            self._url, autocommit=True, row_factory=_rows, connect_timeout=_CONNECT_TIMEOUT_S
        )

    def _unreachable(self, problem: BaseException) -> LedgerUnreachable:
        return LedgerUnreachable(
            f"the ledger's database {self.where} stopped answering: {_first_line(problem)}"
        )

    def _reconnect(self) -> None:
        """A connection again, after one was lost (at most every few seconds)."""
        if self._lost_at is None:
            return
        if time.monotonic() - self._lost_at < _RECONNECT_EVERY_S:
            raise LedgerUnreachable(f"the ledger's database {self.where} stopped answering")
        try:
            fresh = self._connect()
        except self._psycopg.Error as problem:
            self._lost_at = time.monotonic()
            raise self._unreachable(problem) from problem
        with contextlib.suppress(Exception):
            self.db.close()
        self.db, self._lost_at = fresh, None

    def ddl(self, statement: str) -> str:
        # SQLite's REAL is 8 bytes; PostgreSQL's is 4 (six digits): money needs the 8.
        import re  # noqa: PLC0415

        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", statement)

    def _execute(self, sql: str, params: Sequence[Any]) -> Rows:
        if self._transaction is None:
            self._reconnect()
        query = _postgres_sql(sql) if params else sql
        try:
            cursor: Rows = self.db.execute(query, tuple(params) or None)
        except self._psycopg.OperationalError as problem:
            if self.db.broken or self.db.closed:
                self._lost_at = time.monotonic()
                raise self._unreachable(problem) from problem
            raise
        return cursor

    def _begin(self, locks: tuple[str, ...]) -> None:
        self._reconnect()
        transaction = self.db.transaction()
        try:
            transaction.__enter__()
        except self._psycopg.OperationalError as problem:
            self._lost_at = time.monotonic()
            raise self._unreachable(problem) from problem
        self._transaction = transaction
        for name in locks:
            self.db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))

    def _end(self, *, commit: bool) -> None:
        transaction, self._transaction = self._transaction, None
        if not commit:
            # A lost connection has no transaction left to roll back: the error that ended this
            # one is the one to raise.
            with contextlib.suppress(self._psycopg.Error):
                transaction.__exit__(RuntimeError, RuntimeError("rolled back"), None)
            return
        try:
            transaction.__exit__(None, None, None)
        except self._psycopg.OperationalError as problem:
            self._lost_at = time.monotonic()
            raise self._unreachable(problem) from problem

    def version(self) -> int:
        # pg_tables, not to_regclass: a name lookup may answer from this connection's catalog
        # cache, which can still say "no such table" after another process created it.
        exists = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
            "WHERE schemaname = current_schema() AND tablename = 'render_schema')"
        ).fetchone()
        if not exists or not exists[0]:
            return 0
        row = self.db.execute("SELECT version FROM render_schema").fetchone()
        return int(row[0]) if row else 0

    def set_version(self, number: int) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS render_schema (version INTEGER NOT NULL)")
        self.db.execute("DELETE FROM render_schema")
        self.db.execute("INSERT INTO render_schema (version) VALUES (%s)", (number,))

    def close(self) -> None:
        self.db.close()


def migration_lock() -> str:
    """The name migrations serialize on."""
    return _MIGRATION_LOCK


def _first_line(problem: BaseException) -> str:
    text = str(problem).strip().splitlines()
    return text[0].rstrip(".") if text else type(problem).__name__
