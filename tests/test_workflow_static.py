"""The nightly load-test workflow, checked without GitHub.

check-jsonschema validates it against the GitHub workflow schema it vendors (keys, types, event
names, ``timeout-minutes`` required by its custom check). What a schema cannot see is checked
here: the commands it runs are parsed by the parser that will run them (``loadkit.cli.main``), the
scenarios, profiles and baselines they name exist, nothing swallows ``loadkit``'s exit code,
results are uploaded even after a failure, and secrets never reach a script's text.

actionlint would add what neither does: type-checking of ``${{ }}`` expressions and of the
contexts each key may use, shellcheck on ``run:`` scripts, the ``with:`` inputs of known actions,
runner labels and cron syntax. It is not installed here (no Debian package; its PyPI wrapper
downloads the binary at install time).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadkit import registry
from loadkit.cli.main import build_parser
from loadkit.core.baselines import default_baseline_path
from loadkit.registry import SCENARIOS
from loadkit.results.references import is_series_name
from loadkit.settings import Settings

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "load-test.yml"
#: ``owner/repo@ref`` (optionally ``/path``) with a version tag or a full commit SHA.
_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")
_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")


def load() -> dict[Any, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(doc, dict)
    return doc


def job() -> dict[str, Any]:
    return load()["jobs"]["load-test"]


def matrix_scenarios() -> list[str]:
    """The scenarios the matrix runs: what ``loadkit scenarios --json`` prints in the job that
    lists them (the workflow reads the registry instead of naming scenarios itself)."""
    lister = load()["jobs"]["scenarios"]
    (step,) = [s for s in lister["steps"] if s.get("id") == "registry"]
    command = step["run"].split("$(", 1)[1].split(")", 1)[0]
    assert command == "loadkit scenarios --json"
    done = subprocess.run(
        [sys.executable, "-m", "loadkit.cli", *shlex.split(command)[1:]], capture_output=True,
        text=True, timeout=30, check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    names = json.loads(done.stdout)
    assert isinstance(names, list) and all(isinstance(n, str) for n in names)
    return names


def steps() -> list[dict[str, Any]]:
    return job()["steps"]


def loadkit_commands() -> list[list[str]]:
    """Every ``loadkit ...`` command line (without a ``>>`` redirection), once per scenario."""
    commands = []
    for step in steps():
        for line in str(step.get("run", "")).splitlines():
            if line.strip().startswith("loadkit "):
                command = line.split(">>")[0]
                for scenario in matrix_scenarios():
                    commands.append(shlex.split(command.replace("$SCENARIO", scenario)))
    return commands


def step_running(command: str) -> dict[str, Any]:
    (found,) = [s for s in steps() if str(s.get("run", "")).startswith(f"loadkit {command} ")]
    return found


@pytest.mark.parametrize(
    "schema", ["vendor.github-workflows", "custom.github-workflows-require-timeout"]
)
def test_github_workflow_schema(schema: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_action_is_pinned() -> None:
    uses = [step["uses"] for step in steps() if "uses" in step]
    for ref in uses:
        assert _PINNED.match(ref), f"{ref}: pin a version (@v4) or a commit SHA"
    required = ("actions/checkout@v4", "actions/setup-python@v5", "actions/upload-artifact@v4")
    assert set(required) <= set(uses)


def test_matrix_covers_every_scenario() -> None:
    assert sorted(matrix_scenarios()) == sorted(SCENARIOS)
    assert job()["needs"] == "scenarios"
    assert job()["strategy"]["matrix"]["scenario"] == (
        "${{ fromJSON(needs.scenarios.outputs.names) }}"
    )
    assert job()["strategy"]["fail-fast"] is False  # one red scenario must not hide the others


def test_commands_parse_and_name_real_scenarios_profiles_and_baselines() -> None:
    commands = loadkit_commands()
    assert commands
    profiles_run = set()
    for command in commands:
        assert command[0] == "loadkit"
        args = build_parser().parse_args(command[1:])  # exits (fails the test) on a bad flag
        if args.command != "run":
            series = args.runs if args.command == "compare" else [args.series]
            for name in series:
                assert is_series_name(name), name
                scenario, profile = name.partition("@")[0].split("/")
                assert scenario in SCENARIOS and profile in registry.PROFILES
            continue
        assert args.scenario in SCENARIOS
        assert args.profile in registry.PROFILES
        assert default_baseline_path(args.scenario).is_file()
        profiles_run.add(args.profile)
    assert profiles_run == {"smoke", "average"}
    names = [step.get("run", "") for step in steps()]
    smoke = next(i for i, run in enumerate(names) if "--profile smoke" in run)
    average = next(i for i, run in enumerate(names) if "--profile average" in run)
    assert smoke < average, "smoke first: average load is pointless if the scenario is broken"


def test_nothing_swallows_the_verdict() -> None:
    assert not job().get("continue-on-error")
    for step in steps():
        run = str(step.get("run", ""))
        if "loadkit " in run:
            assert not step.get("continue-on-error"), step["name"]
            assert not re.search(r"\|\|\s*(true|:)|\|\s*tee|;\s*true", run), step["name"]
            if run.startswith("loadkit history "):
                # A report: shown after a failure too, but not for a cancelled job.
                assert step["if"] == "${{ !cancelled() }}", step["name"]
            else:
                assert "if" not in step, f"{step['name']}: must run only after the steps before"


def test_the_history_is_restored_before_the_runs_compared_after_and_saved_whatever_happened() -> (
    None
):
    names = [str(s.get("uses", "")) + str(s.get("run", "")) for s in steps()]
    restore = names.index("actions/cache/restore@v4")
    save = names.index("actions/cache/save@v4")
    runs = [i for i, n in enumerate(names) if n.startswith("loadkit run ")]
    compare = next(i for i, n in enumerate(names) if n.startswith("loadkit compare "))
    assert restore < min(runs) and max(runs) < compare < save
    restored, saved = steps()[restore]["with"], steps()[save]["with"]
    # The file the runs write (loadkit's default history) is the one kept between nights.
    history = Settings(_env_file=None).history_path.as_posix()
    assert restored["path"] == saved["path"] == history == "results/history.sqlite"
    assert restored["key"] == saved["key"]
    assert saved["key"].startswith(restored["restore-keys"])
    assert "matrix.scenario" in job()["env"]["HISTORY_KEY"]  # one history per scenario
    assert steps()[save]["if"] == "${{ !cancelled() }}"  # a failed night is kept too
    # The comparison fails the job on a regression, and the first night (no reference) passes.
    args = build_parser().parse_args(shlex.split(step_running("compare")["run"])[1:])
    assert (args.fail_on, args.no_reference) == ("regression", "pass")
    assert args.runs[0].endswith("@reference") and args.runs[1].endswith("@latest")


def test_results_are_kept_whatever_the_verdict() -> None:
    (upload,) = [s for s in steps() if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload["if"] == "always()"
    assert upload["with"]["path"].rstrip("/") == "results"
    assert "matrix.scenario" in upload["with"]["name"]  # one artifact per matrix job


def test_secrets_stay_out_of_scripts() -> None:
    """Secrets reach commands as environment variables, never as text in a script or an echo."""
    env = job()["env"]
    assert "secrets.API_KEY" in env["API_KEY"]
    assert "API_URL" in env["API_URL"]
    for step in steps():
        run = str(step.get("run", ""))
        for expression in _EXPRESSION.findall(run):
            assert "secrets." not in expression, step.get("name")
        for line in run.splitlines():
            if re.search(r"\b(echo|printf|cat)\b", line):
                assert not re.search(r"\$\{?API_KEY\b", line), line
        assert "set -x" not in run
    for step in steps():
        for key in step.get("with") or {}:
            assert "secrets." not in str(step["with"][key]), step.get("name")
