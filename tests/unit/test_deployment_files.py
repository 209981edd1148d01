"""The deployment files (docker/, deploy/kubernetes/) checked without Docker or a cluster.

No Docker engine or cluster runs on our machines, so what can be checked is checked here, offline:
the compose file against the Compose specification's schema (the copy check-jsonschema ships),
every Kubernetes manifest against the API schemas kubernetes-validate ships (strict: an unknown
field is an error), every nginx configuration with ``nginx -t`` (the two in the deployment files
and those ``make run`` generates), and every environment variable a deployment file sets against
the services' own list (``Settings.variables()``), with the settings that only work on one
machine (a 127.0.0.1 address, a local-dev secret) provided to every service. Each check is also
run on a broken copy, to show that it fails.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from local_cluster.__main__ import check_nginx, write_configs
from local_cluster.layout import Layout
from shared.platform.settings import Settings, SettingsError

REPOSITORY = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPOSITORY / "docker" / "compose.yaml"
DOCKERFILE = REPOSITORY / "docker" / "Dockerfile"
DOCKER_NGINX = REPOSITORY / "docker" / "nginx.conf"
KUBERNETES_DIR = REPOSITORY / "deploy" / "kubernetes"
# The oldest Kubernetes release still maintained when these manifests were written; they use
# nothing newer, and kubernetes-validate ships its schemas.
KUBERNETES_VERSION = "1.30.0"
SERVICE_COMMANDS = {"osago-core", "osago-aggregator", "osago-worker", "osago-sandbox", "osago-admin"}
INTERPOLATION = re.compile(r"\$\{[^}]*\}")


# ---- the checks -------------------------------------------------------------------------------


def compose_schema_errors(compose: dict[str, Any]) -> list[str]:
    # check-jsonschema's vendored copy of the Compose specification's schema (its builtin
    # "vendor.compose-spec"), read from the installed package: no network at test time.
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(compose)]


def kubernetes_errors(resource: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}: {exc.message}"]
    return []


def nginx_test(config: Path, prefix: Path, hosts: set[str]) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` writing nothing outside ``prefix``. Upstream servers named by host are resolved
    at load: inside a private mount namespace (a user namespace too, so no root is needed), a hosts file of our own answers them with 127.0.0.1
    (the machine's /etc/hosts is never changed)."""
    command = ["nginx", "-t", "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")]
    if hosts:
        hosts_file = prefix / "hosts"
        hosts_file.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {host}\n" for host in sorted(hosts)))
        script = 'mount --bind "$0" /etc/hosts && exec "$@"'
        command = ["unshare", "--map-root-user", "--mount", "sh", "-c", script, str(hosts_file), *command]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def upstream_hosts(config_text: str) -> set[str]:
    """Host names in ``upstream`` blocks' ``server`` lines (addresses need no resolving)."""
    hosts = set()
    for block in re.findall(r"upstream\s+\w+\s*\{([^}]*)\}", config_text):
        for host in re.findall(r"^\s*server\s+([^\s:;]+)", block, flags=re.MULTILINE):
            if not re.fullmatch(r"[\d.]+|\[.*\]|unix", host):
                hosts.add(host)
    return hosts


def required_variables() -> set[str]:
    """Settings whose local default works only on the developer's machine: an address on
    127.0.0.1, or a local-dev secret. A deployment that leaves one out runs on that default."""
    required = set()
    for name, spec in Settings.variables().items():
        default = spec.default
        if spec.metadata.get("secret") and default:
            required.add(name)
        elif "127.0.0.1" in str(default):
            required.add(name)
    return required


def environment_errors(where: str, environ: dict[str, str]) -> list[str]:
    """Every OSAGO_* name is a setting the code knows, every required one is there, and the values
    parse (``Settings.from_env`` is what a service runs at start)."""
    known = Settings.variables()
    errors = [
        f"{where}: {name} is not a setting"
        for name in sorted(environ)
        if name.startswith("OSAGO_") and name not in known
    ]
    errors += [f"{where}: {name} is not set" for name in sorted(required_variables() - environ.keys())]
    if not errors:
        try:
            Settings.from_env({name: value for name, value in environ.items() if name.startswith("OSAGO_")})
        except SettingsError as exc:
            errors.append(f"{where}: {exc}")
    return errors


# ---- reading the deployment files ------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def dockerfile_environment() -> dict[str, str]:
    """``ENV NAME=value`` pairs of the image (every container starts with them)."""
    environ = {}
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                name, _, value = pair.partition("=")
                environ[name] = value
    return environ


