"""The local journal of a run whose ledger database stopped answering (issue 14): calls written
synced, replayed in order by the next process that opens the ledger, a line cut by a kill ignored,
and nothing that sends allowed in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.ledger import Ledger
from engine.pending import Pending


def _ledger(tmp_path: Path) -> Ledger:
    book = Ledger(tmp_path / "ledger.sqlite", home=tmp_path / "home")
    book.start_run("r1", recipe="city", recipe_path="r", model="m", backend="segmind",
                   out_dir="/o", budget_usd=1)  # fmt: skip
    book.job("r1", "a", model="m", backend="segmind", payload_sha256="h", status="sending",
             reserved_usd=0.01)  # fmt: skip
    return book


def test_journaled_calls_replay_in_order_when_the_ledger_opens_again(tmp_path: Path) -> None:
    _ledger(tmp_path).close()
    pending = Pending(tmp_path / "home" / "pending", str(tmp_path / "ledger.sqlite"))
    pending.add("update", "r1", "a", status="submitted", request_id="q1", poll_url="s", result_url="r")  # fmt: skip
    pending.add("settle_request", "r1", "a", "succeeded", cost_usd=0.01, request_id="q1", output_paths=["a.png"])  # fmt: skip
    pending.add("finish_run", "r1", "done", rate_limited=0, learned_rpm=None)
    assert pending.written == 3
    book = Ledger(tmp_path / "ledger.sqlite", home=tmp_path / "home")
    assert book.replayed == 3
    assert pending.files() == []
    row = book.row("r1", "a")
    assert row is not None
    assert (row["status"], row["request_id"], row["cost_usd"]) == ("succeeded", "q1", 0.01)
    assert book.run("r1")["status"] == "done"  # type: ignore[index]
    book.close()


def test_a_line_cut_by_a_kill_is_not_a_call(tmp_path: Path) -> None:
    _ledger(tmp_path).close()
    pending = Pending(tmp_path / "home" / "pending", str(tmp_path / "ledger.sqlite"))
    pending.add("finish_job", "r1", "a", "failed", error="boom")
    with pending.files()[0].open("a", encoding="utf-8") as file:
        file.write('{"call": "finish_job", "args": ["r1", "a", "succ')
    book = Ledger(tmp_path / "ledger.sqlite", home=tmp_path / "home")
    assert book.replayed == 1
    assert book.row("r1", "a")["status"] == "failed"  # type: ignore[index]
    book.close()


def test_another_ledgers_journal_is_left_alone(tmp_path: Path) -> None:
    other = Pending(tmp_path / "home" / "pending", "postgresql://elsewhere/ledger")
    other.add("finish_run", "r9", "done")
    _ledger(tmp_path).close()
    assert len(other.files()) == 1


def test_nothing_that_sends_may_wait_in_the_journal(tmp_path: Path) -> None:
    pending = Pending(tmp_path / "pending", "x")
    with pytest.raises(ValueError, match="sending cannot wait in a local journal"):
        pending.add("sending", "r1", "a")
    assert pending.files() == []
