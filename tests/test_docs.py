"""The markdown pages stay true to the tree (issue 27).

Each check below reads every markdown page of the repository (README.md,
CONTRIBUTING.md, docs/**/*.md) and lists, per page, every problem it finds:

- `links`: a relative link or image whose file is missing, or whose anchor is
  not a heading of the target page (GitHub's slugs: lower case, punctuation
  other than `-` and `_` removed, spaces to hyphens, a repeated heading gets
  `-1`, `-2`, ...);
- `paths`: a path into the tree named anywhere (`experiments/configs/x.flags`,
  `aesthal/…/x.py`, `tests/…/test_x.py`, `tools/x.sh`) or a flagfile named
  by its file name alone (`` `osie_lite2.flags` ``) that does not exist;
- `commands`: a `python experiments/X.py` or `python -m aesthal.X` that does
  not exist, or an `aesthal <subcommand>` that the installed command
  (`aesthal/cli/main.py`'s `SUBCOMMANDS`) does not have;
- `modules`: a dotted name `aesthal.a.b` (a module, or a name in one) that the
  tree does not define;
- `flags`: a `--flag` on a command line of a script whose help does not list
  it (`python experiments/run.py --helpfull`, once per session, and the same
  for every other script or `-m` module the pages run with flags), or of an
  `aesthal <subcommand>` whose `--helpfull` does not list it (the flags of
  its `aesthal.*` and `absl.*` modules: those the subcommand accepts; read
  through its entry point, `python -m aesthal.cli.main <subcommand>`, once
  per subcommand).

Placeholders are not checked: names with `<`, `…`, `*`, `$` or `{`.
README problems are expected failures until the lead's rewrite of the README
(issue 27); `pytest tests/test_docs.py --runxfail` shows them.
"""

from __future__ import annotations

import ast
import concurrent.futures
import functools
import importlib.util
import pathlib
import re
import subprocess
import sys
import urllib.parse

import pytest
from conftest import REPO_ROOT, fork_run

PAGES = sorted(
    path
    for path in (
        REPO_ROOT / "README.md",
        REPO_ROOT / "CONTRIBUTING.md",
        *(REPO_ROOT / "docs").rglob("*.md"),
    )
    if path.exists()
)
README_PENDING = pytest.mark.xfail(
    reason="a page being rewritten; see the list with --runxfail",
    strict=False,
)
# (check, page) pairs expected to fail until a rewrite lands (none now).
PENDING: set[tuple[str, str]] = set()
PLACEHOLDER = re.compile(r"[<>…*${}]")


# ------------------------------------------------------------- reading pages
@functools.cache
def _page(path: pathlib.Path) -> tuple[list[str], list[str]]:
    """`(text lines, code lines)` of a page: the lines outside code blocks
    (fenced, or indented 4 spaces after a blank line) and those inside, each
    list with the other's lines blanked so that line numbers stay."""
    text, code = [], []
    fence = None
    previous_blank, indented = True, False
    for line in path.read_text().splitlines():
        stripped = line.lstrip()
        if fence:  # inside a fenced block, or its closing fence
            is_code = not stripped.startswith(fence)
            fence = fence if is_code else None
            text.append("")
            code.append(line if is_code else "")
            continue
        if stripped.startswith(("```", "~~~")) and len(line) - len(stripped) < 4:
            fence = stripped[:3]
            text.append("")
            code.append("")
            continue
        if line.startswith(("    ", "\t")) and (previous_blank or indented):
            indented = True
        elif stripped:
            indented = False
        previous_blank = not stripped
        is_code = indented and bool(stripped)
        text.append("" if is_code else line)
        code.append(line if is_code else "")
    return text, code


def _inline_code(text_lines: list[str]) -> list[tuple[int, str]]:
    """`(line number, span)` of the inline code spans; a span may run over
    line breaks within a paragraph (joined with spaces)."""
    spans = []
    paragraph: list[tuple[int, str]] = []
    for number, line in enumerate([*text_lines, ""], start=1):
        if line.strip():
            paragraph.append((number, line))
            continue
        if paragraph:
            joined = " ".join(part for _, part in paragraph)
            starts = []
            position = 0
            for n, part in paragraph:
                starts.append((position, n))
                position += len(part) + 1
            for match in re.finditer(r"(`+)(.+?)\1", joined):
                line_number = max(n for p, n in starts if p <= match.start())
                spans.append((line_number, match.group(2)))
        paragraph = []
    return spans


