"""Sphinx configuration of the slackrtm manual.

Build it from the repository's root (CI does, with ``-W`` so that any warning fails)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document this checkout, not an installed copy

import slackrtm  # noqa: E402

project = "slackrtm"
author = "the slackrtm authors"
copyright = "the slackrtm authors"  # noqa: A001 (Sphinx's name for it)
release = slackrtm.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "sphinx.ext.viewcode",
]
# No network during a build: no intersphinx, so names of other projects (the standard
# library's included) are written as plain literals in the docstrings.

exclude_patterns = ["_build"]
root_doc = "index"
default_role = "literal"  # `x` reads as ``x`` in docstrings written either way
nitpicky = True
# Types autodoc writes into signatures that have no page of their own here. Each is a
# name from the standard library or a dependency (documented elsewhere, no intersphinx),
# or a private helper type a public signature mentions.
nitpick_ignore_regex = [
    ("py:class", r"(concurrent\.futures\.|_?thread\.|threading\.|ssl\.|logging\.|enum\.|"
                 r"collections\.abc\.|typing\.|types\.|requests\.|blinker\.|socket\.|"
                 r"http\.|json\.|pathlib\.|datetime\.|websocket\.).*"),
    ("py:class", r"(Future|Callable|Mapping|Sequence|Iterable|Iterator|Any|Optional|Union|"
                 r"Literal|Dict|List|Tuple|Set|Type|TypeVar|SSLContext|Logger|Event|Lock|"
                 r"RLock|Condition|Path|Session|Response|IntEnum|Enum|MappingProxyType|"
                 r"Signal|Namespace|Thread|socket|NamedTuple)"),
    ("py:class", r"(int|str|float|bool|bytes|dict|list|tuple|set|frozenset|object|type|"
                 r"None|Exception|ValueError|KeyError|RuntimeError|OSError|TimeoutError|"
                 r"ConnectionError|TypeError|BaseException)"),
    ("py:class", r"slackrtm\.(\w+\.)*_\w+(\.\w+)*"),  # private modules and helpers
    ("py:class", r"(Transport|SocketModeRun|RTMRun|Run|Host|Core|Dispatcher|Writer|"
                 r"SlackHandler)"),
    ("py:class", r"(T|K|V|F|_T|P)"),
    ("py:obj", r"(slackrtm\._.*|typing\..*|T|K|V)"),
]

autodoc_default_options = {
    "members": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "both"



def _public_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a reference to a private module's path (``slackrtm.client.RTMClient``, or a
    bare ``Store`` from a type hint) to the public name the reference documents."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    name = target.rsplit(".", 1)[-1]
    if target != name and not target.startswith("slackrtm."):
        return None
    import slackrtm.testing

    if name in slackrtm.__all__:
        public = f"slackrtm.{name}"
    elif name in slackrtm.testing.__all__:
        public = f"slackrtm.testing.{name}"
    elif name in _FRIENDS:
        public = _FRIENDS[name]
    else:
        return None
    if public == target:
        return None
    return env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], public, node, contnode)


#: Classes users meet without importing them, documented under their private path.
_FRIENDS = {"Store": "slackrtm._store.store.Store"}


def setup(app: Any) -> None:
    app.connect("missing-reference", _public_name)


html_theme = "furo"
html_title = f"slackrtm {release}"
html_static_path: list[str] = []
graphviz_output_format = "svg"
