"""The README and the manual in docs/ show the code that runs, and point at what exists.

The docs build itself (sphinx -W) runs in CI; these checks are the ones the tests rely on:
the README's first commands, its code, its links, and the manual quoting every example
from examples/ and documenting every public name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import slackrtm
import slackrtm.testing
from slackrtm.testing import FakeSlack

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"


def example_body(path: Path) -> str:
    """The code of an example without its docstring and ``__future__`` import."""
    code = path.read_text(encoding="utf-8").split('"""', 2)[2]
    return code.replace("from __future__ import annotations\n", "", 1).strip("\n")


def code_blocks(path: Path) -> List[str]:
    """The ``.. code:: python`` blocks of an .rst file, dedented."""
    text = path.read_text(encoding="utf-8")
    blocks = re.findall(r"^\.\. code(?:-block)?:: python\n\n((?:    .*\n|\n)+)", text,
                        re.MULTILINE)
    return ["\n".join(line[4:] for line in block.splitlines()).strip("\n") for block in blocks]


def doc_pages() -> List[Path]:
    return sorted(DOCS.glob("**/*.rst"))


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    # the first section heading after the title: the commands come before it
    first_section = next(i for i in range(2, len(lines) - 1)
                         if lines[i] and re.fullmatch(r"-{3,}", lines[i + 1]))
    head = "\n".join(lines[:first_section])
    for command in ("pip install -e . && python -m slackrtm demo",
                    "pip install -e '.[test]' && python -m pytest"):
        assert f"\n    {command}\n" in head, command


def test_readme_code_is_the_examples_as_they_are() -> None:
    examples = {example_body(path): path.name for path in EXAMPLES.glob("*.py")}
    shown = []
    for block in code_blocks(README):
        if "def test_" in block:
            continue  # the FakeSlack test snippet, run below
        assert block in examples, f"a README code block is not an example as it is:\n{block}"
        shown.append(examples[block])
    assert {"socket_mode.py", "connect_and_send.py", "receive_messages.py"} <= set(shown)


def test_the_docs_quote_every_example_from_examples() -> None:
    quoted: List[str] = []
    for page in doc_pages():
        quoted += re.findall(r"^\.\. literalinclude:: \.\./examples/(\S+)$",
                             page.read_text(encoding="utf-8"), re.MULTILINE)
    assert sorted(set(quoted)) == sorted(p.name for p in EXAMPLES.glob("*.py"))
    for page in doc_pages():  # and none is pasted as a copy that could drift
        for block in code_blocks(page):
            assert not any(example_body(p) == block for p in EXAMPLES.glob("*.py")), page


def test_the_testing_snippets_work() -> None:
    snippets = [(path, block) for path in [README, *doc_pages()] for block in code_blocks(path)
                if "def test_" in block]
    assert {path.name for path, _ in snippets} >= {"README.rst", "fakeslack.rst"}
    for path, snippet in snippets:
        namespace: Dict[str, Any] = {}
        exec(compile(snippet, str(path), "exec"), namespace)
        tests = [f for name, f in namespace.items() if name.startswith("test_")]
        assert len(tests) == 1
        with FakeSlack() as slack:  # a workspace of its own: the snippet waits on its frames
            tests[0](slack)
            assert [m["text"] for m in slack.messages("general")] == ["ping", "pong"], path


def test_readme_links_point_at_files_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"`[^`<]*<([^>]+)>`_", text)
    local = [t for t in targets if "://" not in t]
    assert len(local) >= 10, targets
    for target in local:
        assert (ROOT / target.split("#")[0]).is_file(), target
    for path in re.findall(r"``((?:examples|docs|tests|benchmarks)/[\w./]+)``", text):
        if "_build" not in path:  # the docs build output exists only once built
            assert (ROOT / path).exists(), path


def test_every_docs_page_is_in_a_toctree() -> None:
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   (\w[\w/-]*)$", index, re.MULTILINE))
    pages = {str(p.relative_to(DOCS).with_suffix("")) for p in doc_pages()} - {"index"}
    assert pages <= listed, pages - listed


def test_the_api_reference_documents_every_public_name() -> None:
    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. auto(?:class|exception|function|data):: (\S+)$", api,
                                re.MULTILINE))
    documented |= set(re.findall(r"^\.\. data:: (\S+)$", api, re.MULTILINE))
    names = {n.rsplit(".", 1)[-1] for n in documented}
    missing = [n for n in slackrtm.__all__ + slackrtm.testing.__all__ if n not in names]
    assert not missing, f"docs/api.rst does not document {missing}"
