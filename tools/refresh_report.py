"""Refresh a stored reproduction report (docs/reproduce) for what changed since its run,
from stored results, without rerunning the reproduction.

What it changes, and nothing else:

- the reproducibility summary that opens REPORT.md (grokescape.reproduce._summary, from
  the claims table as it stands after the changes below);
- arrhenius: the [2,10,10,2] additive-noise row, from the stored temperature_sweep.csv
  with the finite-T theory beside it (experiments.arrhenius.network_theory and
  network_claim; the fitted dE from the stored fits.csv), and the additive-noise table of
  its section; temperature_sweep.csv is rewritten with the theory columns;
- wide-escapes: its rows, section, figure and tables from the measurements of
  tools/validate_wide.py (docs/validation/wide_points.csv, wide_splitting.csv), with the
  shipped [wide-escapes] configuration for the figure;
- the known-problems list (regenerated from the claims).

Every other row and section is kept as the run wrote it. The header gets a line that says
so. Run it once per stored report (it refuses a report that already has a summary).

    python tools/refresh_report.py [--out docs/reproduce] [--validation docs/validation]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from grokescape.experiments import arrhenius, wide_escapes  # noqa: E402
from grokescape.experiments.common import Claim, markdown_table, widths_label  # noqa: E402
from grokescape.reproduce import KNOWN_PROBLEMS, _summary, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import validate_wide  # noqa: E402

ROW = re.compile(r"^\| (.*) \|$")


def parse_claims(lines: list[str]) -> tuple[int, int, list[Claim]]:
    """The claims table: its first and one-past-last line and its rows."""
    head = lines.index("| experiment | quantity | paper | ours | n | verdict | note |")
    end = head + 2
    claims = []
    while end < len(lines) and lines[end].startswith("| "):
        cells = ROW.match(lines[end]).group(1).split(" | ")
        if len(cells) != 7:
            raise ValueError(f"claims table: cannot split row {end + 1}: {lines[end]!r}")
        cells[5] = cells[5].strip("*")
        claims.append(Claim(*cells))
        end += 1
    return head, end, claims


def claim_rows(claims: list[Claim]) -> list[str]:
    return [
        f"| {c.experiment} | {c.quantity} | {c.paper} | {c.ours} | {c.n} | **{c.verdict}** | "
        f"{c.note} |"
        for c in claims
    ]


def sections(lines: list[str]) -> dict[str, tuple[int, int]]:
    """Line ranges of the '## ' sections."""
    starts = [i for i, s in enumerate(lines) if s.startswith("## ")]
    return {lines[i][3:]: (i, j) for i, j in zip(starts, [*starts[1:], len(lines)], strict=True)}


def refresh_arrhenius(out: Path) -> tuple[Claim, str]:
    """The network's row and the additive-noise table, from the stored tables."""
    d = out / "arrhenius"
    config = json.loads((d / "config.json").read_text())
    sweep = pd.read_csv(d / "temperature_sweep.csv")
    sweep = sweep.drop(
        columns=[
            c for c in ("T_over_Tc", "theory_tau", "theory_method", "tau_over_theory") if c in sweep
        ]
    )
    slopes = sweep.pop("local_slope")
    sweep, t_c = arrhenius.network_theory(sweep, config)
    sweep["local_slope"] = slopes
    sweep.to_csv(d / "temperature_sweep.csv", index=False)
    net = widths_label(config["widths"])
    fits = pd.read_csv(d / "fits.csv").set_index("sweep")
    nt = sweep[sweep.network == net].reset_index(drop=True)
    claim = arrhenius.network_claim(
        nt,
        t_c,
        float(fits.loc[f"additive noise, {net}", "dE"]),
        float(fits.loc[f"additive noise, {net}", "theory_dE"]),
        int(nt.escaped.sum()),
        net,
    )
    text = (
        "Additive-noise sweeps (exact moments; Kramers-Langer time of the width-1 chain "
        "beside both: it is the prediction for the chain and only a reference for the network; "
        "theory_tau: the finite-T theory of the network, no free parameter, by "
        "theory_method; T_over_Tc >= 1: no free-energy barrier):\n\n" + markdown_table(sweep)
    )
    return claim, text


