"""Mutation testing of slackrtm's pure modules: do the tests notice a one-node change?

    python benchmarks/mutation.py [--module split] [--jobs 2] [--timeout 120] [--json out]
    python benchmarks/mutation.py --list --module backoff     # the mutants, not run
    python benchmarks/mutation.py --show backoff:12           # one mutant's diff

Each mutant changes one node of one module's syntax tree:

- a comparison operator (``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``, ``in`` <->
  ``not in``, ``is`` <-> ``is not``);
- an arithmetic operator (``+`` <-> ``-``, ``*`` <-> ``/``, ``//`` -> ``/``, ``%`` -> ``//``,
  ``**`` -> ``*``, ``|`` <-> ``&``), in expressions and augmented assignments;
- a number constant (``n`` -> ``n + 1``) or a boolean (``True`` <-> ``False``);
- a boolean operator (``and`` <-> ``or``), a ``not`` dropped, ``min`` <-> ``max``;
- a statement removed (replaced by ``pass``), a ``return x`` made ``return None``,
  a ``break`` made ``continue`` and back.

Strings, docstrings and annotations are left alone. For each mutant, a child process
forked from this one (pytest and the test dependencies already imported) imports the
mutated module in place of the original and runs the tests that exercise the module,
stopping at the first failure; a mutant is *killed* when a test fails (or the run
exceeds ``--timeout``, which counts as killed too: a hang is noticed), and *survives*
when every test passes. The source files are never written. Mutants whose source does
not compile are dropped. Survivors are listed with their line and change; those that
behave exactly like the original (*equivalent*) are listed in ``EQUIVALENT`` below with
a reason, and the kill rate is reported over the rest.

This is a measurement, not a CI step: a full run takes tens of minutes.
"""

from __future__ import annotations

