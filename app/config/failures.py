"""What a CLI command that failed tells a person: one line naming the problem, and its exit code.

`bridge` commands reach the database, the key store and SAP; what a person can get wrong there
(an unmigrated or unreachable database, a wrong encryption key) arrives as a driver's exception
from deep inside a command. `describe` turns the chain of such an exception into one line, so
that no command needs its own `except` for each of them and none prints a traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.config.crypto import UndecryptableSecret

#: the exit codes: 1 when something outside the bridge is unavailable (try again later),
#: 2 when what the person gave or set up must change first, 70 for a bug (sysexits' EX_SOFTWARE)
UNAVAILABLE, MISCONFIGURED, BUG = 1, 2, 70
#: PostgreSQL's SQLSTATEs for a missing table, a missing database and a refused login
_UNDEFINED_TABLE, _NO_DATABASE, _LOGIN_REFUSED = "42P01", "3D000", ("28P01", "28000")


@dataclass(frozen=True)
class Failure:
    message: str
    exit_code: int


def describe(exc: BaseException, database_url: str | None) -> Failure:
    """The one line for `exc` (and its causes); an unknown exception is reported as a bug."""
    where = _safe_location(database_url)
    for cause in _chain(exc):
        if isinstance(cause, httpx.TransportError):  # before its OSError: not the database's
            return Failure(
                f"cannot reach {_host(cause)} ({type(cause).__name__}): check SAP Integration - "
                "Base URL (or Token URL) and the network",
                UNAVAILABLE,
            )
        if isinstance(cause, UndecryptableSecret):
            return Failure(
                f"{cause}: set the key the secrets were stored with (after `bridge config "
                "rotate-key`, give `new,old` until every replica has the new key)",
                MISCONFIGURED,
            )
        state = _sqlstate(cause)
        if state == _UNDEFINED_TABLE or _sqlite_says(cause, "no such table"):
            return Failure(
                f"the database {where} is not migrated: run `bridge migrate` first",
                MISCONFIGURED,
            )
        if state == _NO_DATABASE:
            return Failure(
                f"the database {where} does not exist: create it, or check DATABASE_URL",
                MISCONFIGURED,
            )
        if state in _LOGIN_REFUSED:
            return Failure(
                f"the database {where} refused the login: check the user and password in "
                "DATABASE_URL",
                MISCONFIGURED,
            )
        if _sqlite_says(cause, "unable to open database file"):
            return Failure(
                f"cannot open the SQLite file {where}: its folder must exist and be writable",
                MISCONFIGURED,
            )
        if isinstance(cause, OSError):
            reason = cause.strerror or str(cause) or type(cause).__name__
            return Failure(
                f"cannot reach the database {where} ({reason}): check DATABASE_URL and that "
                "the server is running",
                UNAVAILABLE,
            )
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return Failure(
        f"unexpected {type(exc).__name__}: {first_line} (a bug in the bridge: please report "
        "it; BRIDGE_CLI_TRACEBACK=1 prints the traceback)",
        BUG,
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # SQLAlchemy keeps the driver's error in `.orig`; asyncpg's adapter in `__cause__`
        context = None if current.__suppress_context__ else current.__context__
        stack.extend(
            e
            for e in (context, current.__cause__, getattr(current, "orig", None))
            if isinstance(e, BaseException)
        )


def _host(exc: httpx.TransportError) -> str:
    try:
        return exc.request.url.host or "SAP"
    except RuntimeError:  # raised without a request
        return "SAP"


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else None


def _sqlite_says(exc: BaseException, words: str) -> bool:
    return isinstance(exc, sqlite3.Error) and words in str(exc)


def _safe_location(database_url: str | None) -> str:
    """Where the database is, without its password: `host:port/name` or the SQLite path."""
    if not database_url:
        return "(no DATABASE_URL)"
    try:
        url = make_url(database_url)
    except ArgumentError:
        return "(DATABASE_URL does not parse)"
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
