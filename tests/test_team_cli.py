"""Issue 14: a team's ledger from the command line. Budget pools (`render budget set/show`, a
recipe's `budget_pool`, `--pool`), submitted runs and their workers (`render submit`, `render work`,
`render status`, `render fetch`), and `--ledger` / RENDER_LEDGER_URL, on SQLite and PostgreSQL.

Every command runs as a user types it (the `render` fixture), against the simulator on loopback;
its charge log is the judge of what was paid.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import pytest

from engine.database import shown
from engine.ledger import MIGRATIONS
from engine.pools import period_start
from engine.results import RunOptions
from engine.worker import worker_name
from tests.helpers import Render, write_tree

KEY = "sk-team"
RUN_ID = r"\d{8}-\d{6}-\d{3}-[0-9a-f]{4}"


def scifi(name: str, *, jobs: int = 3, pool: str | None = None) -> str:
    """A recipe of ``jobs`` sd1.5-scifi jobs at $0.01 each (distinct prompts: distinct charges)."""
    numbers = ", ".join(str(n) for n in range(jobs))
    return f"""\
        name: {name}
        model: sd1.5-scifi
        price_usd: 0.01
        budget_usd: 1
        {f"budget_pool: {pool}" if pool else ""}
        matrix:
          n: [{numbers}]
        params:
          prompt: "a sci-fi {name} numbered {{{{ n }}}}"
        """


@pytest.fixture(autouse=True)
def _no_ledger_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer's RENDER_LEDGER_URL reaches a test, and whatever a test leaves in it (a leak
    of --ledger) is undone after it."""
    monkeypatch.setenv("RENDER_LEDGER_URL", "")  # recorded, so the teardown restores the original
    monkeypatch.delenv("RENDER_LEDGER_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment choosing the ledger: none (the SQLite file in the user data folder), or a
    fresh PostgreSQL database through RENDER_LEDGER_URL."""
    if request.param == "sqlite":
        return {}
    return {"RENDER_LEDGER_URL": str(request.getfixturevalue("pg_url"))}


def where(env: dict[str, str]) -> str:
    """How the commands name the ledger ``env`` chooses."""
    if "RENDER_LEDGER_URL" in env:
        return shown(env["RENDER_LEDGER_URL"])
    return str(Path(os.environ["XDG_DATA_HOME"]) / "render" / "ledger.sqlite")


def lines(text: str) -> list[str]:
    """Printed lines without the padding a table leaves at their ends."""
    return [line.rstrip() for line in text.splitlines()]


def words(text: str) -> list[str]:
    """Printed lines with runs of spaces (a table's columns) as one, durations as "N s"."""
    return [re.sub(r"\b\d+ s\b", "N s", " ".join(line.split())) for line in text.splitlines()]


def run_of(out: str) -> str:
    """The run id `render submit` printed."""
    found = re.match(rf"submitted ({RUN_ID}): ", out)
    assert found is not None, out
    return found.group(1)


# --- render budget set / show ----------------------------------------------------------------


def test_budget_set_creates_a_pool_and_show_lists_it(
    render: Render, ledger_env: dict[str, str]
) -> None:
    book = where(ledger_env)
    code, out, err = render("budget", "show", **ledger_env)
    assert (code, err) == (0, "")
    assert out == f"no budget pools in {book} (`render budget set NAME USD` makes one)\n"
    assert render("budget", "show", "--json", **ledger_env) == (0, "[]\n", "")

    code, out, err = render("budget", "set", "team", "0.05", "--period", "total", **ledger_env)
    assert (code, err) == (0, "")
    assert out == (
        f"the pool team ($0.05 in all) in {book}: $0.05 left since the start; "
        "runs draw from it with `budget_pool: team` or --pool team\n"
    )
    before = period_start("month")[:10]
    code, out, err = render("budget", "set", "art", "12.5", **ledger_env)  # a month by default
    since = {before, period_start("month")[:10]}  # the same unless the month turned meanwhile
    assert (code, err) == (0, "")
    assert out in {
        f"the pool art ($12.50 a month) in {book}: $12.50 left since {day}; "
        "runs draw from it with `budget_pool: art` or --pool art\n"
        for day in since
    }

    code, out, err = render("budget", "show", **ledger_env)
    assert (code, err) == (0, "")
    assert lines(out) in [
        [
            f"budget pools in {book}",
            "pool  cap     period  since       spent  in flight  held   left",
            f"art   $12.50  month   {day}  $0.00  $0.00      $0.00  $12.50",
            "team  $0.05   total   -           $0.00  $0.00      $0.00  $0.05",
        ]
        for day in since
    ]
    code, out, err = render("budget", "show", "--json", **ledger_env)
    assert (code, err) == (0, "")
    shown_pools = json.loads(out)
    assert shown_pools[0]["since"][:10] in since
    assert shown_pools == [
        {
            "name": "art",
            "cap_usd": 12.5,
            "period": "month",
            "since": shown_pools[0]["since"],
            "spent_usd": 0.0,
            "in_flight_usd": 0.0,
            "held_usd": 0.0,
            "left_usd": 12.5,
        },
        {
            "name": "team",
            "cap_usd": 0.05,
            "period": "total",
            "since": "",
            "spent_usd": 0.0,
            "in_flight_usd": 0.0,
            "held_usd": 0.0,
            "left_usd": 0.05,
        },
    ]


def test_budget_set_again_changes_the_cap_and_the_period(
    render: Render, ledger_env: dict[str, str]
) -> None:
    render("budget", "set", "team", "0.05", **ledger_env)
    code, out, _ = render("budget", "set", "team", "3", "--period", "total", **ledger_env)
    assert code == 0
    assert out.startswith(f"the pool team ($3.00 in all) in {where(ledger_env)}: $3.00 left ")
    code, out, _ = render("budget", "show", "--json", **ledger_env)
    assert code == 0
    assert [(p["name"], p["cap_usd"], p["period"]) for p in json.loads(out)] == [
        ("team", 3.0, "total")
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("a b", "1"),
            "error: 'a b' cannot name a pool: use letters, digits, '.', '_' and '-' (up to 64)\n",
        ),
        (
            (".team", "1"),
            "error: '.team' cannot name a pool: use letters, digits, '.', '_' and '-' (up to 64)\n",
        ),
        (
            ("t" * 65, "1"),
            f"error: '{'t' * 65}' cannot name a pool: use letters, digits, '.', '_' and '-' "
            "(up to 64)\n",
        ),
    ],
    ids=["space", "leading-dot", "too-long"],
)
def test_budget_set_refuses_a_name_that_cannot_name_a_pool(
    render: Render, args: tuple[str, ...], message: str
) -> None:
    assert render("budget", "set", *args) == (2, "", message)
    assert render("budget", "show", "--json") == (0, "[]\n", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("team", "1", "--period", "year"),
            "Error: Invalid value for '--period': 'year' is not one of 'day', 'week', 'month', "
            "'total'.",
        ),
        (
            ("team", "lots"),
            "Error: Invalid value for 'USD': 'lots' is not an amount of dollars, such as 12.50",
        ),
        (
            ("team", "--", "-1"),
            "Error: Invalid value for 'USD': '-1' is not allowed: give a finite amount, 0 or more",
        ),
        # Without `--`, click takes a negative amount for an option.
        (("team", "-1"), "Error: No such option '-1'."),
        (
            ("team", "nan"),
            "Error: Invalid value for 'USD': 'nan' is not allowed: give a finite amount, 0 or more",
        ),
    ],
    ids=["period", "not-dollars", "negative", "negative-as-option", "nan"],
)
def test_budget_set_arguments_are_validated_by_click(
    render: Render, args: tuple[str, ...], message: str
) -> None:
    code, out, err = render("budget", "set", *args)
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == "Usage: render budget set [OPTIONS] NAME USD"
    assert err.splitlines()[-1] == message


