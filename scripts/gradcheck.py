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

from tinyllm.ops.checks import CASES, case_id, report


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
    failed, (worst_err, _) = report(backend, cases)
    print(f"{len(cases)} cases on {backend.name} in {time.perf_counter() - t0:.1f}s; "
          f"largest absolute error {worst_err:.2e}")
    claims = Claims()
    claims.check(not failed, f"all {len(cases)} cases match central differences"
                 + (f" (failing: {', '.join(failed)})" if failed else ""))
    return claims.exit_code()


if __name__ == "__main__":
    run(main)
