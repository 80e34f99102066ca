"""The Helm chart, rendered by Helm's own Go engine (helm-python-sdk binds the Helm v4 SDK, as `helm template`
does) and every object validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict)."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from tests.packaging.support import CHART, ROOT, SETTING_NAME, is_cli_command, load_yaml, setting_names
from tests.packaging.test_dockerfile import image_user
from tuskbase.config import load

helm = pytest.importorskip("helm_python", reason="helm-python-sdk has no wheel for this platform")

KUBERNETES_VERSION = "1.30.0"
MIN_KUBERNETES_VERSION = "1.25.0"  # Chart.yaml's kubeVersion: policy/v1 PDBs, batch/v1 Job TTLs, seccompProfile
LATEST_KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()
SECRETS = {
    "TUSKBASE_DATABASE_URL": "postgresql://postgres:db-secret@db.example.internal:5432/tuskbase",
    "TUSKBASE_JWT_SECRET": "s" * 48,
    "TUSKBASE_AUTHENTICATOR_PASSWORD": "authenticator-secret",
}
VALUES = load_yaml(CHART / "values.yaml")
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def render(values: dict | None = None, **release) -> list[dict]:
    """Every object of the release, as `helm template` prints them."""
    values = {"secrets": SECRETS} if values is None else values
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        manifests = chart.render(values, name=release.get("name", "tb"), namespace="apps", is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".yaml"):
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found among {[o['metadata']['name'] for o in objects]}"
    return found[0]


def container(deployment_or_job: dict) -> dict:
    containers = deployment_or_job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def is_hook(obj: dict) -> bool:
    return "helm.sh/hook" in obj["metadata"].get("annotations", {})


def environment_of(objects: list[dict], workload: dict) -> dict[str, str]:
    """The environment the container gets, as kubelet resolves it: its ConfigMap (envFrom), then its own env,
    whose secret keys are read from the Secret they name (an optional key the Secret lacks is left out)."""
    spec = container(workload)
    env: dict[str, str] = {}
    for source in spec["envFrom"]:
        env.update(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for entry in spec["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        data = one(objects, "Secret", ref["name"])["data"]
        if ref["key"] in data:
            env[entry["name"]] = base64.b64decode(data[ref["key"]]).decode()
        else:
            assert ref.get("optional"), f"{ref['name']} has no key {ref['key']}"
    return env


def secrets_referenced(workload: dict) -> dict[str, str]:
    """Secret key -> Secret name, of every secret the container references."""
    refs = [e["valueFrom"]["secretKeyRef"] for e in container(workload)["env"] if "valueFrom" in e]
    return {ref["key"]: ref["name"] for ref in refs}


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return render()


# --- values and their schema ------------------------------------------------------------------------------


def test_the_default_values_follow_the_values_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema({"secrets": SECRETS})


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"api": {"replicas": -1}}, "replicas"),
        ({"worker": {"threads": 0}}, "threads"),
        ({"config": {"LOG_LEVEL": "DEBUG"}}, "LOG_LEVEL"),  # settings are TUSKBASE_* variables
        ({"config": {"TUSKBASE_HOST": "127.0.0.1"}}, "config"),  # the chart owns where the API listens
        ({"secrets": {**SECRETS, "TUSKBASE_JWT_SECRET": "short"}}, "TUSKBASE_JWT_SECRET"),
        ({"secrets": {**SECRETS, "TUSKBASE_DATABASE_URL": "mysql://db/x"}}, "TUSKBASE_DATABASE_URL"),
        ({"api": {"databaseUrl": "postgresql://postgres:pw@db/tuskbase"}}, "databaseUrl"),  # no password there
        ({"extraSecretKeys": {"api": ["SMTP_URL"]}}, "SMTP_URL"),
        ({"replicas": 3}, "replicas"),  # a misplaced key is an error, not silently ignored
        ({"ingress": {"hosts": [{"host": "a.example.com", "paths": [{"path": "api"}]}]}}, "paths"),
    ],
)
def test_bad_values_are_refused_by_the_schema_in_helm_and_in_jsonschema(values, where):
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError) as refused:
        chart.validate_schema(values)
    assert where in str(refused.value)
    merged = copy.deepcopy(VALUES)
    for key, value in values.items():
        merged[key] = {**merged[key], **value} if isinstance(merged.get(key), dict) else value
    assert not jsonschema.Draft7Validator(SCHEMA).is_valid(merged)


def test_helm_lint_finds_no_error():
    report = helm.lint(str(CHART), {"secrets": SECRETS}, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2 and "icon is recommended" not in m["error"]]
    assert not report["errors"] and not problems, report


# --- the rendered release ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [MIN_KUBERNETES_VERSION, KUBERNETES_VERSION, LATEST_KUBERNETES_VERSION])
def test_every_object_is_valid_kubernetes(objects, version):
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == ["ConfigMap", "Deployment", "Job", "PodDisruptionBudget", "Secret", "Service"]
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_chart_declares_the_oldest_kubernetes_it_is_checked_against():
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["kubeVersion"] == f">={MIN_KUBERNETES_VERSION}-0"


def test_the_kubernetes_validation_can_fail(objects):
    api = copy.deepcopy(one(objects, "Deployment", "tb-tuskbase-api"))
    container(api)["readinessProbe"]["httpGet"]["paht"] = "/ready"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)


def test_the_release_needs_its_three_secrets():
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmRenderError) as refused:
        chart.render({}, name="tb", namespace="apps")
    assert "secrets.TUSKBASE_DATABASE_URL is required" in str(refused.value)
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmRenderError) as refused:
        chart.render({"secrets": {k: v for k, v in SECRETS.items() if k != "TUSKBASE_JWT_SECRET"}},
                     name="tb", namespace="apps")
    assert "secrets.TUSKBASE_JWT_SECRET is required" in str(refused.value)


def test_api_replicas_probe_ready_and_health_on_the_port_it_listens_on():
    objects = render({"secrets": SECRETS, "api": {"replicas": 5, "port": 8080}})
    api = one(objects, "Deployment", "tb-tuskbase-api")
    spec = container(api)
    assert api["spec"]["replicas"] == 5
    assert spec["args"] == ["serve"] and is_cli_command(spec["args"])
    assert spec["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert spec["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    env = environment_of(objects, api)
    assert env["TUSKBASE_PORT"] == "8080" and env["TUSKBASE_HOST"] == "0.0.0.0"


def test_workers_and_feed_scale_and_run_their_commands():
    objects = render({"secrets": SECRETS, "worker": {"replicas": 4, "processes": 2, "threads": 8},
                      "feed": {"replicas": 3}})
    worker = one(objects, "Deployment", "tb-tuskbase-worker")
    feed = one(objects, "Deployment", "tb-tuskbase-feed")
    assert worker["spec"]["replicas"] == 4 and feed["spec"]["replicas"] == 3
    assert container(worker)["args"] == ["worker"] and container(feed)["args"] == ["feed"]
    assert is_cli_command(["worker"]) and is_cli_command(["feed"])
    env = environment_of(objects, worker)
    settings = load({**env, "TUSKBASE_DATA_DIR": "/tmp/tuskbase-chart-test"})
    assert (settings.worker_processes, settings.worker_threads) == (2, 8)


def test_the_feed_defaults_to_a_leader_and_a_standby(objects):
    assert one(objects, "Deployment", "tb-tuskbase-feed")["spec"]["replicas"] == VALUES["feed"]["replicas"] == 2


def test_the_migrations_run_as_a_pre_install_and_pre_upgrade_hook_with_their_own_settings(objects):
    job = one(objects, "Job", "tb-tuskbase-migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    spec = container(job)
    assert spec["args"] == ["migrate"] and is_cli_command(spec["args"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # Hooks run before the release's own ConfigMap and Secret exist: the Job may read only hook objects
    # created before it (a lower weight), holding the same settings as the release's.
    used_objects = [("ConfigMap", source["configMapRef"]["name"]) for source in spec["envFrom"]]
    used_objects += [("Secret", name) for name in set(secrets_referenced(job).values())]
    assert {kind for kind, _ in used_objects} == {"ConfigMap", "Secret"}
    for kind, name in used_objects:
        used = one(objects, kind, name)
        assert is_hook(used), f"the migration Job reads {kind}/{used['metadata']['name']}, not a hook"
        assert set(used["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
        assert int(used["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
        assert "hook-succeeded" in used["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        assert used["data"] == one(objects, kind, "tb-tuskbase")["data"]
    assert environment_of(objects, job)["TUSKBASE_DATABASE_URL"] == SECRETS["TUSKBASE_DATABASE_URL"]


def test_the_deployments_read_the_release_configmap_and_secret(objects):
    for name in ("api", "worker", "feed"):
        workload = one(objects, "Deployment", f"tb-tuskbase-{name}")
        assert container(workload)["envFrom"] == [{"configMapRef": {"name": "tb-tuskbase"}}]
        assert set(secrets_referenced(workload).values()) == {"tb-tuskbase"}
        assert not is_hook(one(objects, "ConfigMap", "tb-tuskbase"))
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert {"checksum/config", "checksum/secret"} <= set(annotations), "pods would not roll on a new setting"


def test_a_changed_setting_rolls_the_pods():
    before = render()
    after = render({"secrets": SECRETS, "config": {"TUSKBASE_LOG_LEVEL": "DEBUG"}})
    checksum = [one(o, "Deployment", "tb-tuskbase-api")["spec"]["template"]["metadata"]["annotations"]
                ["checksum/config"] for o in (before, after)]
    assert checksum[0] != checksum[1]


def test_every_process_gets_real_settings_that_validate(objects, tmp_path: Path):
    known = setting_names()
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Job")):
        env = environment_of(objects, workload)
        assert set(env) <= known, f"{workload['metadata']['name']}: not settings: {sorted(set(env) - known)}"
        settings = load({**env, "TUSKBASE_DATA_DIR": str(tmp_path)})
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        if component == "api":
            assert settings.database_url == "postgresql://postgres@db.example.internal:5432/tuskbase"
            assert settings.jwt_secret == SECRETS["TUSKBASE_JWT_SECRET"]
        else:
            assert settings.database_url == SECRETS["TUSKBASE_DATABASE_URL"]
        if component in ("api", "migrate"):
            assert settings.authenticator_password == SECRETS["TUSKBASE_AUTHENTICATOR_PASSWORD"]
    for path in CHART.rglob("*"):
        if path.is_file():
            unknown = set(SETTING_NAME.findall(path.read_text())) - known
            assert not unknown, f"{path.relative_to(ROOT)}: not settings of tuskbase.config: {sorted(unknown)}"


def test_numbers_and_booleans_in_settings_reach_the_process_as_it_reads_them(tmp_path: Path):
    """Helm reads numbers as floats: 2097152 must not become "2.097152e+06", which the settings refuse."""
    objects = render({"secrets": SECRETS, "config": {"TUSKBASE_MAX_BODY_BYTES": 2097152, "TUSKBASE_REST_MAX_ROWS": 0,
                                                     "TUSKBASE_AUTH_SIGNUP_ENABLED": False},
                      "worker": {"threads": 1000000}})
    env = environment_of(objects, one(objects, "Deployment", "tb-tuskbase-worker"))
    assert env["TUSKBASE_MAX_BODY_BYTES"] == "2097152" and env["TUSKBASE_WORKER_THREADS"] == "1000000"
    settings = load({**env, "TUSKBASE_DATA_DIR": str(tmp_path)})
    assert settings.max_body_bytes == 2097152 and settings.rest_max_rows == 0
    assert settings.auth_signup_enabled is False and settings.worker_threads == 1000000


def test_an_existing_secret_replaces_the_charts_secret():
    objects = render({"existingSecret": "tuskbase-managed",
                      "api": {"databaseUrl": "postgresql://postgres@db.example.internal:5432/tuskbase"}})
    assert [o for o in objects if o["kind"] == "Secret"] == []
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Job")):
        assert set(secrets_referenced(workload).values()) == {"tuskbase-managed"}


def test_an_existing_secret_needs_the_apis_database_url_without_password():
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmRenderError) as refused:
        chart.render({"existingSecret": "tuskbase-managed"}, name="tb", namespace="apps")
    assert "api.databaseUrl is required" in str(refused.value)


# The secrets each component needs; it gets no other. The same split as docker-compose.yml.
NEEDED_SECRETS = {
    "migrate": {"TUSKBASE_DATABASE_URL", "TUSKBASE_AUTHENTICATOR_PASSWORD"},
    "api": {"TUSKBASE_AUTHENTICATOR_PASSWORD", "TUSKBASE_JWT_SECRET", "TUSKBASE_BROKER_URL", "TUSKBASE_SMTP_URL"},
    "worker": {"TUSKBASE_DATABASE_URL", "TUSKBASE_BROKER_URL"},
    "feed": {"TUSKBASE_DATABASE_URL"},
}


def test_each_component_gets_only_the_secrets_it_needs():
    secrets = {**SECRETS, "TUSKBASE_BROKER_URL": "amqp://tb:broker-secret@mq:5672/",
               "TUSKBASE_SMTP_URL": "smtp://mailer:smtp-secret@mail:587"}
    objects = render({"secrets": secrets})
    for component, needed in NEEDED_SECRETS.items():
        kind = "Job" if component == "migrate" else "Deployment"
        workload = one(objects, kind, f"tb-tuskbase-{component}")
        assert set(secrets_referenced(workload)) == needed, component
        env = " ".join(environment_of(objects, workload).values())
        given = {key for key, value in secrets.items() if value in env}
        assert given == needed, component
        assert ("db-secret" in env) == (component != "api"), component


def test_an_existing_secrets_further_keys_reach_the_components_named():
    objects = render({"existingSecret": "managed", "extraSecretKeys": {"worker": ["TUSKBASE_SMTP_URL"]},
                      "api": {"databaseUrl": "postgresql://postgres@db/tuskbase"}})
    assert "TUSKBASE_SMTP_URL" in secrets_referenced(one(objects, "Deployment", "tb-tuskbase-worker"))
    assert "TUSKBASE_SMTP_URL" not in secrets_referenced(one(objects, "Deployment", "tb-tuskbase-feed"))


def test_the_app_folder_reaches_every_process():
    objects = render({"secrets": SECRETS, "app": {"dir": "/opt/tuskbase/examples/todo"}})
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Job")):
        assert environment_of(objects, workload)["TUSKBASE_APP_DIR"] == "/opt/tuskbase/examples/todo"


def test_migrations_can_be_left_to_the_operator():
    objects = render({"secrets": SECRETS, "migrations": {"enabled": False}})
    assert not [o for o in objects if is_hook(o)]


def test_the_service_routes_to_the_api_pods_only(objects):
    service = one(objects, "Service", "tb-tuskbase")
    selector = service["spec"]["selector"]
    for obj in (o for o in objects if o["kind"] == "Deployment"):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        matches = all(labels.get(k) == v for k, v in selector.items())
        assert matches == obj["metadata"]["name"].endswith("-api"), obj["metadata"]["name"]
        assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_a_disruption_budget_keeps_api_pods_up_when_there_are_several(objects):
    budget = one(objects, "PodDisruptionBudget", "tb-tuskbase-api")
    assert budget["spec"]["maxUnavailable"] == 1
    api_labels = one(objects, "Deployment", "tb-tuskbase-api")["spec"]["template"]["metadata"]["labels"]
    worker_labels = one(objects, "Deployment", "tb-tuskbase-worker")["spec"]["template"]["metadata"]["labels"]
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector.items() <= api_labels.items() and not selector.items() <= worker_labels.items()
    single = render({"secrets": SECRETS, "api": {"replicas": 1}})
    assert not [o for o in single if o["kind"] == "PodDisruptionBudget"]  # it would block every node drain


def test_the_api_can_scale_on_cpu_instead_of_a_fixed_count():
    objects = render({"secrets": SECRETS, "api": {"replicas": 1, "autoscaling": {
        "enabled": True, "minReplicas": 3, "maxReplicas": 12, "targetCPUUtilizationPercentage": 60}}})
    api = one(objects, "Deployment", "tb-tuskbase-api")
    assert "replicas" not in api["spec"], "a fixed count would fight the autoscaler at every upgrade"
    hpa = one(objects, "HorizontalPodAutoscaler", "tb-tuskbase-api")
    kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tb-tuskbase-api"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert one(objects, "PodDisruptionBudget", "tb-tuskbase-api")  # at least 3 pods: a budget is safe
    assert not [o for o in render() if o["kind"] == "HorizontalPodAutoscaler"]


def test_the_ingress_is_optional_and_points_at_the_service():
    assert not [o for o in render() if o["kind"] == "Ingress"]
    objects = render({"secrets": SECRETS, "ingress": {
        "enabled": True, "className": "nginx",
        "hosts": [{"host": "api.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "api-tls", "hosts": ["api.example.com"]}]}})
    ingress = one(objects, "Ingress", "tb-tuskbase")
    kubernetes_validate.validate(ingress, KUBERNETES_VERSION, strict=True)
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = one(objects, "Service", backend["name"])
    assert backend["port"]["name"] in [p["name"] for p in service["spec"]["ports"]]
    assert ingress["spec"]["ingressClassName"] == "nginx" and ingress["spec"]["tls"][0]["secretName"] == "api-tls"


def test_pods_run_as_the_images_user_on_a_read_only_root(objects):
    uid, gid = image_user()
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Job")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
        assert pod["automountServiceAccountToken"] is False
        spec = container(workload)
        assert spec["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["allowPrivilegeEscalation"] is False
        # The only writable places: /tmp and the data folder the settings point at.
        mounts = {m["mountPath"] for m in spec["volumeMounts"]}
        assert mounts == {"/tmp", environment_of(objects, workload)["TUSKBASE_DATA_DIR"]}


def test_a_long_release_name_stays_within_kubernetes_limits():
    name = "a-release-name-of-the-53-characters-helm-allows-at-most"[:53]  # helm's own limit on release names
    objects = render({"secrets": SECRETS}, name=name)
    kinds_and_names = [(obj["kind"], obj["metadata"]["name"]) for obj in objects]
    assert len(set(kinds_and_names)) == len(kinds_and_names), "truncation made two objects collide"
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