def compose_environments(compose: dict[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    """Each service that runs one of our commands, with the environment its container gets
    (interpolations such as ${DB_PASSWORD:?...} stand for a value the operator gives)."""
    for name, service in compose["services"].items():
        if not SERVICE_COMMANDS.intersection(service.get("command") or []):
            continue
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        environ = dockerfile_environment()
        environ.update({key: INTERPOLATION.sub("interpolated", str(value)) for key, value in environment.items()})
        yield f"compose service {name}", environ


def kubernetes_files() -> list[Path]:
    return sorted(KUBERNETES_DIR.rglob("*.yaml"))


def kubernetes_resources() -> list[dict[str, Any]]:
    return [doc for path in kubernetes_files() for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def pod_specs(resources_: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in resources_:
        template = resource.get("spec", {}).get("template")
        if template:
            yield f"{resource['kind']}/{resource['metadata']['name']}", template["spec"]


def kubernetes_environments(resources_: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, str]]]:
    """Each container that runs one of our commands, with what envFrom and env give it."""
    by_ref = {
        (resource["kind"], resource["metadata"]["name"]): {**resource.get("data", {}), **resource.get("stringData", {})}
        for resource in resources_
        if resource["kind"] in {"ConfigMap", "Secret"}
    }
    for where, spec in pod_specs(resources_):
        for container in spec["containers"]:
            if not SERVICE_COMMANDS.intersection(container.get("command") or []):
                continue
            environ = dockerfile_environment()
            for source in container.get("envFrom", []):
                kind, ref = (
                    ("ConfigMap", source["configMapRef"])
                    if "configMapRef" in source
                    else ("Secret", source["secretRef"])
                )
                environ.update(by_ref[(kind, ref["name"])])
            for variable in container.get("env", []):
                # A value from the pod itself (its name) is filled in by Kubernetes.
                environ[variable["name"]] = variable.get("value", "from-the-pod")
            yield f"{where} container {container['name']}", environ


def kubernetes_nginx_configs(resources_: list[dict[str, Any]]) -> dict[str, str]:
    return {
        f"ConfigMap/{resource['metadata']['name']} {key}": text
        for resource in resources_
        if resource["kind"] == "ConfigMap"
        for key, text in resource.get("data", {}).items()
        if key.endswith(".conf")
    }


# ---- the tests --------------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    assert compose_schema_errors(load_compose()) == []


def test_a_compose_file_off_the_specification_fails() -> None:
    broken = load_compose()
    broken["services"]["balancer"]["ports"] = "8080:8080"  # a list in the specification
    broken["services"]["core-app"]["restart_policy"] = "always"  # it belongs under deploy
    errors = compose_schema_errors(broken)
    assert any(error.startswith("services/balancer/ports") for error in errors), errors
    assert any("restart_policy" in error for error in errors), errors


def test_compose_runs_the_local_clusters_shape() -> None:
    services = load_compose()["services"]
    for name in ("core-app", "aggregator", "worker"):
        assert services[name]["deploy"]["replicas"] >= 2, name
    for name in ("core-app", "aggregator", "sandbox"):
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"]), name
    assert services["migrate"]["command"] == ["osago-admin", "migrate"]
    assert services["core-app"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert {"rabbitmq-1", "rabbitmq-2", "rabbitmq-3", "postgres-primary", "postgres-replica", "balancer"} <= set(
        services
    )


def test_kubernetes_manifests_follow_the_api_schemas() -> None:
    resources_ = kubernetes_resources()
    kinds = {resource["kind"] for resource in resources_}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret", "Job"} <= kinds
    assert [error for resource in resources_ for error in kubernetes_errors(resource)] == []


def test_a_manifest_off_the_schemas_fails() -> None:
    deployment = next(r for r in kubernetes_resources() if r["kind"] == "Deployment")
    unknown_field = copy.deepcopy(deployment)
    unknown_field["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    assert kubernetes_errors(unknown_field) != []
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "three"
    assert kubernetes_errors(wrong_type) != []


def test_kubernetes_runs_the_local_clusters_shape() -> None:
    resources_ = kubernetes_resources()
    deployments = {r["metadata"]["name"]: r for r in resources_ if r["kind"] == "Deployment"}
    budgets = {
        r["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for r in resources_
        if r["kind"] == "PodDisruptionBudget"
    }
    assert {"core-app", "aggregator", "balancer"} <= budgets
    for name in ("core-app", "aggregator", "worker", "balancer"):
        assert deployments[name]["spec"]["replicas"] >= 2, name
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in container, name
    assert (
        deployments["core-app"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
        == "/readyz"
    )


def test_pods_get_no_service_link_variables() -> None:
    # Kubernetes adds <SERVICE>_SERVICE_HOST and <SERVICE>_PORT for every Service unless told not
    # to; a Service named osago-* would hand every pod OSAGO_* variables its Settings refuse.
    for where, spec in pod_specs(kubernetes_resources()):
        assert spec.get("enableServiceLinks") is False, where


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is missing: `make test` installs it (scripts/ensure-nginx.sh)"
    return binary


def test_docker_nginx_configuration_passes_nginx_t(nginx_binary: str, tmp_path: Path) -> None:
    result = nginx_test(DOCKER_NGINX, tmp_path, upstream_hosts(DOCKER_NGINX.read_text(encoding="utf-8")))
    assert result.returncode == 0, result.stderr


def test_kubernetes_nginx_configurations_pass_nginx_t(nginx_binary: str, tmp_path: Path) -> None:
    configs = kubernetes_nginx_configs(kubernetes_resources())
    assert configs, "the balancer's ConfigMap holds nginx.conf"
    for index, (where, text) in enumerate(configs.items()):
        prefix = tmp_path / str(index)
        prefix.mkdir()
        (prefix / "nginx.conf").write_text(text)
        result = nginx_test(prefix / "nginx.conf", prefix, upstream_hosts(text))
        assert result.returncode == 0, f"{where}: {result.stderr}"


@pytest.mark.parametrize("layout", [Layout(), Layout(1, 1, 1), Layout(5, 3, 4, port_offset=1000)], ids=str)
def test_generated_local_cluster_configurations_pass_nginx_t(nginx_binary: str, tmp_path: Path, layout: Layout) -> None:
    nginx_path, _ = write_configs(layout, tmp_path)
    result = check_nginx(nginx_path, tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_broken_nginx_configuration_fails_nginx_t(nginx_binary: str, tmp_path: Path) -> None:
    text = DOCKER_NGINX.read_text(encoding="utf-8").replace("proxy_read_timeout 60s;", "proxy_read_timeout sixty;", 1)
    (tmp_path / "nginx.conf").write_text(text)
    assert nginx_test(tmp_path / "nginx.conf", tmp_path, set()).returncode != 0
    # An upstream nobody resolves fails too: the hosts file is what makes the others pass.
    unresolved = tmp_path / "unresolved.conf"
    unresolved.write_text("events {}\nhttp { upstream u { server no-such-host.invalid:80; } }\n")
    assert nginx_test(unresolved, tmp_path, set()).returncode != 0
    assert nginx_test(unresolved, tmp_path, {"no-such-host.invalid"}).returncode == 0


def test_required_settings_are_the_machine_bound_ones() -> None:
    assert {
        "OSAGO_DATABASE_URL",
        "OSAGO_AMQP_URL",
        "OSAGO_TOKEN_SECRET",
        "OSAGO_SERVICE_TOKEN",
        "OSAGO_HOST",
    } <= required_variables()
    assert "OSAGO_QUOTE_DEADLINE_S" not in required_variables()


def test_every_variable_compose_sets_is_a_setting_and_every_required_one_is_set() -> None:
    environments = dict(compose_environments(load_compose()))
    assert len(environments) == 5, sorted(environments)  # migrate, sandbox, aggregator, core app, worker
    assert [error for where, environ in environments.items() for error in environment_errors(where, environ)] == []


def test_every_variable_kubernetes_sets_is_a_setting_and_every_required_one_is_set() -> None:
    resources_ = kubernetes_resources()
    environments = dict(kubernetes_environments(resources_))
    assert len(environments) == 5, sorted(environments)  # migrate, sandbox, aggregator, core app, worker
    assert [error for where, environ in environments.items() for error in environment_errors(where, environ)] == []
    # Nothing in the services' ConfigMap and Secret is anything but a setting.
    for resource in resources_:
        if resource["metadata"]["name"] in {"osago-config", "osago-secrets"}:
            keys = {**resource.get("data", {}), **resource.get("stringData", {})}
            assert set(keys) <= Settings.variables().keys(), resource["metadata"]["name"]


def test_an_unknown_missing_or_malformed_variable_fails() -> None:
    where, environ = next(kubernetes_environments(kubernetes_resources()))
    assert environment_errors(where, {**environ, "OSAGO_DATABSE_URL": "postgres://x@db/osago"}) == [
        f"{where}: OSAGO_DATABSE_URL is not a setting"
    ]
    missing = {name: value for name, value in environ.items() if name != "OSAGO_TOKEN_SECRET"}
    assert environment_errors(where, missing) == [f"{where}: OSAGO_TOKEN_SECRET is not set"]
    malformed = environment_errors(where, {**environ, "OSAGO_TRUSTED_PROXIES": "pods"})
    assert len(malformed) == 1 and "OSAGO_TRUSTED_PROXIES" in malformed[0], malformed
