"""Run every benchmark, print the figures, and rewrite the generated part of
``docs/benchmarks.md``.

    python bench/run.py [--quick]      # `make bench`; --quick: fewer runs, for a smoke test
    python bench/run.py --only NAME    # one benchmark that needs no deployed app: its table alone

Only the text between the ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` markers is
rewritten (with ``--only``, only that benchmark's table in it); everything outside them is
kept as written.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `paas` importable
    sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402
    builds,
    container_start,
    dashboard,
    idle_replicas,
    redeploy,
    rollback,
    router_load,
    scale,
)
from bench.common import Table, machine  # noqa: E402
from bench.deployed import deployed_platform  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
COMMAND = "make bench"
DOC_TEMPLATE = f"""# Benchmarks

What the platform costs on top of the parts it is built on, measured on a real host with
the real parts (runc, overlayfs, network namespaces, veth pairs on a Linux bridge).
`{COMMAND}` (that is, `.venv/bin/python bench/run.py`) runs every benchmark as root, each on
its own bridge, subnet and temp dirs, removes all it made, and rewrites the figures below.
Each table says what its figures mean. Everything between the `bench:begin` and `bench:end`
markers is generated; text outside them is kept. `bench/run.py --only NAME` (`container-start`,
`idle-replicas`, `dashboard`, `builds`: those that need no deployed app) reruns one benchmark
and replaces its table alone, which then says when it was measured.

{BEGIN}
{END}
"""

# The benchmarks that need no platform, by name: quick -> their table.
ALONE: dict[str, Callable[[bool], Table]] = {
    "container-start": lambda quick: container_start.table(
        container_start.measure(3 if quick else 10)
    ),
    "idle-replicas": lambda quick: idle_replicas.table(idle_replicas.measure(1 if quick else 3)),
    "dashboard": lambda quick: dashboard.table(dashboard.measure(5 if quick else 20)),
    "builds": lambda quick: builds.table(builds.measure(2 if quick else 5)),
}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _generated(tables: list[Table], quick: bool) -> str:
    info = machine()
    now = _now()
    command = f"{COMMAND} (`bench/run.py --quick`)" if quick else f"`{COMMAND}`"
    lines = [
        f"Generated on {now} by {command}, on a host with {info['nproc']} CPUs "
        f"and {info['memory']} of memory; kernel `{info['kernel']}`; {info['runc']}.",
    ]
    if quick:
        lines.append("\nA quick run (few runs): figures are rough.")
    for t in tables:
        lines += ["", t.markdown()]
    return "\n".join(lines)


def write_doc(block: str, path: Path = DOC) -> None:
    """Replace the generated block of ``path`` (created from a template if missing; the block
    is appended if the markers are missing)."""
    text = path.read_text(encoding="utf-8") if path.exists() else DOC_TEMPLATE
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
        start, end = text.find(BEGIN), text.find(END)
    text = text[: start + len(BEGIN)] + "\n" + block.strip("\n") + "\n" + text[end:]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_table(table: Table, path: Path = DOC) -> None:
    """Replace the section of ``table`` (from its ``### title`` to the next one) in the
    generated block of ``path``, or add it at the end of the block."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        write_doc(table.markdown(), path)
        return
    block = text[start + len(BEGIN) : end]
    head = block.find(f"### {table.title}\n")
    if head < 0:
        block = block.rstrip("\n") + "\n\n" + table.markdown() + "\n"
    else:
        tail = block.find("\n### ", head + 1)
        rest = block[tail:] if tail >= 0 else "\n"
        block = block[:head] + table.markdown() + "\n" + rest
    write_doc(block, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks; update the docs.")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs")
    parser.add_argument("--no-doc", action="store_true", help=f"do not rewrite {DOC.name}")
    parser.add_argument("--only", choices=sorted(ALONE), help="run this benchmark alone")
    args = parser.parse_args(argv)
    if args.only:
        table = ALONE[args.only](args.quick)
        print(table.text(), flush=True)
        if not args.no_doc:
            stamp = f"\n\nThis table: {_now()}, `bench/run.py --only {args.only}`."
            write_table(dataclasses.replace(table, about=table.about.rstrip() + stamp))
            print(f"wrote its table in {DOC.relative_to(ROOT)}")
        return 0

    tables: list[Table] = []

    def done(table: Table) -> None:
        tables.append(table)
        print(table.text(), end="\n\n", flush=True)

    runs = 2 if args.quick else 5
    print("container start ...", flush=True)
    done(ALONE["container-start"](args.quick))
    print(f"{idle_replicas.REPLICAS} idle replicas ...", flush=True)
    done(ALONE["idle-replicas"](args.quick))
    print("starting a platform and deploying the app (not measured) ...", flush=True)
    with deployed_platform() as deployed:
        print("redeploy ...", flush=True)
        done(redeploy.table(redeploy.measure(deployed, runs)))
        print("rollback ...", flush=True)
        done(rollback.table(rollback.measure(deployed, runs)))
        print("scaling ...", flush=True)
        done(scale.table(scale.measure(deployed, runs)))
        print("router throughput ...", flush=True)
        done(router_load.table(router_load.measure(deployed, 4 if args.quick else 10)))
    print("dashboard pages (50 apps, 200 replicas) ...", flush=True)
    done(ALONE["dashboard"](args.quick))
    print("builds ...", flush=True)
    done(ALONE["builds"](args.quick))

    if not args.no_doc:
        write_doc(_generated(tables, args.quick))
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
