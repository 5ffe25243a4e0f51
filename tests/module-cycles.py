#!/usr/bin/env python3
"""Import cycles between the modules of each crate (and between the binary's modules).

    python3 tests/module-cycles.py            # exit 1 and the cycles, if any

A module is a file under a crate's `src/` (`a/mod.rs` is `a`, `a/b.rs` is `a::b`). An edge
`m -> n` is a `use crate::n...` (or `crate::n::...` in a path) in m's file, `n` taken to the
deepest module that exists. A parent and its own submodules are one unit (`a` uses `a::b` and `a::b`
uses `super::…` is how a folder module is built, not a cycle); a cycle is one between units
that are not nested in each other.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["src", "schemas/src", "schemas/kafka/src", "capture/src", "ingest/src", "query/kfl/src",
          "query/service/src"]


def modules(src):
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            mods["::".join(rel)] = os.path.join(dirpath, f)
    return mods


def strip_tests(text):
    """The file without its `#[cfg(test)] mod tests { ... }` (tests may use anything)."""
    i = text.find("#[cfg(test)]\nmod tests")
    return text if i < 0 else text[:i]


def edges(mods):
    out = {m: set() for m in mods}
    for m, path in mods.items():
        text = strip_tests(open(path).read())
        # Doc links (`[`crate::x`]`) and comments name modules without using them.
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
        for body in re.findall(r"\buse\s+crate::([^;]+);", text) + re.findall(r"\bcrate::([a-z_][a-z0-9_:]*)", text):
            for target in expand(body):
                parts = target.split("::")
                while parts and "::".join(parts) not in mods:
                    parts.pop()
                n = "::".join(parts)
                if parts and n != m:
                    out[m].add(n)
    return out


def expand(body):
    """`a::{b, c::d}` -> ['a::b', 'a::c::d'] (one level of braces is enough here)."""
    body = re.sub(r"\s+", "", body)
    m = re.match(r"^(.*?)\{(.*)\}$", body)
    if not m:
        return [body]
    head, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    res = []
    for p in parts:
        if p:
            res += expand(head + p)
    return res


def unit(m, units):
    """The outermost folder module m belongs to (one of `units`)."""
    for u in units:
        if m == u or m.startswith(u + "::"):
            return u
    return m


def cycles(crate):
    mods = modules(os.path.join(ROOT, crate))
    e = edges(mods)
    # Top-level modules are the units; a folder module's inside is its own business.
    units = sorted({m.split("::")[0] for m in mods if m})
    g = {u: set() for u in units}
    for m, ns in e.items():
        if not m:
            continue
        for n in ns:
            a, b = unit(m, units), unit(n, units)
            if a != b and b:
                g[a].add(b)
    found, seen = [], set()

    def dfs(u, stack, on):
        for v in sorted(g[u]):
            if v in on:
                cyc = stack[stack.index(v):] + [v]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    found.append(cyc)
            elif len(stack) < 12:
                dfs(v, stack + [v], on | {v})

    for u in units:
        dfs(u, [u], {u})
    return found


def main():
    bad = 0
    for crate in CRATES:
        for c in cycles(crate):
            bad += 1
            print(f"{crate}: {' -> '.join(c)}")
    print(f"{bad} import cycle(s) between modules" if bad else "no import cycles between modules")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
