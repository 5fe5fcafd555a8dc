"""Benchmarks of execution against the simulator on loopback (its own process, tiny images).

- 2,000 jobs at 100 ms latency and concurrency 64, against the ideal (jobs / concurrency × latency);
  and 640 jobs at 1 s, where the client's CPU stops mattering and only scheduling shows.
- A loop over the official SDK (`submit_async(...).wait()`, its documented way) on the same server.
- Polling: status polls per job and how late completion is noticed, relative to the job's latency.
- Peak memory of a whole run at 10,000 jobs against 1,000.
Printed, not asserted: machines here are noisy.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from segmind import SegmindClient

from engine.backends import segmind_backend
from engine.executor import execute
from engine.plan import build_plan
from engine.recipe import load_recipe
from engine.results import RunOptions
from tests.helpers import simulator_process, write_tree

CONCURRENCY = 64


def _recipe(tmp_path: Path, jobs: int) -> Path:
    width = 50
    rows = -(-jobs // width)
    write_tree(
        tmp_path,
        {
            "bench.yaml": f"""\
                model: sd1.5-scifi
                price_usd: 0.0001
                budget_usd: 100
                max_jobs: 20000
                matrix:
                  row: {list(range(rows))}
                  column: {list(range(width))}
                params:
                  prompt: "city {{{{ row }}}} {{{{ column }}}}"
                  base64: true
                """
        },
    )
    return tmp_path / "bench.yaml"


def _run(tmp_path: Path, base: str, jobs: int) -> tuple[float, float, list[float], list[int]]:
    plan = build_plan(load_recipe(_recipe(tmp_path, jobs)))
    plan = plan.model_copy(update={"jobs": plan.jobs[:jobs], "budget_usd": 100})
    started, cpu = time.perf_counter(), time.process_time()
    summary = execute(
        plan,
        backend=segmind_backend("sk-bench", base_url=base),
        out_dir=tmp_path / "out",
        options=RunOptions(concurrency=CONCURRENCY, home=tmp_path / "home"),
    )
    assert summary.count("succeeded") == jobs
    return (
        time.perf_counter() - started,
        time.process_time() - cpu,
        [r.seconds for r in summary.results],
        [r.polls for r in summary.results],
    )


def test_execution_against_the_ideal_time(tmp_path: Path) -> None:
    lines = ["\nexecution, concurrency 64, sd1.5-scifi over v2 (submit, status, result):"]
    for jobs, latency in ((2000, 0.1), (640, 1.0)):
        with _simulator(latency) as base:
            wall, cpu, _, _ = _run(tmp_path / f"{jobs}", base, jobs)
        ideal = jobs / CONCURRENCY * latency
        lines.append(
            f"  {jobs:,} jobs at {latency * 1000:.0f} ms: {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.2f}x "
            f"(client CPU {cpu:.2f} s, {cpu / jobs * 1000:.1f} ms a job)"
        )
    print("\n".join(lines))


def test_against_a_loop_over_the_official_sdk(tmp_path: Path) -> None:
    sample = 20
    with _simulator(0.1) as base:
        client = SegmindClient(api_key="sk-bench", base_url=base + "/v1")
        started = time.perf_counter()
        for index in range(sample):
            client.submit_async("sd1.5-scifi", prompt=f"sdk {index}", base64=True).wait()
        per_job = (time.perf_counter() - started) / sample
        client._client.close()
        ours, _, _, _ = _run(tmp_path, base, 2000)
    print(
        f"\nofficial SDK loop (submit_async().wait(), default 1 s polls): {per_job:.2f} s a job, "
        f"so ~{per_job * 2000:,.0f} s for 2,000; ours {ours:.1f} s: {per_job * 2000 / ours:,.0f}x faster"
    )


def test_polling_efficiency(tmp_path: Path) -> None:
    latency = 1.0
    with _simulator(latency) as base:
        _, _, seconds, polls = _run(tmp_path, base, 256)
    late = [
        (s - latency) / latency for s in seconds[CONCURRENCY:]
    ]  # after the first wave has taught it
    first = [(s - latency) / latency for s in seconds[:CONCURRENCY]]
    print(
        f"\npolling, 256 jobs of {latency:.0f} s: {sum(polls) / len(polls):.2f} status polls a job (max {max(polls)}); "
        f"completion noticed {100 * sum(late) / len(late):.1f}% late on average after the first wave "
        f"(first wave {100 * sum(first) / len(first):.1f}%); target: within 10%, about 8 polls at most"
    )


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from engine.executor import execute
    from engine.backends import segmind_backend
    from engine.plan import build_plan
    from engine.recipe import load_recipe
    from engine.results import RunOptions
    recipe, base, jobs, tmp = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    plan = build_plan(load_recipe(recipe))
    plan = plan.model_copy(update={"jobs": plan.jobs[:jobs], "budget_usd": 100})
    summary = execute(plan, backend=segmind_backend("sk-bench", base_url=base), out_dir=tmp / "out",
                      options=RunOptions(concurrency=64, home=tmp / "home"))
    assert summary.count("succeeded") == jobs
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent (pytest,
    # already large after the other benchmarks), so both sizes read the same floor.
    status = Path("/proc/self/status").read_text()
    print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    """
)


def test_peak_memory_at_ten_thousand_jobs_against_one_thousand(tmp_path: Path) -> None:
    peaks = {}
    with _simulator(0.0) as base:
        for jobs in (1000, 10000):
            recipe = _recipe(tmp_path / f"r{jobs}", jobs)
            done = subprocess.run(
                [sys.executable, "-c", _MEMORY_SCRIPT, str(recipe), base, str(jobs), str(tmp_path / f"m{jobs}")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            peaks[jobs] = int(done.stdout.split()[-1]) / 1024
    print(
        f"\npeak RSS of a whole run: 1,000 jobs {peaks[1000]:.0f} MiB, 10,000 jobs {peaks[10000]:.0f} MiB, "
        f"ratio {peaks[10000] / peaks[1000]:.2f}x (target 1.2x)"
    )


def _simulator(latency: float) -> contextlib.AbstractContextManager[str]:
    return simulator_process("--images", "tiny", "--balance", "1000000", "--latency", str(latency))
