#!/usr/bin/env python3
"""Runs the README's shell blocks against a running local stack and checks what they print, so
the README cannot drift from the product (scripts/test starts the stack and calls this).

- Every ```sh block runs, in order, in one bash session (variables carry over, as in a
  terminal), from the repository root, unless the line before it is
  `<!-- walkthrough: skip, <reason> -->` (deploying to AWS, starting a second stack, …).
- The stack's ports, log folder and build folder replace scripts/dev's (127.0.0.1:3000,
  :3100, ~/.cache/beneficiary-tasks/run/logs and …/target), so a running scripts/dev is not
  disturbed; `WS_URL` points the live progress client at the stack.
- A full-line comment in a block is the output the README promises: the block's output must
  contain it, in order, ignoring white space, with `…` standing for anything. A block that
  exits non-zero fails too.

Usage: readme_walkthrough.py README.md GATEWAY_PORT BOS_PORT LOG_DIR TARGET_DIR WORK_DIR
"""

import pathlib
import re
import subprocess
import sys

SKIP = re.compile(r"^<!-- walkthrough: skip, .+ -->$")
DONE = "__walkthrough_block_done__"


def blocks(readme: str):
    """(first line number, text) of each ```sh block that is not marked to skip."""
    lines = readme.splitlines()
    found, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            previous = next((l.strip() for l in reversed(lines[:i]) if l.strip()), "")
            start, i = i + 1, i + 1
            while lines[i].strip() != "```":
                i += 1
            if not SKIP.match(previous):
                found.append((start + 1, "\n".join(lines[start:i])))
        i += 1
    return found


def expected(text: str):
    """The output lines a block promises: its full-line comments, without `# `."""
    return [l.strip()[1:].strip() for l in text.splitlines() if l.strip().startswith("#")]


def squeeze(s: str) -> str:
    return re.sub(r"\s+", "", s)


def missing(promised, output: str):
    """The first promised line the output does not show, in order, or None."""
    out, at = squeeze(output), 0
    for line in promised:
        for fragment in squeeze(line).split("…"):
            found = out.find(fragment, at)
            if found < 0:
                return line
            at = found + len(fragment)
    return None


def main():
    readme, gateway, bos, log_dir, target, work = sys.argv[1:7]
    root = pathlib.Path(readme).resolve().parent
    work = pathlib.Path(work)
    work.mkdir(parents=True, exist_ok=True)
    chosen = blocks(pathlib.Path(readme).read_text())
    script = [
        "set -eo pipefail",
        f"cd {root}",
        f"export WS_URL=ws://127.0.0.1:{gateway}/live",
    ]
    for n, (_, text) in enumerate(chosen):
        text = (
            text.replace("127.0.0.1:3000", f"127.0.0.1:{gateway}")
            .replace("127.0.0.1:3100", f"127.0.0.1:{bos}")
            .replace("~/.cache/beneficiary-tasks/run/logs", log_dir)
            .replace("~/.cache/beneficiary-tasks/target", target)
        )
        script.append(f"{{\n{text}\n}} > {work}/block-{n}.out 2>&1")
        script.append(f"echo {DONE} {n}")
    script.append("kill $(jobs -p) 2>/dev/null || true")
    run = subprocess.run(
        ["bash", "-c", "\n".join(script)], capture_output=True, text=True, timeout=900
    )
    done = {int(l.split()[1]) for l in run.stdout.splitlines() if l.startswith(DONE)}
    failures = 0
    for n, (line, text) in enumerate(chosen):
        output_file = work / f"block-{n}.out"
        output = output_file.read_text() if output_file.exists() else ""
        if n not in done:
            if n == min(set(range(len(chosen))) - done, default=-1):
                print(f"README line {line}: the block failed (exit {run.returncode}):\n{output[-2000:]}")
                failures += 1
            continue
        gap = missing(expected(text), output)
        if gap is not None:
            print(f"README line {line}: the output does not show\n  {gap}\nIt was:\n{output[-2000:]}")
            failures += 1
    ran = len(done)
    print(f"walkthrough: {ran} of {len(chosen)} README blocks ran, {failures} failed")
    sys.exit(1 if failures or ran < len(chosen) else 0)


if __name__ == "__main__":
    main()
