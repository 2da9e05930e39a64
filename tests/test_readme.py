"""The README's commands, links and code stay true (and so do the results pages' links and commands).

* every relative link or image of ``README.md``, ``docs/*.md`` and ``experiments/README.md`` points
  to an existing file (and a ``page.md#anchor`` to one of that page's headings);
* every ``omni-jax ...`` command in a code block of ``README.md`` and of the results pages parses
  with the CLI's own parser, as ``omni_jax.cli.main`` parses it, and its ``--config.FIELD=VALUE``
  overrides name fields of the config that very command loads (checked by the command's own
  ``run``, stopped at its ``cli.load_config``, with ``omni_jax.config.apply_overrides``);
* every ``python -m experiments.X`` names a module that exists, and every ``python path.py`` a file;
* the README's two commands are the ones ``.ci/run`` and a newcomer run;
* the README stays short (at most 220 lines) and carries no commit hash, issue number or test count;
* the README's Python code compiles and its imports resolve (``--slow``: the code that trains
  nothing runs).

Each checker returns a list of problems; the tests at the end feed each one a broken input, so
that every check is known to be able to fail.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS_PAGES = ["docs/sinusoid.md", "docs/rl.md", "docs/classification.md", "docs/benchmarks.md"]
MAX_README_LINES = 220
INSTALL = "pip install -r requirements.txt -e ."
MAIN_JOB = f"{INSTALL} && omni-jax sinusoid --workdir runs/sinusoid"
TEST_COMMAND = f"{INSTALL} && python -m pytest -q --slow"


def markdown_files() -> list[Path]:
    files = [README, *sorted((ROOT / "docs").glob("*.md"))]
    if (ROOT / "experiments" / "README.md").is_file():
        files.append(ROOT / "experiments" / "README.md")
    return files


# ---------------------------------------------------------------------------------------------
# Markdown


FENCE = re.compile(r"^\s*(```|~~~)")


def split_code(text: str) -> tuple[list[str], list[str]]:
    """``(prose lines, code lines)``: code is a fenced block or a line indented by 4 or more spaces
    (the indented blocks of these pages; list continuations are indented by 2)."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced or line.startswith("    ") or line.startswith("\t"):
            code.append(line)
        else:
            prose.append(line)
    return prose, code


def fenced_blocks(text: str, language: str) -> list[str]:
    """The contents of the fenced blocks opened with ```language."""
    return [m.group(1) for m in re.finditer(rf"^```{language}[ \t]*\n(.*?)^```", text, re.M | re.S)]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set:
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for line in prose for m in [re.match(r"#+\s+(.*)", line)] if m}


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def link_problems(path: Path, text: str) -> list[str]:
    """Relative links and images of a markdown page that point nowhere."""
    prose, _ = split_code(text)
    body = re.sub(r"`[^`]*`", "", "\n".join(prose))   # inline code is not a link
    problems = []
    for target in LINK.findall(body):
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue   # http(s):, mailto:, or an anchor of the page itself
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve()
        if not dest.exists():
            problems.append(f"{path.name}: link to {target} (no {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{path.name}: link to {target} (no heading #{anchor} in {dest.name})")
    return problems


# ---------------------------------------------------------------------------------------------
# Commands


def command_segments(code_lines: list[str]) -> list[str]:
    """The shell commands of code lines: continuation lines joined, split at ``&&``, ``;`` and ``|``,
    comments and a trailing ``&`` dropped."""
    joined, buf = [], ""
    for line in code_lines:
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        joined.append(buf + line)
        buf = ""
    if buf:
        joined.append(buf)
    out = []
    for line in joined:
        try:
            words = shlex.split(line, comments=True)
        except ValueError:   # not shell (a table, a tree): no command to check
            continue
        segment = []
        for w in words + [";"]:
            if w in ("&&", ";", "|", "||", "&"):
                if segment:
                    out.append(shlex.join(segment))
                segment = []
            else:
                segment.append(w)
    return out


class _Loaded(Exception):
    """Raised by the stand-in of ``cli.load_config`` once the command's config is loaded."""


