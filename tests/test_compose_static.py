"""docker-compose.yml and the Dockerfile, checked without Docker (no engine runs here).

The compose file is validated against the Compose Specification's schema by check-jsonschema
(vendored in the package: no network), which catches misspelt keys and wrong types. What a schema
cannot see is checked here, by resolving the file the way Compose would (``${VAR:-default}``
interpolation) and handing every command line and ``LOCUST_*`` / ``LOADKIT_*`` variable to the
parser that will really read it: Locust's own (with the kit's options), ``loadkit``'s and the
platform's. The Dockerfile is read with dockerfile-parse and ``.dockerignore`` with the Docker
SDK's own matcher.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import locust
import pytest
import yaml
from docker.utils.build import PatternMatcher, exclude_paths
from image_files import copies, dockerfile, image_env, instructions, repo_path_of
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import TypeAdapter

from loadkit import endpoints, registry
from loadkit.platform.config import config_from_args
from loadkit.platform.server import build_parser as build_platform_parser
from loadkit.plugin import setup as _plugin  # noqa: F401  (adds the kit's options to Locust's)
from loadkit.registry import SCENARIOS
from loadkit.settings import Settings, env_name

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_TEXT = COMPOSE_FILE.read_text()
CHECK_JSONSCHEMA = (sys.executable, "-m", "check_jsonschema")
DOCS_TEXT = (REPO / "docs" / "docker.md").read_text()
LOCUST_SERVICES = ("master", "worker")
#: ``${NAME}``, ``${NAME:-default}`` etc.; ``$$`` is an escaped dollar.
_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)


# -- resolving the files the way their tools do ----------------------------------------------------


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution for the forms this file may use."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        if name is None:
            raise AssertionError(f"unbraced ${match['bare']}: write ${{{match['bare']}:-default}}")
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if value is None:
            raise AssertionError(f"${{{name}}} has no default and is not set")
        return value

    return _VARIABLE.sub(substitute, text)


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    resolved = yaml.safe_load(interpolate(COMPOSE_TEXT, env or {}))
    assert isinstance(resolved, dict)
    return resolved


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as the container gets it (null values: passed through if set)."""
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "use the mapping form of environment:"
    return {
        str(k): str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in raw.items()
        if v is not None
    }


def locust_parser() -> Any:
    """Locust's own parser with the kit's options, reading no config file."""
    return locust.argument_parser.get_parser(default_config_files=[])


def parse_locust(service: Mapping[str, Any]) -> Any:
    """Parse a Locust service's command and environment exactly as ``locust`` in it would."""
    command = service["command"]
    assert isinstance(command, list), "use the exec (list) form of command:"
    try:
        return locust_parser().parse_args(args=command, env_vars=service_env(service))
    except SystemExit as exc:  # argparse printed the reason
        raise AssertionError(f"Locust rejects {command}: exit {exc.code}") from None


def dockerignore_patterns() -> list[str]:
    text = (REPO / ".dockerignore").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


# -- the compose file ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_config_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # nothing of the developer's (locust.conf, .env) is read