# --- a pool shared by runs ---------------------------------------------------------------------


def test_runs_of_two_recipes_share_a_pool_and_never_pass_its_cap(
    render: Render, tmp_path: Path, ledger_env: dict[str, str]
) -> None:
    # alpha names the pool in the recipe, beta on the command line.
    write_tree(tmp_path, {"a.yaml": scifi("alpha", pool="team"), "b.yaml": scifi("beta")})
    render("budget", "set", "team", "0.05", "--period", "total", **ledger_env)
    with render.simulator(unpriced_usd=0.01) as segmind:
        env = {**ledger_env, **segmind.env(KEY)}
        host = segmind.base.removeprefix("http://")
        code, out, err = render("a.yaml", "--no-report", **env)
        assert (code, err.count("succeeded $0.01")) == (0, 3), err
        assert out.startswith(f"alpha: 3 succeeded; $0.03 spent on {host} (SEGMIND_BASE_URL, ")
        assert len(segmind.state.charges) == 3

        code, out, err = render("b.yaml", "--pool", "team", "--no-report", **env)
        segmind.state.settle()
        charges = list(segmind.state.charges)
    # Two of beta's jobs fit; the third was not sent, and the run says the pool stopped it.
    assert len(charges) == 5
    assert code == 3
    assert [re.sub(RUN_ID, "RUN", line) for line in words(out)] == [
        f"beta: 2 succeeded, 1 not sent; $0.02 spent on {host} (SEGMIND_BASE_URL, not Segmind); N s",
        f"outputs {tmp_path}/renders/beta/ (manifest.jsonl; run RUN)",
        "stopped the pool team ($0.05 in all) is spent: the jobs left were not sent",
    ]
    said = err.splitlines()
    # Its estimate was more than the pool had left: it said so, and ran until it ran out.
    assert said[0] == (
        "note: beta: the pool team ($0.05 in all) has $0.02 left, less than the $0.03 this run "
        "would spend: jobs stop when it runs out"
    )
    assert len(said) == 4
    refused = [line for line in said[1:] if "not-sent" in line]
    assert len(refused) == 1
    assert re.fullmatch(
        r"\[\d/3\] \d not-sent: .*the pool team \(\$0\.05 in all\) is spent", refused[0]
    )

    code, out, _ = render("budget", "show", **ledger_env)
    assert code == 0
    assert lines(out)[1:] == [
        "pool  cap    period  since  spent  in flight  held   left",
        "team  $0.05  total   -      $0.05  $0.00      $0.00  $0.00",
    ]
    code, out, _ = render("budget", "show", "--json", **ledger_env)
    (team,) = json.loads(out)
    assert (team["spent_usd"], team["in_flight_usd"], team["held_usd"], team["left_usd"]) == (
        0.05,
        0.0,
        0.0,
        0.0,
    )


