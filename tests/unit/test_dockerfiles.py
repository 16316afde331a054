"""Static checks of the two images: no container engine runs here, so check what text can show.

Base image, multi-stage with the virtualenv copied, only the image's own extra, a numeric non-root
USER, no build tools in the final stage, an entrypoint that exists in this repository, and the Ray
version the RayCluster builder writes.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BASE = "python:3.11-slim"
BUILD_TOOLS = ("gcc", "g++", "clang", "build-essential", "make ", "cmake", "python3-dev", "libpq-dev", "git ")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [arg for key, arg in self.instructions if key == keyword]


def parse(path: Path) -> list[Stage]:
    """Dockerfile instructions per stage, continuation lines joined and global ARGs substituted."""
    text = re.sub(r"\\\n", " ", path.read_text())
    globals_: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages and "=" in rest:
            key, value = rest.split("=", 1)
            globals_[key.strip()] = value.strip()
        elif keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: globals_[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


IMAGES = {
    "Dockerfile.operator": {"extra": "operator", "entrypoint": ["kopf", "run", "-m", "pitwall_operator", "--standalone"]},
    "Dockerfile.trainer": {"extra": "trainer", "entrypoint": ["pitwall-train"]},
}


@pytest.fixture(params=sorted(IMAGES))
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, list[Stage]]:
    return request.param, parse(ROOT / request.param)


def test_multi_stage_on_the_slim_python_base(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    assert len(stages) >= 2, f"{name}: build the venv in a builder stage"
    assert all(stage.base == BASE for stage in stages), [stage.base for stage in stages]
    final = stages[-1]
    copies = final.args("COPY")
    assert any(re.fullmatch(r"--from=\w+ /opt/venv /opt/venv", c) for c in copies), copies
    assert any("PATH=/opt/venv/bin:$PATH" in env for env in final.args("ENV"))


def test_builder_installs_only_its_own_extra(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    extra = IMAGES[name]["extra"]
    assert extra in PYPROJECT["project"]["optional-dependencies"]
    installs = [run for stage in stages[:-1] for run in stage.args("RUN") if "pip install" in run]
    extras = {e for run in installs for e in re.findall(r'"\.\[([\w,-]+)\]"', run)}
    assert extras == {extra}, f"{name}: installs extras {extras}"
    assert all(".[" in run for run in installs), "every pip install goes through pyproject's pins"


def test_final_stage_runs_as_a_numeric_non_root_user(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    users = stages[-1].args("USER")
    assert users, f"{name}: no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) > 0), users[-1]
    values = yaml.safe_load((ROOT / "charts" / "pitwall" / "values.yaml").read_text())
    assert int(uid) == values["runAsUser"], "the chart's runAsUser must be the image's USER"
    if name == "Dockerfile.trainer":
        from pitwall_operator.builders.job import RUN_UID

        assert int(uid) == RUN_UID, "training pods run as the trainer image's USER"


def test_final_stage_has_no_build_tools(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    for run in stages[-1].args("RUN"):
        assert "pip install" not in run, f"{name}: install in the builder, copy the venv"
        for tool in BUILD_TOOLS:
            assert tool not in run + " ", f"{name}: {tool.strip()} in the final stage"


def test_entrypoint_exists_in_this_repository(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    entrypoint = json.loads(stages[-1].args("ENTRYPOINT")[-1])
    assert entrypoint == IMAGES[name]["entrypoint"]
    if entrypoint[0] == "kopf":
        module = entrypoint[entrypoint.index("-m") + 1]
        assert (ROOT / "operator" / module / "__init__.py").is_file()
        assert any(dep.startswith("kopf==") for dep in PYPROJECT["project"]["optional-dependencies"]["operator"])
    else:
        target = PYPROJECT["project"]["scripts"][entrypoint[0]]
        module, _, function = target.partition(":")
        path = ROOT / "trainer" / Path(*module.split("."))
        source = (path / "__init__.py") if path.is_dir() else path.with_suffix(".py")
        assert re.search(rf"^def {function}\(", source.read_text(), re.M), f"{target} not found"


def test_operator_default_command_serves_the_probed_liveness_port() -> None:
    final = parse(ROOT / "Dockerfile.operator")[-1]
    command = json.loads(final.args("CMD")[-1])
    values = yaml.safe_load((ROOT / "charts" / "pitwall" / "values.yaml").read_text())
    assert "--all-namespaces" in command
    assert f"--liveness=http://0.0.0.0:{values['operator']['healthPort']}/healthz" in command
    assert str(values["operator"]["healthPort"]) in final.args("EXPOSE")[-1].split()


def test_trainer_image_holds_the_ray_version_rayclusters_declare() -> None:
    stages = parse(ROOT / "Dockerfile.trainer")
    declared = {arg.split("=", 1)[1] for stage in stages for arg in stage.args("ARG") if arg.startswith("RAY_VERSION=")}
    assert len(declared) == 1, declared
    ray_version = declared.pop()
    pins = [dep for dep in PYPROJECT["project"]["optional-dependencies"]["trainer"] if dep.startswith("ray")]
    assert pins and all(dep.endswith(f"=={ray_version}") for dep in pins), pins
    builder = ROOT / "operator" / "pitwall_operator" / "builders" / "raycluster.py"
    if builder.is_file():
        found = re.search(r'^RAY_VERSION\s*=\s*"([^"]+)"', builder.read_text(), re.M)
        assert found and found.group(1) == ray_version, "RayCluster rayVersion != the trainer image's Ray"


def test_dockerignore_keeps_the_context_small_but_not_the_sources() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)

    for noise in (".git", ".venv", "tests", "charts", "mlruns"):
        assert ignored(noise), noise
    for name in IMAGES:
        for stage in parse(ROOT / name):
            for copy in stage.args("COPY"):
                if copy.startswith("--from"):
                    continue
                for source in copy.split()[:-1]:
                    assert not ignored(source), f"{name} copies {source}, which .dockerignore drops"
                    assert (ROOT / source).exists(), source


def test_each_image_holds_the_contract_and_its_own_package_only(dockerfile: tuple[str, list[Stage]]) -> None:
    """The sandbox and the kubectl plugin are in no image; operator and trainer not in each other's."""
    name, stages = dockerfile
    own = IMAGES[name]["extra"]
    sources = {c.split()[0] for stage in stages[:-1] for c in stage.args("COPY") if not c.startswith("--from")}
    folders = {s for s in sources if (ROOT / s).is_dir()}
    assert folders == {"api", own}, f"{name} copies {sorted(folders)}"