import argparse
import ast
import copy
import difflib
import importlib.abc
import importlib.util
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Target:
    """One module to mutate, the tests that exercise it, and (optionally) the top-level
    names within which to mutate (the others are left alone)."""

    key: str
    module: str
    tests: List[str]
    only: Optional[List[str]] = None
    pytest_args: List[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return os.path.join(ROOT, *self.module.split(".")) + ".py"


#: the slow property tests last: most mutants fail a quick test first (-x)
CORE_TESTS = ["tests/test_core.py", "tests/test_limits_core.py", "tests/test_core_rules.py",
              "tests/test_core_properties.py"]
TARGETS = [
    Target("core", "slackrtm._engine.core", CORE_TESTS),
    Target("states", "slackrtm._engine.states", CORE_TESTS),
    Target("pacing", "slackrtm._engine.pacing", ["tests/test_limits_core.py",
                                                 "tests/test_core_rules.py"]),
    Target("split", "slackrtm._engine.split", ["tests/test_limits_core.py",
                                               "tests/test_core_rules.py"]),
    Target("backoff", "slackrtm._engine.backoff", CORE_TESTS),
    Target("envelope", "slackrtm._protocols.envelope", ["tests/test_core_rules.py",
                                                        "tests/test_socket_mode.py"],
           only=["Seen", "ack_text"]),  # (Seen lives in dedupe now: ack_text here)
    Target("dedupe", "slackrtm._engine.dedupe", ["tests/test_dedupe.py",
                                                  "tests/test_core_rules.py",
                                                  "tests/test_socket_mode.py"],
           only=["MemoryDedupe", "envelope_key"]),
    Target("store", "slackrtm._store.store", ["tests/test_store.py",
                                              "tests/test_store_rules.py"]),
]

#: ``--max-examples``: a cap on property tests' examples in mutant runs (0: none).
MAX_EXAMPLES = 0

#: Survivors that behave exactly like the original, by (target, code of the line, change):
#: why.
#: Filled in by reading each survivor (see benchmarks/README.md, "Mutation testing").
_CAUGHT = ("without the guard the event raises TypeError/AttributeError, which "
           "Store.apply catches (one DEBUG line differs)")
_SEQ = "change counters are only compared with each other: any start or step orders alike"
_REDUNDANT = "the same field is reset on every path to the next connection"
EQUIVALENT: Dict[Tuple[str, str, str, str], str] = {
    # -- core
    ("core", "Core", "failures: int = 0", "0 -> 1"): "start() sets it before any use",
    ("core", "Core", "last_inbound: float = 0.0", "0.0 -> 1.0"):
        "connected() sets it before any deadline reads it",
    ("core", "Core", "dead: bool = False  # torn down by a deadline; the reader has yet to "
     "notice", "False -> True"):
        "connected() clears it before any deadline of a connection runs",
    ("core", "Core", "next_seq: int = 1", "1 -> 2"): "sequence numbers only order sends",
    ("core", "Core.submit", "self.next_seq += 1", "1 -> 2"): "sequence numbers only order sends",
    ("core", "Core.connected", "self.reached_ready = False", "remove assign"):
        "connection_lost() and drop_all() clear it on every way to a new connection",
    ("core", "Core.connected", "self.ping_id = None", "remove assign"): _REDUNDANT,
    ("core", "Core.connected", "self.ping_deadline = None", "remove assign"): _REDUNDANT,
    ("core", "Core.connection_lost", "self.ping_id = None", "remove assign"): _REDUNDANT,
    ("core", "Core.connection_lost", "self.ping_deadline = None", "remove assign"):
        _REDUNDANT,
    ("core", "Core.drop_all", "self.ping_id = None", "remove assign"): _REDUNDANT,
    ("core", "Core.drop_all", "self.ping_deadline = None", "remove assign"): _REDUNDANT,
    ("core", "Core.tick", "self.ping_deadline = None", "remove assign"):
        "after a pong teardown `dead` stops every deadline until connection_lost() resets",
    ("core", "Core.tick", "self.ping_id = None", "remove assign"):
        "after a pong teardown `dead` stops every deadline until connection_lost() resets",
    ("core", "Core.tick", "self.hello_deadline = None", "remove assign"):
        "after a hello teardown `dead` stops every deadline until connection_lost() resets",
    ("core", "Core.tick", "self.dead = True", "remove assign @12"):
        "a hello teardown happens before ready: nothing else is timed on that connection",
    ("core", "Core.tick", "self.dead = True", "True -> False @24"):
        "a hello teardown happens before ready: nothing else is timed on that connection",
    ("core", "Core.hello", "self.reached_ready = True", "remove assign"):
        "connection_lost() counts a failure only in connecting/connected, never true then",
    ("core", "Core.hello", "self.reached_ready = True", "True -> False"):
        "connection_lost() counts a failure only in connecting/connected, never true then",
    ("core", "Core.connection_lost", "self.reached_ready = False", "remove assign"):
        "connected() clears it before it is read again",
    ("core", "Core.connection_lost", "self.reached_ready = False", "False -> True"):
        "connected() clears it before it is read again",
    ("core", "Core.connection_lost",
     "if not was_ready and self.state in (State.CONNECTING, State.CONNECTED):", "and -> or"):
        "in connecting/connected was_ready is always false; in other states it is true, "
        "except while disconnecting, where start() resets the count",
    ("core", "Core.requeue", "if self.ping_id == send.id:", "remove if"):
        "ids are never reused: no reply can match the id of a ping never written",
    ("core", "Core.requeue", "if self.ping_id == send.id:", "== -> !="):
        "ids are never reused: no reply can match the id of a ping never written",
    ("core", "Core.requeue", "self.ping_id = None", "remove assign"):
        "ids are never reused: no reply can match the id of a ping never written",
    ("core", "Core.requeue",
     "channel = paced_channel(send.body) if self.pacer is not None else None",
     "is not -> is"):
        "a paced send put back in the outbox is held again, in submission order, at its "
        "next turn",
    ("core", "Core.requeue", "if channel is not None and self.pacer is not None:",
     "is not -> is @35"):
        "a paced send put back in the outbox is held again, in submission order, at its "
        "next turn",
    ("core", "Core._forget_pings",
     "if any(s.type == \"ping\" and s.future is None for s in self.outbox):", "and -> or"):
        "only a shortcut: the filter below decides",
    ("core", "Core.inbound", "send.retried, send.id, send.deadline = True, 0, 0.0",
     "0 -> 1"): "the id and deadline are set again when the send is written",
    ("core", "Core.inbound", "send.retried, send.id, send.deadline = True, 0, 0.0",
     "0.0 -> 1.0"): "the id and deadline are set again when the send is written",
    ("core", "Core.hello", "False, None))", "False -> True"):
        "await_reply is never read for an internal send (no future)",
    ("core", "Core.tick", "self.outbox.appendleft(Send(\"ping\", {}, False, None))",
     "False -> True"): "await_reply is never read for an internal send (no future)",
    # -- envelope
    ("envelope", "ack_text", "if _PLAIN_ID(envelope_id):  # Slack's ids (UUIDs): nothing to "
     "escape", "remove if"): "the fast path writes what the encoder writes for a plain id",
    # -- store
    ("store", "Store._update", "if not isinstance(cid, str):", "remove if"):
        "a non-string id finds no cached entry (hashable) or raises TypeError, caught",
    ("store", "Store._update", "if old is None:", "remove if"): _CAUGHT,
    ("store", "Store._channel_object", "if not isinstance(channel, dict):", "remove if"):
        _CAUGHT,
    ("store", "Store._member", "if old is None:", "remove if"): _CAUGHT,
    ("store", "Store._team_change", "if self._team is None:", "remove if"): _CAUGHT,
    ("store", "Store.__init__", "self._seq = 0", "0 -> 1"): _SEQ,
    ("store", "Store._touch", "self._seq += 1", "1 -> 2"): _SEQ,
    ("store", "Store._presence_change", "if not isinstance(uid, str):", "remove if"):
        "a None id is parked in the private presence table (never read for it); an "
        "unhashable one raises TypeError, caught",
    ("store", "Store._fetch", "return self._put_channel(data, touch=False)",
     "False -> True"):
        "a touch matters only to a load_all running at the same moment, whose page is no "
        "newer than this answer",
    ("store", "Store._fetch", "return self._put_user(data, touch=False)", "False -> True"):
        "as for _put_channel above",
    ("store", "Store.load_all", "self._put_user(user, touch=False)", "False -> True"):
        "load_all's own writes get counters above its `since`; every later reader takes "
        "its `since` after them",
    ("store", "Store.load_all", "self._put_channel(channel, touch=False)", "False -> True"):
        "as for _put_user above",
    ("store", "Store.apply",
     "self._log.debug(f\"store: ignored a malformed {event.get('type')} \"", "remove expr"):
        "a DEBUG line only",
    ("store", "Store.load_all",
     "users = [u for page in self._call(\"users.list\", {\"limit\": 200})", "200 -> 201"):
        "a page-size hint; pages are followed to the end either way",
    ("store", "Store.load_all", "{\"types\": _LIST_TYPES, \"limit\": 200})", "200 -> 201"):
        "a page-size hint; pages are followed to the end either way",
}

CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
            ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
            ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
            ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr}
SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
          ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in", ast.Is: "is",
          ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
          ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.BitOr: "|", ast.BitAnd: "&",
          ast.And: "and", ast.Or: "or"}
REMOVABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Raise, ast.If,
             ast.For, ast.While, ast.With, ast.Delete, ast.Try)


@dataclass
class Mutant:
    """The ``index``-th mutation point of a module (in walk order) and what it does."""

    target: str
    number: int
    node_index: int
    kind: str
    line: int
    change: str
    code: str = ""
    scope: str = ""
    col: int = 0
    outcome: str = ""
    seconds: float = 0.0
    detail: str = ""

    @property
    def key(self) -> Tuple[str, str, str, str]:
        """(target, enclosing function, the original line's code, change and column):
        stable when lines move."""
        return (self.target, self.scope, self.code, f"{self.change} @{self.col}")


# ---------------------------------------------------------------------- finding mutants
def _skipped_ids(tree: ast.Module, only: Optional[Sequence[str]]) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, module-level statements (other
    than inside functions and classes), and top-level definitions not in ``only``."""
    skip: set[int] = set()

    def skip_all(node: ast.AST) -> None:
        for sub in ast.walk(node):
            skip.add(id(sub))

    for top in tree.body:
        if only is not None:
            name = getattr(top, "name", None)
            if name not in only:
                skip_all(top)
                continue
        if not isinstance(top, (ast.FunctionDef, ast.ClassDef)):
            skip_all(top)  # constants, __all__, imports, the transition table (see below)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and body and \
                isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            skip_all(body[0])
        for attr in ("annotation", "returns"):
            sub = getattr(node, attr, None)
            if isinstance(sub, ast.AST):
                skip_all(sub)
        if isinstance(node, ast.arguments):
            for arg in node.posonlyargs + node.args + node.kwonlyargs:
                if arg.annotation is not None:
                    skip_all(arg.annotation)
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:  # dataclass fields: their defaults are data, kept
                if isinstance(stmt, ast.AnnAssign):
                    skip.add(id(stmt))
        if isinstance(node, ast.JoinedStr):
            skip_all(node)  # messages
    return skip


def _module_level_data(tree: ast.Module, only: Optional[Sequence[str]]) -> List[ast.AST]:
    """Module-level assignments whose value is data the code runs on (the transition table,
    numeric constants): mutated like any expression, when no ``only`` restricts."""
    if only is not None:
        return []
    out: List[ast.AST] = []
    for top in tree.body:
        if isinstance(top, (ast.Assign, ast.AnnAssign)) and top.value is not None:
            names = [t.id for t in (top.targets if isinstance(top, ast.Assign)
                                    else [top.target]) if isinstance(t, ast.Name)]
            if names and names[0] != "__all__" and not names[0].startswith("_"):
                out.append(top.value)
    return out


def mutation_points(tree: ast.Module, only: Optional[Sequence[str]]
                    ) -> Iterator[Tuple[int, str, str]]:
    """(node index in ``ast.walk`` order, kind, change) for every mutation of ``tree``."""
    skip = _skipped_ids(tree, only)
    for data in _module_level_data(tree, only):
        for sub in ast.walk(data):
            skip.discard(id(sub))
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                new = CMP_SWAP.get(type(op))
                if new is not None:
                    yield index, f"cmp{i}", f"{SYMBOL[type(op)]} -> {SYMBOL[new]}"
        elif isinstance(node, (ast.BinOp, ast.AugAssign)):
            new = BIN_SWAP.get(type(node.op))
            if new is not None:
                yield index, "binop", f"{SYMBOL[type(node.op)]} -> {SYMBOL[new]}"
        elif isinstance(node, ast.BoolOp):
            other = ast.Or if isinstance(node.op, ast.And) else ast.And
            yield index, "boolop", f"{SYMBOL[type(node.op)]} -> {SYMBOL[other]}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            yield index, "unary", f"drop {'not' if isinstance(node.op, ast.Not) else '-'}"
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                yield index, "const", f"{value} -> {not value}"
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                yield index, "const", f"{value!r} -> {value + 1!r}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("min", "max"):
            yield index, "minmax", f"{node.func.id} -> {'max' if node.func.id == 'min' else 'min'}"
        if (isinstance(node, REMOVABLE) and not isinstance(node, ast.Expr)) or \
                (isinstance(node, ast.Expr) and not (isinstance(node.value, ast.Constant))):
            if isinstance(node, ast.AnnAssign) and node.value is None:
                continue
            yield index, "remove", f"remove {type(node).__name__.lower()}"
        elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            yield index, "return", "return None"
        elif isinstance(node, (ast.Break, ast.Continue)):
            yield index, "loop", "break -> continue" if isinstance(node, ast.Break) \
                else "continue -> break"


def apply(tree: ast.Module, node_index: int, kind: str) -> ast.Module:
    """A copy of ``tree`` with the mutation at ``node_index`` applied."""
    tree = copy.deepcopy(tree)
    parents: Dict[int, Tuple[ast.AST, str, Optional[int]]] = {}
    nodes = list(ast.walk(tree))
    for parent in nodes:
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        parents[id(item)] = (parent, name, i)
            elif isinstance(value, ast.AST):
                parents[id(value)] = (parent, name, None)
    node = nodes[node_index]

    def replace(new: ast.AST) -> None:
        parent, name, i = parents[id(node)]
        if i is None:
            setattr(parent, name, new)
        else:
            getattr(parent, name)[i] = new

    if kind.startswith("cmp"):
        assert isinstance(node, ast.Compare)
        i = int(kind[3:])
        node.ops[i] = CMP_SWAP[type(node.ops[i])]()
    elif kind == "binop":
        assert isinstance(node, (ast.BinOp, ast.AugAssign))
        node.op = BIN_SWAP[type(node.op)]()
    elif kind == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "unary":
        assert isinstance(node, ast.UnaryOp)
        replace(node.operand)
    elif kind == "const":
        assert isinstance(node, ast.Constant)
        node.value = (not node.value) if isinstance(node.value, bool) else node.value + 1
    elif kind == "minmax":
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        node.func.id = "max" if node.func.id == "min" else "min"
    elif kind == "remove":
        replace(ast.Pass())
    elif kind == "return":
        assert isinstance(node, ast.Return)
        node.value = None
    elif kind == "loop":
        replace(ast.Continue() if isinstance(node, ast.Break) else ast.Break())
    else:  # pragma: no cover
        raise ValueError(kind)
    return ast.fix_missing_locations(tree)


def mutants_of(target: Target) -> Tuple[ast.Module, str, List[Mutant]]:
    with open(target.path, encoding="utf-8") as f:
        source = f.read()
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    lines = source.splitlines()
    scopes: Dict[int, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = getattr(child, "name", None) if isinstance(
                child, (ast.FunctionDef, ast.ClassDef)) else None
            inner = f"{scope}.{name}" if name and scope else (name or scope)
            scopes[id(child)] = inner
            visit(child, inner)

    visit(tree, "")
    out = []
    for index, kind, change in mutation_points(tree, target.only):
        line = getattr(nodes[index], "lineno", 0)
        out.append(Mutant(target.key, len(out) + 1, index, kind, line, change,
                          lines[line - 1].strip() if line else "",
                          scopes.get(id(nodes[index]), ""),
                          getattr(nodes[index], "col_offset", 0)))
    return tree, source, out


def mutated_source(tree: ast.Module, mutant: Mutant) -> str:
    return ast.unparse(apply(tree, mutant.node_index, mutant.kind))


# ---------------------------------------------------------------------- running
class _Swap(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``name`` from ``code`` (a compiled mutant) instead of its file."""

    def __init__(self, name: str, path: str, code: Any) -> None:
        self.name, self.path, self.code = name, path, code

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=self.path)

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        module.__file__ = self.path
        exec(self.code, module.__dict__)


