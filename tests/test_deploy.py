"""deploy/: every `gate` flag, /_gate/ path and GATE_* variable the files name exists; the probe works
against a real gate; systemd-analyze and nginx -t pass where those tools are installed; compose.yaml and
the Kubernetes manifests parse, and the manifests validate against the Kubernetes JSON schemas
(kubernetes-validate ships them, so no network is needed) and agree with each other and with gate."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml

from gate import cli, settings
from gate.app import create_app

from .conftest import serve

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
UNIT = (DEPLOY / "systemd" / "gate.service").read_text(encoding="utf-8")
NGINX = (DEPLOY / "nginx" / "gate.conf").read_text(encoding="utf-8")
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml"))
K8S_TEXT = "".join(f.read_text(encoding="utf-8") for f in K8S_FILES)
GATE_PATH = re.compile(r"/_gate/[A-Za-z0-9_./-]*[A-Za-z0-9_]")


# -- helpers --------------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [ln for ln in DOCKERFILE.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def exec_form(name: str, stage: list[tuple[str, str]]) -> list[str]:
    [args] = [a for n, a in stage if n == name]
    return json.loads(args.removeprefix("CMD").strip())


def unit_values(key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", UNIT, re.M)


def gate_argv_is_valid(argv: list[str]) -> None:
    """argparse accepts ``argv`` (every flag exists, every value parses); fails the test otherwise."""
    try:
        cli.build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`gate {' '.join(argv)}` is not a valid gate command line")


def get_status(path: str) -> int:
    async def go() -> int:
        app = create_app(settings.load({}, {}))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080") as c:
            return (await c.get(path)).status_code

    return asyncio.run(go())


def mentioned_paths() -> set[str]:
    return set(GATE_PATH.findall(DOCKERFILE + UNIT + NGINX + COMPOSE_TEXT + K8S_TEXT))


# -- what the files name exists -------------------------------------------------------------------
def test_deploy_files_name_gate_paths():
    assert "/_gate/healthz" in mentioned_paths()


@pytest.mark.parametrize("path", sorted(mentioned_paths()))
def test_every_gate_path_in_deploy_exists(path):
    assert get_status(path) == 200


def test_image_command_line_is_valid():
    stage = final_stage()
    entrypoint, command = exec_form("ENTRYPOINT", stage), exec_form("CMD", stage)
    assert entrypoint == ["gate"]
    gate_argv_is_valid(command)


def test_systemd_command_line_is_valid():
    [exec_start] = unit_values("ExecStart")
    program, *argv = shlex.split(exec_start)
    assert Path(program).name == "gate"
    gate_argv_is_valid(argv)


def test_image_reads_the_registry_it_copies():
    stage = final_stage()
    copies = [a.split() for n, a in stage if n == "COPY" and not a.startswith("--from")]
    assert ["vendors.toml", "/etc/gate/vendors.toml"] in copies
    assert re.search(r"\bGATE_VENDORS=/etc/gate/vendors\.toml\b", " ".join(a for n, a in stage if n == "ENV"))


def test_systemd_unit_passes_the_registry_and_config():
    [exec_start] = unit_values("ExecStart")
    args = cli.build_parser().parse_args(shlex.split(exec_start)[1:])
    assert (args.vendors, args.config) == ("/etc/gate/vendors.toml", "/etc/gate/gate.toml")


def test_files_the_image_copies_exist():
    for name, args in dockerfile_instructions():
        if name == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source


def test_every_data_file_is_packaged():
    """The image installs gate non-editable: a data file outside package-data would be missing there."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["gate"]
    for path in (ROOT / "gate").rglob("*"):
        relative = path.relative_to(ROOT / "gate").as_posix()
        # .c is compiled into the extension module (ext-modules) and .so is what that build makes
        if path.is_file() and path.suffix not in (".py", ".pyc", ".c", ".so") and "__pycache__" not in relative:
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"gate/{relative} is not in package-data"


