"""What the Dockerfile puts into the image, read with dockerfile-parse (no Docker engine here).

Shared by the checks of docker-compose.yml and of the Kubernetes manifests: both name paths
inside the image, and those must be copies of files in this repository.
"""

from __future__ import annotations

from pathlib import Path

from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[1]


def dockerfile() -> DockerfileParser:
    # env_replace=False: the instructions as written (no ${VAR} substitution by the parser).
    return DockerfileParser(str(REPO / "Dockerfile"), env_replace=False)


def instructions(name: str) -> list[str]:
    """The values of every ``name`` instruction (``RUN``, ``USER`` ...), continuations joined."""
    return [i["value"] for i in dockerfile().structure if i["instruction"] == name]


def image_env() -> dict[str, str]:
    return dict(dockerfile().envs)


def copies() -> list[tuple[str, str]]:
    """``(source in the build context, destination in the image)`` of each COPY."""
    pairs = []
    for value in instructions("COPY"):
        words = [w for w in value.split() if not w.startswith("--")]
        pairs += [(src, words[-1]) for src in words[:-1]]
    return pairs


def repo_path_of(container_path: str) -> Path:
    """Which repository file a path inside the image is a copy of."""
    for src, dest in copies():
        if dest.endswith("/") and container_path.startswith(dest):
            return REPO / src / container_path[len(dest) :]
        if container_path == dest:
            return REPO / src
    raise AssertionError(f"{container_path} is not copied into the image by the Dockerfile")
