"""Every command the README gives still works as written.

The commands are read from README.md itself (its ```bash blocks, and the commands quoted in
its prose), so a renamed module, subcommand, option or file fails here, not in a reader's
shell. Each ``python -m fruitseg...`` command is parsed by its own argument parser exactly as
written. With the shared data beside the project (``../shared/data``) the evaluations also
run, in a quick form: the README's command with a few options appended (fewer scenes, photos
or frames; results to a temporary file). Without it, a command that needs it stops with a
one-line message, not a traceback. Training, the federated runs and the benchmarks are only
parsed here: as written they run for minutes to hours and overwrite ``checkpoints/``;
tests/test_train.py, tests/test_federated.py and tests/test_bench.py run them on tiny data.
``python app.py`` is started and answers a page.
"""

from __future__ import annotations

import argparse
import os
import re
import runpy
import shlex
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from fruitseg.bench.server import free_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHARED = ROOT.parent / "shared" / "data"
QUICK = {  # evaluation -> options appended to the README's command for a quick run
    "classifier": ["--limit", "16"],
    "kinds": ["--limit", "1"],
    "segmenter": ["--scenes", "1", "--size", "96"],
    "pipeline": ["--scenes", "1", "--size", "96"],
}


def readme_commands() -> list[str]:
    """The shell commands in README.md: ```bash lines (continuations joined, comments dropped)
    and the commands quoted in its prose."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                commands.append(" ".join(line.split()))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for span in re.findall(r"`([^`\n]+)`", prose):
        if re.match(r"([A-Z_]+=\S+ )*(python|pytest|pip|torchrun) ", span + " "):
            commands.append(" ".join(span.split()))
    return list(dict.fromkeys(commands))


def expand(command: str) -> list[list[str]]:
    """The argument lists one README command stands for (a ``<part>`` placeholder: every part)."""
    if "<part>" in command:
        from fruitseg.bench.report import PARTS

        return [shlex.split(command.replace("<part>", part)) for part in PARTS]
    return [shlex.split(command)]


class Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace):
        self.namespace = namespace


class Built(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


def run_module(monkeypatch, argv: list[str], parse_only: bool = False, parser_only: bool = False) -> None:
    """``python -m argv[0] argv[1:]`` in this process (``-m``'s own entry point, via runpy);
    ``parse_only``: stop with :class:`Parsed` once the arguments are parsed, ``parser_only``: stop
    with :class:`Built` (the parser) instead of parsing."""
    module, *args = argv
    with monkeypatch.context() as patch:
        if parse_only or parser_only:
            parse_args = argparse.ArgumentParser.parse_args

            def parse_and_stop(self, *a, **k):
                raise Built(self) if parser_only else Parsed(parse_args(self, *a, **k))

            patch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
        patch.setattr(sys, "argv", [module, *args])
        runpy.run_module(module, run_name="__main__", alter_sys=True)


def check_template(monkeypatch, argv: list[str]) -> None:
    """A command with "..." in it (the rest as in other commands): its subcommand and every
    option it names exist."""
    with pytest.raises(Built) as built:
        run_module(monkeypatch, argv, parser_only=True)
    parser, words = built.value.parser, [w for w in argv[1:] if w != "..."]
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    parsers = [parser]
    if subparsers:
        choices = subparsers[0].choices
        parsers = [choices[words[0]]] if words and words[0] in choices else [parser, *choices.values()]
        assert not words or words[0].startswith("-") or words[0] in choices, words[0]
    known = set().union(*(p._option_string_actions for p in parsers))
    assert [w for w in words if w.startswith("-") and w.split("=")[0] not in known] == []


def module_argv(words: list[str]) -> list[str] | None:
    """``python -m mod args`` / ``torchrun ... -m mod args`` -> [mod, *args]."""
    if words[0] in ("python", "torchrun") and "-m" in words:
        return words[words.index("-m") + 1 :]
    return None


COMMANDS = readme_commands()


def test_the_readme_gives_the_commands_this_test_knows():
    assert "pip install -r requirements.txt" in COMMANDS and "pip install -r tests/requirements.txt" in COMMANDS
    assert "pytest" in COMMANDS and "python app.py" in COMMANDS
    modules = {module_argv(words)[0] for c in COMMANDS for words in expand(c) if module_argv(words)}
    assert modules == {"fruitseg.train", "fruitseg.evaluate", "fruitseg.federated", "fruitseg.bench"}
    for command in COMMANDS:  # every command is of a kind handled below
        words = shlex.split(command)
        assert module_argv(words) or command == "python app.py" or words[0] == "pip" or "pytest" in words, command


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("python -m") or c.startswith("torchrun")])
def test_every_module_command_parses_as_written(monkeypatch, command):
    if command.startswith("torchrun"):
        assert (Path(sys.executable).parent / "torchrun").exists(), "torchrun comes with torch"
    for words in expand(command):
        if "..." in words:
            check_template(monkeypatch, module_argv(words))
        else:
            with pytest.raises(Parsed):
                run_module(monkeypatch, module_argv(words), parse_only=True)


def quick_form(argv: list[str], json_path: Path) -> list[str] | None:
    """An evaluation's README command with the QUICK options appended (the last value wins)."""
    if argv[0] != "fruitseg.evaluate":
        return None
    task = argv[1]
    if task == "segmenter" and "--real" in argv:
        return None  # no option makes it shorter: 26 photos, each also through GrabCut
    return [*argv, *QUICK[task], "--json", str(json_path)]


def distinct_evaluations() -> list[str]:
    """The README's evaluations, one per task and set of options, leaving aside the options the
    quick form replaces and the data folders (so each path runs once)."""
    runs = {}
    for command in COMMANDS:
        if command.startswith("python -m fruitseg.evaluate"):
            words = shlex.split(command)
            if "..." in words:
                continue  # a template: checked above, option by option
            options = {w for w in words if w.startswith("--")} - {"--scenes", "--seed", "--size", "--limit", "--json", "--data"}
            runs.setdefault((words[3], frozenset(options)), command)
    return list(runs.values())


EVALUATIONS = distinct_evaluations()


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared data at {SHARED}: see the test below")
@pytest.mark.parametrize("command", EVALUATIONS)
def test_evaluation_commands_run_in_their_quick_form(monkeypatch, tmp_path, command):
    out = tmp_path / "results.json"
    argv = quick_form(module_argv(shlex.split(command)), out)
    if argv is None:
        pytest.skip("parsed only (see above)")
    monkeypatch.chdir(ROOT)  # the README's relative paths start at the project
    run_module(monkeypatch, argv)
    assert out.stat().st_size > 0


def needs_shared_data(command: str) -> bool:
    """Training, evaluation and the full federated runs read ../shared/data (by default or as given)."""
    words = shlex.split(command)
    if "..." in words:
        return False  # a template, not a command to run
    if words[:3] == ["python", "-m", "fruitseg.federated"]:
        return words[3] == "run" and "--quick" not in words
    return words[:2] == ["python", "-m"] and words[2] in ("fruitseg.evaluate", "fruitseg.train")


@pytest.mark.parametrize("command", [c for c in COMMANDS if needs_shared_data(c)])
def test_without_the_shared_data_a_command_says_so_in_one_line(monkeypatch, capsys, tmp_path, command):
    if SHARED.is_dir() and command.startswith("python -m fruitseg.evaluate") and "../shared/data" not in command:
        pytest.skip("its default data folder (beside the package, not the working folder) is there")
    monkeypatch.chdir(tmp_path)  # ../shared/data is not beside this folder; outputs land here
    with pytest.raises(SystemExit) as stopped:
        run_module(monkeypatch, module_argv(shlex.split(command)))
    assert stopped.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r": error: .*is not a folder \(the shared data lives in \.\./shared/data", err.strip().splitlines()[-1]), err


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("pip install")])
def test_pip_commands_name_requirement_files_and_extras_that_exist(command):
    def check(path: Path) -> None:
        assert path.is_file(), path
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("-r "):
                check(path.parent / line[3:].strip())
            elif line:
                Requirement(line)

    words = shlex.split(command)
    if words[2] == "-r":
        check(ROOT / words[3])
    else:  # pip install -e .[extras]: the project and its extras
        assert words[2] == "-e" and (ROOT / "pyproject.toml").is_file()
        extras = re.fullmatch(r"\.(\[(.*)\])?", words[3])[2]
        defined = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        assert not extras or set(extras.split(",")) <= set(defined), words[3]


@pytest.mark.parametrize("command", [c for c in COMMANDS if "pytest" in shlex.split(c)])
def test_pytest_commands_name_what_exists(command):
    words = shlex.split(command)
    for word in words:
        if "=" in word and word.split("=")[0].isupper():  # an environment variable the tests read
            name = word.split("=")[0]
            assert any(name in p.read_text() for p in (ROOT / "tests").glob("*.py")), name
    for path in words[words.index("pytest") + 1 :]:
        assert (ROOT / path).exists(), path


@pytest.mark.timeout(300)
def test_python_app_py_serves_the_page():
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200 and b"gradio" in page.read().lower()
                    break
            except OSError:
                assert time.monotonic() < deadline, "python app.py did not answer within 240 s"
                time.sleep(1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
