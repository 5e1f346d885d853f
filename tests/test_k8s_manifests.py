"""The Kubernetes manifests in deploy/k8s, checked without a cluster.

Every object is validated by ``kubernetes-validate`` (the Kubernetes OpenAPI schemas, strict: an
unknown or misspelt field fails) for each Kubernetes minor version the docs promise, and the
kustomizations are rendered by ``kubectl kustomize`` where kubectl is installed. What a schema
cannot see is checked here: master and workers load the same locustfile and shape, every
``$(VAR)`` a container uses is defined (Kubernetes leaves an undefined one as literal text),
every setting is read by someone, the workers find the master, the key comes from the Secret.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import locust
import pytest
import yaml
from image_files import image_env, repo_path_of

from loadkit.cli.main import build_parser
from loadkit.cli.runner import worker_command
from loadkit.cli.topology import Topology
from loadkit.core.capacity import MIN_MASTER_MILLICORES
from loadkit.platform.config import config_from_args
from loadkit.platform.server import build_parser as build_platform_parser
from loadkit.plugin import setup as _plugin  # noqa: F401  (adds the kit's options to Locust's)
from loadkit.settings import Settings, env_name

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"
#: The Kubernetes minor versions docs/kubernetes.md promises; each one is validated.
SUPPORTED_VERSIONS = tuple(f"1.{minor}" for minor in range(29, 38))
#: Ways to run: a kustomization each. base is in both web and ci.
KUSTOMIZATIONS = ("web", "ci", "platform")
MASTER_PORT = 5557
_REFERENCE = re.compile(r"\$\((\w+)\)")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def objects() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in manifest_files():
        for doc in documents(path):
            yield path, doc


def find(kind: str, name: str) -> dict[str, Any]:
    (found,) = [
        doc for _, doc in objects() if doc["kind"] == kind and doc["metadata"]["name"] == name
    ]
    return found


def config() -> dict[str, str]:
    return find("ConfigMap", "loadkit-config")["data"]


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]


def container(obj: Mapping[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(obj)["containers"]
    return only


SECRET_VALUE = "<from the Secret>"


def container_env(spec: Mapping[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet builds it: envFrom ConfigMaps, then ``env`` in
    order with ``$(VAR)`` expanded from what is defined before (``$$`` escapes)."""
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        assert source["configMapRef"]["name"] == "loadkit-config"
        env.update(config())
    for item in spec.get("env", []):
        if "valueFrom" in item:
            env[item["name"]] = SECRET_VALUE
        else:
            env[item["name"]] = expand(item["value"], env)
    return env


def expand(text: str, env: Mapping[str, str]) -> str:
    unresolved = [name for name in _REFERENCE.findall(text) if name not in env]
    assert not unresolved, f"{text!r}: Kubernetes would leave $({unresolved[0]}) as it is"
    return _REFERENCE.sub(lambda m: env[m.group(1)], text.replace("$$", "\0")).replace("\0", "$")


def command_line(spec: Mapping[str, Any]) -> list[str]:
    """The container's argv, ``$(VAR)`` expanded; ``command`` unset means the image's ENTRYPOINT."""
    env = container_env(spec)
    command = spec.get("command", ["locust"])
    return [expand(word, env) for word in [*command, *spec.get("args", [])]]