def _cap_hypothesis(max_examples: int) -> None:
    """Cap every property test at ``max_examples`` examples, explicit ``@settings``
    included (a weaker suite: the kill rate measured is a lower bound of the suite's)."""
    import hypothesis

    hypothesis.settings.register_profile("mutation", max_examples=max_examples)
    hypothesis.settings.load_profile("mutation")
    original = hypothesis.settings.__init__

    def capped(self: Any, parent: Any = None, **kwargs: Any) -> None:
        if isinstance(kwargs.get("max_examples"), int):
            kwargs["max_examples"] = min(kwargs["max_examples"], max_examples)
        original(self, parent, **kwargs)

    hypothesis.settings.__init__ = capped  # type: ignore[method-assign]


def _child(target: Target, code: Any, log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.setpgid(0, 0)
    import pytest

    if MAX_EXAMPLES:
        _cap_hypothesis(MAX_EXAMPLES)

    swap = _Swap(target.module, target.path, code)
    sys.meta_path.insert(0, swap)
    # --assert=plain: pytest's assertion rewriter would import the package's modules
    # itself (slackrtm registers a pytest plugin), ahead of the mutant
    args = ["-x", "-q", "-p", "no:cacheprovider", "--assert=plain",
            *target.pytest_args, *[os.path.join(ROOT, t) for t in target.tests
                                   if os.path.exists(os.path.join(ROOT, t))]]
    rc = pytest.main(args)
    module = sys.modules.get(target.module)
    if rc == 0 and (module is None or module.__spec__ is None
                    or module.__spec__.loader is not swap):
        print(f"the mutant of {target.module} was not the module the tests imported")
        rc = 98
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(rc))


