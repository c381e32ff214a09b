"""docker-compose.yml, Dockerfile and .dockerignore, checked by parsing them.

No Docker engine is needed: commands are validated with the real ``broker`` parser.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _service(name: str) -> dict[str, Any]:
    services = _compose()["services"]
    assert name in services, f"docker-compose.yml has no `{name}` service"
    return services[name]


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def _parse_cli(argv: list[str]) -> argparse.Namespace:
    assert argv[:1] == ["broker"], f"not a `broker` command: {argv}"
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"`{shlex.join(argv)}` is not a valid broker command")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _healthcheck(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(_argv(test))


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _index(instructions: list[tuple[str, str]], keyword: str, needle: str) -> int:
    for i, (kw, rest) in enumerate(instructions):
        if kw == keyword and needle in rest:
            return i
    pytest.fail(f"Dockerfile has no {keyword} containing {needle!r}")


# docker-compose.yml


def test_compose_has_redis_api_and_worker() -> None:
    assert {"redis", "api", "worker"} <= set(_compose()["services"])


def test_redis_keeps_an_append_only_file_on_a_volume() -> None:
    redis = _service("redis")
    assert str(redis["image"]).split(":")[0] == "redis"
    assert str(redis["image"]).split(":")[1].startswith("7")
    command = _argv(redis["command"])
    assert "--appendonly" in command
    assert command[command.index("--appendonly") + 1] == "yes"
    targets = [str(v).split(":")[1] for v in redis["volumes"]]
    assert "/data" in targets


def test_redis_has_a_ping_healthcheck() -> None:
    assert "redis-cli ping" in _healthcheck(_service("redis"))


@pytest.mark.parametrize("name", ["api", "worker"])
def test_api_and_worker_wait_for_a_healthy_redis(name: str) -> None:
    depends_on = _service(name)["depends_on"]
    assert depends_on["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_redis_url_points_at_the_redis_service(name: str) -> None:
    url = urllib.parse.urlsplit(_environment(_service(name))["REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname == "redis"
    assert (url.port or 6379) == 6379


def test_api_command_is_a_real_cli_invocation() -> None:
    args = _parse_cli(_argv(_service("api")["command"]))
    assert args.command == "api"
    assert args.host == "0.0.0.0"


def test_worker_command_is_a_real_cli_invocation() -> None:
    args = _parse_cli(_argv(_service("worker")["command"]))
    assert args.command == "worker"


def test_api_healthcheck_hits_healthz_on_the_served_port() -> None:
    api = _service("api")
    port = _parse_cli(_argv(api["command"])).port
    check = _healthcheck(api)
    assert f":{port}/healthz" in check
    # The slim image has python but no curl.
    assert check.split()[:2] in (["CMD", "python"], ["CMD-SHELL", "python"])


def test_api_publishes_the_port_it_serves() -> None:
    api = _service("api")
    port = _parse_cli(_argv(api["command"])).port
    published = [str(p).rsplit(":", 1)[-1] for p in api["ports"]]
    assert str(port) in published


def test_workers_scale_apart_from_the_api() -> None:
    worker = _service("worker")
    assert worker["deploy"]["replicas"] >= 2
    # Published ports would make replicas collide.
    assert "ports" not in worker


def _required(value: str) -> bool:
    """A compose interpolation that refuses to start while the variable is unset."""
    return value.startswith("${") and ":?" in value


def test_api_requires_keys_and_keeps_auth_on() -> None:
    env = _environment(_service("api"))
    assert env.get("BROKER_AUTH", "on") != "off"
    assert _required(env["BROKER_API_KEYS"]) or env.get("BROKER_API_KEYS_FILE")


@pytest.mark.parametrize("name", ["api", "worker"])
def test_api_and_worker_share_the_required_link_secret_and_public_url(name: str) -> None:
    env = _environment(_service(name))
    for variable in ("BROKER_LINK_SECRET", "BROKER_PUBLIC_URL"):
        assert _required(env[variable]), f"{name}: {variable} must be required"
    assert env["BROKER_LINK_SECRET"] == _environment(_service("api"))["BROKER_LINK_SECRET"]


@pytest.mark.parametrize("name", ["api", "worker"])
def test_no_development_switch_reaches_production(name: str) -> None:
    env = _environment(_service(name))
    assert "BROKER_DEV" not in env
    assert env.get("BROKER_WEBHOOK_ALLOW_PRIVATE", "0") in ("0", "")


def test_api_and_worker_run_the_same_image() -> None:
    api, worker = _service("api"), _service("worker")
    assert api.get("build") == worker.get("build") == "."
    assert api.get("image") == worker.get("image")


# Prometheus (deploy/prometheus.yml)


def _prometheus() -> dict[str, Any]:
    """The scrape config the prometheus service runs with, read from the file it mounts."""
    service = _service("prometheus")
    config_path = next(
        a.split("=", 1)[1] for a in _prometheus_argv() if a.startswith("--config.file=")
    )
    mounted = {str(v).split(":")[1]: str(v).split(":")[0] for v in service["volumes"]}
    assert config_path in mounted, f"{config_path} is not mounted"
    source = ROOT / mounted[config_path]
    assert source.is_file(), f"{source} does not exist"
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    return config


def _prometheus_argv() -> list[str]:
    command = _service("prometheus")["command"]
    return shlex.split(" ".join(_argv(command)))


def _job(name: str) -> dict[str, Any]:
    jobs = {j["job_name"]: j for j in _prometheus()["scrape_configs"]}
    assert name in jobs, f"deploy/prometheus.yml has no `{name}` job"
    return jobs[name]


def test_prometheus_scrapes_the_api_on_its_served_port() -> None:
    job = _job("broker-api")
    port = _parse_cli(_argv(_service("api")["command"])).port
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert [t for c in job["static_configs"] for t in c["targets"]] == [f"api:{port}"]
    # /metrics needs a key: the one the service writes to the file the job reads
    credentials = job["authorization"]["credentials_file"]
    assert f"> {credentials}" in " ".join(_argv(_service("prometheus")["command"]))
    assert "BROKER_METRICS_KEY" in _environment(_service("prometheus"))


def test_prometheus_scrapes_every_worker_on_its_metrics_port() -> None:
    job = _job("broker-worker")
    env = _environment(_service("worker"))
    port = int(env["BROKER_WORKER_METRICS_PORT"])
    assert port > 0
    # served to other containers, not only inside the worker's own
    assert env["BROKER_WORKER_METRICS_HOST"] == "0.0.0.0"
    # every replica, found by the service's name, each on the same port in its container
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["port"] == port
    assert sd.get("type", "SRV") == "A"
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_every_scrape_target_is_a_compose_service() -> None:
    services = set(_compose()["services"])
    for job in _prometheus()["scrape_configs"]:
        hosts = [t.rsplit(":", 1)[0] for c in job.get("static_configs", []) for t in c["targets"]]
        hosts += [n for sd in job.get("dns_sd_configs", []) for n in sd["names"]]
        assert hosts and set(hosts) <= services, job


def test_prometheus_starts_after_the_api_and_workers() -> None:
    assert {"api", "worker"} <= set(_service("prometheus")["depends_on"])


# Dockerfile


def test_dockerfile_base_image_is_python_311_slim() -> None:
    assert _dockerfile()[0] == ("FROM", "python:3.11-slim")


def test_dockerfile_installs_uv_from_pypi() -> None:
    install = _dockerfile()[_index(_dockerfile(), "RUN", "pip install")][1]
    assert '"uv==' in install or " uv" in install


def test_dockerfile_syncs_the_lock_frozen_without_dev() -> None:
    instructions = _dockerfile()
    syncs = [rest for kw, rest in instructions if kw == "RUN" and "uv sync" in rest]
    assert syncs, "Dockerfile never runs uv sync"
    assert all("--frozen" in s for s in syncs)
    assert all("--no-dev" in s for s in syncs)


def test_dockerfile_installs_dependencies_before_copying_source() -> None:
    instructions = _dockerfile()
    lock = _index(instructions, "COPY", "uv.lock")
    first_sync = _index(instructions, "RUN", "uv sync")
    source = _index(instructions, "COPY", "broker")
    assert lock < first_sync < source


def test_dockerfile_copies_every_packaged_module() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = " ".join(rest for kw, rest in _dockerfile() if kw == "COPY")
    for package in packages:
        assert f"{package} " in copied or "COPY . " in copied, f"{package} is not copied"
    # hatchling reads the readme named in pyproject while building the project.
    assert pyproject["project"]["readme"] in copied


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [rest for kw, rest in _dockerfile() if kw == "USER"]
    assert users, "Dockerfile has no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_puts_the_venv_on_path_and_exposes_8000() -> None:
    instructions = _dockerfile()
    assert "PATH=/app/.venv/bin:$PATH" in instructions[_index(instructions, "ENV", "PATH=")][1]
    assert ("WORKDIR", "/app") in instructions
    assert ("EXPOSE", "8000") in instructions


def test_dockerfile_cmd_is_a_real_cli_invocation() -> None:
    cmds = [rest for kw, rest in _dockerfile() if kw == "CMD"]
    assert cmds, "Dockerfile has no CMD"
    # Exec form: a shell-form CMD would not pass signals to the broker.
    args = _parse_cli(json.loads(cmds[-1]))
    assert args.command == "api"
    assert args.host == "0.0.0.0"
    assert args.port == 8000


# .dockerignore


def test_dockerignore_excludes_local_state_but_not_the_build_inputs() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for excluded in (".venv", ".git", "node_modules"):
        assert excluded in patterns
    assert {"**/__pycache__", "__pycache__"} & patterns
    for needed in ("pyproject.toml", "uv.lock", "README.md", "broker", "worker", "agent"):
        assert needed not in patterns