def cli_problems(command: str) -> list[str]:
    """Parses an ``omni-jax ...`` command as ``omni_jax.cli.main`` does; for an experiment
    subcommand, runs its ``run`` up to its ``cli.load_config`` and applies the overrides to the
    config it loads there (``omni_jax.config.apply_overrides``). Trains nothing."""
    from omni_jax import cli
    from omni_jax import config as config_lib
    from omni_jax.errors import OmniJaxError

    argv = shlex.split(command)
    assert argv[0] == "omni-jax"
    argv = argv[1:]
    name = argv[0] if argv and not argv[0].startswith("-") else None
    if name not in cli.SUBCOMMANDS:
        return [f"{command!r}: no subcommand {name!r} (expected one of {', '.join(cli.SUBCOMMANDS)})"]
    parser, module = cli.build_parser(name)
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit:
        return [f"{command!r}: the CLI's parser rejects it"]
    overrides = [u for u in unknown if u.startswith("--config.")]
    rest = [u for u in unknown if not u.startswith("--config.")]
    if rest:
        return [f"{command!r}: unrecognized arguments {rest}"]
    bad = [o for o in overrides if "=" not in o]
    if bad:
        return [f"{command!r}: overrides must look like --config.FIELD=VALUE: {bad}"]

    if "load_config" not in inspect.getsource(module.run):
        # a subcommand that loads no config (``data``: never run here, it would build) ignores overrides
        return [f"{command!r}: `omni-jax {name}` loads no config, so {overrides} would be ignored"] if overrides else []

    def load_config(args, overrides, default):
        cfg = config_lib.load_config(args.config or default, quick=args.quick)
        config_lib.apply_overrides(cfg, overrides)
        raise _Loaded

    real = cli.load_config
    cli.load_config = load_config
    try:
        module.run(args, overrides)
    except _Loaded:
        return []
    except OmniJaxError as e:
        return [f"{command!r}: {e}"]
    finally:
        cli.load_config = real
    return [f"{command!r}: `omni-jax {name}`'s run did not load its config through cli.load_config"]


def omni_jax_commands(text: str) -> list[str]:
    _, code = split_code(text)
    return [c for c in command_segments(code) if c.startswith("omni-jax ")]


EXPERIMENT_MODULE = re.compile(r"python3?\s+-m\s+(experiments(?:\.[A-Za-z_]\w*)+)")


def experiment_module_problems(path: Path, text: str) -> list[str]:
    """Every ``python -m experiments.X`` (in code or prose, even across a line break) names a module
    file of this repository: ``experiments/X.py`` or a package ``experiments/X/``."""
    problems = []
    for module in sorted(set(EXPERIMENT_MODULE.findall(text))):
        rel = Path(*module.split("."))
        if not ((ROOT / rel.with_suffix(".py")).is_file() or (ROOT / rel / "__main__.py").is_file()):
            problems.append(f"{path.name}: `python -m {module}`: no {rel}.py in the repository")
    return problems


def driver_problems(command: str) -> list[str]:
    """A ``python -m experiments.X ...`` command of a code block parses with the driver's own
    ``build_parser()`` (as its ``main`` parses: unknown arguments must be ``--config.FIELD=VALUE``)."""
    words = shlex.split(command)
    module_name, argv = words[2], words[3:]
    rel = Path(*module_name.split("."))
    if not (ROOT / rel.with_suffix(".py")).is_file():
        return [f"{command!r}: no {rel}.py in the repository"]
    added = str(ROOT) not in sys.path
    if added:
        sys.path.insert(0, str(ROOT))
    try:
        module = importlib.import_module(module_name)
    finally:
        if added:
            sys.path.remove(str(ROOT))
    if not hasattr(module, "build_parser"):
        return []
    try:
        _, unknown = module.build_parser().parse_known_args(argv)
    except SystemExit:
        return [f"{command!r}: the driver's parser rejects it"]
    rest = [u for u in unknown if not (u.startswith("--config.") and "=" in u)]
    return [f"{command!r}: unrecognized arguments {rest}"] if rest else []


def driver_commands(text: str) -> list[str]:
    _, code = split_code(text)
    return [c for c in command_segments(code) if re.match(r"python3? -m experiments\.", c)]


def script_problems(path: Path, text: str) -> list[str]:
    """Every ``python FILE.py`` / ``bash FILE.sh`` of a code block names a file of this repository."""
    _, code = split_code(text)
    problems = []
    for segment in command_segments(code):
        words = shlex.split(segment)
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):   # VAR=value before the command
            words = words[1:]
        if len(words) >= 2 and words[0] in ("python", "python3", "bash", "sh") \
                and re.search(r"\.(py|sh)$", words[1]) and not (ROOT / words[1]).is_file():
            problems.append(f"{path.name}: `{segment}`: no file {words[1]}")
    return problems


# ---------------------------------------------------------------------------------------------
# The README's own rules


