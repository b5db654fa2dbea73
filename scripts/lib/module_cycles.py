#!/usr/bin/env python3
"""Fails if the modules of a crate depend on each other in a circle.

Reads each module file's non-test code (everything before `#[cfg(test)]`, comments left out)
for `crate::a::b` paths and `super::` uses, and builds a graph of modules: `a` for `src/a.rs` or `src/a/mod.rs`,
`a::b` for `src/a/b.rs`. A path names the deepest module that exists. A parent's `mod`
declarations are not edges (a folder's `mod.rs` naming its children is not a dependency).

Usage: module_cycles.py CRATE_SRC_DIR
"""
import pathlib
import re
import sys

src = pathlib.Path(sys.argv[1])
modules = {}
for path in src.rglob("*.rs"):
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        continue
    modules["::".join(parts)] = path


def resolve(segments):
    for n in range(len(segments), 0, -1):
        name = "::".join(segments[:n])
        if name in modules:
            return name
    return None


graph = {m: set() for m in modules}
for module, path in modules.items():
    text = path.read_text()
    code = text.split("#[cfg(test)]")[0]
    # Comments and docs may name any module; only code depends on one.
    code = re.sub(r"//[^\n]*", "", code)
    for match in re.finditer(r"crate((?:::\w+)+)", code):
        target = resolve(match.group(1).strip(":").split("::"))
        if target and target != module and not module.startswith(target + "::"):
            graph[module].add(target)
    parent = module.split("::")[:-1]
    for match in re.finditer(r"super((?:::\w+)+)", code):
        target = resolve(parent + match.group(1).strip(":").split("::"))
        if target and target != module:
            graph[module].add(target)

cycle = []
state = {}


def visit(node, stack):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph[node]):
        if state.get(nxt) == "open":
            cycle.extend(stack[stack.index(nxt):] + [nxt])
            return True
        if nxt not in state and visit(nxt, stack):
            return True
    stack.pop()
    state[node] = "done"
    return False


for m in sorted(graph):
    if m not in state and visit(m, []):
        print(f"module cycle in {src}: " + " -> ".join(cycle))
        sys.exit(1)
edges = sum(len(v) for v in graph.values())
print(f"{src}: {len(graph)} modules, {edges} dependencies, no cycle")