def _code_lines(code_lines: list[str]) -> list[tuple[int, str]]:
    """Code lines with `\\` continuations joined: `(first line number, line)`."""
    joined = []
    pending, start = "", 0
    for number, line in enumerate(code_lines, start=1):
        if not line.strip() and not pending:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append((start, pending + line))
        pending = ""
    if pending:
        joined.append((start, pending))
    return joined


def _snippets(path: pathlib.Path) -> list[tuple[int, str]]:
    """Every code line (continuations joined) and inline code span."""
    text, code = _page(path)
    return _code_lines(code) + _inline_code(text)


# ------------------------------------------------------------------ headings
def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before duplicate numbering)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.cache
def anchors(path: pathlib.Path) -> frozenset[str]:
    """The anchors a page's headings (and `id`/`name` attributes) define."""
    text, _ = _page(path)
    seen: dict[str, int] = {}
    found = set()
    for line in text:
        match = re.match(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(re.findall(r"""<[^>]+\b(?:id|name)=["']([^"']+)["']""", line))
    return frozenset(found)


# -------------------------------------------------------------------- checks
def check_links(path: pathlib.Path) -> list[str]:
    text, _ = _page(path)
    problems = []
    for number, line in enumerate(text, start=1):
        line = re.sub(r"(`+).+?\1", "", line)  # links inside code are not links
        targets = re.findall(
            r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line
        )
        targets += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", line)
        for target in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto:, ...
                continue
            file_part, _, anchor = target.partition("#")
            file_part = urllib.parse.unquote(file_part)
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(REPO_ROOT)}:{number}: ({target})"
            if not resolved.exists():
                problems.append(f"{where} {file_part} does not exist")
                continue
            if anchor and resolved.suffix == ".md":
                if urllib.parse.unquote(anchor) not in anchors(resolved):
                    problems.append(
                        f"{where} no heading of {resolved.relative_to(REPO_ROOT)} "
                        f"has the anchor #{anchor}"
                    )
    return problems


TREE_PATH = re.compile(
    r"(?<![\w./-])((?:aesthal|experiments|tests|tools|docs)/[\w./-]*\w)"
)
FLAGFILE_NAME = re.compile(r"(?<![\w/.-])([\w-]+\.flags)\b")


@functools.cache
def _flagfile_names(root: pathlib.Path) -> frozenset[str]:
    return frozenset(p.name for p in (root / "experiments").rglob("*.flags"))


def check_paths(path: pathlib.Path) -> list[str]:
    problems = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = re.sub(r"\]\([^)]*\)", "]", line)  # link targets: check_links
        line = re.sub(r"https?://\S+", "", line)
        where = f"{path.relative_to(REPO_ROOT)}:{number}:"
        for match in TREE_PATH.finditer(line):
            name, after = match.group(1), line[match.end() : match.end() + 1]
            if PLACEHOLDER.search(name + after):
                continue  # `tests/datasets/test_<name>.py`
            if not (REPO_ROOT / name).exists():
                problems.append(f"{where} {name} does not exist")
        for name in FLAGFILE_NAME.findall(line):
            if importlib.util.find_spec(name.split(".")[0]) is not None:
                continue  # a module's name (`absl.flags`), not a flagfile
            if name not in _flagfile_names(REPO_ROOT):
                problems.append(f"{where} no flagfile {name} under experiments/")
    return problems


COMMAND = re.compile(
    r"\bpython3?\s+(?:-m\s+(?P<module>[\w.]+)|(?P<script>experiments/[\w/]+\.py))"
    r"(?P<args>[^;|&#)]*)"
)


# `aesthal <subcommand> ...` where a shell command starts: at the start of a
# snippet or after `;`, `&&`, `|`, `(`, `do`, `then`, a `$ ` prompt, variable
# assignments or `nice`/`time`/`nohup`/`timeout N`/`env` (so `from aesthal
# import x` or "the aesthal command" in prose is no command).
AESTHAL_COMMAND = re.compile(
    r"(?:^|[;&|(])\s*(?:\$\s+)?"
    r"(?:(?:do|then|else|nohup|time|env|nice(?:\s+-n\s*-?\d+)?|timeout\s+\S+"
    r"|[A-Za-z_]\w*=\S*)\s+)*"
    r"aesthal\s+(?P<sub>[a-z][\w-]*)(?P<args>[^;|&#)]*)"
)


