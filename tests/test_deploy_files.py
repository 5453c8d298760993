"""deploy/ agrees with the code: every file parses, and every variable, option and command it
names exists in ``crystallize_dist.config.Settings`` or the click CLI.

No Docker engine or cluster is needed. The files are checked by parsing them: YAML, the
Dockerfile's instructions, systemd units, the Redis config and the README's bash blocks. The
Redis settings are also given to a real ``redis-server`` when one is installed.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from crystallize_dist.cli import main
from crystallize_dist.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
README = DEPLOY / "README.md"
ENV_EXAMPLE = DEPLOY / ".env.example"
SYSTEMD = DEPLOY / "systemd"
K8S = DEPLOY / "k8s"
PREFIX = "CRYSTALLIZE_DIST_"
ENV_NAME = re.compile(r"\bCRYSTALLIZE_DIST_[A-Z0-9_]+\b")
SCALE_K8S = "kubectl scale deployment/crystallize-dist-worker --replicas=N"

#: Placeholders the README and the example files use, and what the tests put in their place.
PLACEHOLDERS = {
    "PASSWORD": "pw0123456789abcdef",
    "HOST": "192.0.2.10",
    "PORT": "6379",
    "RUN_ID": "20250101-000000-abcdef",
    "SECRET": "s3cret",
}
#: Commands a README bash block may start with (one command per line, no heredocs).
README_TOOLS = {
    "crystallize-dist",
    "sudo",
    "pip",
    "python3",
    "source",
    "export",
    "openssl",
    "printf",
    "echo",
    "redis-cli",
    "cd",
    "cp",
    "docker",
    "kubectl",
    "journalctl",
}


# --- what the code defines ----------------------------------------------------------------


class _RecordingEnv(dict[str, str]):
    """An empty environment that remembers every variable ``Settings.from_env`` looks up."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return default

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return False


def _envvars(param: click.Parameter) -> list[str]:
    if not param.envvar:
        return []
    return [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)


def _commands() -> dict[str, click.Command]:
    assert isinstance(main, click.Group)
    return dict(main.commands)


def settings_variables() -> set[str]:
    """Every CRYSTALLIZE_DIST_* variable Settings reads or writes."""
    env = _RecordingEnv()
    Settings.from_env(env)
    names = {k for k in env.read if k.startswith(PREFIX)}
    names |= set(Settings().env())
    assert {PREFIX + "BROKER_URL", PREFIX + "SECRET"} <= names, names
    return names


def option_variables() -> dict[str, set[str]]:
    """CRYSTALLIZE_DIST_* variable -> the CLI options (all spellings) that read it."""
    out: dict[str, set[str]] = {}
    for command in [main, *_commands().values()]:
        for param in command.params:
            for name in _envvars(param):
                spellings = set(param.opts) | set(getattr(param, "secondary_opts", []))
                out.setdefault(name, set()).update(spellings)
    assert PREFIX + "BROKER_URL" in out, out
    return out


def real_variables() -> set[str]:
    return settings_variables() | set(option_variables())


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CRYSTALLIZE_DIST_* variable of the caller leaks into click's parsing here."""
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)


def substitute(text: str) -> str:
    return re.sub(
        r"\b(" + "|".join(PLACEHOLDERS) + r")\b", lambda m: PLACEHOLDERS[m.group(1)], text
    )


def parse_cli(args: list[str]) -> click.Context:
    """Parse ``crystallize-dist <args>`` with click (types, choices, unknown options).

    Nothing runs: only the subcommand's context is made.
    """
    commands = _commands()
    assert args, "empty command line"
    assert args[0] in commands, f"unknown subcommand {args[0]!r} (have {sorted(commands)})"
    try:
        return commands[args[0]].make_context(args[0], list(args[1:]))
    except click.ClickException as exc:
        pytest.fail(f"crystallize-dist {shlex.join(args)}: {exc.format_message()}")


