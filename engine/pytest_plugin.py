"""A pytest plugin that turns recipes into tests: ``pytest recipes/``.

For each recipe file it collects four tests, and a fifth where it has a baseline: the recipe expands; every payload validates; the
rendered payloads equal the recipe's snapshot (``__snapshots__/<name>.json`` beside it, sorted keys;
``--render-update`` writes new and changed snapshots and deletes none); and, where a cassette
exists (``<render-cassettes>/<name>.yaml``), every job replays from it (``--render-update`` records
the changed jobs again when the cassette is of the bundled simulator, which costs nothing). A template change thus shows
up as a readable diff, naming the jobs it changed, before any money is spent. Where the recipe has
a baseline (``__snapshots__/<name>.baseline.json``, from ``render baseline RUN``), ``looks`` checks
that the replayed pictures still look like the approved ones; a drifted picture is written to
``.render-looks/<name>/`` with its difference image, and ``--render-update`` accepts the new look.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from engine.errors import RenderError
from engine.files import atomic_write
from engine.localimage import LocalImage

__all__ = ["RecipeCollector", "RecipeItem"]

SNAPSHOTS = "__snapshots__"
_JOBS_NAMED = 5


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("render", "render recipes (engine.pytest_plugin)")
    group.addoption(
        "--render-update",
        action="store_true",
        default=False,
        help="Write new and changed recipe snapshots instead of failing (deletes none).",
    )
    group.addoption(
        "--render-cassettes",
        default=None,
        metavar="DIR",
        help="Where recipe cassettes live (default: the render_cassettes ini value, else cassettes/).",
    )
    parser.addini(
        "render_cassettes",
        "Folder of recipe cassettes, relative to the rootdir.",
        default="cassettes",
    )


_WRITTEN = pytest.StashKey[list[str]]()


def _wrote(config: pytest.Config, what: str) -> None:
    config.stash.setdefault(_WRITTEN, []).append(what)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """With --render-update: every snapshot and cassette written, so the user knows what to review."""
    if not config.getoption("render_update"):
        return
    written = config.stash.get(_WRITTEN, [])
    terminalreporter.section("render --render-update")
    if not written:
        terminalreporter.write_line("nothing to write: every snapshot and cassette is up to date")
    for line in written:
        terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "render: a test generated from a render recipe")
    config.addinivalue_line("markers", "render_replay: a recipe test that replays its cassette")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> RecipeCollector | None:
    if file_path.suffix not in {".yaml", ".yml"} or SNAPSHOTS in file_path.parts:
        return None
    if not _looks_like_recipe(file_path):
        return None
    collector: RecipeCollector = RecipeCollector.from_parent(parent, path=file_path)
    return collector


def _looks_like_recipe(path: Path) -> bool:
    """A mapping with model, matrix and params at the top: cassettes and other YAML are left alone."""
    try:
        head = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    keys = {
        line.split(":", 1)[0] for line in head.splitlines() if line[:1].isalpha() and ":" in line
    }
    return {"model", "matrix", "params"} <= keys


class RecipeCollector(pytest.File):
    """One recipe file: five tests."""

    def collect(self) -> Iterator[RecipeItem]:
        for check in ("expands", "validates", "snapshot", "replays", "looks"):
            item: RecipeItem = RecipeItem.from_parent(self, name=check, check=check)
            item.add_marker("render")
            if check in ("replays", "looks"):
                item.add_marker("render_replay")
            yield item


class RecipeProblem(Exception):
    """A recipe test failed; the message is the whole report (no traceback)."""


class RecipeItem(pytest.Item):
    """One check of one recipe."""

    def __init__(self, *, check: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def runtest(self) -> None:
        getattr(self, f"_{self.check}")()

    def _file(self) -> Any:
        from engine.recipe import load_recipe  # noqa: PLC0415 - pytest loads plugins early: stay light

        try:
            return load_recipe(self.path)
        except RenderError as exc:
            raise RecipeProblem(str(exc)) from exc

    def _plan(self) -> Any:
        from engine.plan import build_plan  # noqa: PLC0415

        try:
            return build_plan(self._file())
        except RenderError as exc:
            raise RecipeProblem(str(exc)) from exc

    def _expands(self) -> None:
        plan = self._plan()
        if not plan.jobs and not plan.errors:
            raise RecipeProblem(f"{self.path}: the matrix gives no job")

    def _validates(self) -> None:
        plan = self._plan()
        if plan.errors:
            lines = [
                f"{error.location}: {error.param or 'output'}: {error.message} [{error.job or 'every job'}]"
                for error in plan.errors
            ]
            raise RecipeProblem(f"{len(plan.errors)} payload problems:\n" + "\n".join(lines))

    def _snapshot(self) -> None:
        plan = self._plan()
        current = _snapshot_of(plan, base=self.path.parent)
        target = self.path.parent / SNAPSHOTS / f"{self.path.stem}.json"
        text = json.dumps(current, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        stored = target.read_text(encoding="utf-8") if target.exists() else None
        if stored == text:
            return
        if self.config.getoption("render_update"):
            atomic_write(target, text)
            _wrote(self.config, f"{'wrote' if stored is None else 'updated'} snapshot {target}")
            return
        if stored is None:
            raise RecipeProblem(
                f"{self.path}: no snapshot yet ({target}); run pytest --render-update to write it"
            )
        raise RecipeProblem(_snapshot_diff(self.path.stem, json.loads(stored), current))

    def _cassette(self) -> Path:
        option = self.config.getoption("render_cassettes")
        folder = (
            Path(option)
            if option
            else Path(self.config.rootpath) / str(self.config.getini("render_cassettes"))
        )
        cassette = folder / f"{self.path.stem}.yaml"
        if not cassette.exists():
            pytest.skip(f"no cassette for this recipe ({cassette})")
        return cassette

    def _looks(self) -> None:
        """The replayed pictures look like the baseline's approved ones (``--render-update``
        accepts what they look like now); a drifted one is written out with its difference."""
        from engine.baseline import baseline_path, drift, load_baseline, write_baseline  # noqa: PLC0415

        path = baseline_path(self.path)
        if not path.exists():
            pytest.skip(f"no baseline for this recipe ({path}; render baseline RUN makes one)")
        cassette = self._cassette()
        baseline = load_baseline(path)
        with tempfile.TemporaryDirectory(prefix="render-looks-") as scratch:
            summary = self._replayed(cassette, free=False, rerecord=False, scratch=Path(scratch))
            out = Path(scratch) / "out"
            pictures = {r.job: out / r.outputs[0] for r in summary.results if r.outputs}
            drifts = [item for item in drift(baseline, pictures) if item.changed]
            if not drifts:
                return
            if self.config.getoption("render_update"):
                from engine.imagediff import perceptual_hash  # noqa: PLC0415

                write_baseline(
                    baseline.updated(
                        {item.job: perceptual_hash(pictures[item.job]) for item in drifts}
                    ),
                    path,
                )
                _wrote(self.config, f"updated baseline {path} ({len(drifts)} pictures)")
                return
            lines = [
                f"{len(drifts)} of {len(baseline.jobs)} pictures no longer look like the baseline "
                f"{path} (distance above {baseline.threshold:.3f}):"
            ]
            lines += [
                self._kept(item.job, item.distance, pictures[item.job], baseline) for item in drifts
            ]
            lines.append("run pytest --render-update to accept how they look now")
            raise RecipeProblem("\n".join(lines))

    def _kept(self, job: str, distance: float, picture: Path, baseline: Any) -> str:
        """The drifted picture and its difference from the approved one, written beside the
        test run (``.render-looks/<recipe>/``); the line that names them."""
        folder = Path(self.config.rootpath) / ".render-looks" / self.path.stem
        stem = job.replace("/", "-")
        new = folder / f"{stem}.new{picture.suffix}"
        atomic_write(new, picture.read_bytes())
        approved = baseline.picture(job)
        if approved is None:
            return f"  {job}: {distance:.3f}; new picture {new} (the approved one is not on this machine)"
        from engine.imagediff import compare_images  # noqa: PLC0415

        diff = folder / f"{stem}.diff.png"
        atomic_write(diff, compare_images(approved, picture).heatmap)
        return f"  {job}: {distance:.3f}; new picture {new}, difference {diff}"

    def _replays(self) -> None:
        cassette = self._cassette()
        from engine.cassettes import recorded_against_preview  # noqa: PLC0415

        # A cassette of the bundled simulator is free to bring up to date; one of Segmind costs money
        # to record, so only the user re-records it (render RECIPE --cassette ... --record new).
        free = recorded_against_preview(cassette)
        rerecord = bool(self.config.getoption("render_update")) and free
        with tempfile.TemporaryDirectory(prefix="render-replay-") as scratch:
            summary = self._replayed(cassette, free=free, rerecord=rerecord, scratch=Path(scratch))
        if summary.cassette:
            _wrote(self.config, f"re-recorded cassette {summary.cassette.removeprefix('wrote ')}")
        failed: dict[str, list[str]] = defaultdict(list)
        for result in summary.results:
            if result.status != "succeeded":
                failed[result.error or result.status].append(result.job)
        if failed:
            count = sum(len(jobs) for jobs in failed.values())
            lines = [f"{count} of {len(summary.results)} jobs do not replay from {cassette}:"]
            lines += [f"{_count_jobs(jobs)}: {error}" for error, jobs in failed.items()]
            if not free:
                lines.append("--render-update leaves a cassette recorded against Segmind alone")
            raise RecipeProblem("\n".join(lines))

    def _replayed(self, cassette: Path, *, free: bool, rerecord: bool, scratch: Path) -> Any:
        """The recipe run from its cassette (or, ``rerecord``, on the preview into it), into
        ``scratch/out`` with a ledger of its own."""
        from engine.backends import preview_backend, replay_backend  # noqa: PLC0415
        from engine.executor import execute  # noqa: PLC0415
        from engine.results import CassetteUse, RunOptions  # noqa: PLC0415

        advice = (
            "run pytest --render-update to record it again, free"
            if free
            else f"this cassette was recorded against Segmind: re-record it with `render {self.path} "
            f"--cassette {cassette} --record new` (it costs money)"
        )
        use = CassetteUse(
            cassette, "new" if rerecord else "none", drop_unused=rerecord, miss_advice=advice
        )
        options = RunOptions(force=True, home=scratch / "home", cassette=use)
        return execute(
            self._plan(),
            backend=preview_backend() if rerecord else replay_backend(),
            out_dir=scratch / "out",
            options=options,
        )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, RecipeProblem):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"recipe {self.path.name}: {self.check}"


def _snapshot_of(plan: Any, *, base: Path) -> dict[str, Any]:
    """Job id → payload and output; a local image appears as its path relative to the recipe."""

    def shown(value: Any) -> Any:
        if isinstance(value, LocalImage):
            try:
                return str(value.path.relative_to(base))
            except ValueError:
                return str(value.path)
        return value

    return {
        job.id: {
            "payload": {key: shown(value) for key, value in job.payload.items()},
            "output": job.output,
        }
        for job in plan.jobs
    }


def _snapshot_diff(name: str, stored: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """Which jobs changed and how, one field at a time, prompts clause by clause."""
    added = [job for job in current if job not in stored]
    removed = [job for job in stored if job not in current]
    # Jobs whose field changed the same way are one entry: a template edit reads once.
    changes: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
    for job in current:
        if job not in stored or stored[job] == current[job]:
            continue
        old, new = _fields(stored[job]), _fields(current[job])
        for field in sorted(set(old) | set(new)):
            if old.get(field) != new.get(field):
                diff = tuple(_value_diff(old.get(field, "(absent)"), new.get(field, "(absent)")))
                changes[(field, diff)].append(job)
    changed_jobs = sorted({job for jobs in changes.values() for job in jobs})
    lines = [
        f"the payloads of recipe {name} changed: {len(changed_jobs)} jobs changed, {len(added)} added, "
        f"{len(removed)} removed (run pytest --render-update to accept)"
    ]
    for (field, diff), jobs in changes.items():
        lines.append(f"{field} in {_count_jobs(jobs)}:")
        lines += ["  " + line for line in diff]
    if added:
        lines.append(f"added: {_count_jobs(added)}")
    if removed:
        lines.append(f"removed: {_count_jobs(removed)}")
    return "\n".join(lines)


def _fields(entry: Mapping[str, Any]) -> dict[str, str]:
    fields = {
        f"payload.{k}": json.dumps(v, ensure_ascii=False)
        for k, v in entry.get("payload", {}).items()
    }
    fields["output"] = json.dumps(entry.get("output"))
    return fields


def _value_diff(old: str, new: str) -> list[str]:
    def clauses(text: str) -> list[str]:
        try:
            value = json.loads(text)
        except ValueError:
            return [text]
        return [c.strip() for c in value.split(",")] if isinstance(value, str) else [text]

    diff = difflib.unified_diff(clauses(old), clauses(new), lineterm="", n=0)
    return [line for line in diff if not line.startswith(("---", "+++", "@@"))]


def _count_jobs(jobs: list[str]) -> str:
    shown = ", ".join(jobs[:_JOBS_NAMED]) + (", …" if len(jobs) > _JOBS_NAMED else "")
    return f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} ({shown})"