def _commands(path: pathlib.Path) -> list[tuple[int, str, str]]:
    """`(line, command, arguments)`: `command` is `experiments/X.py`,
    `-m module` or `aesthal <subcommand>`, as the pages run it."""
    found = []
    for number, snippet in _snippets(path):
        snippet = re.sub(r"\$\([^()]*\)", "X", snippet)  # $(...) substitutions
        snippet = re.sub(r"\s#.*$", "", snippet)  # shell comments
        for match in COMMAND.finditer(snippet):
            command = match["script"] or f"-m {match['module']}"
            found.append((number, command, match["args"]))
        for match in AESTHAL_COMMAND.finditer(snippet):
            found.append((number, f"aesthal {match['sub']}", match["args"]))
    return found


def _subcommands(root: pathlib.Path) -> frozenset[str] | None:
    """The `aesthal` command's subcommands: the keys of `SUBCOMMANDS` in
    `aesthal/cli/main.py` (read with `ast`, no import); None without one."""
    main = root / "aesthal" / "cli" / "main.py"
    if not main.exists():
        return None
    for node in ast.parse(main.read_text()).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if "SUBCOMMANDS" in names and isinstance(node.value, ast.Dict):
            return frozenset(ast.literal_eval(key) for key in node.value.keys)
    return None


def _module_file(dotted: str) -> pathlib.Path | None:
    """The file of module `dotted` in the tree (`x.py` or `x/__init__.py`)."""
    base = REPO_ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def check_commands(path: pathlib.Path) -> list[str]:
    problems = []
    for number, command, _ in _commands(path):
        where = f"{path.relative_to(REPO_ROOT)}:{number}:"
        if command.startswith("aesthal "):
            subcommands = _subcommands(REPO_ROOT)
            if subcommands is None:
                problems.append(
                    f"{where} {command}: no `aesthal` command in the tree "
                    "(aesthal/cli/main.py with its SUBCOMMANDS)"
                )
            elif command.split()[1] not in subcommands:
                problems.append(
                    f"{where} {command}: no such subcommand "
                    f"(aesthal has {', '.join(sorted(subcommands))})"
                )
        elif command.startswith("-m "):
            module = command[3:]
            if module.split(".")[0] != "aesthal" or module.endswith("."):
                continue  # another package's, or a placeholder (`x.<name>.y`)
            base = REPO_ROOT.joinpath(*module.split("."))
            if not (
                base.with_suffix(".py").exists() or (base / "__main__.py").exists()
            ):
                problems.append(f"{where} python {command}: no such module to run")
        elif not (REPO_ROOT / command).exists():
            problems.append(f"{where} python {command}: no such script")
    return problems


@functools.cache
def _top_level_names(module_file: pathlib.Path) -> frozenset[str] | None:
    """Names a module defines or imports at its top level; None if it can
    give any name (`__getattr__`, `import *`)."""
    tree = ast.parse(module_file.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if node.name == "__getattr__":
                return None
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.If, ast.Try)):  # guarded imports/definitions
            for child in ast.walk(node):
                if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                    names.add(child.name)
                elif isinstance(child, ast.alias):
                    names.add(child.asname or child.name.split(".")[0])
                elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                    names.add(child.id)
    return frozenset(names)


DOTTED = re.compile(r"(?<![\w./-])(aesthal(?:\.\w+)+)")


def check_modules(path: pathlib.Path) -> list[str]:
    problems = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = re.sub(r"https?://\S+", "", line)
        for dotted in DOTTED.findall(line):
            parts = dotted.split(".")
            # The longest prefix that is a module in the tree, then one name in it.
            for end in range(len(parts), 0, -1):
                module_file = _module_file(".".join(parts[:end]))
                if module_file is not None:
                    break
            if end == len(parts):
                continue
            names = _top_level_names(module_file)
            if names is not None and parts[end] not in names:
                problems.append(
                    f"{path.relative_to(REPO_ROOT)}:{number}: {dotted}: "
                    f"{'.'.join(parts[:end])} has no module or name {parts[end]!r}"
                )
    return problems


# ------------------------------------------------------------------- --flags
def _help_command(command: str, option: str) -> list[str]:
    if command.startswith("aesthal "):  # the installed command's entry point
        return [sys.executable, "-m", "aesthal.cli.main", command.split()[1], option]
    if command.startswith("-m "):
        return [sys.executable, "-m", command[3:], option]
    return [sys.executable, command, option]


def _shown(command: str) -> str:
    """A command as a page types it."""
    return command if command.startswith("aesthal ") else f"python {command}"