def check_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    """``env`` (CRYSTALLIZE_DIST_* values) gives valid Settings and a valid worker command."""
    env = {k: substitute(v) for k, v in env.items() if k.startswith(PREFIX)}
    unknown = set(env) - real_variables()
    assert not unknown, f"{what} sets variables crystallize-dist never reads: {sorted(unknown)}"
    Settings.from_env(env)  # raises InvalidOptionError on a bad URL, number or policy
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parse_cli(["worker"])  # the worker's options read the same variables (types, choices)


def test_settings_and_options_are_found() -> None:
    names = real_variables()
    for expected in ("BROKER_URL", "CONCURRENCY", "POOL", "QUEUE", "HOSTNAME", "SECRET"):
        assert PREFIX + expected in names


# --- every file ---------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))


def load_all(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no YAML document"
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a document is not a mapping"
    return docs


def test_every_yaml_file_parses() -> None:
    files = yaml_files()
    names = {p.relative_to(DEPLOY).as_posix() for p in files}
    assert {"docker-compose.yml", "k8s/redis.yaml", "k8s/worker.yaml"} <= names, names
    for path in files:
        load_all(path)


def test_every_variable_named_under_deploy_is_real() -> None:
    real = real_variables()
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        named = set(ENV_NAME.findall(path.read_text()))
        unknown = named - real
        assert not unknown, f"{path.relative_to(ROOT)} names unknown variables {sorted(unknown)}"


# --- docker compose -----------------------------------------------------------------------


def compose() -> dict[str, Any]:
    (doc,) = load_all(COMPOSE)
    return doc


def compose_default(value: str) -> str:
    """``${VAR:-default}`` -> default; ``${VAR}`` / ``${VAR:?msg}`` -> the placeholder VAR."""

    def repl(m: re.Match[str]) -> str:
        name, op, rest = m.group(1), m.group(2) or "", m.group(3) or ""
        return rest if op in (":-", "-") else name

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}", repl, value)


