"""docker-compose.yml: valid Compose (the compose-spec schema and docker-compose's own `config`), the start order
(Postgres healthy -> migrate completed -> api, worker, feed), the settings and the only secrets each container
gets, and the .env.example (stack and secrets) and tuskbase.env.example (settings) that document them."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.packaging.env_example import MARKER
from tests.packaging.support import (
    COMPOSE_SCHEMA,
    FILLED_SECRETS,
    ROOT,
    SETTING_NAME,
    env_file,
    is_cli_command,
    load_yaml,
    setting_names,
)
from tuskbase.config import load

COMPOSE = load_yaml(ROOT / "docker-compose.yml")
SERVICES = COMPOSE["services"]
TUSKBASE_SERVICES = ("migrate", "api", "worker", "feed")


def compose_validator() -> jsonschema.Draft201909Validator:
    if not COMPOSE_SCHEMA.exists():
        pytest.skip(f"{COMPOSE_SCHEMA.relative_to(ROOT)} missing: run tests/packaging/install-tools.sh (npm)")
    return jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text()))


def project(tmp_path: Path, settings: dict[str, str] | None = None, **overrides: str) -> Path:
    """A copy of the stack as a team sets it up: the compose file, .env copied from .env.example (with
    `overrides`) and tuskbase.env from tuskbase.env.example (with `settings`)."""
    shutil.copy2(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    values = {**env_file(ROOT / ".env.example"), **overrides}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    shutil.copy2(ROOT / "tuskbase.env.example", tmp_path / "tuskbase.env")
    with (tmp_path / "tuskbase.env").open("a") as extra:
        extra.write("".join(f"{k}={v}\n" for k, v in (settings or {}).items()))
    return tmp_path


def compose_config(binary: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: compose lets the shell's variables win over .env, and ours must not leak in.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder)}
    return subprocess.run([binary, *args, "config"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=60)


# --- the schema and the tool --------------------------------------------------------------------------------


def test_the_compose_file_follows_the_compose_spec_schema():
    validator = compose_validator()
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert not errors, errors


def test_the_schema_check_catches_a_wrong_start_condition():
    """The check above can fail: a misspelt depends_on condition is refused."""
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_completed"
    assert not compose_validator().is_valid(broken)


def test_docker_compose_accepts_the_stack_and_gives_each_container_valid_settings(docker_compose, tmp_path):
    folder = project(tmp_path, **FILLED_SECRETS)
    result = compose_config(docker_compose, folder)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    for name in TUSKBASE_SERVICES:
        environment = {k: str(v) for k, v in resolved[name]["environment"].items()}
        # The container's own paths do not exist here: point them at local folders of the same role.
        environment["TUSKBASE_APP_DIR"] = str(ROOT / "examples" / "todo")
        environment["TUSKBASE_DATA_DIR"] = str(tmp_path / name)
        settings = load(environment)  # raises SettingsError, naming the variable, on any bad value
        if name == "api":
            assert settings.database_url == "postgresql://postgres@postgres:5432/tuskbase"
        else:
            assert settings.database_url == "postgresql://postgres:pg-secret-1@postgres:5432/tuskbase", name
        if name in ("api", "migrate"):
            assert settings.authenticator_password == FILLED_SECRETS["TUSKBASE_AUTHENTICATOR_PASSWORD"], name
        if name == "api":
            assert settings.jwt_secret == FILLED_SECRETS["TUSKBASE_JWT_SECRET"]
        volumes = resolved[name]["volumes"]
        assert any(v.endswith(":/srv/app:ro") and "examples/todo" in v for v in volumes), volumes
    assert load({**resolved["api"]["environment"], "TUSKBASE_APP_DIR": str(ROOT / "examples" / "todo"),
                 "TUSKBASE_DATA_DIR": str(tmp_path)}).host == "0.0.0.0"


# The secrets each container needs; it gets no other (the stack's own variables never reach a container).
NEEDED_SECRETS = {
    "migrate": {"POSTGRES_PASSWORD", "TUSKBASE_AUTHENTICATOR_PASSWORD"},
    "api": {"TUSKBASE_AUTHENTICATOR_PASSWORD", "TUSKBASE_JWT_SECRET"},
    "worker": {"POSTGRES_PASSWORD"},
    "feed": {"POSTGRES_PASSWORD"},
}


def test_each_container_gets_only_the_secrets_it_needs(docker_compose, tmp_path):
    folder = project(tmp_path, settings={"TUSKBASE_LOG_LEVEL": "DEBUG"}, **FILLED_SECRETS)
    result = compose_config(docker_compose, folder)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    for name in TUSKBASE_SERVICES:
        values = " ".join(f"{k}={v}" for k, v in resolved[name]["environment"].items())
        given = {secret for secret, value in FILLED_SECRETS.items() if value in values}
        assert given == NEEDED_SECRETS[name], name
        assert not {k for k in resolved[name]["environment"] if not k.startswith("TUSKBASE_")}, name
        # Settings from tuskbase.env reach every Tuskbase container.
        assert resolved[name]["environment"]["TUSKBASE_LOG_LEVEL"] == "DEBUG", name
    assert "pg-secret-1" not in str(resolved["minio"]) and "minio-secret-1" not in str(resolved["postgres"])


def test_the_api_signs_tokens_the_other_containers_never_see(docker_compose, tmp_path):
    """Only the API gets the JWT secret: a worker, feed or migrate that needed it would generate one of its own
    into the shared data volume and sign with it; none of them signs anything."""
    folder = project(tmp_path, **FILLED_SECRETS)
    resolved = yaml.safe_load(compose_config(docker_compose, folder).stdout)["services"]
    holders = [name for name in TUSKBASE_SERVICES if "TUSKBASE_JWT_SECRET" in resolved[name]["environment"]]
    assert holders == ["api"]


@pytest.mark.parametrize("secret", sorted(FILLED_SECRETS))
def test_the_stack_refuses_to_start_without_each_secret(docker_compose, tmp_path, secret):
    """.env.example leaves the secrets empty: `docker compose up` stops before anything starts, naming them."""
    folder = project(tmp_path, **{**FILLED_SECRETS, secret: ""})
    result = compose_config(docker_compose, folder)
    assert result.returncode != 0
    assert f"set {secret} in .env" in result.stderr


def test_rabbitmq_runs_only_with_its_profile(docker_compose, tmp_path):
    folder = project(tmp_path, **FILLED_SECRETS)
    result = subprocess.run([docker_compose, "--profile", "rabbitmq", "config", "--services"], cwd=folder,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert set(TUSKBASE_SERVICES) | {"postgres", "minio", "rabbitmq"} == set(result.stdout.split())
    # (docker-compose v1 `config` lists profiled services either way; the profile itself is checked here.)
    assert SERVICES["rabbitmq"]["profiles"] == ["rabbitmq"]
    assert [name for name, s in SERVICES.items() if "profiles" in s] == ["rabbitmq"]
    # Nothing may depend on it: with the profile off, compose would refuse a dependency on a disabled service.
    assert all("rabbitmq" not in s.get("depends_on", {}) for s in SERVICES.values())


# --- the start order and the processes -------------------------------------------------------------------


def test_postgres_is_16_or_later_with_logical_decoding():
    postgres = SERVICES["postgres"]
    major = int(re.match(r"postgres:(\d+)", postgres["image"])[1])
    assert major >= 16
    command = postgres["command"]
    assert "wal_level=logical" in command and command[command.index("wal_level=logical") - 1] == "-c"
    # From 18 on, the image keeps its data under /var/lib/postgresql/<major>/docker: a volume on the old
    # /var/lib/postgresql/data makes the container refuse to start.
    targets = [v.split(":")[1] for v in postgres["volumes"]]
    assert targets == (["/var/lib/postgresql"] if major >= 18 else ["/var/lib/postgresql/data"])
    assert "pg_isready" in postgres["healthcheck"]["test"]


def test_migrate_runs_once_after_postgres_and_everything_else_after_migrate():
    migrate = SERVICES["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker", "feed"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert SERVICES[name]["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", TUSKBASE_SERVICES)
def test_each_tuskbase_service_runs_a_real_command_of_the_one_image(name):
    service = SERVICES[name]
    assert service["command"] == [name if name != "api" else "serve"]
    assert is_cli_command(service["command"])
    assert service["build"] == "." and service["image"] == SERVICES["api"]["image"]
    assert service["env_file"] == "tuskbase.env"  # settings only: .env, with every secret, is compose's own


def test_the_api_healthcheck_asks_ready_on_the_port_it_listens_on():
    api = SERVICES["api"]
    port = api["environment"]["TUSKBASE_PORT"]
    probe = " ".join(api["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/ready" in probe
    assert api["ports"] == [f"${{API_PUBLISH_PORT:-{port}}}:{port}"]
    # Only the API is published; Postgres, MinIO and RabbitMQ stay on the stack's network.
    assert [n for n, s in SERVICES.items() if "ports" in s] == ["api"]


def test_the_healthcheck_probe_fails_on_a_503():
    """The image has no curl: the probe is a Python one-liner, and urlopen must raise on 503 (not ready)."""
    import http.server
    import threading

    class NotReady(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotReady)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = SERVICES["api"]["healthcheck"]["test"][-1].replace("54321", str(server.server_port))
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        assert result.returncode != 0
    finally:
        server.shutdown()


def test_every_third_party_image_is_pinned_to_a_release():
    for name, service in SERVICES.items():
        if name not in TUSKBASE_SERVICES:
            tag = service["image"].rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{name}: {service['image']}"


def test_the_image_tag_is_the_project_version_everywhere():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert SERVICES["api"]["image"] == f"${{IMAGE:-tuskbase:{version}}}"
    assert env_file(ROOT / ".env.example")["IMAGE"] == f"tuskbase:{version}"
    chart = load_yaml(ROOT / "charts" / "tuskbase" / "Chart.yaml")
    assert chart["appVersion"] == version  # the chart's default image tag


# --- settings ---------------------------------------------------------------------------------------------------


def test_every_tuskbase_variable_in_the_stack_is_a_real_setting():
    """What the stack sets and what .env.example asks for must exist. The generated reference at the end of
    tuskbase.env.example (every setting, commented out) is left out: a setting renamed in tuskbase.config leaves a
    stale comment there until `python -m tests.packaging.env_example --write` is run, which misleads nobody's
    stack."""
    known = setting_names()
    for path, text in (("docker-compose.yml", (ROOT / "docker-compose.yml").read_text()),
                       (".env.example", (ROOT / ".env.example").read_text())):
        used = set(SETTING_NAME.findall(text))
        assert used, path
        assert not used - known, f"{path}: not settings of tuskbase.config: {sorted(used - known)}"


def test_the_generated_reference_lists_settings_only():
    """Every line of the reference is `# TUSKBASE_NAME=default` under its doc; its names are settings' names as
    the generator writes them, so a stale one is fixed by running the generator."""
    reference = (ROOT / "tuskbase.env.example").read_text().partition(MARKER)[2]
    names = re.findall(r"^# (TUSKBASE_[A-Z0-9_]+)=", reference, flags=re.M)
    assert len(names) >= 20 and len(names) == len(set(names))
    assert set(SETTING_NAME.findall(reference)) == set(names)


def test_env_example_defines_every_variable_compose_reads():
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    defined = set(env_file(ROOT / ".env.example"))
    assert interpolated <= defined, f"not in .env.example: {sorted(interpolated - defined)}"


def test_tuskbase_env_example_holds_no_secret_and_no_variable_of_the_stack():
    """tuskbase.env reaches every container whole: nothing in it may be a secret or one of the stack's own."""
    assert not env_file(ROOT / "tuskbase.env.example"), "tuskbase.env.example sets values: leave them commented"
    text = (ROOT / "tuskbase.env.example").read_text()
    for name in (*FILLED_SECRETS, "TUSKBASE_DATABASE_URL", "TUSKBASE_BROKER_URL"):
        assert f"# {name}=" not in text, name


@pytest.mark.parametrize("example", [".env.example", "tuskbase.env.example"])
def test_every_value_env_example_shows_is_accepted_by_the_settings(example):
    """Uncommenting any documented line of the examples must give a process that starts."""
    text = (ROOT / example).read_text()
    shown = re.findall(r"^#? ?(TUSKBASE_[A-Z0-9_]+)=(.*)$", text, flags=re.M)
    assert len(shown) >= (20 if example == "tuskbase.env.example" else 3), "the settings are not documented"
    for name, value in shown:
        if name in ("TUSKBASE_APP_DIR", "TUSKBASE_DATA_DIR"):
            continue  # container paths
        environment = {name: value} if value else {}
        if name == "TUSKBASE_DB_POOL_MIN":
            environment["TUSKBASE_DB_POOL_MAX"] = "16"
        load(environment)  # raises SettingsError naming the variable
