"""``make natlab`` / ``python -m lab.natlab``: run the NAT lab and print what it found.

It runs the UDP self-check (how each NAT kind maps and filters, and the UDP hole-punch matrix
between every pair of kinds, each compared with what the kind should do), then the iroh
connection matrix: for each pairing (aioiroh and Rust, both roles), every (server NAT, client
NAT) cell, direct or relayed and the time to a direct path; then (``portmap``) the hard cells
with miniupnpd granting port mappings on the strict routers (lab/portmap_matrix.py).
Exit status is 0 when every observation matches its expectation, 1 otherwise, 2 when the
machine cannot run the lab (not root, tools missing).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from lab.harness import NAT_KINDS, Lab, gather_all, gather_limited, missing_prerequisites
from lab.harness.topology import Device
from lab.harness.udpcheck import Rendezvous, natcheck, punch_expected, punch_pair


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), line, *(fmt.format(*r) for r in rows)]
    return "\n".join(x.rstrip() for x in lines)


def _yes(b: bool) -> str:
    return "yes" if b else "no"


def _device(lab: Lab, kind: str) -> Device:
    return lab.device(router=None if kind == "none" else lab.router(nat=kind))


async def run_udp(out: list[str]) -> bool:
    """The UDP self-check; appends report text to ``out`` and returns overall success."""
    ok = True
    t0 = time.monotonic()
    async with Lab() as lab:
        server = lab.host("relay", n_addrs=2)
        side_a = {k: _device(lab, k) for k in NAT_KINDS}
        side_b = {k: _device(lab, k) for k in NAT_KINDS}
        built = time.monotonic() - t0
        checks = await gather_all(
            *(natcheck(side_a[k], server, port=40000 + 10 * i) for i, k in enumerate(NAT_KINDS))
        )
        rows = []
        for kind, c in zip(NAT_KINDS, checks):
            match = c.verdict == kind
            ok &= match
            ports = "/".join(str(p) for _, p in c.mapped)
            rows.append(
                [
                    kind,
                    ports,
                    "EIM" if c.endpoint_independent_mapping else "EDM",
                    _yes(c.same_ip_other_port),
                    _yes(c.other_ip),
                    _yes(c.unsolicited),
                    # Only meaningful for EIM: an EDM NAT maps per destination anyway.
                    _yes(c.inbound_first_consistent) if c.endpoint_independent_mapping else "n/a",
                    c.verdict + ("" if match else "  << MISMATCH"),
                ]
            )
        out.append(f"lab built in {built:.2f} s ({len(lab.namespaces)} namespaces)\n")
        out.append("NAT behaviour (natcheck)")
        head = ["kind", "mapped ports X1/Y1/X2", "mapping", "same-ip", "other-ip"]
        head += ["unsolicited", "inbound-first ok", "verdict"]
        out.append(_table(head, rows))

        pairs = [(a, b) for a in NAT_KINDS for b in NAT_KINDS]
        async with Rendezvous(server) as rdv:
            results = await gather_all(
                *(punch_pair(side_a[a], side_b[b], rdv, f"{a}-{b}") for a, b in pairs)
            )
        cells = dict(zip(pairs, results))
        rows = []
        for a in NAT_KINDS:
            row = [a]
            for b in NAT_KINDS:
                r = cells[(a, b)]
                want = punch_expected(a, b)
                ok &= r.ok == want
                if r.ok:
                    slowest = max(r.a.elapsed or 0.0, r.b.elapsed or 0.0)
                    text = f"OK {slowest * 1000:.0f}ms"
                else:
                    text = "FAIL"
                row.append(text + ("" if r.ok == want else " <<"))
            rows.append(row)
        out.append("\nUDP hole punch (row = A, column = B; '<<' marks an unexpected result)")
        out.append(_table(["A \\ B", *NAT_KINDS], rows))
    out.append(f"\ntotal {time.monotonic() - t0:.1f} s; namespaces removed")
    return ok


IROH_PAIRINGS = [
    ("aioiroh <-> aioiroh", "ours", "ours"),
    ("aioiroh server <- Rust client", "ours", "rust"),
    ("Rust server <- aioiroh client", "rust", "ours"),
    ("Rust <-> Rust (reference)", "rust", "rust"),
]


HARD_WAIT = 8.0  # the birthday attempt starts 2 s after the handshake and lasts 5 s at most


async def run_iroh(out: list[str], wait_direct: float = 2.0, concurrency: int = 4) -> bool:
    """The iroh connection matrix per pairing; every cell must at least connect (relayed).

    Cells where Rust stays relayed also run between aioiroh peers with the birthday hard-NAT
    attempt on; those with one port-keeping side are expected to go direct.
    """
    from lab.matrix import RUST_DIRECT_CELLS, run_cell

    t0 = time.monotonic()

    async def one(key: tuple[str, str, str, str]):  # type: ignore[no-untyped-def]
        if key[2] == "hard":
            return key, await run_cell(
                key[0], key[1], "ours", "ours", wait_direct=HARD_WAIT, hard_nat=True
            )
        return key, await run_cell(*key, wait_direct=wait_direct)

    hard = [(s, c) for s in NAT_KINDS for c in NAT_KINDS if (s, c) not in RUST_DIRECT_CELLS]
    keys = [(s, c, "hard", "hard") for s, c in hard]
    keys += [(s, c, ps, pc) for _, ps, pc in IROH_PAIRINGS for s in NAT_KINDS for c in NAT_KINDS]
    results = dict(await gather_limited(one, keys, concurrency))
    ok = True
    for title, ps, pc in IROH_PAIRINGS:
        rows = []
        for s in NAT_KINDS:
            row = [s]
            for c in NAT_KINDS:
                r = results[(s, c, ps, pc)]
                ok &= r.established
                mark = "" if r.direct or (s, c) not in RUST_DIRECT_CELLS else " *"
                row.append(r.label() + mark)
            rows.append(row)
        out.append(f"\n{title} (row = server NAT, column = client NAT)")
        out.append(_table(["server \\ client", *NAT_KINDS], rows))
    out.append(
        "\n'*': Rust iroh goes direct in this cell (patchbay) but this run stayed relayed."
        " Rust peers are given their public address with add_external_addr where their NAT"
        " keeps ports (they cannot use the lab relay's QAD: they check web PKI)."
    )
    rows = []
    for s, c in hard:
        r = results[(s, c, "hard", "hard")]
        ok &= r.established
        want = (s, c) != ("strict", "strict")
        counters = r.hard_nat or {}
        rows.append(
            [
                f"{s} x {c}",
                r.label() + ("" if r.direct == want else " <<"),
                str(counters.get("sent", "-")),
                str(counters.get("matched", "-")),
            ]
        )
        ok &= r.direct == want
    out.append(
        "\nHard cells, aioiroh <-> aioiroh with the birthday hard-NAT attempt"
        " (Endpoint.bind(hard_nat=True); Rust stays relayed in all three)"
    )
    out.append(_table(["server x client", "result", "probes sent", "matched"], rows))
    out.append(
        "strict x strict needs two random per-destination mappings to coincide: not attempted"
        " beyond the bounded burst, it stays on the relay."
    )
    out.append(f"iroh matrix: {time.monotonic() - t0:.1f} s; namespaces removed")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m lab.natlab``."""
    parser = argparse.ArgumentParser(prog="python -m lab.natlab", description=__doc__)
    parser.add_argument(
        "matrix", nargs="?", default="all", choices=["all", "udp", "iroh", "portmap"]
    )
    args = parser.parse_args(argv)
    problems = missing_prerequisites()
    if problems:
        print("cannot run the NAT lab: " + "; ".join(problems), file=sys.stderr)
        return 2
    out: list[str] = []
    ok = True
    if args.matrix in ("all", "udp"):
        ok &= asyncio.run(run_udp(out))
    if args.matrix in ("all", "iroh"):
        ok &= asyncio.run(run_iroh(out))
    if args.matrix in ("all", "portmap"):
        from lab.portmap_matrix import report as portmap_report

        ok &= asyncio.run(portmap_report(out))
    print("\n".join(out))
    print("all results as expected" if ok else "UNEXPECTED RESULTS (marked above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