# -- the image ------------------------------------------------------------------------------------
def test_image_is_multi_stage_and_runs_as_a_user():
    assert sum(1 for n, _ in dockerfile_instructions() if n == "FROM") >= 2
    users = [a for n, a in final_stage() if n == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_image_bakes_in_no_secret():
    for name, args in dockerfile_instructions():
        assert "SECRET" not in args.upper(), f"{name} {args}"


def healthcheck_code() -> str:
    [check] = [a for n, a in final_stage() if n == "HEALTHCHECK"]
    argv = json.loads(check[check.index("CMD") + 3 :].strip())
    assert argv[:2] == ["python", "-c"]
    return argv[2]


def test_healthcheck_passes_against_a_running_gate():
    app = create_app(settings.load({}, {}))
    with serve(app) as url:
        port = url.rsplit(":", 1)[1]
        done = subprocess.run(
            [sys.executable, "-c", healthcheck_code()],
            env={**os.environ, "GATE_PORT": port},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 0, done.stderr


def test_healthcheck_fails_when_nothing_answers():
    done = subprocess.run(
        [sys.executable, "-c", healthcheck_code()],
        env={**os.environ, "GATE_PORT": "9"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0


# -- systemd --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "setting",
    [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "EnvironmentFile=/etc/gate/gate.env",
    ],
)
def test_systemd_unit_is_sandboxed(setting):
    assert re.search(rf"^{re.escape(setting)}$", UNIT, re.M)


def test_systemd_does_not_restart_on_a_config_error(capsys):
    assert unit_values("RestartPreventExitStatus") == ["2"]
    assert cli.main(["check", "--config", "/nonexistent/gate.toml"]) == 2  # the code a config error exits with
    capsys.readouterr()


def test_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    env_file = tmp_path / "gate.env"
    env_file.write_text("GATE_SECRET_KEY=test-key-0123456789abcdef\n", encoding="utf-8")
    [exec_start] = unit_values("ExecStart")
    # verify wants ExecStart's program to exist: point it at this interpreter, keep the rest
    unit = UNIT.replace(shlex.split(exec_start)[0], sys.executable).replace("/etc/gate/gate.env", str(env_file))
    (tmp_path / "gate.service").write_text(unit, encoding="utf-8")
    done = subprocess.run([tool, "verify", str(tmp_path / "gate.service")], capture_output=True, text=True, timeout=60)
    ours = [ln for ln in done.stderr.splitlines() if "gate.service" in ln]
    assert done.returncode == 0 and not ours, done.stderr


# -- nginx ----------------------------------------------------------------------------------------
def test_nginx_passes_to_gate_at_its_default_address():
    default = settings.Settings(sites=(), secret_keys=("x",))
    assert re.search(rf"^\s*server {re.escape(default.host)}:{default.port};", NGINX, re.M)
    assert re.search(r"^\s*proxy_pass http://gate;", NGINX, re.M)


@pytest.mark.parametrize(
    "directive",
    [
        r"proxy_set_header Host\s+\$host;",
        r"proxy_set_header X-Forwarded-For\s+\$remote_addr;",
        r"proxy_set_header X-Forwarded-Proto\s+\$scheme;",
        r"proxy_set_header X-Forwarded-Host\s+\$host;",
        r"proxy_buffering off;",
        r"proxy_request_buffering off;",
        r"client_max_body_size 60m;",
        r"listen 443 ssl;",
    ],
)
def test_nginx_terminates_tls_and_streams(directive):
    assert re.search(rf"^\s*{directive}", NGINX, re.M)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def test_nginx_accepts_the_config(tmp_path):
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx); config checked by text only")
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a throw-away certificate for nginx -t")
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=gate.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ours = NGINX.replace("/etc/ssl/gate/fullchain.pem", str(cert)).replace("/etc/ssl/gate/privkey.pem", str(key))
    (tmp_path / "gate.conf").write_text(ours, encoding="utf-8")
    temp = "\n".join(f"    {d}_temp_path {tmp_path}/{d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temp}\n    include {tmp_path}/gate.conf;\n}}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


# -- every GATE_* variable the deploy files name is one gate reads ----------------------------------
GATE_SOURCES = "".join(f.read_text(encoding="utf-8") for f in (ROOT / "gate").glob("*.py"))


def deploy_variables() -> set[str]:
    texts = [DOCKERFILE, UNIT, NGINX, COMPOSE_TEXT, K8S_TEXT, (DEPLOY / "README.md").read_text(encoding="utf-8")]
    return set(re.findall(r"\bGATE_[A-Z_]+[A-Z]\b", "".join(texts)))


def test_deploy_files_name_gate_variables():
    assert {"GATE_SECRET_KEY", "GATE_STORE", "GATE_TRUSTED_PROXIES"} <= deploy_variables()


@pytest.mark.parametrize("name", sorted(deploy_variables()))
def test_every_variable_in_deploy_is_read_by_gate(name):
    assert f'"{name}"' in GATE_SOURCES, f"{name} is named in deploy/ but gate never reads it"


def test_systemd_trusts_the_local_nginx_and_waits_for_the_drain():
    [trusted] = [v for v in unit_values("Environment") if v.startswith("GATE_TRUSTED_PROXIES=")]
    conf = settings.load({}, {"GATE_TRUSTED_PROXIES": trusted.split("=", 1)[1]})
    assert conf.trusted_proxies == ("127.0.0.1/32", "::1/128")
    [stop] = unit_values("TimeoutStopSec")
    assert int(stop.removesuffix("s")) > conf.shutdown_timeout


def test_systemd_gives_room_for_many_connections():
    """Each connection is an open file: with the default 1,024, 1,100 slow connections locked everyone out."""
    [limit] = unit_values("LimitNOFILE")
    assert int(limit) >= 65536


def test_image_works_in_a_directory_of_its_own():
    stage = final_stage()
    [workdir] = [a for n, a in stage if n == "WORKDIR"]
    assert workdir == "/var/lib/gate" and any(
        "install -d -o gate" in a and workdir in a for n, a in stage if n == "RUN"
    )


# -- compose ----------------------------------------------------------------------------------------
COMPOSE = yaml.safe_load(COMPOSE_TEXT)


def test_compose_builds_this_image_and_runs_a_valid_command():
    service = COMPOSE["services"]["gate"]
    assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    gate_argv_is_valid(service["command"])


def test_compose_gate_uses_the_postgres_service_once_it_is_healthy():
    service = COMPOSE["services"]["gate"]
    store = service["environment"]["GATE_STORE"]
    assert store.startswith("postgresql://") and "@postgres:5432/" in store
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in COMPOSE["services"]["postgres"]
    env = {k: str(v) for k, v in service["environment"].items() if "${" not in str(v)}
    settings.load({}, env)  # the environment gate gets is valid


def test_compose_waits_for_the_drain():
    grace = COMPOSE["services"]["gate"]["stop_grace_period"]
    assert int(grace.removesuffix("s")) > settings.load({}, {}).shutdown_timeout


def test_compose_gives_room_for_many_connections():
    nofile = COMPOSE["services"]["gate"]["ulimits"]["nofile"]
    assert nofile["soft"] >= 65536 and nofile["hard"] >= nofile["soft"]


def test_compose_publishes_on_loopback_only():
    assert all(p.startswith("127.0.0.1:") for p in COMPOSE["services"]["gate"]["ports"])


# -- Kubernetes -------------------------------------------------------------------------------------
def k8s_documents() -> list[tuple[str, dict]]:
    return [(f.name, d) for f in K8S_FILES for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d]


K8S = {d["kind"]: d for _, d in k8s_documents()}
MANIFESTS = [(name, d) for name, d in k8s_documents() if d["kind"] != "Kustomization"]
SCHEMA_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize(("name", "manifest"), MANIFESTS, ids=[n for n, _ in MANIFESTS])
def test_k8s_manifest_matches_the_kubernetes_schema(name, manifest, version):
    """Strict: an unknown field (a typo such as readinesProbe) fails, as kubectl --validate=strict would."""
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")


def test_k8s_has_every_part():
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
        "Kustomization",
    } <= set(K8S)


def test_kustomization_applies_every_manifest_but_the_secret_template():
    listed = set(K8S["Kustomization"]["resources"])
    assert listed == {f.name for f in K8S_FILES} - {"kustomization.yaml", "secret.yaml"}


POD = K8S["Deployment"]["spec"]["template"]
[CONTAINER] = POD["spec"]["containers"]


def test_deployment_probes_readiness_and_liveness_on_gates_paths():
    assert CONTAINER["readinessProbe"]["httpGet"]["path"] == "/_gate/readyz"
    assert CONTAINER["livenessProbe"]["httpGet"]["path"] == "/_gate/healthz"
    port_names = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert CONTAINER[probe]["httpGet"]["port"] in port_names
    assert port_names["http"] == settings.Settings(sites=(), secret_keys=("x",)).port  # the image's GATE_PORT


def test_deployment_is_replicated_bounded_and_locked_down():
    assert K8S["Deployment"]["spec"]["replicas"] >= 3
    resources = CONTAINER["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    security = CONTAINER["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert POD["spec"]["securityContext"]["runAsNonRoot"]


def cluster_gate_toml() -> str:
    return K8S["ConfigMap"]["data"]["gate.toml"]


def test_termination_grace_covers_pre_stop_and_the_drain(tmp_path):
    (tmp_path / "gate.toml").write_text(cluster_gate_toml(), encoding="utf-8")
    conf = settings.load({"config": str(tmp_path / "gate.toml")}, {"GATE_SECRET_KEY": "k" * 32})
    command = CONTAINER["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert POD["spec"]["terminationGracePeriodSeconds"] > int(command[1]) + conf.shutdown_timeout


def test_deployment_command_line_and_files_exist_in_gate_and_the_configmap():
    gate_argv_is_valid(CONTAINER["args"])
    args = cli.build_parser().parse_args(CONTAINER["args"])
    [mount] = [m for m in CONTAINER["volumeMounts"] if m["name"] == "config"]
    [volume] = [v for v in POD["spec"]["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == K8S["ConfigMap"]["metadata"]["name"]
    for path in (args.config, args.vendors):
        assert Path(path).parent.as_posix() == mount["mountPath"] and Path(path).name in K8S["ConfigMap"]["data"]


def test_configmap_gate_toml_is_valid_and_trusts_a_network(tmp_path):
    (tmp_path / "gate.toml").write_text(cluster_gate_toml(), encoding="utf-8")
    (tmp_path / "vendors.toml").write_text(K8S["ConfigMap"]["data"]["vendors.toml"], encoding="utf-8")
    conf, _ = cli.load_all(
        {"config": str(tmp_path / "gate.toml"), "vendors": str(tmp_path / "vendors.toml")},
        {"GATE_SECRET_KEY": "k" * 32},
    )
    assert conf.trusted_proxies and all(s.public_scheme == "https" for s in conf.sites)


def test_configmap_carries_the_repositorys_registry():
    assert K8S["ConfigMap"]["data"]["vendors.toml"] == (ROOT / "vendors.toml").read_text(encoding="utf-8"), (
        "deploy/k8s/configmap.yaml's vendors.toml differs from vendors.toml: copy the registry there"
    )


def test_the_secret_template_cannot_run_gate():
    """Applied unchanged, gate refuses the placeholder key: it never runs with a key everyone knows."""
    data = K8S["Secret"]["stringData"]
    with pytest.raises(settings.ConfigError, match="at least 16 characters"):
        settings.load({"upstream": "http://origin.test"}, {"GATE_SECRET_KEY": data["GATE_SECRET_KEY"]})


def test_secret_keys_the_deployment_needs_are_in_the_template():
    refs = [e["valueFrom"]["secretKeyRef"] for e in CONTAINER["env"] if "valueFrom" in e]
    assert {r["name"] for r in refs} == {K8S["Secret"]["metadata"]["name"]}
    required = {r["key"] for r in refs if not r.get("optional")}
    assert required <= set(K8S["Secret"]["stringData"])


def labels_match(selector: dict) -> bool:
    return selector.items() <= POD["metadata"]["labels"].items()


def test_service_pdb_and_autoscaler_point_at_the_deployment():
    assert labels_match(K8S["Service"]["spec"]["selector"])
    assert labels_match(K8S["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])
    assert labels_match(K8S["Deployment"]["spec"]["selector"]["matchLabels"])
    target = K8S["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", K8S["Deployment"]["metadata"]["name"])
    assert K8S["Service"]["spec"]["ports"][0]["targetPort"] in {p["name"] for p in CONTAINER["ports"]}
    assert K8S["HorizontalPodAutoscaler"]["spec"]["minReplicas"] > K8S["PodDisruptionBudget"]["spec"]["maxUnavailable"]