def run_one(target: Target, code: Any, timeout: float, log_path: str) -> Tuple[str, float]:
    """Fork, run the target's tests against ``code``; (outcome, seconds)."""
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            _child(target, code, log_path)
        finally:
            os._exit(99)
    deadline = t0 + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - t0
        select.select([], [], [], 0.05)
    code_ = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") \
        else (status >> 8)
    took = time.monotonic() - t0
    if code_ == 0:
        return "survived", took
    if code_ in (1, 2, 3, 4):  # tests failed, or the mutant broke the import of the package
        return "killed", took
    return f"error rc={code_}", took  # collection error, crash: the mutant broke import


def run_target(target: Target, timeout: float, jobs: int, numbers: Optional[set[int]],
               verbose: bool) -> List[Mutant]:
    tree, _source, mutants = mutants_of(target)
    todo = []
    for m in mutants:
        if numbers is not None and m.number not in numbers:
            continue
        try:
            code = compile(mutated_source(tree, m), target.path, "exec")
        except (SyntaxError, ValueError) as exc:
            m.outcome, m.detail = "invalid", str(exc)
            continue
        todo.append((m, code))
    running: Dict[int, Tuple[Mutant, float, str]] = {}
    logdir = os.path.join("/tmp", f"slackrtm-mutation-{os.getpid()}")
    os.makedirs(logdir, exist_ok=True)
    # simple parallelism: fork up to ``jobs`` children, each run_one in its own fork
    pending = list(todo)
    results: List[Mutant] = []
    while pending or running:
        while pending and len(running) < jobs:
            m, code = pending.pop(0)
            log_path = os.path.join(logdir, f"{target.key}-{m.number}.log")
            pid = os.fork()
            if pid == 0:  # pragma: no cover (a runner child: runs one mutant, reports)
                outcome, took = run_one(target, code, timeout, log_path)
                with open(log_path + ".result", "w") as f:
                    json.dump([outcome, took], f)
                os._exit(0)
            running[pid] = (m, time.monotonic(), log_path)
        pid, _ = os.wait()
        if pid not in running:
            continue
        m, _, log_path = running.pop(pid)
        try:
            with open(log_path + ".result") as f:
                m.outcome, m.seconds = json.load(f)
        except (OSError, ValueError):
            m.outcome = "error (runner)"
        if m.outcome in ("survived",) or m.outcome.startswith("error"):
            try:
                with open(log_path) as f:
                    m.detail = f.read()[-2000:]
            except OSError:
                pass
        for path in (log_path, log_path + ".result"):
            try:
                os.remove(path)
            except OSError:
                pass
        results.append(m)
        if verbose:
            print(f"  {target.key}#{m.number:<4} line {m.line:<4} {m.change:<24} "
                  f"{m.outcome} ({m.seconds:.1f} s)", flush=True)
    try:
        os.rmdir(logdir)
    except OSError:
        pass
    return sorted(results + [m for m in mutants if m.outcome == "invalid"],
                  key=lambda m: m.number)


