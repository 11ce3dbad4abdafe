"""The job with each model variant (``model.variant`` default / accurate) on the same audio, in one run.

    python -m bench.accurate [--scale 1] [--rounds 2] [--float-encoder] [--out bench/results/accurate-<date>.json]

One local SparkSession (``local[*]``), then ``--rounds`` rounds of *default, accurate*
(interleaved, so machine load hits both alike) over :mod:`bench.dataset`'s scale-``--scale``
set, each end to end (:func:`bench.run.run_job`: files to committed Parquet, fresh output),
after one unmeasured warm-up run of each variant (Python workers start and load both models).
Reports each run's x-realtime and the workers' stage seconds, and the ratios accurate /
default of the fastest runs: on a machine shared with other work the absolute x-realtime is
not a product number, the ratio measured in one process is steadier. The machine's load
average before and after each run is recorded. ``--float-encoder`` adds a third variant,
``accurate-float``: the accurate model with its float speech encoder (a copy of the artifact
without ``encoder-int8.onnx``), the A/B of the int8 encoder.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

import yaml

from bench import dataset
from bench.run import RESULTS, log, run_job


def float_encoder_artifact() -> Path:
    """A copy of the shipped accurate artifact without its int8 encoder, under the cache; its
    version gets ``-float`` so that its output rows say which encoder scored them."""
    import shutil

    from ser_lib.encoder import ENCODER_INT8_FILE
    from ser_lib.encoder_head import HEAD_FILE
    from ser_lib.models import DEFAULT_ENCODER

    out = dataset.CACHE / "accurate-float-encoder"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(DEFAULT_ENCODER, out, ignore=shutil.ignore_patterns(ENCODER_INT8_FILE))
    head = json.loads((out / HEAD_FILE).read_text())
    head["training"]["version"] = head["training"].get("version", "encoder-head") + "-float"
    (out / HEAD_FILE).write_text(json.dumps(head))
    return out


def variant_conf(variant: str) -> str:
    """``conf/job.yaml`` with ``model.variant`` set (``accurate-float``: accurate on
    :func:`float_encoder_artifact`) and the Spark UI on (the stage times), under the cache."""
    from ser_lib.config import DEFAULT_JOB_CONF

    d = yaml.safe_load(DEFAULT_JOB_CONF.read_text()) or {}
    d.setdefault("model", {})["variant"] = "accurate" if variant == "accurate-float" else variant
    if variant == "accurate-float":
        d["model"]["encoder_path"] = str(float_encoder_artifact())
    d.setdefault("spark", {}).setdefault("settings", {})["spark.ui.enabled"] = "true"
    path = dataset.CACHE / f"job-variant-{variant}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1, help="audio scale of bench.dataset (1x ~ 18 min)")
    p.add_argument("--rounds", type=int, default=2, help="measured rounds of default, accurate (default 2)")
    p.add_argument("--corpora", default=None, help="corpus root (default $SER_CORPORA or ../shared/corpora)")
    p.add_argument("--master", default="local[*]")
    p.add_argument("--float-encoder", action="store_true",
                   help="also run the accurate model with its float encoder (accurate-float)")
    p.add_argument("--out", default=None, help="results file (default bench/results/accurate-<date>.json)")
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from jobs.analyze_calls import build_spark
    from jobs.spark_config import SparkConfig

    data = dataset.scale_set(a.scale, a.corpora, log)
    confs = {v: variant_conf(v) for v in ("default", "accurate") + (("accurate-float",) if a.float_encoder else ())}
    spark = build_spark(SparkConfig.load(confs["default"]), a.master)
    spark.sparkContext.setLogLevel("ERROR")
    par = spark.sparkContext.defaultParallelism
    runs: dict[str, list] = {v: [] for v in confs}
    try:
        for v, conf in confs.items():
            log(f"warm-up {v}")
            run_job(spark, data["dir"], f"variant-warmup-{v}", conf, None, par)
        for r in range(a.rounds):
            for v, conf in confs.items():
                load0 = os.getloadavg()
                one = run_job(spark, data["dir"], f"variant-{v}", conf, None, par)
                one.update(loadavg_before=load0, loadavg_after=os.getloadavg(), round=r + 1)
                runs[v].append(one)
                log(f"{v} round {r + 1}: {one['x_realtime']}x in {one['e2e_s']} s; load {load0[0]:.1f}")
    finally:
        spark.stop()
    best = {v: min(rs, key=lambda x: x["e2e_s"]) for v, rs in runs.items()}
    res = {"date": dt.date.today().isoformat(), "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
           "scale": a.scale, "parallelism": par, "master": a.master,
           "dataset": {k: v for k, v in data.items() if k != "files"},
           "method": __doc__.split("\n\n")[1].replace("\n", " "),
           "runs": runs,
           "best_x_realtime": {v: b["x_realtime"] for v, b in best.items()},
           "ratio_accurate_over_default": {
               "e2e_s": round(best["accurate"]["e2e_s"] / best["default"]["e2e_s"], 3),
               "x_realtime": round(best["accurate"]["x_realtime"] / best["default"]["x_realtime"], 3)}}
    if "accurate-float" in best:
        res["ratio_accurate_over_accurate_float"] = {
            "e2e_s": round(best["accurate"]["e2e_s"] / best["accurate-float"]["e2e_s"], 3),
            "x_realtime": round(best["accurate"]["x_realtime"] / best["accurate-float"]["x_realtime"], 3)}
    out = Path(a.out) if a.out else RESULTS / f"accurate-{res['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    log(f"wrote {out}: {res['best_x_realtime']} ratio {res['ratio_accurate_over_default']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