def test_compose_spec_schema() -> None:
    done = subprocess.run(
        [*CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_built_service_builds_the_dockerfile() -> None:
    services = compose()["services"]
    for name in ("platform", *LOCUST_SERVICES):
        build = services[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).resolve() == REPO / "Dockerfile"


def test_every_variable_has_a_default_and_is_documented() -> None:
    names = set()
    for match in _VARIABLE.finditer(COMPOSE_TEXT):
        if match.group(0) == "$$":
            continue
        assert match["bare"] is None, f"unbraced variable ${match['bare']}"
        assert match["op"] == ":-", f"${{{match['name']}}} needs a default: ${{NAME:-default}}"
        names.add(match["name"])
    undocumented = sorted(n for n in names if f"`{n}`" not in DOCS_TEXT)
    assert not undocumented, f"document these in docs/docker.md: {undocumented}"


def test_master_and_workers_run_the_same_locustfile_and_shape() -> None:
    services = compose({"LOADKIT_SCENARIO": "analytics", "LOADKIT_PROFILE": "spike"})
    master, worker = (parse_locust(services["services"][name]) for name in LOCUST_SERVICES)
    assert master.master and not master.worker
    assert worker.worker and not worker.master
    assert master.locustfile == worker.locustfile
    assert [PurePosixPath(p).name for p in master.locustfile.split(",")] == [
        "analytics.py",
        "spike.py",
    ]


@pytest.mark.parametrize("profile", [*registry.PROFILES, "custom"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_scenario_and_profile_resolves_to_files_in_the_image(
    scenario: str, profile: str
) -> None:
    services = compose({"LOADKIT_SCENARIO": scenario, "LOADKIT_PROFILE": profile})["services"]
    options = parse_locust(services["master"])
    for container_path in options.locustfile.split(","):
        assert repo_path_of(container_path).is_file(), container_path
    # The verdict picks the baseline by scenario: the locustfile's name and the variable agree.
    assert PurePosixPath(options.locustfile.split(",")[0]).stem == options.scenario == scenario


def test_locust_and_kit_variables_exist() -> None:
    """Locust and the kit ignore unknown variables: a typo would silently change nothing."""
    parser = locust_parser()
    locust_vars = {a.env_var for a in parser._actions if getattr(a, "env_var", None)}
    kit_source = "\n".join(p.read_text() for p in (REPO / "src" / "loadkit").rglob("*.py"))
    services = compose()["services"]
    for name in ("platform", *LOCUST_SERVICES):
        for var in services[name].get("environment") or {}:
            if var.startswith("LOCUST_"):
                assert var in locust_vars, f"{name}: Locust has no {var}"
            elif var.startswith("LOADKIT_") or var in ("API_URL", "API_KEY"):
                assert f'"{var}"' in kit_source or var in _settings_vars(), f"{name}: {var}?"


def _settings_vars() -> dict[str, str]:
    return {env_name(field): field for field in Settings.model_fields}


def test_kit_setting_defaults_match_the_kit() -> None:
    """Compose spells out the kit's defaults; they must not drift from ``Settings``."""
    env = service_env(compose()["services"]["worker"])
    fields = _settings_vars()
    for var, value in env.items():
        # Compose aims at its own `platform` service, which must be on the allow-list.
        if var in fields and var not in ("API_URL", "API_KEY", "LOADKIT_ALLOWED_HOSTS"):
            info = Settings.model_fields[fields[var]]
            assert TypeAdapter(info.annotation).validate_python(value) == info.default, var


def test_headless_variant_parses() -> None:
    env = {"LOCUST_HEADLESS": "true", "LOCUST_EXPECT_WORKERS": "4"}
    master = parse_locust(compose(env)["services"]["master"])
    assert master.headless and master.expect_workers == 4
    assert master.expect_workers_max_wait > 0  # a missing worker cannot hang a CI run forever
    assert not parse_locust(compose()["services"]["master"]).headless  # web UI by default


def test_master_publishes_the_web_ui_on_loopback_and_keeps_results() -> None:
    master = compose()["services"]["master"]
    ports = [str(p) for p in master["ports"]]
    assert any(p.endswith(":8089") for p in ports)
    assert all(p.startswith("127.0.0.1:") for p in ports), "publish on the host's loopback only"
    (volume,) = master["volumes"]
    source, target = volume.split(":")[:2]
    assert source == "./results"
    options = parse_locust(master)
    for path in (options.results_dir, options.csv_prefix, options.html_file):
        assert PurePosixPath(path).is_relative_to(target), path
    assert not options.stats_history_enabled or options.csv_prefix  # Locust's own rule


def test_workers_can_scale() -> None:
    services = compose()["services"]
    worker = services["worker"]
    assert "ports" not in worker and "container_name" not in worker
    options = parse_locust(worker)
    assert options.master_host in services and parse_locust(services[options.master_host]).master
    assert "master" in worker["depends_on"]


def test_platform_listens_where_the_generators_and_healthcheck_look() -> None:
    services = compose()["services"]
    platform = services["platform"]
    # What the launcher runs too (`loadkit target` would pass the same flags through).
    assert platform["entrypoint"] == ["python", "-m", "loadkit.platform"]
    platform_env = service_env(platform)
    # The real validation, opt-in included: a non-loopback --host without it is refused.
    args = build_platform_parser().parse_args(platform["command"])
    config = config_from_args(args, platform_env)
    assert config.host == "0.0.0.0" and config.port > 0
    health = " ".join(platform["healthcheck"]["test"])
    assert f"127.0.0.1:{config.port}{endpoints.HEALTH}" in health
    assert any(str(p).endswith(f":{config.port}") for p in platform["ports"])
    for name in LOCUST_SERVICES:
        env = service_env(services[name])
        url = urlsplit(env["API_URL"])
        assert (url.hostname, url.port) == ("platform", config.port), name
        assert env["API_KEY"] == platform_env["API_KEY"], f"{name} would get 401s"
    assert services["master"]["depends_on"]["platform"]["condition"] == "service_healthy"
    assert platform["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in services["redis"]


# -- the Dockerfile ----------------------------------------------------------------------------


def test_base_image_is_the_locust_the_kit_pins() -> None:
    image, _, tag = dockerfile().baseimage.partition(":")
    assert image == "locustio/locust"
    assert tag == locust.__version__
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = [Requirement(d) for d in pyproject["project"]["dependencies"]]
    (pin,) = [r for r in pins if r.name == "locust"]
    assert pin.specifier.contains(tag)


def test_copied_sources_exist_and_are_not_dockerignored() -> None:
    patterns = dockerignore_patterns()
    context = exclude_paths(str(REPO), patterns)  # what `docker build .` sends
    for src, _dest in copies():
        assert (REPO / src).exists(), src
        assert src.rstrip("/") in context, f".dockerignore hides {src}"
        for path in (REPO / src).rglob("*"):
            relative = path.relative_to(REPO).as_posix()
            if path.is_file() and "__pycache__" not in path.parts:
                assert relative in context, f".dockerignore hides {relative}"
    # What `pip install .` reads besides the package: the readme named in pyproject.toml.
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in {src for src, _ in copies()}
    matcher = PatternMatcher(patterns)
    for secret_or_noise in (".env", "results/x", ".git/config", "src/loadkit/__pycache__/a.pyc"):
        assert matcher.matches(secret_or_noise), secret_or_noise


def test_image_points_the_kit_at_its_copied_files() -> None:
    env = image_env()
    expected = {
        "LOADKIT_LOCUSTFILES_DIR": "locustfiles",
        "LOADKIT_SHAPES_DIR": "shapes",
        "LOADKIT_BASELINES_DIR": "baselines",
    }
    kit_source = "\n".join(p.read_text() for p in (REPO / "src" / "loadkit").rglob("*.py"))
    for var, folder in expected.items():
        assert f'"{var}"' in kit_source, f"the kit does not read {var}"
        assert repo_path_of(env[var] + "/").resolve() == REPO / folder
    assert env["LOADKIT_RESULTS_DIR"] == "/results"


def test_install_goes_into_locusts_interpreter_and_runs_unprivileged() -> None:
    runs = " ".join(instructions("RUN"))
    assert "python -m pip install" in runs
    assert not re.search(r"(?<!-m )\bpip3? install", runs), "a bare pip may be another Python's"
    users = instructions("USER")
    assert users and users[-1] not in ("root", "0")
    assert instructions("ENTRYPOINT") == ['["locust"]']


# -- what the containers import is what the image installs -------------------------------------


def _imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports anywhere (function-level imports included: they run
    when the feature is used), except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _kit_module_file(name: str) -> Path | None:
    base = REPO / "src" / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(entry_files: list[Path]) -> dict[str, str]:
    """Top-level third-party modules reachable from ``entry_files`` through the kit's own
    modules, each with one kit file that imports it."""
    seen: set[Path] = set()
    todo = list(entry_files)
    found: dict[str, str] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "loadkit":
                parts = name.split(".")
                for i in range(2, len(parts) + 1):  # the package __init__s run too
                    module = _kit_module_file(".".join(parts[:i]))
                    if module is not None:
                        todo.append(module)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, path.relative_to(REPO).as_posix())
    return found


def installed_distributions() -> set[str]:
    """Distributions `pip install <target>` in the Dockerfile brings: pyproject's dependencies
    (plus the extras it names), transitively, markers evaluated for this Python."""
    runs = " ".join(instructions("RUN"))
    target = re.search(r"python -m pip install (?:--\S+ )*(\.(?:\[[\w,-]+\])?)", runs)
    assert target, "the Dockerfile installs the kit with `python -m pip install .`"
    extras = set(re.findall(r"[\w-]+", target.group(1)[1:]))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in pyproject["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in pyproject["optional-dependencies"][extra]]
    closure: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in closure or (requirement.marker and not requirement.marker.evaluate()):
            continue
        closure.add(name)
        for extra_requirement in metadata.requires(requirement.name) or []:
            nested = Requirement(extra_requirement)
            in_extra = nested.marker is not None and any(
                nested.marker.evaluate({"extra": e}) for e in requirement.extras
            )
            if nested.marker is None or nested.marker.evaluate({"extra": ""}) or in_extra:
                wanted.append(nested)
    return closure


def test_the_image_installs_everything_the_containers_import() -> None:
    """`pip install .` installs pyproject's dependencies only: a module the kit imports but does
    not declare works in a developer's virtualenv and fails in the image."""
    entries = [
        REPO / "src" / "loadkit" / "platform" / "__main__.py",  # the platform service
        *(REPO / "locustfiles").glob("*.py"),  # master and workers
        *(REPO / "shapes").glob("*.py"),
    ]
    installed = installed_distributions()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # A dependency declared for other Pythons only (tomli below 3.11) counts as installed.
    declared = {canonicalize_name(Requirement(r).name) for r in pyproject["dependencies"]}
    providers = metadata.packages_distributions()
    missing = {
        module: where
        for module, where in third_party_imports(entries).items()
        if not {canonicalize_name(d) for d in providers.get(module, [])} & installed
        and canonicalize_name(module) not in declared
    }
    assert not missing, f"imported but not installed by the Dockerfile's pip install: {missing}"