def test_a_run_against_a_spent_pool_sends_nothing(
    render: Render, tmp_path: Path, ledger_env: dict[str, str]
) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha", pool="team")})
    render("budget", "set", "team", "0", "--period", "day", **ledger_env)
    with render.simulator(unpriced_usd=0.01) as segmind:
        code, out, err = render("a.yaml", "--no-report", **ledger_env, **segmind.env(KEY))
        assert segmind.state.charges == []
    assert code == 3
    assert out.startswith("alpha: 0 succeeded, 3 not sent; $0.00 spent on ")
    assert err.startswith(
        "note: alpha: the pool team ($0.00 a day) has $0.00 left, less than the $0.03 this run "
        "would spend: jobs stop when it runs out\n"
    )


@pytest.mark.parametrize("named", ["recipe", "option"])
def test_an_unknown_pool_is_refused_naming_the_pools_there_are(
    render: Render, tmp_path: Path, ledger_env: dict[str, str], named: str
) -> None:
    recipe = scifi("alpha", pool="tema") if named == "recipe" else scifi("alpha")
    write_tree(tmp_path, {"a.yaml": recipe})
    args = ("a.yaml",) if named == "recipe" else ("a.yaml", "--pool", "tema")
    with render.simulator(unpriced_usd=0.01) as segmind:
        env = {**ledger_env, **segmind.env(KEY)}
        first = render(*args, **env)
        render("budget", "set", "team", "1", **ledger_env)
        render("budget", "set", "art", "1", **ledger_env)
        second = render(*args, **env)
        submitted = render("submit", *args, **env)
        assert segmind.state.charges == []
        assert segmind.state.jobs == {}
    book = where(ledger_env)
    assert first == (
        2,
        "",
        f"error: no budget pool 'tema' in the ledger {book} (there are no pools yet): "
        "create it with `render budget set tema USD`\n",
    )
    refused = (
        2,
        "",
        f"error: no budget pool 'tema' in the ledger {book} (the pools are art, team): "
        "create it with `render budget set tema USD`\n",
    )
    assert second == refused
    assert submitted == refused
    # Nothing was queued.
    assert render("work", **ledger_env) == (
        0,
        "nothing to work on: no run submitted for preview has a job left to claim\n",
        "",
    )


