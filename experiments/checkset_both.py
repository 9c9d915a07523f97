"""Check-set agreement both ways in one process: the LLM alone (the default) and with the hand-coded
depth prior 3.0, sharing one embedded backend and score cache, so the LLM's part is identical and
computed once. Each row equals ``maestromotif annotate-eval --backend embedded --depth-prior 0|3``.

    python experiments/checkset_both.py experiments/results/small-llm-only/checkset_agreement.json
"""
import json, sys, time
from maestromotif.annotation.checkset import evaluate, load_checkset
from maestromotif.annotation.strategies import Annotator, ScoreCache
from maestromotif.cli.annotate import make_cli_backend

out = sys.argv[1]
backend = make_cli_backend("embedded", None)
cache = ScoreCache()
cases = load_checkset()
results = {}
for name, prior in (("llm_only", 0.0), ("with_depth_prior_3", 3.0)):
    annotator = Annotator(backend, "score", depth_prior=prior, cache=cache)
    t = time.time()
    report = evaluate(annotator, cases).as_dict()
    results[name] = report
    print(name, report["overall"], {h: report["per_half"][h]["agreement"] for h in report["per_half"]},
          {k: v["agreement"] for k, v in report["per_skill"].items()}, f"{time.time()-t:.0f}s", flush=True)
json.dump(results, open(out, "w"), indent=2)
