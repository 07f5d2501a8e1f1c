"""The guide's analysis recipes over the two tables, as a marimo notebook. YOURS: edit freely.

    make notebook                                     # open it in the browser (marimo edit)
    uv run --extra notebook python notebooks/analysis.py   # run every cell headless, print the tables

It reads the results read-only through `bench_harness` (DuckDB, the database attached as `db`).
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import bench_harness as bench

    config = bench.load_config()
    preds, metrics = f"db.{config.predictions_table}", f"db.{config.metrics_table}"
    versions = bench.experiment_versions()
    latest = versions[-1] if versions else None
    print(f"experiments: {', '.join(versions) or 'none yet: run `make experiment`'}")
    return bench, config, latest, metrics, preds


@app.cell
def _(bench, latest):
    # One row per configuration: the metrics table of the latest experiment.
    summary = bench.load_metrics(latest)
    print(summary.filter(regex="^(params_|n$|n_failed|error_rate|accuracy|mae|mrr|latency_p50)").to_string())
    return (summary,)


@app.cell
def _(bench, latest, preds):
    # Errors by type and configuration: errors are data, never a crash.
    errors = bench.sql(
        f"SELECT config_id, error_type, COUNT(*) AS n FROM {preds} "
        f"WHERE experiment_version = '{latest}' AND error IS NOT NULL GROUP BY ALL ORDER BY n DESC"
    )
    print(errors.to_string() if len(errors) else "no error rows")
    return (errors,)


@app.cell
def _(bench, latest, preds):
    # Cache hits: how much of the latest experiment was reused rather than computed.
    cache = bench.sql(
        f"SELECT COUNT(*) FILTER (WHERE cache <> '') AS cache_hits, COUNT(*) AS rows "
        f"FROM {preds} WHERE experiment_version = '{latest}'"
    )
    print(cache.to_string())
    return (cache,)


@app.cell
def _(bench, latest, preds):
    # Latency percentiles of computed rows (cache hits repeat the latency they reuse).
    latency = bench.sql(
        f"SELECT config_id, COUNT(*) AS n, quantile_cont(latency, 0.5) AS p50, quantile_cont(latency, 0.95) AS p95 "
        f"FROM {preds} WHERE experiment_version = '{latest}' AND error IS NULL AND cache = '' GROUP BY ALL"
    )
    print(latency.to_string())
    return (latency,)


@app.cell
def _(bench, config, latest, preds):
    # Each segmentation you planned: rows and error rate per segment value.
    columns = set(bench.sql(f"SELECT * FROM {preds} LIMIT 0").columns)
    for name in config.segmentations:
        column = f"params_{name}" if f"params_{name}" in columns else name
        if column not in columns:
            continue
        by_segment = bench.sql(
            f'SELECT "{column}" AS segment, COUNT(*) AS n, AVG((error IS NOT NULL)::INT) AS error_rate '
            f"FROM {preds} WHERE experiment_version = '{latest}' GROUP BY ALL ORDER BY 1"
        )
        print(f"by {name}:\n{by_segment.to_string()}")
    return


if __name__ == "__main__":
    app.run()