# -- the real validators ---------------------------------------------------------------------


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_object_is_valid_for_every_supported_version(version: str) -> None:
    checked = 0
    for path, doc in objects():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{path.relative_to(REPO)}: {exc.message} at {exc.path}") from None
        checked += 1
    assert checked >= 9


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kustomize_renders_exactly_the_files(name: str) -> None:
    """The layout keeps rendering trivial (no patches), so what ``kubectl apply -k`` sends is
    the very objects validated above; kubectl's own kustomize checks that."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with kustomize) is not installed")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / name)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    listed: list[dict[str, Any]] = []
    for path in kustomization_files(K8S / name):
        listed += documents(path)
    key = lambda doc: json.dumps(doc, sort_keys=True)  # noqa: E731
    assert sorted(map(key, rendered)) == sorted(map(key, listed))


def kustomization_files(folder: Path) -> list[Path]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    files: list[Path] = []
    for resource in kustomization["resources"]:
        path = (folder / resource).resolve()
        files += kustomization_files(path) if path.is_dir() else [path]
    return files


def test_every_manifest_is_applied_by_a_kustomization_or_stands_alone() -> None:
    used = {p for name in KUSTOMIZATIONS for p in kustomization_files(K8S / name)}
    standalone = {
        K8S / name for name in ("secret.example.yaml", "results-volume.yaml", "results-reader.yaml")
    }
    assert set(manifest_files()) == used | standalone
    assert not used & standalone


# -- what no schema checks ---------------------------------------------------------------------


def masters() -> dict[str, dict[str, Any]]:
    return {"web": find("Deployment", "loadkit-master"), "ci": find("Job", "loadkit-run")}


def worker() -> dict[str, Any]:
    return find("Deployment", "loadkit-worker")


def loadkit_args(spec: Mapping[str, Any]) -> Any:
    """``loadkit``'s parse of a container's command line; what follows ``--`` goes to Locust
    unchanged, as ``loadkit.cli.main`` does it."""
    argv = command_line(spec)
    assert argv[0] == "loadkit", argv
    split = argv.index("--") if "--" in argv else len(argv)
    return build_parser().parse_args(argv[1:split])


def worker_locustfiles(spec: Mapping[str, Any]) -> list[str]:
    """The ``-f`` of the Locust process that ``loadkit run ... --worker`` starts in the image,
    computed by the kit's own code with the image's folders."""
    args = loadkit_args(spec)
    assert args.command == "run" and args.worker
    command = worker_command(args.scenario)
    return command[command.index("-f") + 1].split(",")


@pytest.fixture
def image_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the image keeps the scenarios and shapes (the Dockerfile's ENV)."""
    for var in ("LOADKIT_LOCUSTFILES_DIR", "LOADKIT_SHAPES_DIR"):
        monkeypatch.setenv(var, image_env()[var])


def parse_locust(spec: Mapping[str, Any]) -> Any:
    argv = command_line(spec)
    assert argv[0] == "locust", argv
    parser = locust.argument_parser.get_parser(default_config_files=[])
    env = {k: v for k, v in container_env(spec).items() if k.startswith("LOCUST_")}
    return parser.parse_args(args=argv[1:], env_vars=env)


@pytest.mark.usefixtures("image_folders")
def test_masters_and_workers_load_the_same_locustfile_and_shape() -> None:
    (locustfile,) = worker_locustfiles(container(worker()))  # the shape runs on the master
    web = parse_locust(container(masters()["web"]))
    assert web.master and not web.headless
    scenario, profile = config()["LOADKIT_SCENARIO"], config()["LOADKIT_PROFILE"]
    web_locustfile, web_shape = web.locustfile.split(",")
    assert web_locustfile == locustfile
    assert [PurePosixPath(f).name for f in (locustfile, web_shape)] == [
        f"{scenario}.py",
        f"{profile}.py",
    ]
    ci = loadkit_args(container(masters()["ci"]))
    assert (ci.scenario, ci.profile) == (scenario, profile)  # loadkit run plays the profile
    for path in (locustfile, web_shape):
        assert repo_path_of(path).is_file(), path


