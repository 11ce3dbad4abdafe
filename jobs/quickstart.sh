#!/usr/bin/env bash
# Quick start: set up a virtualenv, build call-like demo recordings, run the Spark job on
# them (embedded Spark, local[*]) and score the timelines against the known emotions.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing Java 17 for Spark ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "Spark needs Java 17: sudo apt-get install openjdk-17-jre-headless" >&2; exit 1
  fi
fi

if [ ! -x .venv/bin/ser ]; then
  echo "Creating .venv and installing the project (a few minutes the first time) ..."
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[all,train,test]'  # everything: executors, driver, report, web, training, tests
fi

DEMO=out/demo
if [ ! -f "$DEMO/calls/truth.csv" ]; then
  echo "Building demo calls in $DEMO/calls (from ../shared/corpora test speakers if present, else synthetic) ..."
  .venv/bin/ser make-calls "$DEMO/calls" --calls 2 --minutes 3
fi

echo "Running the job: ser analyze $DEMO/calls $DEMO/results"
status=0
.venv/bin/ser analyze "$DEMO/calls" "$DEMO/results" || status=$?

echo
if grep -q ',synthetic[[:space:]]*$' "$DEMO/calls/truth.csv"; then
  echo "The demo calls are synthetic (no ../shared/corpora): they show the pipeline, not accuracy."
else
  echo "Timelines vs the emotions placed in the calls. The shipped model was trained on every RAVDESS"
  echo "actor, these speakers included, so this shows the pipeline, not accuracy on new speakers:"
  echo "that is the cross-validation in models/ser-cnn/README.md."
  .venv/bin/ser score-calls "$DEMO/results" "$DEMO/calls/truth.csv"
fi
echo
echo "Results: $DEMO/results/segments (one row per window and channel)"
echo "         $DEMO/results/calls    (one row per recording, with its timeline)"
echo "Per call:            .venv/bin/ser report $DEMO/results"
echo "Browse them:         .venv/bin/ser serve $DEMO/results   (then open http://127.0.0.1:8050/)"
echo "One call's timeline: .venv/bin/ser predict $DEMO/calls/stereo8k/call_000.wav"
exit $status
