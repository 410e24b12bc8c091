"""Check every op's backward against central differences, op by op.

For each case of the library's table (tinyllm/ops/checks.py), the inputs
are seeded float64 tensors; the analytic gradient (backward) is compared
with (f(x + eps) - f(x - eps)) / 2 eps element by element. Prints, per
case, the worst element's analytic and numerical values and the largest
absolute error; the claim is that every case passes (|a - n| <= 1e-5 +
1e-3 |n|). `tinyllm gradcheck` runs the same table.

    python scripts/gradcheck.py --device cpu
    python scripts/gradcheck.py --device strict --op attention
"""
from __future__ import annotations

import time

from _common import Claims, UsageError, get_device, make_parser, run, script

from tinyllm.ops.checks import CASES, case_id, check_case


@script
def main(argv=None) -> int:
    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--op", default=None, help="only cases whose name contains this (e.g. matmul)")
    args = p.parse_args(argv)
    cases = [c for c in CASES if args.op is None or args.op in case_id(c)]
    if not cases:
        raise UsageError(f"no gradient-check case matches --op {args.op!r}; "
                         f"cases: {', '.join(sorted({c.op for c in CASES}))}")
    backend = get_device(args.device)
    t0 = time.perf_counter()
    print(f"{'case':<24}{'elements':>9}{'analytic':>15}{'numeric':>15}{'abs err':>11}  result")
    failed = []
    worst_err = 0.0
    for case in cases:
        res = check_case(backend, case)
        w = res.worst
        print(f"{case_id(case):<24}{res.checked:>9}{w.get('analytic', 0.0):>15.6e}{w.get('numeric', 0.0):>15.6e}"
              f"{res.max_abs_err:>11.2e}  {'ok' if res.ok else 'FAIL'}")
        worst_err = max(worst_err, res.max_abs_err)
        if not res.ok:
            failed.append(case_id(case))
    print(f"{len(cases)} cases on {backend.name} in {time.perf_counter() - t0:.1f}s; "
          f"largest absolute error {worst_err:.2e}")
    claims = Claims()
    claims.check(not failed, f"all {len(cases)} cases match central differences"
                 + (f" (failing: {', '.join(failed)})" if failed else ""))
    return claims.exit_code()


if __name__ == "__main__":
    run(main)
