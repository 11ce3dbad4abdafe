"""The ``calls``, ``episodes`` and ``turns`` tables of one run as Arrow tables (no Spark session).

Built on the driver from the manifest facts of the analysed and failed recordings and
their input rows' call summaries (see :func:`jobs.analyze_calls.write_call_tables`,
which fetches the summaries in bounded batches and writes these tables).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from jobs import schemas
from ser_lib.nulls import is_missing


def calls_table(facts: list[dict], summaries: dict[str, dict], labels: list[str], model_version: str) -> pa.Table:
    """The ``calls`` table (one run's partition) as an Arrow table of :func:`schemas.calls_table`.

    Args:
        facts: one dict per analysed or failed recording with the :data:`schemas.CALL_FACTS` keys.
        summaries: ``call_id`` → that call's input row from the analysis pass (its summary
            fields, see :func:`schemas.call_summary_schema`); calls without one get nulls.
    """
    from pyspark.sql.pandas.types import to_arrow_schema
    schema = schemas.calls_table(labels)
    names = schema.fieldNames()
    rows = []
    for f in facts:
        s = summaries.get(f["call_id"], {})
        r = {c: _py(f.get(c) if c in schemas.CALL_FACTS else s.get(c)) for c in names}
        for k in ("timeline", "quarters"):
            if r[k] is not None:
                r[k] = [e.asDict() if hasattr(e, "asDict") else dict(e) for e in r[k]]
        r["model_version"] = model_version
        rows.append(r)
    return pa.Table.from_pylist(rows, schema=to_arrow_schema(schema))


def episodes_table(facts: list[dict], summaries: dict[str, dict], model_version: str) -> pa.Table:
    """The ``episodes`` table (one run's partition): the episodes of the analysed calls among
    ``facts``, from their input rows' ``episodes`` (see :func:`calls_table`), in call order."""
    from pyspark.sql.pandas.types import to_arrow_schema
    rows = []
    for f in facts:
        eps = summaries.get(f["call_id"], {}).get("episodes") if f["status"] == "ok" else None
        for e in eps if isinstance(eps, (list, np.ndarray)) else []:  # None/NaN: no windows
            e = e.asDict() if hasattr(e, "asDict") else dict(e)
            rows.append({"call_id": f["call_id"], **{k: _py(v) for k, v in e.items()}, "model_version": model_version})
    return pa.Table.from_pylist(rows, schema=to_arrow_schema(schemas.episodes_table()))


def turns_table(facts: list[dict], summaries: dict[str, dict], model_version: str) -> pa.Table:
    """The ``turns`` table (one run's partition): the talk spurts of the analysed calls among
    ``facts``, from their input rows' ``turns`` (see :func:`calls_table`), in call order."""
    from pyspark.sql.pandas.types import to_arrow_schema
    rows = []
    for f in facts:
        turns = summaries.get(f["call_id"], {}).get("turns") if f["status"] == "ok" else None
        for e in turns if isinstance(turns, (list, np.ndarray)) else []:
            e = e.asDict() if hasattr(e, "asDict") else dict(e)
            rows.append({"call_id": f["call_id"], **{k: _py(v) for k, v in e.items()}, "model_version": model_version})
    return pa.Table.from_pylist(rows, schema=to_arrow_schema(schemas.turns_table()))


def _py(v):
    """A value from pandas as Arrow takes it: NaN/NA → None, numpy arrays → lists, numpy
    scalars → Python."""
    if isinstance(v, np.ndarray):
        return list(v)
    if is_missing(v):
        return None
    return v.item() if isinstance(v, np.generic) else v
