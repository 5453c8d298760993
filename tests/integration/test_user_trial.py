"""What a user trial found that the first bad-input table missed, through the CLI as a
subprocess: a treatment named ``baseline``, a misspelt treatment parameter, duplicate keys in
``config.yaml``, ``--format json``, a TLS mix-up, and tables at 80 columns
(docs/bad-input.md, rows 55 on)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from netns import cannot
from redis_server import RedisServer, free_port
from workers import Worker, run_cli

TYPO = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep, SeedPlugin, Treatment


class Draw(DataSource):
    def fetch(self, ctx):
        return ctx.rng.normal()


class Offset(PipelineStep):
    def __call__(self, data, ctx):
        value = data + ctx.get("offset", 0.0)
        return value, {"value": value}


experiment = Experiment(Draw(), Pipeline([Offset()]), plugins=[SeedPlugin(seed=1)],
                        treatments=[Treatment("typo", {"ofset": 1.0}),
                                    Treatment("good", {"offset": 1.0})], replicates=4)
"""
WARNING = ("warning: treatment 'typo' sets 'ofset', but no step or datasource read it in "
           "replicate 0; did you mean 'offset'?")
WIDE = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep, SeedPlugin, Treatment


class Draw(DataSource):
    def fetch(self, ctx):
        return ctx.rng.normal()


class Wide(PipelineStep):
    def __call__(self, data, ctx):
        value = data * 1000 + ctx.get("shift", 0.0)
        return value, {"validation_accuracy_top5_after_finetuning": value, "tiny": -value / 1e7}


experiment = Experiment(Draw(), Pipeline([Wide()]), plugins=[SeedPlugin(seed=1)],
                        treatments=[Treatment("learning_rate_0.001_with_warmup", {"shift": 1.0})],
                        replicates=10)
