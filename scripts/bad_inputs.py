"""Run every bad input of `bad_input_cases` through the ``evalkit`` command line and classify what it gives.

    python scripts/bad_inputs.py                                  # all cases, a summary on stdout
    python scripts/bad_inputs.py --only quantize --show           # a subset, with each case's stderr line
    python scripts/bad_inputs.py --json after.json                # keep the outcomes
    python scripts/bad_inputs.py --evalkit /tmp/base --json before.json   # the same cases against another checkout
    python scripts/bad_inputs.py --table docs/bad-inputs.md --before before.json --after after.json
    python scripts/bad_inputs.py --table docs/bad-inputs.md --after after.json   # before: the issue's own counts

Each case is one subprocess ``python -m evalkit.cli ...`` in a folder of its own, so nothing it does reaches this
checkout. The outcome is decided from the outside, never from evalkit's own opinion:

- ``data loss``: a file or folder the case protects (the user's own) changed or disappeared;
- ``hang``: the command ran past the case's time limit, or out of its memory limit (8 GB of address space);
- ``traceback``: a Python traceback on stderr;
- ``clear``: a refusal wanted, and given: exit status 2, one line ``evalkit <command>: error: ...`` naming what the
  case says it must name, and no model evaluated (nothing in the case's generation cache);
- ``late``: that one line, but with another exit status, after models were evaluated, or refusing (or failing on)
  an input evalkit should cope with;
- ``dump``: a refusal as several lines (a third-party report, a pydantic dump);
- ``handled``: the input is one evalkit must cope with (a damaged cache entry, an over-long prompt, an interrupted
  run), and the case's own check of the result holds;
- ``silent``: anything else: a refusal that never came, or a result that is wrong without a word.

The table in docs/bad-inputs.md is written by ``--table`` from two ``--json`` files, so it is generated, not edited.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bad_input_cases as catalogue  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("clear", "handled", "late", "dump", "traceback", "hang", "silent", "data loss")
GOOD = ("clear", "handled")
_PROGRESS = re.compile(r"\|\s*\d+/\d+ \[|it/s\]|s/it\]")


@dataclass
class Outcome:
    id: str
    group: str
    what: str
    outcome: str
    rc: int | None
    seconds: float
    line: str  # the error line (or the first stderr line), shortened
    problem: str  # why it is not clear/handled, or ""


def tree_digest(path: Path) -> str:
    """Names and contents of everything under `path` (or the file itself); "missing" when it is gone."""
    if not path.exists() and not path.is_symlink():
        return "missing"
    h = hashlib.sha256()
    items = [path] if not path.is_dir() or path.is_symlink() else sorted([path, *path.rglob("*")])
    for p in items:
        h.update(str(p.relative_to(path) if p != path else ".").encode())
        if p.is_symlink():
            h.update(b"->" + os.readlink(p).encode())
        elif p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def meaningful(stderr: str) -> list[str]:
    """stderr without progress bars and argparse's usage block (the lines before argparse's own error line)."""
    lines = []
    for raw in stderr.replace("\r", "\n").splitlines():
        if not raw.strip() or _PROGRESS.search(raw):
            continue
        if raw.startswith("usage:") or (raw.startswith(" ") and lines == []):
            continue
        lines.append(raw)
    return lines


def tidy(line: str, ctx: catalogue.Ctx) -> str:
    """A line as the docs show it: the checkout's and the zoo cache's paths left out (they are this machine's)."""
    return line.replace(f"{ctx.evalkit}/", "").replace(f"{catalogue.ZOO_CACHE}/", "<zoo cache>/")


def classify(case: catalogue.Case, ctx: catalogue.Ctx, proc: catalogue.Result, digests: dict[Path, str]) -> Outcome:
    lines = meaningful(proc.stderr)
    error_lines = [line for line in lines if re.match(r"evalkit( [\w ]+)?: error: ", line)]
    shown = tidy((error_lines or lines or [""])[0], ctx)[:300]

    def out(outcome: str, problem: str = "") -> Outcome:
        return Outcome(case.id, case.group, case.what, outcome, proc.rc, round(proc.seconds, 2), shown, problem)

    changed = [str(p) for p, d in digests.items() if tree_digest(p) != d]
    if changed:
        return out("data loss", f"changed or removed: {', '.join(changed)}")
    if proc.timed_out:
        return out("hang", f"still running after {case.timeout}s")
    if re.search(r"MemoryError|can't allocate memory", proc.stderr):
        return out("hang", f"ran out of its {catalogue.MEMORY >> 30} GB memory limit")
    if "Traceback (most recent call last)" in proc.stderr:
        last = [line for line in proc.stderr.splitlines() if line.strip()][-1][:300]
        return Outcome(case.id, case.group, case.what, "traceback", proc.rc, round(proc.seconds, 2), last, "")
    if case.want == "refuse":
        if not error_lines:
            return out("silent", f"no error line (exit {proc.rc})")
        missing = [n for n in case.names(ctx) if n not in error_lines[0]]
        if len(lines) > 1:
            return out("dump", f"{len(lines)} stderr lines")
        if missing:
            return out("silent" if proc.rc == 0 else "late", f"the line does not name {missing}")
        if proc.rc != 2:
            return out("late", f"exit status {proc.rc}")
        if ctx.generated():
            return out("late", "models were evaluated before the refusal")
        return out("clear")
    if proc.rc != case.rc:  # refused or failed what it should cope with: a clear line is still late, none is silent
        return out("late" if error_lines else "silent", f"exit status {proc.rc}, expected {case.rc}")
    problem = case.check(ctx, proc) if case.check else None
    return out("silent", problem) if problem else out("handled")


def run_case(case: catalogue.Case, shared: Path, evalkit: Path) -> Outcome:
    with tempfile.TemporaryDirectory(prefix=f"bad-{case.id[:40]}-") as tmp:
        ctx = catalogue.Ctx(Path(tmp), shared, evalkit)
        try:
            if case.setup:
                case.setup(ctx)
            digests = {p: tree_digest(p) for p in (case.protect(ctx) if case.protect else [])}
            proc = case.drive(ctx) if case.drive else ctx.run(case.argv(ctx), timeout=case.timeout)
            result = classify(case, ctx, proc, digests)
        except Exception as err:  # noqa: BLE001 - a broken case is reported, never the end of the sweep
            result = Outcome(case.id, case.group, case.what, "silent", None, 0.0, "", f"harness: {err!r}")
        finally:
            ctx.cleanup()
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=None, help="cases whose id or group contains this text")
    parser.add_argument("--evalkit", default=str(REPO), help="the checkout whose evalkit runs (default: this one)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the outcomes here")
    parser.add_argument("--show", action="store_true", help="print each case's outcome and line")
    parser.add_argument("--table", default=None, help="write the Markdown table (needs --after; --before optional)")
    parser.add_argument("--before", default=None)
    parser.add_argument("--after", default=None)
    args = parser.parse_args(argv)
    if args.table:
        write_table(Path(args.table), load(args.before) if args.before else None, load(args.after))
        print(f"wrote {args.table}")
        return 0
    cases = [c for c in catalogue.CASES if not args.only or args.only in c.id or args.only in c.group]
    shared = Path(tempfile.mkdtemp(prefix="bad-inputs-shared-"))
    started = time.perf_counter()
    try:
        catalogue.prepare(shared, Path(args.evalkit))
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            outcomes = list(pool.map(lambda c: run_case(c, shared, Path(args.evalkit)), cases))
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    for o in outcomes:
        if args.show or o.outcome not in GOOD:
            print(f"{o.outcome:<10} {o.id:<48} {o.problem or o.line}"[:220])
    counts = {k: sum(o.outcome == k for o in outcomes) for k in CLASSES}
    print(f"{len(outcomes)} bad inputs in {time.perf_counter() - started:.0f}s: "
          + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(o) for o in outcomes], indent=1, ensure_ascii=False) + "\n")
    return 0 if all(o.outcome in GOOD for o in outcomes) else 1


