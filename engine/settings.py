"""Where the engine keeps its state and whom it talks to, read from the environment in one place.

- ``RENDER_LEDGER_URL``: a team's shared ledger in PostgreSQL (``postgresql://…``), instead of the
  SQLite file in RENDER_HOME (``--ledger URL`` sets it for one command).
- ``RENDER_HOME``: the ledger and caches. Default: the user's data folder (``platformdirs``), so every
  working folder shares one ledger and a run from another folder never pays again. A ``.render/``
  in the working folder (the default of earlier versions) is still used, and said so.
- ``SEGMIND_API_KEY`` and ``SEGMIND_BASE_URL``: the account and the host that stands in for Segmind.
- ``RENDER_SPECS_PATH``: folders of model specs, searched before the ones shipped with render; the
  first is where ``render specs add`` writes (without it: ``specs/`` in RENDER_HOME).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_HISTORY_URL",
    "DEFAULT_STORAGE_URL",
    "LEDGER_FILE",
    "Home",
    "Hosts",
    "api_key",
    "base_url",
    "host_label",
    "ledger_path",
    "ledger_target",
    "ledger_url",
    "render_home",
    "segmind_hosts",
    "specs_path",
    "user_specs_dir",
]

DEFAULT_BASE_URL = "https://api.segmind.com"
# Segmind Storage (uploads) and request history live on hosts of their own (the official SDK,
# segmind/files.py and segmind/generations.py).
DEFAULT_STORAGE_URL = "https://workflows-api.segmind.com"
DEFAULT_HISTORY_URL = "https://api.spotprod.segmind.com"
LEDGER_FILE = "ledger.sqlite"
_APP = "render"
_LOCAL = ".render"


@dataclass(frozen=True)
class Home:
    """The folder of the ledger, and why it is that one (``env``, ``local`` or ``user``)."""

    path: Path
    source: str

    @property
    def notice(self) -> str | None:
        """A line to tell the user when the ledger is not where they would look for it first."""
        if self.source == "local":
            return (
                f"note: using the ledger in {_LOCAL}/ of this folder (set RENDER_HOME to choose "
                "another; without either, runs share the ledger in your user data folder)"
            )
        return None


def render_home() -> Home:
    """``RENDER_HOME``, else ``.render/`` when the working folder has one, else the user's data folder."""
    chosen = os.environ.get("RENDER_HOME", "").strip()
    if chosen:
        return Home(Path(chosen).expanduser().absolute(), "env")
    local = Path(_LOCAL)
    if (local / LEDGER_FILE).is_file():
        return Home(local.absolute(), "local")
    import platformdirs  # noqa: PLC0415 - only when no folder is named

    return Home(Path(platformdirs.user_data_dir(_APP, appauthor=False)), "user")


def ledger_path(home: Path | None = None) -> Path:
    return (home if home is not None else render_home().path) / LEDGER_FILE


def ledger_url() -> str | None:
    """``RENDER_LEDGER_URL`` (``postgresql://…``, or a SQLite file's path), None when unset."""
    return os.environ.get("RENDER_LEDGER_URL", "").strip() or None


def ledger_target(home: Path | None = None) -> str:
    """Where the ledger is: ``RENDER_LEDGER_URL``, else the SQLite file in ``home`` (RENDER_HOME)."""
    return ledger_url() or str(ledger_path(home))


def user_specs_dir() -> Path:
    """The user's spec folder: the first folder of ``RENDER_SPECS_PATH``, else ``specs/`` in
    RENDER_HOME (where ``render specs add`` writes, and the first place specs are looked up)."""
    named = specs_path()
    return named[0] if named else render_home().path / "specs"


def specs_path() -> list[Path]:
    """The folders ``RENDER_SPECS_PATH`` names (``os.pathsep`` between them), in its order."""
    return [Path(p) for p in os.environ.get("RENDER_SPECS_PATH", "").split(os.pathsep) if p]


def api_key() -> str:
    """``SEGMIND_API_KEY``, without surrounding whitespace; empty when unset."""
    return os.environ.get("SEGMIND_API_KEY", "").strip()


def base_url() -> str:
    """``SEGMIND_BASE_URL`` without a trailing slash, else Segmind's own API host."""
    return (os.environ.get("SEGMIND_BASE_URL", "").strip() or DEFAULT_BASE_URL).rstrip("/")


@dataclass(frozen=True)
class Hosts:
    """Segmind's three hosts: the API, storage (uploads) and request history. The key goes to
    these and to no other host."""

    api: str
    storage: str
    history: str


def segmind_hosts(base: str | None = None) -> Hosts:
    """Segmind's own three hosts; or, when ``base`` (``SEGMIND_BASE_URL``) names another, all three
    under it (their paths do not collide), so one setting moves a simulator, a proxy or a test
    server in for all of Segmind."""
    api = (base or base_url()).rstrip("/")
    if api == DEFAULT_BASE_URL:
        return Hosts(api, DEFAULT_STORAGE_URL, DEFAULT_HISTORY_URL)
    return Hosts(api, api, api)


def host_label(url: str) -> str:
    """How money sent to ``url`` is labelled: ``segmind`` for Segmind itself, else its host."""
    if url.rstrip("/") == DEFAULT_BASE_URL:
        return "segmind"
    parts = urlsplit(url)
    return f"segmind@{parts.netloc or url}"