"""


def _file(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name.removesuffix(".py")
    folder.mkdir()
    path = folder / name
    path.write_text(text)
    return path


def _one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def _folder(tmp_path: Path, config: str) -> Path:
    exp = tmp_path / "folder_exp"
    exp.mkdir()
    (exp / "datasources.py").write_text(
        "from crystallize_dist import data_source\n\n@data_source\n"
        "def numbers(ctx):\n    return 1.0\n"
    )
    (exp / "steps.py").write_text(
        "from crystallize_dist import pipeline_step\n\n@pipeline_step()\n"
        "def add(data, ctx, delta: float = 1.0):\n    return data + delta, {'y': data + delta}\n"
    )
    (exp / "config.yaml").write_text(config)
    return exp


# --- 1. a treatment named baseline ---------------------------------------------------------------
def test_a_treatment_named_baseline_is_one_line_in_a_file_and_in_a_config_folder(
    tmp_path: Path,
) -> None:
    src = _file(tmp_path, "named_baseline.py", TYPO.replace('"good"', '"baseline"'))
    line = _one_line_error(run_cli("submit", str(src), "--local", cwd=tmp_path))
    assert "named_baseline.py:" in line and "may not be named 'baseline'" in line, line
    exp = _folder(tmp_path, "datasource: numbers\nsteps: [add]\ntreatments:\n"
                            "  baseline:\n    delta: 7\n")
    line = _one_line_error(run_cli("submit", str(exp), "--local", cwd=tmp_path))
    assert "config.yaml: key 'treatments.baseline'" in line and "'baseline'" in line, line


def test_treatment_names_that_collide_or_are_no_record_key_are_one_line_in_a_config_folder(
    tmp_path: Path,
) -> None:
    exp = _folder(tmp_path, "datasource: numbers\nsteps: [add]\ntreatments:\n"
                            "  Fast:\n    delta: 1\n  fast:\n    delta: 2\n")
    line = _one_line_error(run_cli("submit", str(exp), "--local", cwd=tmp_path))
    assert "config.yaml: key 'treatments'" in line and "'Fast' and 'fast' collide" in line
    (exp / "config.yaml").write_text(
        "datasource: numbers\nsteps: [add]\ntreatments:\n  a/b:\n    delta: 1\n")
    line = _one_line_error(run_cli("submit", str(exp), "--local", cwd=tmp_path))
    assert "key 'treatments.a/b'" in line and "cannot name a cell record" in line, line


# --- 2. a misspelt treatment parameter, duplicate keys -----------------------------------------
def test_a_misspelt_parameter_warns_once_and_strict_params_fails_the_run(tmp_path: Path) -> None:
    src = _file(tmp_path, "typo_exp.py", TYPO)
    out = run_cli("submit", str(src), "--local", "-w", "2", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("warning: treatment") == 1 and WARNING in out.stderr, out.stderr
    run_id = out.stdout.splitlines()[0]
    again = run_cli("result", run_id, "--local", cwd=tmp_path)  # the records keep it
    assert WARNING in again.stderr
    for how in (["--strict-params"], []):
        env = {} if how else {"CRYSTALLIZE_DIST_STRICT_PARAMS": "1"}
        out = run_cli("submit", str(src), "--local", "--no-progress", *how, cwd=tmp_path, env=env)
        assert out.returncode == 3, out.stderr
        line = out.stderr.strip().splitlines()[-1]
        assert line.startswith("1 of 12 cells failed; the first: typo_rep_0: ValidationError: "
                               "treatment 'typo' sets 'ofset'"), out.stderr
        assert "did you mean 'offset'?" in line and "strict_params" in line


def test_a_misspelt_parameter_on_workers_warns_the_submitter(redis_url: str,
                                                             tmp_path: Path) -> None:
    src = _file(tmp_path, "typo_exp.py", TYPO)
    env = {"CRYSTALLIZE_DIST_QUEUE": "q-typo"}
    worker = Worker(redis_url, tmp_path, name="typo", concurrency=2, cwd=tmp_path, env=env)
    try:
        worker.wait_ready()
        out = run_cli("submit", str(src), "--wait", "--no-progress", "--timeout", "120",
                      broker_url=redis_url, cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stderr.count("warning: treatment") == 1 and WARNING in out.stderr
        strict = run_cli("submit", str(src), "--wait", "--no-progress", "--timeout", "120",
                         "--strict-params", broker_url=redis_url, cwd=tmp_path, env=env)
        assert strict.returncode == 3, strict.stderr
        assert "typo_rep_0: ValidationError: treatment 'typo' sets 'ofset'" in strict.stderr
    finally:
        worker.stop()


def test_duplicate_keys_in_config_yaml_are_one_line_naming_file_line_and_key(
    tmp_path: Path,
) -> None:
    exp = _folder(tmp_path, "datasource: numbers\nsteps: [add]\ntreatments:\n"
                            "  up:\n    delta: 1\n    delta: 2\n")
    line = _one_line_error(run_cli("submit", str(exp), "--local", cwd=tmp_path))
    assert re.search(r"config\.yaml:6: duplicate key 'delta' \(first on line 5\)", line), line
    (exp / "config.yaml").write_text("datasource: numbers\nreplicates: 2\nsteps: [add]\n"
                                     "replicates: 3\n")
    line = _one_line_error(run_cli("submit", str(exp), "--local", cwd=tmp_path))
    assert "config.yaml:4: duplicate key 'replicates' (first on line 2)" in line, line


# --- 4. --format json --------------------------------------------------------------------------
def test_format_json_stdout_is_one_json_document_with_the_run_id(
    redis_url: str, tmp_path: Path
) -> None:
    src = _file(tmp_path, "typo_exp.py", TYPO)
    out = run_cli("submit", str(src), "--local", "--format", "json", "--no-progress",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # the whole of stdout
    run_id = result["provenance"]["run_id"]
    assert f"run {run_id}" in out.stderr.splitlines() and result["complete"] is True
    queued = run_cli("submit", str(src), "--format", "json", broker_url=redis_url,
                     cwd=tmp_path, env={"CRYSTALLIZE_DIST_QUEUE": "q-json"})
    assert queued.returncode == 0, queued.stderr
    doc = json.loads(queued.stdout)
    assert doc == {"run_id": doc["run_id"], "cells": 12}
    assert queued.stderr.splitlines() == [f"run {doc['run_id']}"]
    table = run_cli("submit", str(src), "--local", "--no-progress", cwd=tmp_path)
    assert re.fullmatch(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}", table.stdout.splitlines()[0])


# --- 5. TLS mix-ups -----------------------------------------------------------------------------
def _certificates(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        cannot("openssl is needed to make the test's certificates")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_a_tls_mix_up_says_tls_and_which_scheme_to_use(tmp_path: Path) -> None:
    cert, key = _certificates(tmp_path)
    tls_port = free_port()
    tls = RedisServer(tmp_path / "tls", port=tls_port, extra=[
        "--port", "0", "--tls-port", str(tls_port), "--tls-cert-file", str(cert),
        "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
    ]).start()
    plain = RedisServer(tmp_path / "plain", password="s3cret").start()
    try:
        # rediss:// to a plain port: the handshake hangs until the connect timeout
        out = run_cli("status", "x", broker_url=f"rediss://:s3cret@127.0.0.1:{plain.port}/0",
                      cwd=tmp_path, timeout=30)
        line = _one_line_error(out)
        assert "TLS handshake" in line and f"use redis://:***@127.0.0.1:{plain.port}/0" in line
        assert "s3cret" not in out.stderr
        # redis:// to a TLS port: the server resets the connection
        line = _one_line_error(run_cli("list", broker_url=f"redis://127.0.0.1:{tls_port}/0",
                                       cwd=tmp_path, timeout=30))
        assert "expects TLS" in line and f"use rediss://127.0.0.1:{tls_port}/0" in line, line
        # rediss:// with a certificate that does not verify
        line = _one_line_error(run_cli("list", broker_url=f"rediss://127.0.0.1:{tls_port}/0",
                                       cwd=tmp_path, timeout=30))
        assert "TLS: the certificate" in line and "ssl_ca_certs" in line, line
        ok = run_cli("list", broker_url=f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}",
                     cwd=tmp_path, timeout=30)
        assert ok.returncode == 0, ok.stderr
        # a server that is down is not called a TLS problem
        down = _one_line_error(run_cli("list", broker_url=f"redis://127.0.0.1:{free_port()}/0",
                                       cwd=tmp_path, timeout=30))
        assert "TLS" not in down and "cannot reach Redis" in down
    finally:
        tls.stop()
        plain.stop()


# --- 7. tables at 80 columns --------------------------------------------------------------------
def _table(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line[:1] in "┏┃┡│├└"]


def _cells(table: list[str], column: int) -> list[str]:
    return [line.split("│")[column].strip() for line in table if line.startswith("│")]


@pytest.mark.parametrize("verb", ["submit", "status"])
def test_tables_fit_80_columns_and_never_break_a_number(verb: str, tmp_path: Path) -> None:
    src = _file(tmp_path, "wide_exp.py", WIDE)
    env = {"COLUMNS": "80"}
    out = run_cli("submit", str(src), "--local", "--no-progress", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    if verb == "status":
        out = run_cli("status", out.stdout.splitlines()[0], "--local", cwd=tmp_path, env=env)
    table = _table(out.stdout)
    assert table and all(len(line) <= 80 for line in table), "\n".join(table)
    cells = [c.strip() for line in table for c in line.split("│")[1:-1]]
    if verb == "submit":
        intervals = [c for c in cells if c.startswith("[")]
        assert len(intervals) == 4 and all(re.fullmatch(r"\[\S+, \S+\]", c) for c in intervals)
        # two name columns would fold each name into slivers of 4 or 5 characters: the
        # conditions get rows of their own, and the names one column at least 12 wide
        assert "condition /" in table[1] and "metric" in table[2], "\n".join(table)
        names = _cells(table, 1)
        assert min(len(line.split("│")[1]) for line in table if line[:1] == "│") >= 12
        joined = "".join(names)
        assert joined.count("validation_accuracy_top5_after_finetuning") == 2, joined
        assert "learning_rate_0.001_with_warmup" in joined and "baseline" in names
    numbers = [c for c in cells if re.fullmatch(r"-?[0-9.e+-]+", c)]
    assert numbers and all(re.fullmatch(r"-?\d+(\.\d+)?(e[+-]\d+)?", c) for c in numbers)


def test_the_runs_list_fits_80_columns_with_a_long_name_and_tags(tmp_path: Path) -> None:
    src = _file(tmp_path, "wide_exp.py", WIDE)
    env = {"COLUMNS": "80"}
    name = "a rather long run name that a person typed to find this study again"
    out = run_cli("submit", str(src), "--local", "--no-progress", "--name", name,
                  "--tag", "study=width-of-the-runs-list", "--tag", "owner=someone",
                  cwd=tmp_path, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    listed = run_cli("list", "--local", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), listed.stdout
    assert out.stdout.splitlines()[0] in listed.stdout and "owner=someone" in listed.stdout
    words = listed.stdout.split()
    assert all(word in words for word in name.split()), listed.stdout  # wrapped, not cut


def test_wider_terminals_keep_a_column_for_each_name(tmp_path: Path) -> None:
    src = _file(tmp_path, "wide_exp.py", WIDE)
    out = run_cli("submit", str(src), "--local", "--no-progress", cwd=tmp_path,
                  env={"COLUMNS": "120"})
    assert out.returncode == 0, out.stderr
    table = _table(out.stdout)
    assert all(len(line) <= 120 for line in table) and "┃ metric " in table[1], table[1]
    conditions, metrics = _cells(table, 1), _cells(table, 2)
    assert conditions.count("baseline") == 2 and "tiny" in metrics
    assert "".join(metrics).count("validation_accuracy_top5_after_finetuning") == 2
    typo = _file(tmp_path, "typo_exp.py", TYPO)  # short names fit beside the numbers at 80
    out = run_cli("submit", str(typo), "--local", "--no-progress", cwd=tmp_path,
                  env={"COLUMNS": "80"})
    assert "┃ condition ┃ metric ┃" in _table(out.stdout)[1], out.stdout
