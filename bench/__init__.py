"""pixie's benchmarks (`make bench` = `python -m bench`): payload flatness, cost per run, cold
imports, bundle size, engine overhead and prompt growth. Figures go to bench/results.json.

Modules:
  workload.py  scripted runs on the embedded engine (timed, metered) and the plain handler loop
  metrics.py   what is read from a run: payload sizes, state transitions, DynamoDB request units, cost
  imports.py   cold imports of each handler and SDK in fresh interpreters
  asset.py     the Lambda code asset, bundled as the deploy does, and its unzipped size
"""