def test_workers_find_the_master() -> None:
    service = find("Service", "loadkit-master")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["workers"]["port"] == MASTER_PORT
    args = loadkit_args(container(worker()))
    assert args.worker and (args.master_host, args.master_port) == ("loadkit-master", MASTER_PORT)
    for name, master in masters().items():
        labels = master["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name
        container_ports = {p["name"]: p["containerPort"] for p in container(master)["ports"]}
        assert container_ports["workers"] == MASTER_PORT, name
    web_ports = {p["name"] for p in container(masters()["web"])["ports"]}
    assert {port["targetPort"] for port in ports.values()} <= web_ports
    ci = loadkit_args(container(masters()["ci"]))
    assert ci.master and ci.master_port == MASTER_PORT


def test_the_headless_master_waits_for_every_worker_and_runs_once() -> None:
    job = masters()["ci"]
    argv = command_line(container(job))
    split = argv.index("--")
    args = loadkit_args(container(job))
    assert args.expect_workers == worker()["spec"]["replicas"]
    # What the master's Locust gets: loadkit's cluster options, then what follows `--` (last wins).
    topology = Topology("master", 0, args.master_host, args.master_port, args.expect_workers)
    parser = locust.argument_parser.get_parser(default_config_files=[])
    options = parser.parse_args(args=[*topology.master_args(), *argv[split + 1 :]], env_vars={})
    assert options.expect_workers == worker()["spec"]["replicas"]
    assert options.expect_workers_max_wait == int(config()["LOCUST_EXPECT_WORKERS_MAX_WAIT"])
    assert options.expect_workers_max_wait >= 120, "pods take a while to be scheduled and pulled"
    assert job["spec"]["backoffLimit"] == 0, "a retried load test doubles the load"
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert 0 < job["spec"]["activeDeadlineSeconds"] <= 4 * 3600


def test_every_setting_is_read_by_the_kit_or_locust() -> None:
    """Locust and the kit ignore unknown variables: a typo would silently change nothing."""
    locust_vars = {
        action.env_var
        for action in locust.argument_parser.get_parser(default_config_files=[])._actions
        if getattr(action, "env_var", None)
    }
    settings_vars = {env_name(field) for field in Settings.model_fields}
    kit_source = "\n".join(p.read_text() for p in (REPO / "src" / "loadkit").rglob("*.py"))
    referenced = {
        name for path in manifest_files() for name in _REFERENCE.findall(path.read_text())
    }
    for var in config():
        if var in referenced:
            continue  # used by the manifests themselves, e.g. LOADKIT_PROFILE picks the shape
        if var.startswith("LOCUST_"):
            assert var in locust_vars, f"Locust has no {var}"
        else:
            assert var in settings_vars or f'"{var}"' in kit_source, f"nothing reads {var}"


def test_the_api_key_comes_from_the_secret_only() -> None:
    (example,) = documents(K8S / "secret.example.yaml")
    assert example["stringData"] == {"API_KEY": ""}, "the example must not carry a key"
    assert "API_KEY" not in config()
    users = 0
    for path, doc in objects():
        if doc["kind"] in ("Deployment", "Job", "Pod"):
            for item in container(doc).get("env", []):
                if item["name"] == "API_KEY":
                    assert item["valueFrom"]["secretKeyRef"] == {
                        "name": example["metadata"]["name"],
                        "key": "API_KEY",
                    }, path
                    users += 1
    assert users == 4  # platform, worker, web master, CI master


def test_masters_keep_their_results_on_the_volume() -> None:
    results_dir = image_env()["LOADKIT_RESULTS_DIR"]
    claim = find("PersistentVolumeClaim", "loadkit-results")["metadata"]["name"]
    for name, master in masters().items():
        (mount,) = container(master)["volumeMounts"]
        assert mount["mountPath"] == results_dir, name
        (volume,) = pod_spec(master)["volumes"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim
        assert pod_spec(master)["securityContext"]["fsGroup"] == container_user(master)
    web = parse_locust(container(masters()["web"]))
    run_dir = container_env(container(masters()["web"]))["LOADKIT_RUN_DIR"]
    for path in (run_dir, web.csv_prefix, web.html_file):
        assert PurePosixPath(path).is_relative_to(results_dir), path
    reader = find("Pod", "loadkit-results-reader")
    assert container(reader)["volumeMounts"][0]["mountPath"] == results_dir


def container_user(obj: Mapping[str, Any]) -> int:
    return int(pod_spec(obj)["securityContext"]["runAsUser"])


def test_workers_are_sized_from_the_measured_figures() -> None:
    """One worker process drives one core (the plan's unit), and its memory request covers the
    largest resident size the benchmarks measured."""
    figures = json.loads((REPO / "src" / "loadkit" / "capacity_figures.json").read_text())
    rss_mb = max(s["worker_rss_mb"]["max"] for s in figures["generator"]["scenarios"].values())
    resources = container(worker())["resources"]
    assert resources["requests"]["cpu"] == "1"
    assert "cpu" not in resources["limits"], "throttled generators report their own delay"
    request_mb = int(resources["requests"]["memory"].removesuffix("Mi"))
    assert rss_mb * 1.2 <= request_mb <= rss_mb * 3, (rss_mb, request_mb)
    for name, master in masters().items():  # what `loadkit plan` counts before any report
        assert container(master)["resources"]["requests"]["cpu"] == f"{MIN_MASTER_MILLICORES}m", (
            name
        )


def test_one_image_runs_every_role_unprivileged() -> None:
    for path, doc in objects():
        if doc["kind"] in ("Deployment", "Job", "Pod"):
            spec = container(doc)
            assert spec["image"] == "loadkit", path
            assert pod_spec(doc)["securityContext"]["runAsNonRoot"] is True, path
            assert spec["securityContext"]["allowPrivilegeEscalation"] is False, path


def test_the_platform_component_listens_where_api_url_points() -> None:
    platform = find("Deployment", "loadkit-platform")
    argv = command_line(container(platform))
    assert argv[:3] == ["python", "-m", "loadkit.platform"]
    settings = config_from_args(build_platform_parser().parse_args(argv[3:]), {})
    service = find("Service", "loadkit-platform")
    (port,) = service["spec"]["ports"]
    assert config()["API_URL"] == f"http://{service['metadata']['name']}:{port['port']}"
    assert container(platform)["ports"][0]["containerPort"] == settings.port