def as_argv(command: Any) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def env_mapping(environment: Any) -> dict[str, str]:
    if environment is None:
        return {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {str(k): "" if v is None else str(v) for k, v in environment.items()}


def assert_redis_args(argv: list[str], what: str) -> None:
    joined = " ".join(argv)
    assert "--appendonly yes" in joined, f"{what}: no append-only persistence: {joined}"
    assert "--maxmemory-policy noeviction" in joined, f"{what}: eviction not off: {joined}"
    assert "--requirepass" in argv, f"{what}: no password: {joined}"
    password = argv[argv.index("--requirepass") + 1]
    assert "REDIS_PASSWORD" in password, f"{what}: password not from REDIS_PASSWORD: {password}"


def test_compose_services() -> None:
    doc = compose()
    services = doc["services"]
    assert {"redis", "worker", "flower"} <= set(services)

    redis_service = services["redis"]
    assert str(redis_service["image"]).startswith("redis:7")
    assert_redis_args(as_argv(redis_service["command"]), "compose redis")
    volumes = [str(v) for v in redis_service.get("volumes", [])]
    data = [v.split(":", 1)[0] for v in volumes if v.split(":")[1:2] == ["/data"]]
    assert data, f"redis keeps no /data volume: {volumes}"
    assert data[0] in (doc.get("volumes") or {}), f"volume {data[0]} is not declared"

    flower = services["flower"]
    assert str(flower["image"]).startswith("mher/flower")
    flower_cmd = " ".join(as_argv(flower.get("command", [])))
    flower_env = env_mapping(flower.get("environment"))
    assert "flower" in flower_cmd
    assert "REDIS_PASSWORD" in flower_cmd + json.dumps(flower_env), "flower has no broker URL"
    assert any(str(p).endswith("5555:5555") for p in flower.get("ports", [])), flower


def test_compose_worker_scales_and_builds_the_dockerfile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = compose()["services"]["worker"]
    assert "container_name" not in worker, "a fixed container_name breaks --scale worker=N"
    for port in worker.get("ports", []):  # a fixed host port breaks scaling too
        assert str(port).count(":") == 0, f"worker publishes a fixed host port: {port}"
    build = worker["build"]
    context = COMPOSE.parent / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (context / dockerfile).resolve() == DOCKERFILE.resolve()
    assert (context / "pyproject.toml").is_file(), "the build context is not the repository"

    env = env_mapping(worker.get("environment"))
    broker = env[PREFIX + "BROKER_URL"]
    assert "${REDIS_PASSWORD" in broker and "@redis:" in broker, broker
    assert PREFIX + "HOSTNAME" not in env, "one fixed node name for every replica"
    check_settings({k: compose_default(v) for k, v in env.items()}, monkeypatch, "compose")
    grace = worker.get("stop_grace_period", "10s")
    assert grace.endswith("s") and float(grace[:-1]) >= Settings().cell_time_limit


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {line!r}"
            out[key.strip()] = value.strip()
    return out


def test_env_example_covers_compose_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    example = env_file(ENV_EXAMPLE)
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    missing = used - set(example)
    assert not missing, f".env.example lacks variables docker-compose.yml uses: {missing}"
    assert "REDIS_PASSWORD" in example
    check_settings(example, monkeypatch, ".env.example")
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert ".env" in ignored, "deploy/.env (the real passwords) is not git-ignored"


# --- Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def test_dockerfile(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = dockerfile_instructions()
    keywords = [k for k, _ in steps]
    assert keywords[0] in ("FROM", "ARG")
    froms = [v for k, v in steps if k == "FROM"]
    assert froms and froms[-1].split()[0] == "python:3.11-slim", froms
    # The whole repository is copied and installed (not editable) from where it was copied.
    copies = [shlex.split(v) for k, v in steps if k == "COPY"]
    repo = [c[-1] for c in copies if next(a for a in c if not a.startswith("--")) == "."]
    assert repo, f"no COPY of the repository: {copies}"
    installs = [re.findall(r"pip install (\S+)", v) for k, v in steps if k == "RUN"]
    targets = {t for found in installs for t in found}
    assert targets & {repo[0], repo[0].rstrip("/"), "."}, f"pip install of {repo[0]}: {targets}"

    entrypoints = [v for k, v in steps if k == "ENTRYPOINT"]
    assert entrypoints, "no ENTRYPOINT"
    assert entrypoints[-1].startswith("["), "ENTRYPOINT in shell form: SIGTERM misses the worker"
    entry = json.loads(entrypoints[-1])
    assert entry[:2] == ["crystallize-dist", "worker"], entry
    cmds = [v for k, v in steps if k == "CMD"]
    extra = json.loads(cmds[-1]) if cmds else []
    parse_cli([*entry[1:], *extra])

    users = [(i, v) for i, (k, v) in enumerate(steps) if k == "USER"]
    assert users and users[-1][1] not in ("root", "0"), "the image runs as root"
    assert users[-1][0] < keywords.index("ENTRYPOINT")

    env: dict[str, str] = {}
    for keyword, value in steps:
        if keyword == "ENV":
            for item in shlex.split(value):
                key, _, val = item.partition("=")
                env[key] = val
    assert PREFIX + "BROKER_URL" in env
    check_settings(env, monkeypatch, "Dockerfile ENV")


# --- systemd and the Redis config ---------------------------------------------------------


def unit_files() -> list[Path]:
    units = sorted(SYSTEMD.glob("*.service"))
    names = {p.name for p in units}
    assert "crystallize-dist-worker.service" in names, names
    return units


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # case-sensitive keys
    parser.read_string(path.read_text(), source=str(path))
    return parser


def unit_values(path: Path, key: str) -> list[str]:
    """Every value of a repeatable key (configparser keeps only the last one)."""
    return [
        line.split("=", 1)[1].strip()
        for line in path.read_text().splitlines()
        if line.strip().startswith(key + "=")
    ]


def unspecify(text: str) -> str:
    """Expand the systemd specifiers the units use (%% is a literal percent sign)."""
    return text.replace("%%", "\0").replace("%i", "1").replace("%H", "host").replace("\0", "%")


def test_systemd_worker_units() -> None:
    for path in unit_files():
        if not path.name.startswith("crystallize-dist-worker"):
            continue
        unit = read_unit(path)
        assert {"Unit", "Service", "Install"} <= set(unit.sections()), path
        service = unit["Service"]
        argv = shlex.split(unspecify(service["ExecStart"]))
        assert Path(argv[0]).name == "crystallize-dist" and argv[1] == "worker", argv
        bad = re.search(r"(?<!%)%h", service["ExecStart"])
        assert not bad, "systemd expands %h to a home folder: write %%h for Celery's %h"
        parse_cli(argv[1:])
        files = [f.lstrip("-") for f in unit_values(path, "EnvironmentFile")]
        assert "/etc/crystallize-dist/env" in files, files
        assert service["Restart"] == "always"
        assert service["KillMode"] == "mixed"
        assert service.get("KillSignal", "SIGTERM") == "SIGTERM"
        assert float(service["TimeoutStopSec"]) >= Settings().cell_time_limit
        assert service.get("User", "root") not in ("root", "0")
        assert unit["Install"]["WantedBy"] == "multi-user.target"
        for value in unit_values(path, "Environment"):
            name = value.strip('"').split("=", 1)[0]
            assert not name.startswith(PREFIX) or name in real_variables(), name


def test_systemd_env_example(monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_file(SYSTEMD / "env.example")
    assert PREFIX + "BROKER_URL" in env
    check_settings(env, monkeypatch, "systemd/env.example")


def redis_conf() -> Path:
    (path,) = sorted(SYSTEMD.glob("redis*.conf"))
    return path


def conf_directives(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key.lower()] = value.strip()
    return out


def test_redis_config_snippet() -> None:
    conf = conf_directives(redis_conf())
    assert conf["appendonly"] == "yes"
    assert conf["maxmemory-policy"] == "noeviction"
    assert conf.get("requirepass"), "no requirepass"
    readme = README.read_text()
    for line in ("appendonly yes", "maxmemory-policy noeviction", "requirepass PASSWORD"):
        assert line in readme, f"the walk-through lacks {line!r}"


# --- Kubernetes ---------------------------------------------------------------------------


def k8s_docs() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.y*ml")) for doc in load_all(path)]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def container_env(
    container: dict[str, Any], docs: list[dict[str, Any]]
) -> tuple[dict[str, str], list[str]]:
    """(plain env values incl. ConfigMaps, names taken from Secrets); refs must resolve."""
    secrets = {
        s["metadata"]["name"]: {**s.get("stringData", {}), **s.get("data", {})}
        for s in by_kind(docs, "Secret")
    }
    maps = {m["metadata"]["name"]: m.get("data", {}) for m in by_kind(docs, "ConfigMap")}
    values: dict[str, str] = {}
    from_secrets: list[str] = []
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        assert ref in maps, f"envFrom names a missing ConfigMap {ref}"
        values.update({k: str(v) for k, v in maps[ref].items()})
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            for used in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", item["value"]):
                assert used in values or used in from_secrets, f"$({used}) used before set"
            values[name] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets.get(ref["name"], {}), f"missing secret key {ref}"
            from_secrets.append(name)
    return values, from_secrets


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    selector = workload["spec"]["selector"]["matchLabels"]
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items(), "the selector does not match the pod labels"
    return workload["spec"]["template"]["spec"]


def test_k8s_kinds_and_redis() -> None:
    docs = k8s_docs()
    kinds = {d["kind"] for d in docs}
    assert {"Secret", "Service", "StatefulSet", "Deployment", "ConfigMap"} <= kinds, kinds
    (sts,) = by_kind(docs, "StatefulSet")
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"].get("clusterIP") == "None"
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= pod_labels.items(), "service selects no pod"
    assert sts["spec"]["volumeClaimTemplates"], "redis has no persistent volume claim"
    (container,) = pod_spec(sts)["containers"]
    assert str(container["image"]).startswith("redis:7")
    argv = as_argv([*container.get("command", []), *container.get("args", [])])
    assert_redis_args(argv, "k8s redis")
    _, from_secrets = container_env(container, docs)
    assert "REDIS_PASSWORD" in from_secrets, "the redis password is not from the Secret"
    claim = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert any(m["name"] == claim for m in container.get("volumeMounts", []))


def test_k8s_worker_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = k8s_docs()
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    worker = deployments["crystallize-dist-worker"]
    spec = pod_spec(worker)
    (container,) = spec["containers"]
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[:2] == ["crystallize-dist", "worker"], argv
    parse_cli(argv[1:])
    values, from_secrets = container_env(container, docs)
    assert "REDIS_PASSWORD" in from_secrets
    broker = values[PREFIX + "BROKER_URL"]
    services = {s["metadata"]["name"] for s in by_kind(docs, "Service")}
    host = broker.rsplit("@", 1)[1].split(":")[0].split(".")[0]
    assert "$(REDIS_PASSWORD)" in broker and host in services, broker
    assert PREFIX + "HOSTNAME" not in values, "one fixed node name for every replica"
    unknown = {n for n in from_secrets if n.startswith(PREFIX)} - real_variables()
    assert not unknown, unknown
    values = {k: v.replace("$(REDIS_PASSWORD)", "PASSWORD") for k, v in values.items()}
    check_settings(values, monkeypatch, "k8s worker")
    limit = float(values.get(PREFIX + "CELL_TIME_LIMIT", Settings().cell_time_limit))
    assert spec["terminationGracePeriodSeconds"] >= limit, "no time for a warm shutdown"
    assert spec.get("securityContext", {}).get("runAsNonRoot") is True
    assert SCALE_K8S in (K8S / "worker.yaml").read_text()


# --- README -------------------------------------------------------------------------------


def readme_table() -> list[list[str]]:
    text = README.read_text()
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    return [row for row in cells[2:] if row and ENV_NAME.search(row[0])]


def test_readme_table_lists_every_variable_and_only_real_ones() -> None:
    rows = readme_table()
    named = [ENV_NAME.search(row[0]).group(0) for row in rows]  # type: ignore[union-attr]
    assert len(named) == len(set(named)), "a variable is listed twice"
    real = real_variables()
    unknown = set(named) - real
    assert not unknown, f"deploy/README.md lists variables that do not exist: {sorted(unknown)}"
    missing = real - set(named)
    assert not missing, f"deploy/README.md's table lacks {sorted(missing)} (add a row each)"


def test_readme_table_options_and_defaults_match_the_code() -> None:
    options = option_variables()
    defaults = Settings().env()
    params = {
        name: param
        for command in _commands().values()
        for param in command.params
        for name in _envvars(param)
    }
    for row in readme_table():
        name = ENV_NAME.search(row[0]).group(0)  # type: ignore[union-attr]
        spelled = set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", row[1]))
        assert spelled <= options.get(name, set()), f"{name}: {spelled} are not its options"
        assert bool(spelled) == (name in options), f"{name}: option column {row[1]!r}"
        default_cell = row[3]
        if name in defaults:
            value = defaults[name]
            try:
                number = float(value)
            except ValueError:
                assert value in default_cell, f"{name}: default {value!r} not in {default_cell!r}"
            else:
                first = re.search(r"\d+(\.\d+)?", default_cell)
                assert first and float(first.group(0)) == number, f"{name}: {default_cell!r}"
        elif name in params and isinstance(params[name].default, str):
            default = params[name].default
            assert default in default_cell, f"{name}: default {default!r} not in {default_cell!r}"


def readme_bash_lines() -> list[str]:
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.S | re.M)
    lines: list[str] = []
    for block in blocks:
        pending = ""
        for raw in block.splitlines():
            line = raw.strip()
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = (pending + line).strip()
            pending = ""
            if line and not line.startswith("#"):
                lines.append(line)
    assert lines, "deploy/README.md has no bash blocks"
    return lines


