"""The local cluster's generated configurations (local_cluster): nginx for the instance counts,
with an access log that cannot hold a query string, and supervisord with one program per instance,
stop timeouts longer than each service's grace, and no run-tooling variables for the services."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from local_cluster import nginx, supervisor
from local_cluster.__main__ import check_nginx, nginx_config, write_configs
from local_cluster.layout import INSTANCE_VARIABLES, Layout, LayoutError, layout_from_env, service_environment
from shared.platform.settings import Settings

QUERY_VARIABLES = {"request", "request_uri", "args", "query_string", "is_args"}


def upstream_servers(config: str, name: str) -> list[str]:
    block = re.search(rf"upstream {name} \{{(.*?)\}}", config, re.S)
    assert block is not None
    return re.findall(r"server (127\.0\.0\.1:\d+)", block.group(1))


@pytest.mark.parametrize("cores, aggregators", [(1, 1), (2, 2), (5, 3)])
def test_n_instances_make_n_upstream_servers(cores: int, aggregators: int, tmp_path: Path) -> None:
    config = nginx_config(Layout(cores=cores, aggregators=aggregators), tmp_path)
    assert upstream_servers(config, "core_apps") == [f"127.0.0.1:{8180 + i}" for i in range(cores)]
    assert upstream_servers(config, "aggregators") == [f"127.0.0.1:{8280 + i}" for i in range(aggregators)]
    assert "listen 127.0.0.1:8080;" in config and "listen 127.0.0.1:8081;" in config
    assert config.count("max_fails=1 fail_timeout=5s") == cores + aggregators


def test_access_log_never_holds_a_query_string(tmp_path: Path) -> None:
    config = nginx_config(Layout(), tmp_path)
    formats = re.findall(r"log_format (\S+) '([^']*)';", config)
    assert [name for name, _ in formats] == ["osago_no_query"]
    variables = set(re.findall(r"\$([a-z_]+)", formats[0][1]))
    assert "uri" in variables
    assert not variables & QUERY_VARIABLES and not any(v.startswith("arg_") for v in variables)
    # Every access_log uses that format; nginx's default "combined" (with $request) never applies.
    assert re.findall(r"access_log \S+ (\S+);", config) == ["osago_no_query"]


def test_sockets_and_passive_health_checks(tmp_path: Path) -> None:
    config = nginx_config(Layout(), tmp_path)
    assert config.count("proxy_http_version 1.1;") == 4  # HTTP and sockets, on both balancers
    assert config.count("proxy_set_header Upgrade $http_upgrade;") == 4
    assert config.count("proxy_set_header Connection $connection_upgrade;") == 4
    assert config.count("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;") == 4
    assert config.count("proxy_next_upstream error timeout http_502 http_503;") == 4
    assert f"proxy_read_timeout {nginx.SOCKET_TIMEOUT_S}s;" in config
    # Everything nginx writes is under the run directory.
    run = str(tmp_path.resolve())
    for directive in ("pid", "error_log", "access_log", "client_body_temp_path", "proxy_temp_path"):
        paths = re.findall(rf"^\s*{directive} (\S+)", config, re.M)
        assert paths and all(path.startswith(run) for path in paths), directive


@pytest.mark.usefixtures("nginx_installed")
def test_nginx_accepts_the_generated_config(tmp_path: Path) -> None:
    nginx_path, _ = write_configs(Layout(cores=3, aggregators=2), tmp_path)
    result = check_nginx(nginx_path, tmp_path)
    assert result.returncode == 0, result.stderr
    # The same with nginx's own flags spelled out, as the issue asks (-t -c <generated>).
    plain = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-e", str(tmp_path / "e.log"), "-c", str(nginx_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert plain.returncode == 0 and "test is successful" in plain.stderr, plain.stderr


def test_instance_counts_come_from_the_environment() -> None:
    assert layout_from_env({}) == Layout(cores=2, aggregators=2, workers=2)
    layout = layout_from_env({"OSAGO_CORE_INSTANCES": "3", "OSAGO_WORKER_INSTANCES": "1"}, port_offset=10)
    assert (layout.cores, layout.aggregators, layout.workers) == (3, 2, 1)
    assert layout.core_ports == [8190, 8191, 8192] and layout.core_balancer_port == 8090
    for bad in ("0", "x", "-1", "51"):
        with pytest.raises(LayoutError, match="OSAGO_AGGREGATOR_INSTANCES"):
            layout_from_env({"OSAGO_AGGREGATOR_INSTANCES": bad})


def test_services_never_see_the_instance_counts() -> None:
    environ = {name: "2" for name in INSTANCE_VARIABLES.values()} | {"OSAGO_QUOTE_DEADLINE_S": "30", "HOME": "/root"}
    env = service_environment(environ, Layout())
    assert not set(INSTANCE_VARIABLES.values()) & set(env)
    assert env["OSAGO_QUOTE_DEADLINE_S"] == "30" and env["OSAGO_AGGREGATOR_URL"] == "http://127.0.0.1:8081"
    # What a service gets starts it: its Settings know every OSAGO_* variable in it.
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("OSAGO_")})
    assert settings.trusted_proxies == ("127.0.0.1/32", "::1/128")
    assert "http://127.0.0.1:8080" in settings.allowed_origins


def test_supervisor_runs_one_program_per_instance_with_long_enough_stops(tmp_path: Path) -> None:
    layout = Layout(cores=3, aggregators=2, workers=4)
    config = supervisor.render_config(layout, tmp_path)
    programs = re.findall(r"^\[program:(\S+)\]", config, re.M)
    assert sorted(programs) == sorted(
        ["sandbox", "balancer", "aggregator1", "aggregator2", *(f"worker{i}" for i in range(1, 5))]
        + [f"core{i}" for i in range(1, 4)]
    )
    assert config.count("autorestart=true") == len(programs)
    # Workers drain 10 s on SIGTERM, the HTTP services' shutdown_timeout is 10 s.
    waits = [int(w) for w in re.findall(r"^stopwaitsecs=(\d+)", config, re.M)]
    assert len(waits) == len(programs)
    services = re.findall(r"^\[program:(?!balancer)\S+\]\n(?:.*\n)*?stopwaitsecs=(\d+)", config, re.M)
    assert len(services) == len(programs) - 1 and all(int(w) > 10 for w in services)
    assert 'OSAGO_PORT="8182"' in config and 'OSAGO_PORT="8281"' in config
    assert not any(variable in config for variable in INSTANCE_VARIABLES.values())
