"""The paper's protocol and cross-dataset checks for the shipped checkpoints:
`python model/protocol.py [--models aulunet_v3_ph2,...] [--save]`.

Each shipped checkpoint is scored on its own dataset's val and test splits (test once, never used to
choose anything) and on the other dermoscopy sets it never saw: the ISIC models on all 150 PH2 cases,
the PH2 model on each ISIC test split. ISIC 2017 and 2018 share 1,800 cases, so neither ISIC model is
scored on the other's data (model/evaluation/provenance.py refuses it). Pooled metrics at 256x256, threshold 0.5,
plus ISIC's per-image Jaccard figures.

Writes JSON + Markdown to outputs/protocol/ by default; `--save` updates the committed
model/weights/protocol_results.json (the rows of the models evaluated, the others kept).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clitools import ArgumentParser, HelpFormatter, add_verbose, quiet, user_errors
from core.errors import UserError
from core.paths import REPO, SHARED_DATA as DATA, WEIGHTS_DIR as WEIGHTS
from model.evaluation.protocol import COMMITTED, EVALUATIONS, evaluate_row, markdown


@user_errors
def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--models", default=",".join(m for m in EVALUATIONS if (WEIGHTS / f"{m}.pt").is_file()),
                   help=f"comma-separated shipped checkpoints, from {', '.join(EVALUATIONS)} (default: those present)")
    p.add_argument("--data-root", default=str(DATA), help="folder holding isic2018/, isic2017/ and ph2/")
    p.add_argument("--out", default=str(REPO / "outputs" / "protocol"), help="folder for results.json and results.md")
    p.add_argument("--save", action="store_true", help=f"also update the committed {COMMITTED.relative_to(REPO)}")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (0 = its default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_verbose(p)
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in EVALUATIONS]
    if bad or not models:
        raise UserError(f"--models: unknown checkpoint '{bad[0] if bad else ''}'; choose from {', '.join(EVALUATIONS)}")
    missing = [m for m in models if not (WEIGHTS / f"{m}.pt").is_file()]
    if missing:
        raise UserError(f"--models: {WEIGHTS / (missing[0] + '.pt')} not found; train it first (model/weights/in_progress/README.md)")
    from tqdm import tqdm

    from core.safeio import atomic_write_text

    jobs = [(m, *e) for m in models for e in EVALUATIONS[m]]
    rows, failed = [], []
    for job in tqdm(jobs, desc="protocol", disable=args.no_progress):
        try:
            with quiet(args.verbose):
                rows.append(evaluate_row(*job, Path(args.data_root), args.threads, progress=False))
        except UserError as e:  # one row's data or model is unusable: the others still run, and what finished is kept
            failed.append({"model": job[0], "dataset": job[1], "split": job[2], "error": str(e)})
    out = Path(args.out)
    atomic_write_text(out / "results.json", json.dumps({"rows": rows, **({"failed": failed} if failed else {})}, indent=1) + "\n")
    atomic_write_text(out / "results.md", markdown(rows))
    if failed:
        first = failed[0]
        raise UserError(f"{len(failed)} of {len(jobs)} rows failed, first {first['model']} on {first['dataset']} "
                        f"{first['split']}: {first['error']}; the {len(rows)} finished are in {out / 'results.json'} "
                        f"(with the failures), {'the committed results were not updated; ' if args.save else ''}"
                        f"fix it and run again")
    if args.save:
        kept = json.loads(COMMITTED.read_text())["rows"] if COMMITTED.is_file() else []
        merged = [r for r in kept if r["model"] not in models] + rows
        order = list(EVALUATIONS)
        merged.sort(key=lambda r: (order.index(r["model"]), [e[:2] for e in EVALUATIONS[r["model"]]].index((r["dataset"], r["split"]))))
        atomic_write_text(COMMITTED, json.dumps({"rows": merged}, indent=1) + "\n")
    print(markdown(rows), end="")
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}" + (f" and {COMMITTED}" if args.save else ""))
    return {"rows": rows}


if __name__ == "__main__":
    main()
