"""Input data: the contract, finding and reading tables on an engine, validation, and `load`, the
one way in for every stage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config imports the contract, so this package imports it lazily
    import ibis.expr.types as ir

    from churnml.config import DataConfig
    from churnml.data.sources import Engine


def load(
    data_dir: Path | str, config: DataConfig, engine: Engine = "duckdb", *, check: bool = True
) -> dict[str, ir.Table]:
    """The input tables, typed, on a new connection of `engine`; with `check`, validated first
    (`DataValidationError` names each broken rule, with counts and examples). DuckDB validates
    on the connection it returns (and the formats of text columns it found are used again); for
    Spark the same files are validated on embedded DuckDB."""
    from churnml.data.sources import connect, load_tables
    from churnml.data.validate import DataValidationError, validate

    con = connect(engine, config.memory_limit)
    formats = None
    if check:
        report = validate(data_dir, config, con if engine == "duckdb" else None)
        if not report.ok:
            raise DataValidationError(report)
        formats = report.formats if engine == "duckdb" else None
    return load_tables(data_dir, config, con, formats)
