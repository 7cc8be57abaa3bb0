"""Arrows one way: no import circles among lucidtl's modules, no library module importing a command line
(a `python -m lucidtl.X` entry point), no module using another module's private (`_name`) names. Read from
the source with `ast`: module-level and function-local imports alike."""
import ast
import os

from cli_entries import ENTRY_MODULES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modules():
    """{dotted module name: path} of every .py file under lucidtl/."""
    found = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "lucidtl")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _absolute(module, node):
    """The absolute dotted name an ImportFrom refers to (relative imports resolved)."""
    if not node.level:
        return node.module
    package = module.split(".") if MODULES[module].endswith("__init__.py") else module.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _scan(module):
    """(imported lucidtl modules, private names used from other lucidtl modules) of one module."""
    tree = ast.parse(open(MODULES[module], encoding="utf-8").read(), MODULES[module])
    imports, private, aliases = set(), [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in MODULES:
                    imports.add(a.name)
                    if a.asname:
                        aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            if source is None or not source.startswith("lucidtl"):
                continue
            for a in node.names:
                target = f"{source}.{a.name}"
                if target in MODULES:
                    imports.add(target)
                    aliases[a.asname or a.name] = target
                else:
                    imports.add(source)
                    if _private(a.name) and source != module:
                        private.append(f"{module} line {node.lineno}: from {source} import {a.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and aliases[node.value.id] != module):
            private.append(f"{module} line {node.lineno}: {aliases[node.value.id]}.{node.attr}")
    imports.discard(module)
    return {m for m in imports if m in MODULES}, private


GRAPH, PRIVATE = {}, []
for _name in sorted(MODULES):
    GRAPH[_name], _used = _scan(_name)
    PRIVATE += _used


def _cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_imports():
    """The graph is read correctly: known edges of every kind are found."""
    assert "lucidtl.cli" in GRAPH["lucidtl.analyze"]  # module level, `from lucidtl import cli`
    assert "lucidtl.analysis.streaming" in GRAPH["lucidtl.analysis.examples"]  # function-local
    assert set(ENTRY_MODULES) <= set(MODULES)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert _cycles(GRAPH) == []


def test_no_library_module_imports_an_entry_point():
    upward = [f"{m} imports {e}" for m, targets in sorted(GRAPH.items()) if m not in ENTRY_MODULES
              for e in sorted(targets & set(ENTRY_MODULES))]
    assert upward == []


def test_no_module_uses_another_modules_private_names():
    assert PRIVATE == []