HEX_TOKEN = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")


def readme_rule_problems(text: str) -> list[str]:
    problems = []
    n = len(text.splitlines())
    if n > MAX_README_LINES:
        problems.append(f"README.md has {n} lines (at most {MAX_README_LINES}: results go to docs/)")
    for span in re.findall(r"`([^`]*)`", text):
        for token in HEX_TOKEN.findall(span):
            problems.append(f"README.md: a commit hash in backticks: `{span}`")
    for m in re.finditer(r"\bcommits?\s+`?([0-9a-f]{7,40})\b", text):
        problems.append(f"README.md: a commit hash: {m.group(0)!r}")
    for m in re.finditer(r"\bissues?\s*#?\d+", text, re.I):
        problems.append(f"README.md: an issue number: {m.group(0)!r}")
    for m in re.finditer(r"\b\d[\d,]*\s+(?:fast\s+|slow\s+)?tests\b", text):
        problems.append(f"README.md: a test count: {m.group(0)!r}")
    return problems


def two_command_problems(readme: str, ci: str) -> list[str]:
    _, code = split_code(readme)
    code = [c.strip() for c in code]
    problems = [f"README.md: the command `{c}` is missing" for c in (MAIN_JOB, TEST_COMMAND) if c not in code]
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if TEST_COMMAND not in ci_commands:
        problems.append(f".ci/run does not run the README's test command `{TEST_COMMAND}`")
    return problems


def import_problems(code: str) -> list[str]:
    """The code compiles, and every module and name it imports exists."""
    try:
        tree = ast.parse(code)
        compile(tree, "<README>", "exec")
    except SyntaxError as e:
        return [f"README python block does not compile: {e}"]
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                try:
                    importlib.import_module(alias.name)
                except ImportError as e:
                    problems.append(f"README: import {alias.name}: {e}")
        elif isinstance(node, ast.ImportFrom):
            try:
                module = importlib.import_module(node.module)
            except ImportError as e:
                problems.append(f"README: from {node.module} import ...: {e}")
                continue
            for alias in node.names:
                if hasattr(module, alias.name):
                    continue
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    problems.append(f"README: {node.module} has no {alias.name}")
    return problems


# ---------------------------------------------------------------------------------------------
# The tests


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_point_to_files(path):
    assert link_problems(path, read(path)) == []


@pytest.mark.parametrize("page", ["README.md", *RESULTS_PAGES])
def test_omni_jax_commands_parse_and_name_config_fields(page):
    commands = omni_jax_commands(read(ROOT / page))
    assert commands or page != "README.md", "README.md has no omni-jax command in a code block"
    problems = [p for c in commands for p in cli_problems(c)]
    assert problems == []


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_experiment_modules_exist(path):
    assert experiment_module_problems(path, read(path)) == []


@pytest.mark.parametrize("page", ["README.md", *RESULTS_PAGES])
def test_experiment_driver_commands_parse(page):
    assert [p for c in driver_commands(read(ROOT / page)) for p in driver_problems(c)] == []


@pytest.mark.parametrize("page", ["README.md", *RESULTS_PAGES])
def test_script_files_exist(page):
    assert script_problems(ROOT / page, read(ROOT / page)) == []


def test_readme_rules():
    assert readme_rule_problems(read(README)) == []


def test_readme_two_commands_are_ci_and_the_main_job():
    assert two_command_problems(read(README), read(ROOT / ".ci" / "run")) == []


def test_readme_python_compiles_and_imports_resolve():
    blocks = fenced_blocks(read(README), "python")
    assert blocks, "README.md has no python block"
    assert [p for b in blocks for p in import_problems(b)] == []


@pytest.mark.slow
def test_readme_python_runs(tmp_path, monkeypatch):
    """The README's Python blocks that train no experiment run as written (in a scratch directory)."""
    monkeypatch.chdir(tmp_path)
    ran = 0
    for block in fenced_blocks(read(README), "python"):
        if "train_and_evaluate(" in block:
            continue   # a whole experiment run: `omni-jax sinusoid --quick` and its tests cover it
        if "MyNet(" in block:
            continue   # omnify's shape with placeholders (MyNet, key, x); the block after it runs omnify
        namespace: dict = {}
        exec(compile(block, "<README>", "exec"), namespace)
        ran += 1
        if "finite" in namespace:
            assert bool(namespace["finite"])
    assert ran >= 1


# Each check can fail: every checker finds the fault planted in a small broken input.


