"""The README and the manual in docs/ show the code that runs, and point at what exists.

The docs build itself (sphinx -W) runs in CI; these checks are the ones the tests rely on:
the README's first commands, its code, its links, and the manual quoting every example
from examples/ and documenting every public name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

import slackrtm
import slackrtm.testing
from slackrtm.testing import FakeSlack
from tests.test_examples import Proc, child_env

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


def quick_starts() -> Dict[str, str]:
    """The README's quick starts by client: the code blocks that call ``run_forever()``."""
    found: Dict[str, str] = {}
    for block in code_blocks(README):
        if "run_forever()" in block:
            name = "SocketModeClient" if "SocketModeClient(" in block else "RTMClient"
            assert name not in found, f"two {name} quick starts"
            found[name] = block
    return found


@pytest.mark.parametrize("client", ["SocketModeClient", "RTMClient"])
def test_readme_quick_start_runs(client: str, slack: FakeSlack, tmp_path: Path) -> None:
    """The quick start, run as a script against FakeSlack (only $SLACK_API_URL added, as
    the README says), answers a hello once, ignores its own answer, and stops on Ctrl-C."""
    script = tmp_path / "quick_start.py"
    script.write_text(quick_starts()[client], encoding="utf-8")
    tokens = ({"SLACK_APP_TOKEN": slack.app_token, "SLACK_TOKEN": slack.token}
              if client == "SocketModeClient" else {"SLACK_TOKEN": slack.token})
    proc = Proc([str(script)], child_env(SLACK_API_URL=slack.api_url, **tokens))
    try:
        check_quick_start(client, slack, proc)
    finally:
        proc.kill()


def check_quick_start(client: str, slack: FakeSlack, proc: Proc) -> None:
    connected = slack.wait_for_socket_connections if client == "SocketModeClient" \
        else slack.wait_for_connections
    connected(1)
    general = slack.channel_id("general")
    alice = slack.user_id("alice")
    slack.post_message(general, "no greeting here", user=alice)
    slack.post_message(general, "Hello bot", user=alice)
    first = proc.wait_for_line(r"^replied with ts (\S+)$", timeout=30).group(1)
    # events are handled in order: once bob is answered, the bot's own answer to alice
    # (which says hello too) was handled before, and must have been ignored
    slack.post_message(general, "hello from bob", user=slack.user_id("bob"))
    second = proc.wait_for_line(r"^replied with ts (\S+)$", timeout=30, start=1).group(1)
    mine = [m for m in slack.messages(general) if m["user"] == slack.bot_user_id]
    assert [(m["text"], m["ts"]) for m in mine] == [
        (f"Hello <@{alice}>!", first), (f"Hello <@{slack.user_id('bob')}>!", second)]
    code = proc.interrupt()
    assert code == 0 and "Traceback" not in proc.stderr, proc.describe()
    assert proc.out == [f"replied with ts {first}", f"replied with ts {second}"], \
        proc.describe()
    assert slack.token not in proc.stdout + proc.stderr


def test_readme_snippets_use_only_public_names() -> None:
    for block in code_blocks(README):
        for names in re.findall(r"^from slackrtm(?:\.testing)? import (.+)$", block, re.M):
            for name in (n.strip() for n in names.split(",")):
                assert name in slackrtm.__all__ + slackrtm.testing.__all__, name


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
    documented = set(re.findall(r"^\.\. auto(?:class|exception|function|data):: ([\w.]+)",
                                api, re.MULTILINE))
    documented |= set(re.findall(r"^\.\. data:: (\S+)$", api, re.MULTILINE))
    names = {n.rsplit(".", 1)[-1] for n in documented}
    missing = [n for n in slackrtm.__all__ + slackrtm.testing.__all__ if n not in names]
    assert not missing, f"docs/api.rst does not document {missing}"


def _classes_by_name() -> Dict[str, List[type]]:
    """Every class defined in the package, by name (FakeSlack's included)."""
    import importlib
    import inspect
    import pkgutil

    found: Dict[str, List[type]] = {}
    for info in pkgutil.walk_packages(slackrtm.__path__, "slackrtm."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == info.name:
                found.setdefault(name, []).append(value)
    return found


def test_the_architecture_page_names_what_exists() -> None:
    """docs/architecture.rst walks through the code by name: every file, class and method
    it names must exist, so that a rename shows here (then update the page)."""
    text = (DOCS / "architecture.rst").read_text(encoding="utf-8")
    literals = set(re.findall(r"``([^`\s]+)``", text))
    paths = [lit for lit in literals if re.fullmatch(r"[\w/]+\.py", lit)]
    assert len(paths) >= 10, paths
    for path in paths:
        where = ROOT / path if path.startswith(("tests/", "slackrtm/")) else \
            ROOT / "slackrtm" / path
        assert where.is_file(), f"docs/architecture.rst names {path}, which does not exist"
    classes = _classes_by_name()
    named = [m for m in (re.fullmatch(r"(?:[a-z_]+\.)*([A-Z]\w*)(?:\.(\w+))?", lit)
                         for lit in literals) if m]
    checked = 0
    for match in named:
        cls_name, attr = match.group(1), match.group(2)
        if cls_name.isupper() or cls_name not in classes:  # TRANSITIONS, a Slack value
            assert "." not in match.group(0) or cls_name.isupper(), \
                f"docs/architecture.rst names {match.group(0)}: no class {cls_name}"
            continue
        if attr is not None:
            assert any(hasattr(cls, attr) or attr in getattr(cls, "__annotations__", {})
                       for cls in classes[cls_name]), \
                f"docs/architecture.rst names {match.group(0)}: {cls_name} has no {attr}"
        checked += 1
    assert checked >= 20, checked