def equivalent(m: Mutant) -> Optional[str]:
    """Why ``m`` behaves like the original (None: it is not known to). An EQUIVALENT key's
    change may end in ``@column`` when two mutants of one line would share it."""
    target, scope, code, _ = m.key
    return EQUIVALENT.get(m.key) or EQUIVALENT.get((target, scope, code, m.change))


def _outcome(m: Mutant) -> str:
    """A run's outcome, read the current way (older runs called a package that failed to
    import an error; it is a kill)."""
    if m.outcome in ("error rc=2", "error rc=3", "error rc=4", "error rc=98"):
        return "killed"
    return m.outcome


def summarize(target: str, mutants: List[Mutant]) -> Dict[str, Any]:
    ran = [m for m in mutants if m.outcome != "invalid"]
    killed = [m for m in ran if _outcome(m) in ("killed", "timeout")]
    errors = [m for m in ran if _outcome(m).startswith("error")]
    survived = [m for m in ran if m.outcome == "survived"]
    equivalents = [m for m in survived if equivalent(m)]
    real = len(ran) - len(errors) - len(equivalents)
    return {"target": target, "mutants": len(ran), "killed": len(killed),
            "errors": len(errors), "survived": len(survived),
            "equivalent": len(equivalents), "non_equivalent": real,
            "kill_rate_all": round(len(killed) / max(1, len(ran) - len(errors)), 3),
            "kill_rate": round(len(killed) / max(1, real), 3)}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=[t.key for t in TARGETS],
                        help="only these targets (repeatable); default: all")
    parser.add_argument("--numbers", help="only these mutant numbers, e.g. 3,7,12")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds per mutant before it counts as killed (a hang)")
    parser.add_argument("--list", action="store_true", help="list mutants, run nothing")
    parser.add_argument("--show", help="print the diff of one mutant, e.g. backoff:12")
    parser.add_argument("--json", help="write every mutant's outcome here")
    parser.add_argument("--max-examples", type=int, default=0,
                        help="cap each property test at this many examples (faster; the "
                             "kill rate is then a lower bound of the full suite's)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--summarize", metavar="JSON",
                        help="print the table of an earlier --json run (with EQUIVALENT as "
                             "it is now), run nothing")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)
    global MAX_EXAMPLES
    MAX_EXAMPLES = args.max_examples
    by_key = {t.key: t for t in TARGETS}
    if args.show:
        key, _, number = args.show.partition(":")
        tree, _source, mutants = mutants_of(by_key[key])
        m = mutants[int(number) - 1]
        new = mutated_source(tree, m)
        old = ast.unparse(tree)
        sys.stdout.writelines(difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), f"{key} original",
            f"{key} mutant {m.number} (line {m.line}: {m.change})", n=2))
        return 0
    targets = [by_key[k] for k in args.module] if args.module else TARGETS
    numbers = {int(n) for n in args.numbers.split(",")} if args.numbers else None
    if args.list:
        for t in targets:
            for m in mutants_of(t)[2]:
                print(f"{t.key}#{m.number:<4} line {m.line:<4} {m.change:<24} {m.code}  "
                      f"[{m.scope}]")
        return 0
    report = []
    everything: List[Mutant] = []
    if args.summarize:
        with open(args.summarize) as f:
            fields = Mutant.__dataclass_fields__
            loaded = [Mutant(**{k: v for k, v in m.items() if k in fields})
                      for m in json.load(f)["mutants"]]
        for t in targets:
            mutants = [m for m in loaded if m.target == t.key]
            if mutants:
                everything.extend(mutants)
                report.append(summarize(t.key, mutants))
        args.json = None
    else:
        import hypothesis  # noqa: F401
        import pytest  # noqa: F401  (imported once here: every fork inherits it)

    for t in targets if not args.summarize else []:
        if not args.quiet:
            print(f"{t.key}: {t.module} against {' '.join(t.tests)}", flush=True)
        mutants = run_target(t, args.timeout, args.jobs, numbers, not args.quiet)
        everything.extend(mutants)
        report.append(summarize(t.key, mutants))
    total = summarize("total", everything)
    print("\nmodule      mutants  killed  survived  equivalent  errors  kill rate "
          "(non-equivalent)")
    for row in [*report, total]:
        print(f"{row['target']:<10} {row['mutants']:>8} {row['killed']:>7} "
              f"{row['survived']:>9} {row['equivalent']:>11} {row['errors']:>7}  "
              f"{row['kill_rate'] * 100:5.1f}% ({row['kill_rate_all'] * 100:.1f}% of all)")
    survivors = [m for m in everything if m.outcome == "survived" and not equivalent(m)]
    if survivors:
        print("\nsurvivors not known to be equivalent:")
        for m in survivors:
            print(f"  {m.target}#{m.number:<4} line {m.line:<4} {m.change:<24} {m.code}  "
                  f"[{m.scope}]")
    errors = [m for m in everything if _outcome(m).startswith("error")]
    for m in errors:
        print(f"  error: {m.target}#{m.number} line {m.line} {m.change}: "
              f"{m.detail.strip().splitlines()[-1:] if m.detail else ''}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": [*report, total],
                       "mutants": [m.__dict__ | {"equivalent": equivalent(m)}
                                   for m in everything]}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
