"""The Autobahn TestSuite's cases (kosoku) against one WebSocket URL, and the
comparison of two such runs.

    python3 ws_suite.py run URL OUT.json [--full] [--parallel N]
    python3 ws_suite.py compare LABEL DIRECT.json THROUGH.json

`run` writes {case: {behavior, close, code}} for every case. `compare`
prints one `ok`/`not ok` line per case group and per failing case: a case
that passes directly (behavior and closing handshake OK, NON-STRICT or
INFORMATIONAL; a few fail-fast cases flip between OK and NON-STRICT from
run to run even directly) must pass through clawgate too, and the close
code the echo server sent must be the same. Cases that fail directly
(e.g. 7.1.5: websockets answers a close inside a fragmented message with
1002) are only required to fail the same way: same close code.
"""

import argparse
import asyncio
import json
import sys

from kosoku import FailureError, run_fuzzingclient

# Every case of the case files 1-7, 9 and 10; of 12 and 13 (compression)
# the message sizes up to 1 KiB (x.y.1-4: 1,000 messages of 16 B to 1 KiB)
# under every data set (12.1-12.5) and every permessage-deflate parameter
# set (13.1-13.7), plus 8 KiB in 256-byte fragments (x.1.11) once each:
# these cover the extension negotiation and compressed (RSV1) frames
# passing through. The larger sizes (up to 1,000 x 128 KiB per case) take
# 1-90 s each on 2 cores and mostly time the echo server's zlib; --full
# (CLAWGATE_CONFORMANCE_FULL=1) runs them. Explicit ids: kosoku's globs
# match by prefix ("12.*.1" also takes 12.2.10-18).
SUBSET = (
    ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
    + [f"12.{j}.{i}" for j in range(1, 6) for i in range(1, 5)]
    + [f"13.{j}.{i}" for j in range(1, 8) for i in range(1, 5)]
    + ["12.1.11", "13.1.11"]
)
FULL = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "12.*", "13.*"]
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def key(case_id: str) -> list[int]:
    return [int(p) for p in case_id.split(".")]


async def run(url: str, full: bool, parallel: int) -> dict:
    try:
        results = await run_fuzzingclient(url, FULL if full else SUBSET, None, concurrency=parallel)
    except FailureError as failure:
        results = failure.results
    return {
        r.case_id: {
            "behavior": r.behavior.value,
            "close": r.behavior_close.value,
            "code": r.remote_close_code,
            "result": r.result,
            "ms": r.duration,
        }
        for r in results
    }


def passed(r: dict) -> bool:
    return r["behavior"] in PASSING and r["close"] in PASSING


def compare(label: str, direct: dict, through: dict) -> int:
    failures = 0
    groups: dict[str, list[str]] = {}
    for case in sorted(direct, key=key):
        groups.setdefault(case.split(".")[0], []).append(case)
    for group, cases in groups.items():
        bad = []
        for case in cases:
            d, t = direct[case], through.get(case)
            if t is None:
                bad.append(f"{case}: not run through clawgate")
            elif passed(d) and not passed(t):
                bad.append(
                    f"{case}: passes directly ({d['behavior']}/{d['close']}), through clawgate"
                    f" {t['behavior']}/{t['close']} close {t['code']}: {t['result']}"
                )
            elif d["code"] != t["code"]:
                bad.append(f"{case}: close code {d['code']} directly, {t['code']} through clawgate")
        direct_ok = sum(passed(direct[c]) for c in cases)
        if bad:
            failures += 1
            print(f"not ok - websocket {label} Autobahn {group}.*: {len(bad)} of {len(cases)} cases differ")
            for line in bad[:20]:
                print(f"#   {line}")
        else:
            print(
                f"ok - websocket {label} Autobahn {group}.*: {len(cases)} cases as direct"
                f" ({direct_ok} pass directly, same close codes)"
            )
    extra = sorted(set(through) - set(direct), key=key)
    if extra:
        failures += 1
        print(f"not ok - websocket {label}: cases run only through clawgate: {extra[:10]}")
    return failures


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("url")
    r.add_argument("out")
    r.add_argument("--full", action="store_true")
    r.add_argument("--parallel", type=int, default=2)
    c = sub.add_parser("compare")
    c.add_argument("label")
    c.add_argument("direct")
    c.add_argument("through")
    a = p.parse_args()
    if a.cmd == "run":
        results = asyncio.run(run(a.url, a.full, a.parallel))
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)
        n = sum(passed(v) for v in results.values())
        print(f"# {a.url}: {len(results)} cases, {n} pass", file=sys.stderr)
        sys.exit(0 if results else 1)
    with open(a.direct) as f:
        direct = json.load(f)
    with open(a.through) as f:
        through = json.load(f)
    if not direct:
        print(f"not ok - websocket {a.label}: the direct run produced no results")
        sys.exit(1)
    sys.exit(1 if compare(a.label, direct, through) else 0)


if __name__ == "__main__":
    main()
