#!/bin/bash
# A/B of the analysis task assignment: balanced bins (HEAD) vs repartition by path hash (97fe336)
set -e
cd "$(dirname "$0")/.."
OLD=97fe336   # the last commit before jobs/balance.py
for r in 1 2; do
  .venv/bin/python -m bench.run --scales 4,16 --skip-baseline --no-readme --repeat 1 --out /tmp/ab-new-$r.json > /tmp/ab-new-$r.log 2>&1
  cp jobs/analyze_calls.py /tmp/analyze_calls.new.py
  git show $OLD:jobs/analyze_calls.py > jobs/analyze_calls.py
  .venv/bin/python -m bench.run --scales 4,16 --skip-baseline --no-readme --repeat 1 --out /tmp/ab-old-$r.json > /tmp/ab-old-$r.log 2>&1 || true
  cp /tmp/analyze_calls.new.py jobs/analyze_calls.py
done
git diff --stat jobs/analyze_calls.py
echo done