def _known_flags(help_text: str) -> set[str]:
    """Flag names a help text lists: absl's `  --[no]name: ...` lines, or
    argparse's `  --name VALUE` option lines."""
    names = set()
    for negatable, name in re.findall(r"^  --(\[no\])?(\w+):", help_text, re.M):
        names.add(name)
        if negatable:
            names.add(f"no{name}")
    names.update(re.findall(r"^  (?:-\w, )?--(\w+)", help_text, re.M))
    return names


def _subcommand_flags(help_text: str) -> set[str]:
    """The flags an `aesthal <subcommand> --helpfull` lists under its
    `aesthal.*` and `absl.*` modules: those the subcommand accepts
    (`aesthal.cli.common.parse` refuses the other modules' flags, such as
    TensorFlow's). The text before its first `flags:` line is the
    description."""
    _, _, listing = help_text.partition("\nflags:\n")
    kept, section = [], None
    for line in listing.splitlines():
        header = re.match(r"^([\w.]+):$", line)
        if header:
            section = header.group(1)
        elif section and section.startswith(("aesthal.", "absl.")):
            kept.append(line)
    return _known_flags("\n".join(kept))


@pytest.fixture(scope="module")
def known_flags() -> dict[str, set[str] | str]:
    """Per command the pages run with flags: the flags its help lists (absl's
    `--helpfull`, else argparse's `--help`), or why none could be read.
    The commands run at once, as children of the suite's fork server."""
    commands = set()
    for page in PAGES:
        for _, command, args in _commands(page):
            subcommands = _subcommands(REPO_ROOT) or ()
            runnable = (
                command.startswith("-m aesthal")
                or (REPO_ROOT / command).exists()
                or (command.startswith("aesthal ") and command[8:] in subcommands)
            )
            if runnable and re.search(r"(?:^|\s)--\w", args):
                commands.add(command)
    commands = sorted(commands)

    def read(command: str) -> set[str] | str:
        outputs = []
        if command.startswith("aesthal "):
            result = fork_run(
                _help_command(command, "--helpfull"),
                cwd=REPO_ROOT,
                timeout=120,
                stderr=subprocess.STDOUT,
            )
            flags = _subcommand_flags(result.stdout)
            return flags or f"its --helpfull listed no flags: {result.stdout[-500:]!r}"
        for option in ("--helpfull", "--help"):
            result = fork_run(
                _help_command(command, option),
                cwd=REPO_ROOT,
                timeout=120,
                stderr=subprocess.STDOUT,
            )
            flags = _known_flags(result.stdout)
            if flags:
                return flags
            outputs.append(result.stdout[-500:])
        return f"its help listed no flags: {outputs!r}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(commands, pool.map(read, commands), strict=True))


def check_flags(path: pathlib.Path, known: dict[str, set[str] | str]) -> list[str]:
    problems = []
    for number, command, args in _commands(path):
        if command not in known:
            continue
        where = f"{path.relative_to(REPO_ROOT)}:{number}: {_shown(command)}"
        flags = known[command]
        if isinstance(flags, str):
            problems.append(f"{where}: {flags}")
            continue
        for name in re.findall(r"(?:^|\s)--(\w+)", args):
            if name not in flags:
                problems.append(f"{where}: --{name} is not one of its flags")
    return problems


# --------------------------------------------------------------------- tests
CHECKS = {
    "links": check_links,
    "paths": check_paths,
    "commands": check_commands,
    "modules": check_modules,
}


def _cases(kinds):
    for kind in kinds:
        for page in PAGES:
            name = str(page.relative_to(REPO_ROOT))
            marks = [README_PENDING] if (kind, name) in PENDING else []
            yield pytest.param(kind, page, marks=marks, id=f"{kind}:{name}")


@pytest.mark.parametrize("kind, page", _cases(CHECKS))
def test_page_matches_the_tree(kind, page):
    problems = CHECKS[kind](page)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


@pytest.mark.parametrize("kind, page", _cases(["flags"]))
def test_command_line_flags_exist(kind, page, known_flags):
    problems = check_flags(page, known_flags)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def test_readme_starts_with_the_two_set_up_commands():
    """The README's first two commands are the set-up: an install, and the
    test command that CI (`.ci/run`) runs, word for word."""
    commands = [
        line.strip() for _, line in _code_lines(_page(REPO_ROOT / "README.md")[1])
    ]
    ci = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()[-1].strip()
    assert commands[0].startswith("pip install"), commands[:2]
    assert ci in commands[:2], (ci, commands[:2])


