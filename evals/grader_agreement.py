"""How often the math grader agrees with expected verdicts, beside math-verify alone on the same rows.

    python evals/grader_agreement.py ROWS.jsonl [--show 20]

Each row is {"gold": ..., "pred": ..., "expected": true|false} (a model output `pred` and its reference
`gold`, as peers' test suites write them). ttscale grades a row as a run does: the reference read by
`reference_answer`, the answer extracted from the output by the grader (Math-Verify's extraction in its
workers), then equivalence; an undecided verdict counts as a disagreement (and is counted apart).
math-verify alone: `verify(parse(gold), parse(pred))` under its defaults. No rows ship with ttscale:
peers' suites are theirs; point this at your own.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows")
    parser.add_argument("--show", type=int, default=20, help="disagreements to print")
    args = parser.parse_args()
    from math_verify import parse, verify

    from ttscale.graders.math import MathGrader, reference_answer

    rows = []
    for number, line in enumerate(open(args.rows), 1):
        if line.strip():
            row = json.loads(line)
            if not {"gold", "pred", "expected"} <= set(row):
                sys.exit(f"grader_agreement: {args.rows}:{number}: a row needs gold, pred and expected")
            rows.append(row)
    ours = mine = undecided = 0
    shown = []
    with MathGrader(workers=2, timeout=10) as grader:
        answers = grader.extract_many([r["pred"] for r in rows], [True] * len(rows))
        verdicts = grader.grade_batch([(reference_answer(r["gold"]), a) for r, a in zip(rows, answers)])
        for row, answer, verdict in zip(rows, answers, verdicts):
            expected = bool(row["expected"])
            undecided += verdict is None
            ours += verdict is expected
            try:
                theirs = bool(verify(parse(row["gold"]), parse(row["pred"])))
            except BaseException:  # noqa: BLE001  (math-verify's TimeoutException is a BaseException)
                theirs = None
            mine += theirs is expected
            if verdict is not expected and len(shown) < args.show:
                shown.append(f"  {row['gold']!r:.50} | {row['pred']!r:.60} -> {answer!r:.40}: {verdict} (expected {expected})")
        stats = grader.stats()
    n = len(rows)
    print(f"{n} rows from {args.rows}")
    print(f"ttscale agrees with the expected verdict: {ours}/{n} ({100 * ours / max(n, 1):.1f}%), undecided {undecided}")
    print(f"math-verify alone (defaults):             {mine}/{n} ({100 * mine / max(n, 1):.1f}%)")
    print(f"grader stats: {stats}")
    if shown:
        print("disagreements:")
        print("\n".join(shown))


if __name__ == "__main__":
    main()