def refresh_wide(out: Path, validation: Path) -> tuple[list[Claim], list[str]]:
    """The wide-escapes experiment from tools/validate_wide.py's measurements."""
    config = load_config(False)["wide-escapes"]
    config.update(seed=0, cite_validation=True, n_grid=3000)
    points = validate_wide.load(validation / "wide_points.csv", validation / "wide_splitting.csv")
    computed = wide_escapes.from_points(points, config)
    d = out / "wide-escapes"
    d.mkdir(exist_ok=True)
    figures = wide_escapes.plot(computed, config)
    files = []
    for name, fig in figures.items():
        fig.savefig(d / f"{name}.png", dpi=130)
        plt.close(fig)
        files.append(f"{name}.png")
    for name, df in computed.tables.items():
        df.to_csv(d / f"{name}.csv", index=False)
        files.append(f"{name}.csv")
    config["source"] = "tools/validate_wide.py measure, splitting (docs/validation.md 10)"
    (d / "config.json").write_text(json.dumps(config, indent=2, default=str))
    rep = wide_escapes.report(computed, config)
    body = [
        "## wide-escapes",
        "",
        *[f"![{name}](wide-escapes/{name}.png)" for name in figures],
        "",
        "Not from the run above: the measurements of `python tools/validate_wide.py measure` "
        "and `splitting` (docs/validation.md section 10), set beside the theory by "
        "`python tools/refresh_report.py`. " + rep.markdown,
        "",
        f"Files: {', '.join(files)}.",
        "",
    ]
    return rep.claims, body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "reproduce"))
    parser.add_argument("--validation", default=str(ROOT / "docs" / "validation"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    lines = (out / "REPORT.md").read_text().splitlines()
    if "## Reproducibility summary" in lines:
        raise SystemExit("REPORT.md already has a summary: refresh it from the run's copy")
    head, end, claims = parse_claims(lines)
    net_claim, sweep_text = refresh_arrhenius(out)
    wide_claims, wide_body = refresh_wide(out, Path(args.validation))
    new = []
    for c in claims:
        if c.experiment == "arrhenius" and c.quantity == net_claim.quantity:
            c = net_claim
        new.append(c)
    last = max(i for i, c in enumerate(new) if c.experiment == "arrhenius")
    new[last + 1 : last + 1] = wide_claims
    secs = sections(lines)
    a0, a1 = secs["arrhenius"]
    arr = lines[a0:a1]
    s0 = next(i for i, s in enumerate(arr) if s.startswith("Additive-noise sweeps"))
    s1 = next(i for i, s in enumerate(arr) if s == "Fits:")
    arr = [*arr[:s0], *sweep_text.splitlines(), "", *arr[s1:]]
    k0, k1 = secs["Known problems of the paper (physics.md section 7)"]
    known = ["## Known problems of the paper (physics.md section 7)", ""]
    for problem, keys in KNOWN_PROBLEMS.items():
        found = [c for c in new if any(k in c.quantity for k in keys)]
        txt = (
            "; ".join(f"{c.quantity}: {c.ours} ({c.verdict})" for c in found)
            if found
            else "not measured in this run"
        )
        known.append(f"- **{problem}.** {txt}")
    known.append("")
    top = sections(lines)["The paper's numbers beside ours"][0]
    header = lines[:top]
    while header and header[-1] == "":
        header.pop()
    header += [
        "- refreshed from stored results by `python tools/refresh_report.py`: this summary, "
        "arrhenius' [2,10,10,2] row and additive-noise table (the finite-T theory beside the "
        "stored measurements), and the wide-escapes rows and section (measurements of "
        "tools/validate_wide.py); every other row and section is the run's",
        "",
    ]
    body = (
        header
        + _summary(new)
        + lines[top:head]
        + lines[head : head + 2]
        + claim_rows(new)
        + lines[end:k0]
        + known
        + lines[k1:a0]
        + arr
        + wide_body
        + lines[a1:]
    )
    (out / "REPORT.md").write_text("\n".join(body).rstrip("\n") + "\n")
    print(f"wrote {out / 'REPORT.md'}: {len(new)} claims ({len(wide_claims)} wide-escapes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