def test_the_dry_run_says_what_the_pool_has_left(
    render: Render, tmp_path: Path, ledger_env: dict[str, str]
) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha", pool="team")})

    def pool_line() -> str:
        code, out, err = render("a.yaml", "--dry-run", **ledger_env)
        assert (code, err) == (0, "")
        (line,) = [line for line in out.splitlines() if line.startswith("pool ")]
        return line

    render("budget", "set", "team", "0.05", "--period", "week", **ledger_env)
    assert pool_line() == "pool    the pool team ($0.05 a week): $0.05 left"
    render("budget", "set", "team", "0.02", "--period", "week", **ledger_env)
    assert pool_line() == (
        "pool    the pool team ($0.02 a week): $0.02 left (less than this run's cost: jobs stop "
        "when it runs out)"
    )
    code, out, _ = render("a.yaml", "--dry-run", "--pool", "art", **ledger_env)
    assert code == 0
    assert (
        f"\npool    no budget pool 'art' in the ledger {where(ledger_env)} (the pools are team): "
        "create it with `render budget set art USD`\n"
    ) in out
    # A plan without a pool has no pool line.
    write_tree(tmp_path, {"b.yaml": scifi("beta")})
    code, out, _ = render("b.yaml", "--dry-run", **ledger_env)
    assert code == 0
    assert "\npool " not in out


