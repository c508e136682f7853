"""Closing tables for people (rich) and the same facts as JSON for machines."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .build import BuildOutcome
from .files import display_path
from .setup import SetupReport
from .verify import Measured, VerifyOutcome


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def builds(console: Console, outcomes: Iterable[BuildOutcome], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("service", "image", "steps", "cached", "status", "time"):
        table.add_column(col, justify="right" if col in ("steps", "cached", "time") else "left")
    for o in outcomes:
        table.add_row(o.service, o.image, str(o.steps), str(o.cached), o.status, f"{o.seconds:.1f}s")
    console.print(table)


def export(console: Console, summary: dict[str, Any], seconds: float) -> None:
    table = Table(title="offline.export", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("services", ", ".join(summary["services"]))
    # Which steps BuildKit took from a cache: on a fresh machine, this is
    # what a team cache (cache.backend) saved.
    builds = [r for r in summary["result"].builds() if getattr(r.step, "service", "")] if "result" in summary else []
    if builds:
        table.add_row("steps cached", ", ".join(f"{r.step.service} {r.detail['cached']}/{r.detail['steps']}"
                                                for r in builds))
    if summary.get("cache"):
        table.add_row("team cache", summary["cache"])
    if summary.get("builder"):
        table.add_row("builder", summary["builder"])
    for name, (files, size) in summary.get("folders", {}).items():
        table.add_row(f"files/{name}", f"{files} file(s), {human_size(size)}")
    table.add_row("blobs", str(summary["blobs"]))
    table.add_row("unique bytes", human_size(summary["unique_bytes"]))
    table.add_row("bundle", display_path(summary["output"]))
    table.add_row("bundle size", human_size(summary["size"]))
    if summary.get("sbom"):
        table.add_row("bill of materials", f"sbom.cdx.json: {summary['sbom']}")
    if "signed" in summary:
        table.add_row("signature", f"key {summary['signed']}" if summary["signed"] else "unsigned (no --sign)")
    if "pack_seconds" in summary:
        table.add_row("packing", f"{summary['pack_seconds']:.1f}s")
    table.add_row("time", f"{seconds:.1f}s")
    console.print(table)


def setup(console: Console, rep: SetupReport, seconds: float) -> None:
    table = Table(title="offline.setup", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("bundle", display_path(rep.bundle))
    table.add_row("project / version", f"{rep.manifest.project} / {rep.manifest.version}")
    table.add_row("services", ", ".join(rep.manifest.services) or "none")
    if rep.manifest.platforms:  # offline.diagnose says which of them a build here makes
        table.add_row("platforms", ", ".join(rep.manifest.platforms))
    table.add_row("verified files", str(len(rep.manifest.files)))
    table.add_row("new blobs in store", str(rep.blobs_added))
    table.add_row("files placed", str(rep.files))
    if rep.signature:
        table.add_row("signature", rep.signature.describe())
    if rep.caps:
        mode = "oci-layout contexts" if rep.caps.oci_layout_context else "loaded into the engine"
        table.add_row("base images", mode)
    for image, state in rep.loaded:
        table.add_row(f"  {image}", state)
    table.add_row("time", f"{seconds:.1f}s")
    console.print(table)


def verify(console: Console, outcomes: Iterable[VerifyOutcome], measured: Measured, *, edits: bool = False) -> None:
    how = "every build context edited, " if edits else ""
    title = f"offline.verify{' --edits' if edits else ''} ({how}scratch store; engine: {measured.title()})"
    table = Table(title=title, title_justify="left")
    for col in ("service", "result", "steps", "cached", "detail"):
        table.add_column(col, overflow="fold")
    style = {"all cached": "green", "rebuilt offline": "yellow", "failed": "bold red"}
    for o in outcomes:
        # Step names start with BuildKit's "[stage-0 4/5]": text, not rich markup.
        table.add_row(o.service, f"[{style[o.status]}]{o.status}[/]", str(o.steps), str(o.cached), Text(o.detail))
    console.print(table)
    console.print(f"air-tightness: {measured.airtight.detail}", markup=False, highlight=False)
    console.print(f"emptiness: {measured.empty.describe()} before the proof", markup=False, highlight=False)
