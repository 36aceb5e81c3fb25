"""The documentation keeps its promises: README.md, ARCHITECTURE.md and docs/*.md.

(a) Every relative link resolves to a file or folder of the repository, and a `#anchor` to a heading of the target
    page, in GitHub's slug style (lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats).
(b) Every command the pages show parses with its module's own argument parser, without running anything: lines in
    fenced code blocks and inline `code` spans whose command (after `&&`, `;` or `|`, and leading VAR=value
    assignments) starts with `python -m <module>`, `python scripts/<x>.py` or `gan-parity` (the console script of
    `python -m benchmarks.run`). Each command-line module exposes `make_parser()`; argparse's errors end in
    SystemExit (the suite's Parser exits 2 with one line), which fails the test naming file, line and message.
    `python -m pytest` and `pip install` are not checked; a text shlex cannot split is skipped.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 150

# python -m <module> -> the module whose make_parser() parses it
MODULES = {
    "benchmarks": "benchmarks.run",  # benchmarks/__main__.py runs benchmarks.run
    "benchmarks.run": "benchmarks.run",
    "benchmarks.sweep": "benchmarks.sweep",
    "benchmarks.report": "benchmarks.report",
    "benchmarks.perf": "benchmarks.perf",
    "benchmarks.parity": "benchmarks.parity",
}
SCRIPTS = ("compare_runs", "fingerprint", "equivalence_margins", "train_digit_classifier")
CONSOLE_SCRIPTS = {"gan-parity": "benchmarks.run"}
NOT_CHECKED = {"pytest", "pip"}  # python -m pytest, python -m pip: not the suite's commands
SEPARATORS = {"&&", "||", ";", "|", "&"}
REDIRECTS = {"<", ">", ">>", "2>", "&>", "2>&1"}


# ----------------------------------------------------------------------------- reading markdown


def lines_of(page: Path) -> list[tuple[int, str, bool]]:
    """(line number, text, inside a fenced code block) for every line; fence lines themselves count as inside."""
    rows, fence = [], None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        opening = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if fence is None and opening:
            fence = opening.group(1)
            rows.append((number, line, True))
        elif fence is not None:
            if re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", line):
                fence = None
            rows.append((number, line, True))
        else:
            rows.append((number, line, False))
    return rows


def fenced_commands(page: Path) -> list[tuple[int, str]]:
    """The lines of fenced code blocks (a line ending in a backslash continues on the next), with the fence lines
    themselves left out."""
    found, pending = [], None
    for number, line, inside in lines_of(page):
        if not inside or re.match(r"^ {0,3}(`{3,}|~{3,})", line):
            pending = None
            continue
        if pending is not None:
            start, text = pending
            line = text + " " + line.strip()
            number = start
        if line.rstrip().endswith("\\"):
            pending = (number, line.rstrip()[:-1])
            continue
        pending = None
        found.append((number, line.strip()))
    return found


def blocks(page: Path) -> list[tuple[int, str]]:
    """The text outside fenced code blocks, as (first line number, text) per block of non-blank lines: an inline
    code span may wrap across the lines of a paragraph, never across a blank line or a fence."""
    out, start, current = [], None, []
    for number, line, inside in lines_of(page):
        if inside or not line.strip():
            if current:
                out.append((start, "\n".join(current)))
            start, current = None, []
            continue
        if start is None:
            start = number
        current.append(line)
    if current:
        out.append((start, "\n".join(current)))
    return out


CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)


def code_spans(page: Path) -> list[tuple[int, str]]:
    """Inline `code` spans outside fences: (line of the opening backtick, content on one line; a table's \\| is |)."""
    found = []
    for start, text in blocks(page):
        for match in CODE_SPAN.finditer(text):
            content = " ".join(match.group(2).split()).replace("\\|", "|")
            found.append((start + text.count("\n", 0, match.start()), content))
    return found


def without_code(text: str) -> str:
    """The text with its inline code spans blanked (same length), so that links inside code are not links."""
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text: the rendered text (links, code and emphasis marks dropped), lower case,
    every character but letters, digits, '_', '-' and ' ' removed, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor (repeats numbered as GitHub numbers them), and explicit <a name=...>/id=... ones."""
    seen: dict[str, int] = {}
    found = set()
    for _, line, inside in lines_of(page):
        if inside:
            continue
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", line))
    return found


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every inline link and image outside code."""
    found = []
    for start, text in blocks(page):
        plain = without_code(text)
        for match in LINK.finditer(plain):
            found.append((start + plain.count("\n", 0, match.start()), match.group(1)))
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, target in links(page):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto: ...: not the repository's
            continue
        path_text, _, anchor = target.partition("#")
        path = (page.parent / path_text).resolve() if path_text else page
        where = f"{page.relative_to(root)}:{number}: {target}"
        if not path.exists():
            problems.append(f"{where}: no such file")
        elif root not in path.parents and path != root:
            problems.append(f"{where}: outside the repository")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            problems.append(f"{where}: no heading with the anchor #{anchor} in {path.relative_to(root)}")
        elif anchor and path.suffix != ".md":
            problems.append(f"{where}: an anchor into a file that is not markdown")
    return problems


# ----------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str  # the command as shown (one segment of the line)
    parser: str  # the module (or script path) whose make_parser() parses it
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def segments(text: str) -> list[list[str]] | None:
    """The simple commands of a shell line (split at && || ; | &, comments dropped, redirections removed), or None
    where shlex cannot split it (an unbalanced quote)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    out, current, skip = [], [], False
    for token in tokens:
        if skip:
            skip = False
        elif token in SEPARATORS:
            out.append(current)
            current = []
        elif token in REDIRECTS:
            skip = True
        else:
            current.append(token)
    out.append(current)
    return [segment for segment in out if segment]


def command_of(tokens: list[str]) -> tuple[str, list[str]] | None:
    """(parser, argv) for a suite command, ("", []) for one that is not checked, None for no suite command."""
    while tokens and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0]):  # VAR=value python -m ...
        tokens = tokens[1:]
    if not tokens:
        return None
    if tokens[0] in CONSOLE_SCRIPTS:
        return CONSOLE_SCRIPTS[tokens[0]], tokens[1:]
    if tokens[0] not in ("python", "python3") or len(tokens) < 2:
        return None
    if tokens[1] == "-m" and len(tokens) >= 3:
        module = tokens[2]
        if module.split(".")[0] in NOT_CHECKED:
            return "", []
        return MODULES.get(module, f"unknown module {module}"), tokens[3:]
    script = re.fullmatch(r"(?:\./)?scripts/(\w+)\.py", tokens[1])
    if script:
        name = script.group(1)
        return (f"scripts/{name}.py" if name in SCRIPTS else f"unknown script {tokens[1]}"), tokens[2:]
    return None


def commands_in(page: Path, root: Path = ROOT) -> list[Command]:
    found = []
    for number, text in [*fenced_commands(page), *code_spans(page)]:
        for tokens in segments(text) or []:
            command = command_of(tokens)
            if command and command[0]:
                found.append(Command(str(page.relative_to(root)), number, shlex.join(tokens), command[0],
                                     tuple(command[1])))
    return sorted(found, key=lambda c: c.line)


COMMANDS = [command for page in PAGES for command in commands_in(page)]


def make_parser(target: str):
    if target.startswith("unknown"):
        pytest.fail(f"{target}: not one of the suite's command-line modules ({', '.join(MODULES)}, "
                    f"scripts/{{{','.join(SCRIPTS)}}}.py, gan-parity)")
    if target.startswith("scripts/"):
        spec = importlib.util.spec_from_file_location(f"_docs_{Path(target).stem}", ROOT / target)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    if not hasattr(module, "make_parser"):
        pytest.fail(f"{target} has no make_parser() returning its argparse parser")
    return module.make_parser()


_parsers: dict = {}


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_every_documented_command_parses(command):
    if command.parser not in _parsers:
        _parsers[command.parser] = make_parser(command.parser)
    parser = _parsers[command.parser]
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(list(command.argv))
    except SystemExit as stop:
        if stop.code:
            pytest.fail(f"{command.page}:{command.line}: `{command.text}` does not parse: "
                        f"{messages.getvalue().strip() or stop.code}", pytrace=False)


def test_the_commands_are_found():
    """The extraction itself: the README's main job and the commands of the report, cluster and parity pages."""
    shown = {(c.page, c.text) for c in COMMANDS}
    assert ("README.md", "python -m benchmarks.run --backend both") in shown  # the main job, after pip install &&
    assert {c.page for c in COMMANDS} >= {"README.md", "docs/cluster.md", "docs/parity.md", "docs/pacgan.md",
                                          "docs/speed.md"}
    assert {c.parser for c in COMMANDS} >= {"benchmarks.run", "benchmarks.report", "benchmarks.parity",
                                            "benchmarks.perf", "scripts/compare_runs.py"}


# ----------------------------------------------------------------------------- links and the README


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert not broken_links(page), "\n".join(broken_links(page))


def test_readme_is_a_front_door():
    """At most 150 lines, and the two set-up commands exactly as CI runs the second (.ci/run)."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; details belong in docs/"
    assert 'pip install -e ".[cpu,test]" && python -m benchmarks.run --backend both' in lines
    assert 'pip install -e ".[cpu,test]" && python -m pytest' in lines


# ----------------------------------------------------------------------------- the checker checks


def test_slugs_follow_github(tmp_path):
    assert slug("Reproducing PacGAN's Table 1 (`grid25-pacgan`, `--pack`)") == \
        "reproducing-pacgans-table-1-grid25-pacgan---pack"
    assert slug("generate() and BatchNorm") == "generate-and-batchnorm"
    page = tmp_path / "page.md"
    page.write_text("# Speed\n\n## Speed\n\n```\n# not a heading\n```\n")
    assert anchors(page) == {"speed", "speed-1"}


def test_extraction_sees_wrapped_spans_chains_and_comments(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Run `python -m benchmarks.run --backend both\n--task parabola` now.\n\n"
                    "```bash\npip install -e . && python -m benchmarks.perf --quick   # a comment\n"
                    "ray start --head\npython scripts/compare_runs.py A B\n```\n"
                    "`python -m pytest` and `gan-parity --list` and `python -m benchmarks.nothing`\n"
                    "[a link](missing.md) and `[not a link](missing.md)`\n")
    found = [(c.line, c.parser, c.argv) for c in commands_in(page, tmp_path)]
    assert sorted(found) == [
        (1, "benchmarks.run", ("--backend", "both", "--task", "parabola")),
        (5, "benchmarks.perf", ("--quick",)),
        (7, "scripts/compare_runs.py", ("A", "B")),
        (9, "benchmarks.run", ("--list",)),
        (9, "unknown module benchmarks.nothing", ()),
    ]
    assert broken_links(page, tmp_path) == ["page.md:10: missing.md: no such file"]
