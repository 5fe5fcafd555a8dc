"""How a simulator behaves: latency, injected faults (deterministic under a seed), balance, auth, images,
retention, the per-key rate limit and how its 429 says when to come back, uploads and strict URL inputs."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import InputError
from engine.specs import Spec

__all__ = ["FAULT_KINDS", "FaultRates", "ResetFormat", "SimulatorConfig", "parse_faults"]

# New kinds go at the end: a seed's schedule of the older kinds stays what it was.
FAULT_KINDS = ("429", "500", "502", "504", "406", "drop", "slow", "failed", "lost")
# How ``x-rate-limit-reset-at-utc`` is written: nobody documents Segmind's format, so the engine is
# tested against each reading (ISO 8601, epoch seconds, HTTP-date).
ResetFormat = Literal["iso", "epoch", "http-date"]
# Segmind keeps a queued request one hour after its submission; its output files about a week.
_RETENTION_S = 3600.0
_FILES_PER_RETENTION = 7 * 24


class FaultRates(BaseModel):
    """The chance of each fault on a submission (a POST); they add up to at most 1."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    rate_limited: float = Field(default=0.0, ge=0, le=1, alias="429")
    server_error: float = Field(default=0.0, ge=0, le=1, alias="500")
    bad_gateway: float = Field(default=0.0, ge=0, le=1, alias="502")
    gateway_timeout: float = Field(default=0.0, ge=0, le=1, alias="504")
    no_credits: float = Field(default=0.0, ge=0, le=1, alias="406")
    drop: float = Field(default=0.0, ge=0, le=1)
    slow: float = Field(default=0.0, ge=0, le=1)
    failed: float = Field(default=0.0, ge=0, le=1)
    # The request succeeds, but its output files are not there yet (404 or 403) for ``lost_for_s``.
    lost: float = Field(default=0.0, ge=0, le=1)

    def pick(self, draw: float) -> str | None:
        """The fault a uniform draw in [0, 1) lands on, or None."""
        edge = 0.0
        for kind, rate in zip(FAULT_KINDS, self._rates(), strict=True):
            edge += rate
            if draw < edge:
                return kind
        return None

    def _rates(self) -> tuple[float, ...]:
        return (
            self.rate_limited,
            self.server_error,
            self.bad_gateway,
            self.gateway_timeout,
            self.no_credits,
            self.drop,
            self.slow,
            self.failed,
            self.lost,
        )

    @property
    def total(self) -> float:
        return sum(self._rates())


def parse_faults(text: str) -> FaultRates:
    """``"429=0.1,500=0.05,drop=0.02"`` → rates; anything else is an input error saying what is allowed."""
    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, sep, value = item.partition("=")
        if not sep or kind.strip() not in FAULT_KINDS:
            raise InputError(
                f"--faults {text}: '{item}' is not KIND=RATE; kinds: {', '.join(FAULT_KINDS)}"
            )
        try:
            rate = float(value)
        except ValueError:
            raise InputError(f"--faults {text}: '{value}' is not a rate between 0 and 1") from None
        if not 0 <= rate <= 1:
            raise InputError(f"--faults {text}: '{value}' is not a rate between 0 and 1")
        rates[kind.strip()] = rate
    faults = FaultRates.model_validate(rates)
    if faults.total > 1:
        raise InputError(f"--faults {text}: the rates add up to {faults.total:g}, more than 1")
    return faults


class SimulatorConfig(BaseModel):
    """Everything that shapes one simulator's answers."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    specs: tuple[Spec, ...]
    # A fixed latency for every endpoint; else the spec's figure times ``latency_scale``; else none.
    latency_s: float | None = Field(default=None, ge=0)
    latency_scale: float | None = Field(default=None, ge=0)
    faults: FaultRates = FaultRates()
    seed: int = 0
    slow_extra_s: float = Field(default=2.0, ge=0)
    # An injected 429 says a slot frees this many seconds later (in ``x-rate-limit-reset-at-utc``).
    retry_after_s: int = Field(default=1, ge=0)
    balance_usd: float = Field(default=100.0, ge=0)
    # Price charged for a model whose spec has none (sd1.5-scifi).
    unpriced_usd: float = Field(default=0.0, ge=0)
    # Charge each call this many times its spec's price (Segmind's real charge varies with GPU
    # time), and say so: ``x-cost`` on a sync answer, ``metrics.cost`` in a queued job's result.
    charge_factor: float = Field(default=1.0, gt=0)
    report_cost: bool = False
    # None: any non-empty key is accepted.
    key: str | None = None
    # How long a queued request answers its polls, from its submission; None: Segmind's hour,
    # times ``latency_scale`` when that is set. Output files are kept a week's worth of it (168x).
    retention_s: float | None = Field(default=None, gt=0)
    # Submissions (POSTs to /v1, /v2, /workflows) per key in any ``rate_window_s``; None: no limit.
    rpm: int | None = Field(default=None, ge=1)
    rate_window_s: float = Field(default=60.0, gt=0)
    reset_format: ResetFormat = "iso"
    # Refuse base64 in an image parameter that takes a URL (encoding ``uri``): upload it instead.
    strict_urls: bool = False
    # The upload answer's list: the SDK reads ``file_urls``, Segmind's docs page says ``urls``.
    upload_answer_key: Literal["file_urls", "urls"] = "file_urls"
    # How long a ``lost`` request's output files are missing after it completes.
    lost_for_s: float = Field(default=30.0, ge=0)
    # "preview" composes real previews; "tiny" answers a few-byte image, for load tests.
    images: Literal["preview", "tiny"] = "preview"
    # A larger body is answered 413 unread. The largest real one, furniture-staging's, carries up to
    # four images inline as base64 (4/3 of their size): four 6 MB photos make 32 MB.
    max_body_bytes: int = Field(default=32 * 2**20, gt=0)

    def latency_for(self, spec: Spec) -> float:
        if self.latency_s is not None:
            return self.latency_s
        if self.latency_scale is not None and spec.latency_s is not None:
            return spec.latency_s * self.latency_scale
        return 0.0

    def retention(self) -> float:
        """Seconds a queued request is kept after its submission."""
        if self.retention_s is not None:
            return self.retention_s
        # A scale of 0 would forget every request the moment it is submitted.
        if self.latency_scale:
            return _RETENTION_S * self.latency_scale
        return _RETENTION_S

    def file_retention(self) -> float:
        """Seconds an output file is kept after its request's submission."""
        return self.retention() * _FILES_PER_RETENTION

    def fault(self, path: str, body: bytes, attempt: int) -> str | None:
        """The fault for this attempt at this request: the same seed, request and attempt number give
        the same answer, whatever order concurrent requests arrive in.
        """
        if self.faults.total == 0:
            return None
        digest = hashlib.sha256(f"{self.seed}\0{path}\0{attempt}\0".encode() + body).digest()
        return self.faults.pick(int.from_bytes(digest[:8], "big") / 2**64)

    def lost_status(self, body_sha256: str) -> int:
        """What a ``lost`` request's missing files answer: a CDN says 404, or 403 where listing is
        not allowed (S3). Chosen by the seed and the request, so a schedule replays the same."""
        digest = hashlib.sha256(f"{self.seed}\0lost\0{body_sha256}".encode()).digest()
        return 403 if digest[0] & 1 else 404