def test_readme_bash_lines_are_single_commands() -> None:
    for line in readme_bash_lines():
        first = shlex.split(line)[0]
        assert first in README_TOOLS, f"unexpected command line in deploy/README.md: {line!r}"


def test_readme_crystallize_dist_commands_parse() -> None:
    parsed: list[tuple[str, click.Context]] = []
    for line in readme_bash_lines():
        if not line.startswith("crystallize-dist "):
            continue
        argv = shlex.split(substitute(line))
        ctx = parse_cli(argv[1:])
        parsed.append((argv[1], ctx))
        broker = ctx.params.get("broker")
        if broker:
            Settings.from_env({}, broker_url=broker)  # a valid redis:// or rediss:// URL
        experiment = ctx.params.get("experiment")
        if experiment and experiment.endswith(".py"):
            assert (ROOT / experiment).is_file(), f"{experiment} does not exist"
    by_name: dict[str, list[click.Context]] = {}
    for name, ctx in parsed:
        by_name.setdefault(name, []).append(ctx)
    # The shapes the multi-host test runs: worker --broker URL --hostname NAME and
    # submit EXPERIMENT --broker URL --wait; then status and result.
    workers = by_name.get("worker", [])
    assert len(workers) >= 2, "the walk-through starts fewer than two workers"
    assert all(c.params["broker"] and c.params["hostname"] for c in workers)
    assert len({c.params["hostname"] for c in workers}) == len(workers), "same node names"
    submits = by_name.get("submit", [])
    assert any(c.params["broker"] and c.params["wait"] for c in submits), "no submit --wait"
    assert by_name.get("status") and by_name.get("result"), sorted(by_name)