# ------------------------------------------------------ the checks' own tests
@pytest.mark.parametrize(
    "heading, expected",
    [
        ("Saliency-aware crops (OSIE)", "saliency-aware-crops-osie"),
        (
            'HED weights (`backbone_weights="hed"`)',
            "hed-weights-backbone_weightshed",
        ),
        (
            "A second trunk: EfficientNet-Lite2 (validation, then test)",
            "a-second-trunk-efficientnet-lite2-validation-then-test",
        ),
        ("Issue 28: the comparisons — stated", "issue-28-the-comparisons--stated"),
        ("The [linked](x.md) *part*", "the-linked-part"),
    ],
)
def test_slug_follows_github(heading, expected):
    assert slug(heading) == expected


def test_checks_find_each_kind_of_problem(tmp_path, monkeypatch):
    """A page with one problem of each kind gets each one reported."""
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "experiments" / "configs").mkdir(parents=True)
    (tmp_path / "experiments" / "run.py").write_text("")
    (tmp_path / "experiments" / "configs" / "a.flags").write_text("")
    (tmp_path / "aesthal" / "cli").mkdir(parents=True)
    (tmp_path / "aesthal" / "cli" / "main.py").write_text(
        'SUBCOMMANDS = {"train": "t", "predict": "p"}\n'
    )
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Title\n\n## Title\n\n"
        "[ok](#title-1) [bad anchor](#nope) [missing](gone.md) [web](https://x.y)\n\n"
        "`experiments/configs/a.flags`, `experiments/configs/b.flags`, `c.flags`\n\n"
        "    python experiments/run.py --flagfile=experiments/configs/a.flags \\\n"
        "        --bogus=1 --nook\n"
        "    python experiments/gone.py --x=1   # a comment --ignored\n"
        "    python experiments/run.py --model=$(ls -d a | paste -sd,) --mode=x\n"
        "    for s in 0 1; do aesthal train --flagfile=experiments/configs/a.flags \\\n"
        "        --seed=$s --bogus2; done\n"
        "    aesthal trian --x=1\n\n"
        "Prose: `from aesthal import tflite`, `nice -n 10 aesthal predict --wrong`,\n"
        "`aesthal predict --input=a`, the aesthal command.\n"
    )
    links = check_links(page)
    assert [p.split(") ", 1)[1] for p in links] == [
        "no heading of docs/page.md has the anchor #nope",
        "gone.md does not exist",
    ]
    assert [p.split(": ", 1)[1] for p in check_paths(page)] == [
        "experiments/configs/b.flags does not exist",
        "no flagfile c.flags under experiments/",
        "experiments/gone.py does not exist",
    ]
    assert [p.split(": ", 1)[1] for p in check_commands(page)] == [
        "python experiments/gone.py: no such script",
        "aesthal trian: no such subcommand (aesthal has predict, train)",
    ]
    known = {
        "experiments/run.py": {"flagfile", "model", "mode", "ok", "nook"},
        "aesthal train": {"flagfile", "seed"},
        "aesthal predict": {"input"},
    }
    assert [p.split(": ", 1)[1] for p in check_flags(page, known)] == [
        "python experiments/run.py: --bogus is not one of its flags",
        "aesthal train: --bogus2 is not one of its flags",
        "aesthal predict: --wrong is not one of its flags",
    ]


def test_known_flags_reads_absl_and_argparse_help():
    absl_help = (
        "flags:\n\nrun.py:\n  --[no]evaluate: x\n  --mode: <a|b>: y\n    --not: z\n"
    )
    argparse_help = "options:\n  -h, --help  show\n  --model MODEL  m\n  --mirror  m\n"
    assert _known_flags(absl_help) == {"evaluate", "noevaluate", "mode"}
    assert _known_flags(argparse_help) == {"help", "model", "mirror"}


def test_subcommand_flags_keep_aesthal_and_absl_modules():
    """`aesthal <subcommand> --helpfull`: the description is skipped, and of
    the listing only the `aesthal.*` and `absl.*` modules' flags are kept
    (the subcommand refuses TensorFlow's)."""
    helpfull = (
        "aesthal predict: Maps.\n\n  --fake: in the description\nExit status:\n"
        "\nflags:\n\naesthal.cli.predict:\n  --input: x\n  --[no]mirror: y\n"
        "\nall flags:\n\nabsl.flags:\n  --flagfile: f\n"
        "tensorflow.python.tpu.client.client:\n  --tpu: t\n"
        "aesthal.cli.train:\n  --epochs: e\n"
    )
    assert _subcommand_flags(helpfull) == {
        "input",
        "mirror",
        "nomirror",
        "flagfile",
        "epochs",
    }
