#!/usr/bin/env python3
"""Assertion density of raft-core: assertions per function in `src/`, leaving out
`src/testing/**` and `#[cfg(test)]` modules (inline or in their own file).

Counted as assertions: assert!, assert_eq!, assert_ne!, debug_assert!, debug_assert_eq!,
debug_assert_ne!, unreachable!, and panic! with a message. Counted apart: the invariant checks of
the self-check (`out.check(...)`, each an invariant `Raft::check_invariants` asserts after every
public entry point in debug builds). Counted as functions: every `fn name` definition. Comments
are left out. Usage (from anywhere):

    python3 crates/raft-core/scripts/assertion-density.py [--per-file]
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
ASSERTION = re.compile(
    r"\b(?:debug_)?assert(?:_eq|_ne)?!\s*\(|\bunreachable!\s*\(|\bpanic!\s*\(\s*[^)\s]"
)
INVARIANT_CHECK = re.compile(r"\bout\.check\(")
FUNCTION = re.compile(r"\bfn\s+[A-Za-z_][A-Za-z0-9_]*")
TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(\w+)\s*([;{])")


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] if "//" in line else line for line in text.splitlines())


def strip_test_modules(path: pathlib.Path, text: str, skipped: set) -> str:
    while True:
        found = TEST_MODULE.search(text)
        if not found:
            return text
        if found.group(2) == ";":
            # `#[cfg(test)] mod tests;`: the module is a file of its own, left out whole.
            parent = path.parent / (path.stem if path.name not in ("mod.rs", "lib.rs") else "")
            skipped.add((parent / f"{found.group(1)}.rs").resolve())
            text = text[: found.start()] + text[found.end():]
            continue
        depth, position = 1, found.end()
        while depth and position < len(text):
            depth += {"{": 1, "}": -1}.get(text[position], 0)
            position += 1
        text = text[: found.start()] + text[position:]


def main() -> None:
    files = sorted(p for p in SRC.rglob("*.rs") if "testing" not in p.relative_to(SRC).parts)
    skipped: set = set()
    rows = []
    for path in files:
        text = strip_test_modules(path, path.read_text(), skipped)
        text = strip_comments(text)
        rows.append(
            (path, len(ASSERTION.findall(text)), len(FUNCTION.findall(text)), len(INVARIANT_CHECK.findall(text)))
        )
    rows = [row for row in rows if row[0].resolve() not in skipped]
    assertions = sum(row[1] for row in rows)
    functions = sum(row[2] for row in rows)
    checks = sum(row[3] for row in rows)
    if "--per-file" in sys.argv:
        print("asserts  fns  per-fn  invariant-checks  file")
        for path, a, f, c in rows:
            print(f"{a:7} {f:4} {a / max(f, 1):7.2f} {c:17}  {path.relative_to(SRC)}")
    print(f"raft-core src: {assertions} assertions / {functions} functions = {assertions / functions:.2f} per function")
    total = assertions + checks
    print(f"  with the self-check's {checks} invariant checks: {total} / {functions} = {total / functions:.2f} per function")


main()
