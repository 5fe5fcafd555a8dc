"""Where a run's requests go, and what that means for money: Segmind (or a stand-in for its hosts),
the free in-process preview, or a replay of a cassette.

A backend is cheap to name: the preview's simulator (and Pillow) load only when a run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from engine import settings

if TYPE_CHECKING:
    import httpx

__all__ = ["Backend", "preview_backend", "replay_backend", "segmind_backend"]

# The host cassettes recognise as the bundled simulator's (engine.cassettes.PREVIEW_HOST).
_PREVIEW_URL = "http://preview.local"


@dataclass(frozen=True)
class Backend:
    """Segmind's three hosts (or a stand-in for all three) and a key; for the preview and a replay,
    the simulator inside this process."""

    name: Literal["segmind", "preview", "replay"]
    base_url: str
    api_key: str
    storage_url: str | None = None
    history_url: str | None = None
    # Builds the in-process transport (the preview, a replay); None: real sockets.
    transport: Callable[[], httpx.AsyncBaseTransport] | None = None

    @property
    def charges(self) -> bool:
        """Whether a request costs money: Segmind's (or its stand-in's) do; a preview and a replay
        never do, so they need no price and no budget."""
        return self.name == "segmind"

    @property
    def replays(self) -> bool:
        """Answers come from a cassette on disk: nothing to wait for between polls."""
        return self.name == "replay"

    @property
    def label(self) -> str:
        """The backend as the ledger names it: money sent to a stand-in is never "Segmind's"."""
        return settings.host_label(self.base_url) if self.charges else self.name

    @property
    def storage(self) -> str | None:
        """The host uploads are remembered for across runs: Segmind's storage keeps them; a
        preview's lives as long as its run."""
        return self.storage_url if self.charges else None


def segmind_backend(api_key: str, base_url: str | None = None) -> Backend:
    hosts = settings.segmind_hosts(base_url)
    return Backend(
        "segmind", hosts.api, api_key, storage_url=hosts.storage, history_url=hosts.history
    )


def preview_backend() -> Backend:
    """The simulator inside this process, through httpx's ASGI transport: no socket, no cost."""
    return Backend("preview", _PREVIEW_URL, "preview", transport=_in_process)


def replay_backend() -> Backend:
    """A cassette's answers (engine.cassettes): nothing is sent, nothing is charged. Should a
    request slip past the cassette, only the in-process simulator would hear it."""
    return Backend("replay", _PREVIEW_URL, "preview", transport=_in_process)


def _in_process() -> httpx.AsyncBaseTransport:
    import httpx  # noqa: PLC0415 - only when a run starts

    from engine.simulator import SimulatorConfig, all_specs, create_app  # noqa: PLC0415 - Pillow only when previewing

    app = create_app(SimulatorConfig(specs=all_specs(), balance_usd=1e12))
    return httpx.ASGITransport(app=app)
