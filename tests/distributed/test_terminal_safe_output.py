"""Names and messages that a run's records carry reach the terminal escaped, in every output
format: whoever writes the store (or the experiment) chooses metric names and error
messages, and a control character in them (ESC, the one-character CSI U+009B, a bidi
override) must not act on the reader's terminal. JSON output stays the same JSON value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

from crystallize_dist.cli.text import json_plain

UNSAFE = {"Cc", "Cf", "Cs", "Co"}
NAME = "loss\x9b2J\x1b]0;pwned\x07\u202eevil"
MESSAGE = "boom \x1b[2J\x9b31m\u2066hidden"

EXPERIMENT = f'''
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep, SeedPlugin, Treatment


class Zero(DataSource):
    def fetch(self, ctx):
        return 0.0


class Record(PipelineStep):
    def __call__(self, data, ctx):
        if ctx.get("condition", "baseline") == "bad" and ctx["replicate"] == 1:
            raise RuntimeError({MESSAGE!r})
        return data, {{{NAME!r}: float(ctx.rng.normal()) + ctx.get("shift", 0.0)}}

    @property
    def params(self):
        return {{}}


experiment = Experiment(
    Zero(),
    Pipeline([Record()]),
    plugins=[SeedPlugin(seed=3)],
    treatments=[Treatment("bad", {{"shift": 1.0}})],
    replicates=3,
    name="hostile-names",
)
'''


def unsafe_chars(text: str) -> list[str]:
    return [ch for ch in text if ch != "\n" and unicodedata.category(ch) in UNSAFE]


def cli(*args: str, home: Path, code: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYSTALLIZE_DIST_")}
    env.update(CRYSTALLIZE_DIST_HOME=str(home), COLUMNS="200")
    out = subprocess.run(
        [sys.executable, "-m", "crystallize_dist", *args],
        cwd=home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == code, out.stderr
    return out


def test_json_plain_escapes_what_a_terminal_acts_on_and_keeps_the_value() -> None:
    value = {NAME: [MESSAGE, "\ud800 lone", "\U000e0041 tag", "\U0001f600 é ü", "\x7f"]}
    text = json.dumps(value, ensure_ascii=False, indent=2)
    safe = json_plain(text)
    assert unsafe_chars(safe) == []
    assert json.loads(safe) == value
    assert "\U0001f600 é ü" in safe  # printable text is left as it is
    assert json_plain('{"a": 1}') == '{"a": 1}'


def test_every_output_format_of_a_run_with_hostile_names_is_escaped(tmp_path: Path) -> None:
    (tmp_path / "hostile.py").write_text(EXPERIMENT)
    home = tmp_path / "home"
    run = cli("submit", "hostile.py", "--local", "--no-progress", "-w", "1", home=home, code=3)
    run_id = run.stdout.splitlines()[0]
    assert unsafe_chars(run.stdout + run.stderr) == []
    as_json = cli("result", run_id, "--local", "--format", "json", home=home, code=0)
    assert unsafe_chars(as_json.stdout + as_json.stderr) == []
    found = json.loads(as_json.stdout)
    assert NAME in found["metrics"]["baseline"]  # the same name, escaped only in the text
    assert found["errors"]["bad_rep_1"].endswith(MESSAGE)
    for fmt in ("table", "csv", "rows"):
        out = cli("result", run_id, "--local", "--format", fmt, home=home, code=0)
        assert unsafe_chars(out.stdout + out.stderr) == [], fmt
    for verb in (("status", run_id), ("list",), ("report", run_id, "-o", "r.html")):
        out = cli(*verb, "--local", home=home, code=0)
        assert unsafe_chars(out.stdout + out.stderr) == [], verb