ISSUE_BEFORE = ("162 bad inputs (evalkit at 91f103b; an overlapping but not identical set): 92 one clear line (28 of "
                "those late: another exit status, after models ran, or stopping the healthy ones), 36 a traceback, a "
                "third-party dump or a hang, 20 silently wrong, 10 data loss")
"""What the table says of "before" when no --before outcomes are given."""


def load(path: str | None) -> dict[str, dict[str, Any]]:
    if not path:
        raise SystemExit("--table needs --after (an outcome file written with --json)")
    return {o["id"]: o for o in json.loads(Path(path).read_text())}


def write_table(path: Path, before: dict[str, dict[str, Any]] | None, after: dict[str, dict[str, Any]]) -> None:
    """The generated part of docs/bad-inputs.md: counts per class and group, then every case. `before`: the same
    cases run against an older checkout, or None (then the issue's own measured counts stand for it)."""
    groups = list(dict.fromkeys(o["group"] for o in after.values()))
    head = path.read_text().split("<!-- generated -->")[0] if path.exists() else "# Bad inputs\n\n"
    lines = [head.rstrip() + "\n", "<!-- generated -->", "",
             f"{len(after)} bad inputs, each run through the command line by `scripts/bad_inputs.py`.", "",
             "| class | bad inputs | " + " | ".join(CLASSES) + " |", "|---|---|" + "---|" * len(CLASSES)]
    labelled = (("before", before), ("now", after)) if before is not None else (("now", after),)
    for group in groups:
        for label, outcomes in labelled:
            ids = [i for i, o in after.items() if o["group"] == group]
            got = [outcomes[i]["outcome"] if i in outcomes else "n/a" for i in ids]
            counts = [str(sum(g == k for g in got) or "") for k in CLASSES]
            lines.append(f"| {group} ({label}) | {len(ids)} | " + " | ".join(counts) + " |")
    for label, outcomes in labelled:
        got = [outcomes[i]["outcome"] if i in outcomes else "n/a" for i in after]
        lines.append(f"| **all ({label})** | {len(after)} | "
                     + " | ".join(f"**{sum(g == k for g in got)}**" for k in CLASSES) + " |")
    lines += ["", "Before: the same cases against evalkit at the commit this work started from (91f103b; a case for "
              "a later feature, such as `quantize --chat`, meets an option that did not exist yet). When issue 13 was "
              f"filed, tried by hand: {ISSUE_BEFORE}. Now: this checkout." if before is not None else
              f"Before, tried by hand when issue 13 was filed: {ISSUE_BEFORE}. Now: this checkout.", ""]
    for group in groups:
        lines += [f"## {group}", ""]
        lines += ["| bad input | what you get now | before |", "|---|---|---|"] if before is not None else \
            ["| bad input | what you get now |", "|---|---|"]
        for i, o in after.items():
            if o["group"] != group:
                continue
            said = o["line"].replace("|", "\\|").replace("\n", " ")
            said = re.sub(r"/tmp/bad-[^/ ]*", "…", said)
            now = f"**{o['outcome']}**" + (f": {said}" if said and o["outcome"] in ("clear", "late") else
                                           f" ({o['problem']})" if o["problem"] else "")
            was = f" {before.get(i, {}).get('outcome', 'n/a')} |" if before is not None else ""
            lines.append(f"| {o['what']} | {now[:400]} |{was}")
        lines.append("")
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
