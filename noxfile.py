"""Developer sessions: `nox` runs tests, lint and typecheck; `nox -s bench` and `nox -s specs` on demand."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

SPEC_IDS = (
    "scenecraft",
    "ai-product-photography",
    "consistent-character",
    "sd1.5-scifi",
    "furniture-staging",
)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (what CI runs)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: print ratios against a baseline measured in the same run."""
    session.install("-e", ".[test]")
    session.run(
        "pytest", "tests/bench", "-p", "no:cacheprovider", "-s", "-q", "--override-ini=addopts="
    )


CASSETTE_RECIPES = ("spring", "lighting")


@nox.session
def cassettes(session: nox.Session) -> None:
    """Record the shipped cassettes again, against the bundled simulator (the free preview)."""
    session.install("-e", ".")
    out = session.create_tmp()
    for name in CASSETTE_RECIPES:
        session.run(
            "render", f"recipes/{name}.yaml", "--backend", "preview",
            "--cassette", f"cassettes/{name}.yaml", "--record", "all", "--out", out,
            env={"RENDER_HOME": out},
        )  # fmt: skip


@nox.session
def specs(session: nox.Session) -> None:
    """Regenerate specs/*.yaml from the API pages in specs/pages/ and their overlays."""
    session.install("-e", ".")
    for spec_id in SPEC_IDS:
        session.run(
            "render", "specs", "import", f"specs/pages/{spec_id}.txt",
            "--overlay", f"specs/overlays/{spec_id}.yaml", "-o", f"specs/{spec_id}.yaml",
        )  # fmt: skip
