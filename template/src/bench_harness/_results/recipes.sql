-- DuckDB recipes: the benchmark guide's analysis queries, for this benchmark's tables.
-- TEMPLATE-OWNED. Run one with `make sql Q=@by_config`, list them with `make recipes`, or type
-- `.recipe by_config` in `make duckdb`. The database is attached as `db`.
--
-- Placeholders, filled from benchmark.toml and the database:
--   {predictions} {metrics}  the two tables (db.<name>)
--   {config}                 every params_<field> column: one configuration per group
--   {version}                the experiment version (the latest, or VERSION=e0.0.3)
--   {segment}                a segmentation column: the recipe is repeated once per segmentation
--   {harness_rows}           the row was written by the harness (rows logged into the table by other
--                            tools, e.g. xetrack's own Tracker, have no config_id/cache_key: left out)
--   {harness_metrics}        the same for the metrics table (config_id and experiment_version set)
--
-- These compare the stored `prediction` with `ground_truth` in SQL, as the guide does; the report
-- (`make report`) applies scoring.parse_prediction instead and adds confidence intervals.

-- name: by_config
-- Accuracy, latency and volume per configuration (the guide's "aggregate by model").
SELECT {config},
       AVG(CASE WHEN CAST(prediction AS VARCHAR) = CAST(ground_truth AS VARCHAR) THEN 1.0 ELSE 0.0 END) AS accuracy,
       AVG(latency) AS avg_latency,
       COUNT(*) AS n_predictions
FROM {predictions}
WHERE error IS NULL AND experiment_version = '{version}' AND {harness_rows}
GROUP BY ALL
ORDER BY accuracy DESC;

-- name: errors_by_config
-- Failed executions per configuration and error type (the guide's "errors by model").
SELECT {config}, error_type, error, COUNT(*) AS count
FROM {predictions}
WHERE error IS NOT NULL AND experiment_version = '{version}' AND {harness_rows}
GROUP BY ALL
ORDER BY count DESC;

-- name: cache_hit_rate
-- Cache hits per configuration: a hit has cache = the track_id that computed the row.
SELECT {config},
       COUNT(CASE WHEN cache != '' THEN 1 END) AS cache_hits,
       COUNT(*) AS total,
       ROUND(100.0 * COUNT(CASE WHEN cache != '' THEN 1 END) / COUNT(*), 2) AS hit_rate
FROM {predictions}
WHERE experiment_version = '{version}' AND {harness_rows}
GROUP BY ALL;

-- name: by_segment
-- Accuracy and n per configuration and segment value (repeated for every segmentation).
SELECT {segment} AS segment, {config},
       COUNT(*) AS n,
       AVG(CASE WHEN CAST(prediction AS VARCHAR) = CAST(ground_truth AS VARCHAR) THEN 1.0 ELSE 0.0 END) AS accuracy
FROM {predictions}
WHERE error IS NULL AND experiment_version = '{version}' AND {harness_rows}
GROUP BY ALL
ORDER BY segment, accuracy DESC;

-- name: latency_percentiles
-- Latency percentiles of computed rows only: cache hits repeat an old measurement.
SELECT {config},
       COUNT(*) AS n_computed,
       quantile_cont(latency, 0.5) AS p50,
       quantile_cont(latency, 0.95) AS p95,
       quantile_cont(latency, 0.99) AS p99
FROM {predictions}
WHERE error IS NULL AND cache = '' AND experiment_version = '{version}' AND {harness_rows}
GROUP BY ALL;

-- name: runs
-- Every experiment version: rows, configurations, errors and cache hits.
SELECT experiment_version, phase, MIN(timestamp) AS started, COUNT(*) AS rows,
       COUNT(DISTINCT config_id) AS configurations,
       COUNT(error) AS errors,
       COUNT(CASE WHEN cache != '' THEN 1 END) AS cache_hits
FROM {predictions}
WHERE {harness_rows}
GROUP BY ALL
ORDER BY started;

-- name: metrics
-- The metrics table of the version (rescored rows carry a scorer_version).
SELECT * FROM {metrics} WHERE experiment_version = '{version}' AND {harness_metrics};