def test_the_dry_run_of_a_pool_before_there_is_a_ledger(render: Render, tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha", pool="team")})
    code, out, err = render("a.yaml", "--dry-run")
    assert (code, err) == (0, "")
    assert (
        "\npool    no budget pool 'team' yet: create it with `render budget set team USD`\n" in out
    )
    assert not Path(where({})).exists()  # a dry run creates no ledger


@pytest.mark.parametrize("command", ["run", "submit"])
def test_a_preview_says_its_pool_does_not_exist(
    render: Render, tmp_path: Path, command: str
) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha", pool="tema")})
    args = ("a.yaml", "--no-report") if command == "run" else ("submit", "a.yaml")
    _, _, err = render(*args)
    assert "no budget pool 'tema'" in err


# --- render submit, work, status, fetch ----------------------------------------------------------


def test_submitted_jobs_are_rendered_by_workers_and_fetched_without_paying(
    render: Render, tmp_path: Path, ledger_env: dict[str, str]
) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha")})
    # The pool lets the first worker render two of the three jobs; the third waits in the queue.
    render("budget", "set", "team", "0.02", "--period", "total", **ledger_env)
    me = worker_name()
    with render.simulator(unpriced_usd=0.01) as segmind:
        env = {**ledger_env, **segmind.env(KEY)}
        host = segmind.base.removeprefix("http://")
        code, out, err = render("submit", "a.yaml", "--pool", "team", **env)
        assert code == 0, err
        run = run_of(out)
        assert out == (
            f"submitted {run}: 3 jobs of alpha (sd1.5-scifi) on segmind@{host}, about $0.03; "
            "budget $1.00, pool team\n"
            f"  work on it: render work --run {run}   (on any machine with this ledger)\n"
        )
        assert err == (
            "note: alpha: the pool team ($0.02 in all) has $0.02 left, less than the $0.03 this "
            "run would spend: jobs stop when it runs out\n"
        )
        assert segmind.state.charges == []  # submitting sends nothing

        code, out, err = render("status", run, **env)
        assert (code, err) == (0, "")
        assert out == (
            f"run {run}: alpha (sd1.5-scifi) on segmind@{host}\n"
            "  jobs      3: 0 done, 0 claimed, 3 queued\n"
            "  outcomes  none yet\n"
            "  money     $0.00 spent; budget $1.00; the pool team ($0.02 in all): $0.02 left\n"
            f"  no worker yet (`render work --run {run}`)\n"
        )

        # The first worker: two jobs, then the pool is spent; the third goes back to the queue.
        code, out, err = render("work", "--run", run, "--concurrency", "1", **env)
        assert code == 3, err
        assert len(segmind.state.charges) == 2
        assert err.splitlines()[0] == f"working on {run} (alpha) as {me}"
        assert words(out)[0] == (
            f"alpha: 2 succeeded, 1 not sent; $0.02 spent on {host} (SEGMIND_BASE_URL, not "
            "Segmind); N s"
        )
        assert words(out)[-1] == (
            "stopped the pool team ($0.02 in all) is spent: the jobs left stay queued (raise it, "
            "then `render work` again)"
        )
        code, out, _ = render("status", run, **env)
        assert lines(out)[1:4] == [
            "  jobs      3: 2 done, 0 claimed, 1 queued",
            "  outcomes  2 succeeded",
            "  money     $0.02 spent; budget $1.00; the pool team ($0.02 in all): $0.00 left",
        ]
        # What is done can be fetched already; the rest is said to be not rendered yet.
        assert render("fetch", run, "--out", "got", **env) == (
            0,
            "fetched 2 files into got: 2 jobs of the run gathered\n  1 job not rendered (yet)\n",
            "",
        )

        # The pool is raised: a second worker (no --run: the oldest run with a job left) ends it.
        render("budget", "set", "team", "0.05", "--period", "total", **ledger_env)
        code, out, err = render("work", **env)
        assert code == 0, err
        assert err.splitlines()[0] == f"working on {run} (alpha) as {me}"
        assert words(out)[0] == (
            f"alpha: 1 succeeded; $0.01 spent on {host} (SEGMIND_BASE_URL, not Segmind); N s"
        )
        assert render("work", **env) == (
            0,
            f"nothing to work on: no run submitted for segmind@{host} has a job left to claim\n",
            "",
        )
        segmind.state.settle()
        paid = list(segmind.state.charges)
        assert len(paid) == 3
        assert len({charge.payload_sha256 for charge in paid}) == 3

        code, out, err = render("status", run, "--json", **env)
        assert (code, err) == (0, "")
        progress = json.loads(out)
        workers = progress.pop("workers")
        assert progress == {
            "run": run,
            "recipe": "alpha",
            "model": "sd1.5-scifi",
            "backend": f"segmind@{host}",
            "queue": {"queued": 0, "claimed": 0, "done": 3, "expired": 0},
            "outcomes": {"succeeded": 3},
            "spent_usd": 0.03,
            "unknown_usd": 0,
            "budget_usd": 1.0,
            "pool": "team",
            "pool_left_usd": 0.02,
        }
        assert [
            (w["worker"], w["status"], w["done"], w["failed"], w["in_flight"], w["spent_usd"])
            for w in workers
        ] == [(me, "done", 2, 0, 0, 0.02), (me, "done", 1, 0, 0, 0.01)]
        assert all(re.fullmatch(RUN_ID, w["run"]) for w in workers)
        assert len({w["run"] for w in workers} | {run}) == 3

        code, out, err = render("status", run, **env)
        assert (code, err) == (0, "")
        first, second = (w["run"] for w in workers)
        assert words(out) == [
            f"run {run}: alpha (sd1.5-scifi) on segmind@{host}",
            "jobs 3: 3 done, 0 claimed, 0 queued",
            "outcomes 3 succeeded",
            "money $0.03 spent; budget $1.00; the pool team ($0.05 in all): $0.02 left",
            "worker run status done failed in flight spent heard from",
            f"{me} {first} done 2 0 0 $0.02 N s ago",
            f"{me} {second} done 1 0 0 $0.01 N s ago",
        ]

        # Fetching pays nothing: the two files already there are kept, the third is downloaded.
        assert render("fetch", run, "--out", "got", **env) == (
            0,
            "fetched 1 file into got (2 already there): 3 jobs of the run gathered\n",
            "",
        )
        assert render("fetch", run, "--out", "fresh", **env) == (
            0,
            "fetched 3 files into fresh: 3 jobs of the run gathered\n",
            "",
        )
        assert render("fetch", run, "--out", "fresh", **env) == (
            0,
            "fetched 0 files into fresh (3 already there): 3 jobs of the run gathered\n",
            "",
        )
        segmind.state.settle()
        assert segmind.state.charges == paid
    rendered = tmp_path / "renders" / "alpha"
    for folder in ("got", "fresh"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == [
            "0.png",
            "1.png",
            "2.png",
        ]
        for name in ("0.png", "1.png", "2.png"):
            assert (tmp_path / folder / name).read_bytes() == (rendered / name).read_bytes()


def test_fetch_needs_no_key_only_the_ledger(
    render: Render, tmp_path: Path, ledger_env: dict[str, str]
) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha", jobs=2)})
    with render.simulator(unpriced_usd=0.01) as segmind:
        env = {**ledger_env, **segmind.env(KEY)}
        run = run_of(render("submit", "a.yaml", **env).out)
        assert render("work", "--run", run, **env).code == 0
        paid = list(segmind.state.charges)
        # Another machine: the ledger, no SEGMIND_API_KEY.
        assert render("fetch", run, "--out", "elsewhere", **ledger_env) == (
            0,
            "fetched 2 files into elsewhere: 2 jobs of the run gathered\n",
            "",
        )
        assert segmind.state.charges == paid
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["0.png", "1.png"]


def test_work_with_nothing_submitted_says_so(render: Render, ledger_env: dict[str, str]) -> None:
    assert render("work", **ledger_env) == (
        0,
        "nothing to work on: no run submitted for preview has a job left to claim\n",
        "",
    )


def test_status_and_fetch_of_a_run_never_submitted_are_refused(
    render: Render, tmp_path: Path, ledger_env: dict[str, str]
) -> None:
    message = (
        f"error: no submitted run 'NOPE' in the ledger {where(ledger_env)} "
        "(`render submit RECIPE` submits one and prints its id)\n"
    )
    assert render("status", "NOPE", **ledger_env) == (2, "", message)
    assert render("status", "NOPE", "--json", **ledger_env) == (2, "", message)
    assert render("fetch", "NOPE", "--out", "got", **ledger_env) == (2, "", message)
    assert render("work", "--run", "NOPE", **ledger_env) == (2, "", message)


def test_a_plain_run_is_no_submitted_run(render: Render, tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha", jobs=1)})
    code, out, _ = render("a.yaml", "--no-report")
    assert code == 0
    plain = re.search(rf"run ({RUN_ID})\)", out)
    assert plain is not None
    code, out, err = render("status", plain.group(1))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: no submitted run '{plain.group(1)}' in the ledger ")


def test_a_worker_on_another_backend_is_refused(
    render: Render, tmp_path: Path, ledger_env: dict[str, str]
) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha")})
    with render.simulator(unpriced_usd=0.01) as segmind:
        host = segmind.base.removeprefix("http://")
        run = run_of(render("submit", "a.yaml", **ledger_env, **segmind.env(KEY)).out)
        refused = (
            2,
            "",
            f"error: run {run} was submitted for segmind@{host}; this worker renders on preview "
            f"(set SEGMIND_API_KEY, and SEGMIND_BASE_URL to {host}'s URL)\n",
        )
        # No key: the preview; or a key, but --backend preview.
        assert render("work", "--run", run, **ledger_env) == refused
        # Without --run, a worker takes only runs submitted for its own backend.
        assert render("work", **ledger_env) == (
            0,
            "nothing to work on: no run submitted for preview has a job left to claim\n",
            "",
        )
        preview = ("work", "--run", run, "--backend", "preview")
        assert render(*preview, **ledger_env, **segmind.env(KEY)) == refused
        assert segmind.state.charges == []
        code, out, _ = render("status", run, **ledger_env)
        assert code == 0
        assert lines(out)[1] == "  jobs      3: 0 done, 0 claimed, 3 queued"
        assert lines(out)[-1] == f"  no worker yet (`render work --run {run}`)"


def test_a_worker_for_a_preview_run_with_a_key_is_refused(
    render: Render, tmp_path: Path, ledger_env: dict[str, str]
) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha")})
    run = run_of(render("submit", "a.yaml", **ledger_env).out)
    with render.simulator(unpriced_usd=0.01) as segmind:
        host = segmind.base.removeprefix("http://")
        code, out, err = render("work", "--run", run, **ledger_env, **segmind.env(KEY))
        assert segmind.state.charges == []
    assert (code, out) == (2, "")
    assert err.startswith(
        f"error: run {run} was submitted for preview; this worker renders on segmind@{host} "
    )


def test_a_workers_job_lines_count_up_like_a_runs(render: Render, tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha")})
    run = run_of(render("submit", "a.yaml").out)
    code, _, err = render("work", "--run", run, "--concurrency", "1")
    assert code == 0
    assert [line.split()[0] for line in err.splitlines()[1:]] == ["[1/3]", "[2/3]", "[3/3]"]


def test_a_worker_without_run_works_on_the_runs_of_its_own_backend(
    render: Render, tmp_path: Path
) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha"), "b.yaml": scifi("beta")})
    with render.simulator(unpriced_usd=0.01) as segmind:
        theirs = run_of(render("submit", "a.yaml", **segmind.env(KEY)).out)
    mine = run_of(render("submit", "b.yaml").out)
    code, _, err = render("work")
    assert err.splitlines()[0] == f"working on {mine} (beta) as {worker_name()}"
    assert code == 0
    assert lines(render("status", theirs).out)[1] == "  jobs      3: 0 done, 0 claimed, 3 queued"


@pytest.fixture
def one_try(monkeypatch: pytest.MonkeyPatch) -> None:
    """`render fetch` tries each download once (its default retries take minutes on a host that
    does not resolve): the test is about what it tries, not how often."""
    monkeypatch.setattr("engine.results.RunOptions", functools.partial(RunOptions, max_attempts=1))


@pytest.mark.usefixtures("one_try")
def test_fetch_of_a_preview_run_does_not_download_from_the_in_process_preview(
    render: Render, tmp_path: Path
) -> None:
    write_tree(tmp_path, {"a.yaml": scifi("alpha", jobs=1)})
    run = run_of(render("submit", "a.yaml").out)
    assert render("work", "--run", run).code == 0
    code, _, err = render("fetch", run, "--out", "got")
    assert "preview.local" not in err
    assert code == 0


# --- --ledger and RENDER_LEDGER_URL ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("run",),
        ("ledger",),
        ("ledger", "migrate"),
        ("settle",),
        ("report",),
        ("review",),
        ("approve",),
        ("reject",),
        ("export",),
        ("budget", "set"),
        ("budget", "show"),
        ("submit",),
        ("work",),
        ("status",),
        ("fetch",),
    ],
    ids=" ".join,
)
def test_every_command_that_reads_the_ledger_takes_ledger(
    render: Render, command: tuple[str, ...]
) -> None:
    code, out, _ = render(*command, "--help")
    assert code == 0
    assert re.search(r"^\s+--ledger URL\s+The ledger: a team's postgresql:// URL", out, re.M), out


def test_ledger_points_one_command_at_a_ledger_and_the_next_is_back_on_its_own(
    render: Render, tmp_path: Path, pg_url: str
) -> None:
    own = where({})
    team = shown(pg_url)
    code, out, _ = render("budget", "set", "team", "1", "--ledger", pg_url)
    assert code == 0
    assert f" in {team}: " in out
    assert "RENDER_LEDGER_URL" not in os.environ
    assert render("budget", "show") == (
        0,
        f"no budget pools in {own} (`render budget set NAME USD` makes one)\n",
        "",
    )
    assert lines(render("budget", "show", "--ledger", pg_url).out)[0] == f"budget pools in {team}"
    # A SQLite file named by --ledger; the environment's ledger for the commands after it.
    other = tmp_path / "shared" / "team.sqlite"
    code, out, _ = render(
        "budget", "set", "art", "2", "--ledger", str(other), RENDER_LEDGER_URL=pg_url
    )
    assert code == 0
    assert f" in {other}: " in out
    assert other.is_file()
    code, out, _ = render("budget", "show", "--json", RENDER_LEDGER_URL=pg_url)
    assert [pool["name"] for pool in json.loads(out)] == ["team"]
    code, out, _ = render("budget", "show", "--json", RENDER_LEDGER_URL=str(other))
    assert [pool["name"] for pool in json.loads(out)] == ["art"]
    # A command that fails is as leak-free as one that succeeds.
    code, _, err = render("status", "NOPE", "--ledger", str(other))
    assert code == 2
    assert f"in the ledger {other} " in err
    assert "RENDER_LEDGER_URL" not in os.environ
    assert json.loads(render("budget", "show", "--json").out) == []


def test_ledger_does_not_leak_out_of_a_command_line_click_refuses(
    render: Render, tmp_path: Path
) -> None:
    other = tmp_path / "team.sqlite"
    render("budget", "set", "art", "1", "--ledger", str(other))
    code, _, err = render("budget", "set", "team", "1", "--period", "year", "--ledger", str(other))
    assert code == 2
    assert "Invalid value for '--period'" in err
    # The next command, with no --ledger, is on the user's own ledger again.
    assert render("budget", "show") == (
        0,
        f"no budget pools in {where({})} (`render budget set NAME USD` makes one)\n",
        "",
    )


def test_a_ledger_url_is_shown_without_its_password(render: Render, pg_url: str) -> None:
    # The throwaway server trusts local connections: the password is ignored, never printed.
    secret = pg_url.replace("://render@", "://render:hunter2@")
    assert secret != pg_url
    code, out, err = render("budget", "set", "team", "1", "--period", "total", "--ledger", secret)
    assert (code, err) == (0, "")
    assert out.startswith(f"the pool team ($1.00 in all) in {shown(secret)}: ")
    assert shown(secret) == pg_url.replace("://render@", "://render:***@")
    assert "hunter2" not in out
    code, out, err = render("budget", "show", RENDER_LEDGER_URL=secret)
    assert code == 0
    assert lines(out)[0] == f"budget pools in {shown(secret)}"
    assert "hunter2" not in out + err


def test_ledger_migrate_on_a_fresh_database_says_what_it_applied_then_up_to_date(
    render: Render, pg_url: str
) -> None:
    team = shown(pg_url)
    latest = len(MIGRATIONS)
    assert render("ledger", "migrate", "--ledger", pg_url) == (
        0,
        f"ledger {team}: schema 0 -> {latest} ({latest} migrations applied)\n",
        "",
    )
    assert render("ledger", "migrate", RENDER_LEDGER_URL=pg_url) == (
        0,
        f"ledger {team}: schema {latest} of {latest}, up to date\n",
        "",
    )
    # The group's own --ledger works for its subcommand too.
    assert render("ledger", "--ledger", pg_url, "migrate") == (
        0,
        f"ledger {team}: schema {latest} of {latest}, up to date\n",
        "",
    )
    # The user's own ledger was never touched.
    assert not Path(where({})).exists()
