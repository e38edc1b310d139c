"""Rich tables for the terminal."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from instrlab.registry import ALL


def registry_table(kind: str | None = None) -> Table:
    """Every registered component with its description and source."""
    table = Table(title="instrlab components")
    for col in ("registry", "name", "description", "source"):
        table.add_column(col, overflow="fold")
    for reg_name, reg in ALL.items():
        if kind and kind != reg_name:
            continue
        for e in reg.entries():
            table.add_row(reg_name, e.name, e.description, e.source)
    return table


def stats_table(stats: dict[str, Any], names: list[str]) -> Table:
    """The seed's statistics: occurrences per instrument and instruments per sample."""
    table = Table(title=f"dataset statistics ({stats['n_samples']} samples)")
    table.add_column("instrument")
    table.add_column("clips", justify="right")
    table.add_column("share", justify="right")
    for name in names:
        table.add_row(name, str(stats["occurrences"][name]),
                      f"{stats['occurrence_share'][name]:.1%}")
    table.add_section()
    for k, v in stats["instruments_per_sample"].items():
        table.add_row(f"clips with {k} instrument{'s' if k != '1' else ''}", str(v),
                      f"{v / max(stats['n_samples'], 1):.1%}")
    return table