def test_readme_documents_scaling() -> None:
    text = README.read_text()
    assert SCALE_K8S in text
    assert "--scale worker=" in text
    for phrase in ("rediss://", "CRYSTALLIZE_DIST_SECRET", "requirepass"):
        assert phrase in text


# --- the Redis settings on a real redis-server ---------------------------------------------


@pytest.fixture
def redis_binary() -> str:
    from redis_server import require_redis_server

    return require_redis_server()


@contextlib.contextmanager
def _start_redis(argv: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"redis-server refused {argv[1:]}: {err}")
                assert time.time() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _assert_redis_behaves(port: int, password: str) -> None:
    # AuthenticationError is a ConnectionError: without this redis-py retries it for seconds
    no_retry = Retry(NoBackoff(), 0)
    anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, retry=no_retry)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5)
    try:
        assert client.ping()
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    finally:
        client.close()


def _redis_argvs(binary: str, conf: Path) -> dict[str, list[str]]:
    """Each deploy/ way of starting Redis, as redis-server arguments (password filled in)."""
    password = PLACEHOLDERS["PASSWORD"]
    docs = k8s_docs()
    (sts,) = by_kind(docs, "StatefulSet")
    (container,) = pod_spec(sts)["containers"]
    k8s = [*container.get("command", []), *container.get("args", [])]
    text = redis_conf().read_text()
    conf.write_text(re.sub(r"(?m)^requirepass .*$", f"requirepass {password}", text))
    found = {
        "compose": as_argv(compose()["services"]["redis"]["command"]),
        "k8s": [str(a).replace("$(REDIS_PASSWORD)", password) for a in k8s],
        "debian": ["redis-server", str(conf)],
    }
    out = {}
    for name, argv in found.items():
        assert argv[0] == "redis-server", f"{name}: {argv}"
        argv = [re.sub(r"\$\{REDIS_PASSWORD[^}]*\}", password, a) for a in argv]
        out[name] = [binary, *argv[1:]]
    return out


@pytest.mark.parametrize("way", ["compose", "k8s", "debian"])
def test_redis_settings_work_on_a_real_server(way: str, redis_binary: str, tmp_path: Path) -> None:
    from redis_server import free_port

    argv = _redis_argvs(redis_binary, tmp_path / "crystallize.conf")[way]
    if "--dir" in argv:  # redis changes folder as it reads: drop the container's /data
        at = argv.index("--dir")
        del argv[at : at + 2]
    port = free_port()
    # Later arguments win: keep the server on loopback, a free port and a temporary folder.
    argv += ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path)]
    with _start_redis(argv, port):
        _assert_redis_behaves(port, PLACEHOLDERS["PASSWORD"])