def test_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n", encoding="utf-8")
    text = ("[ok](page.md) [ok](page.md#title) [web](https://example.org) `[code](nowhere.md)`\n"
            "![missing](nowhere.png) [bad anchor](page.md#nope)\n\n    [in code](nowhere.md)\n")
    problems = link_problems(page, text)
    assert len(problems) == 2 and "nowhere.png" in problems[0] and "#nope" in problems[1]


def test_cli_check_finds_bad_commands():
    assert cli_problems("omni-jax sinusoid --workdir runs/x --config.omni.lam=0.0") == []
    assert cli_problems("omni-jax rl --env navigation2d --quick --config.eval.max_kl=1.0") == []
    assert cli_problems("omni-jax classify --dataset glyphs:cross_task --method protonet "
                        "--config.model.conv_init=torch") == []
    assert cli_problems("omni-jax sinusoid --config.omni.no_such_field=1")      # unknown field
    assert cli_problems("omni-jax sinusoid --config.omni.lam=high")             # wrong type
    assert cli_problems("omni-jax rl --env navigation2d --config.data.phase_max=1.0")   # a sinusoid field
    assert cli_problems("omni-jax sinusoid --no-such-flag")                     # the parser rejects it
    assert cli_problems("omni-jax sinusoid --config.omni.lam")                  # no value
    assert cli_problems("omni-jax nosuchcommand")
    assert cli_problems("omni-jax rl --env nowhere")                            # the command's own check
    assert cli_problems("omni-jax sinusoid --config nosuchconfig")
    assert cli_problems("omni-jax data glyphs --out x --config.seed=1")         # data loads no config


def test_command_extraction():
    text = ("Prose with `omni-jax sinusoid --bad` inline.\n\n"
            "    pip install . && omni-jax sinusoid --quick   # a comment\n"
            "    omni-jax rl --env navigation2d \\\n      --quick &\n"
            "```sh\nomni-jax classify --quick\n```\n")
    assert omni_jax_commands(text) == ["omni-jax sinusoid --quick", "omni-jax rl --env navigation2d --quick",
                                       "omni-jax classify --quick"]


def test_experiment_module_check_finds_a_missing_module():
    text = "Run `python -m experiments.no_such_driver` or\n`python -m\n  experiments.another_missing_one`."
    assert len(experiment_module_problems(README, text)) == 2


def test_driver_check_finds_bad_arguments():
    assert driver_problems("python -m experiments.no_such_driver --steps 3")
    drivers = sorted(p.stem for p in (ROOT / "experiments").glob("[!_]*.py"))
    if "sinusoid" in drivers:
        assert driver_problems("python -m experiments.sinusoid --quick --config.omni.lam=0.0") == []
        assert driver_problems("python -m experiments.sinusoid --no-such-option")
        assert driver_problems("python -m experiments.sinusoid --config.omni.lam")


def test_script_check_finds_a_missing_file():
    text = "    python benchmarks/no_such_benchmark.py --fast\n    XLA_FLAGS=x python scripts/missing.py\n"
    assert len(script_problems(README, text)) == 2
    assert script_problems(README, "    python -m pytest -q\n") == []


def test_readme_rules_find_hashes_issues_counts_and_length():
    assert readme_rule_problems("fine: `omni.lam`, `1000000`, `--steps 1000`, deadline\n") == []
    assert readme_rule_problems("measured at commit `8d6e445`\n")
    assert readme_rule_problems("the pairs of `28cba27`–`dec8e14`\n")
    assert readme_rule_problems("measured at commit 8d6e445\n")
    assert readme_rule_problems("see issue 12\n")
    assert readme_rule_problems("the everyday suite (302 tests)\n")
    assert readme_rule_problems("line\n" * (MAX_README_LINES + 1))


def test_two_command_check_finds_a_changed_command():
    readme = f"    {MAIN_JOB}\n    {TEST_COMMAND}\n"
    assert two_command_problems(readme, f"#!/bin/sh\n{TEST_COMMAND}\n") == []
    assert two_command_problems(readme.replace("--slow", ""), f"{TEST_COMMAND}\n")
    assert two_command_problems(readme, "python -m pytest -q\n")


def test_import_check_finds_missing_names():
    assert import_problems("from omni_jax.omni import omni_loss\nimport jax\n") == []
    assert import_problems("from omni_jax.omni import no_such_name\n")
    assert import_problems("import no_such_module_omni_jax\n")
    assert import_problems("def broken(:\n")
