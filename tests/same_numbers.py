"""Every output table of the demo and of test scenarios, written through the command line.

``write_outputs(root)`` runs each command a user can run (run on every local engine,
with and without ``--by``; report exports; target, compare, sensitivity, health with
actuals; calibrate and backtest on the bundled Maven CRM and on a generated history)
and leaves their files under ``root/<case>/``. ``tests/golden/`` holds what the code
wrote before the package layout changed (``python tests/same_numbers.py``);
``tests/test_same_numbers.py`` writes them again and compares tables and metadata.

Only the command line is used, so this file does not change with the layout.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
PATHS = HERE / "golden_paths.json"  # the paths the golden files quote, as written

# Metadata keys that name the writer, not the numbers.
VOLATILE_KEYS = {"pipesim_version", "version", "ARROW:schema", "pandas", "created"}


def _cli(*args: str) -> None:
    from pipesim.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if result.exit_code != 0:
        raise RuntimeError(f"pipesim {' '.join(map(str, args))}: {result.output}")


def rich_scenario(folder: Path) -> Path:
    """A scenario using every parameter: overrides, lognormal and fixed dwell, aged deals."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    stages = pd.DataFrame(
        {
            "stage": ["Lead", "Meeting", "Proposal", "Contract", "Meeting", "Proposal"],
            "conversion": [0.4, 0.55, 0.6, 0.8, 0.35, np.nan],
            "dwell_days": [15.0, 20.0, 12.0, 5.0, np.nan, 30.0],
            "dwell_cv": [1.0, 0.6, 0.4, 0.0, np.nan, 1.4],
            "dwell_dist": ["gamma", "gamma", "lognormal", "gamma", None, "lognormal"],
            "value_cv": [0.0, 0.1, 0.2, 0.3, np.nan, 0.5],
            "conversion_n": [300.0, np.nan, 90.0, 50.0, 30.0, np.nan],
            "channel": [None, None, None, None, "partner", "partner"],
        }
    )
    n = 900
    deals = pd.DataFrame(
        {
            "deal_id": [f"R{i:05d}" for i in range(n)],
            "stage": rng.choice(["Lead", "Meeting", "Proposal", "Contract"], n),
            "amount": rng.lognormal(8.5, 0.7, n).round(0),
            "days_in_stage": rng.uniform(0, 60, n).round(1),
            "channel": rng.choice(["direct", "partner", "web"], n),
            "country": rng.choice(["DE", "FR", None], n),
        }
    )
    periods = [f"2027-{m:02d}" for m in range(1, 10)]
    arrivals = pd.DataFrame(
        [
            {
                "period": p,
                "leads": 20.0 + 3 * k,
                "amount": 6000.0,
                "amount_cv": 0.5,
                "leads_n": 12.0,
                "channel": ch,
            }
            for k, p in enumerate(periods)
            for ch in ("direct", "partner")
        ]
    )
    scenario = pd.DataFrame(
        {"as_of": [pd.Timestamp("2027-01-10")], "horizon_months": [9], "name": ["rich"]}
    )
    for name, frame in [
        ("stages", stages),
        ("deals", deals),
        ("arrivals", arrivals),
        ("scenario", scenario),
    ]:
        frame.to_parquet(folder / f"{name}.parquet")
    return folder


def actuals_file(path: Path) -> Path:
    rows = []
    for k, period in enumerate(["2027-01", "2027-02", "2027-03"]):
        for stage, entered in [("Prospect", 400), ("Qualified", 170), ("Visited", 90)]:
            rows.append(
                {
                    "period": period,
                    "stage": stage,
                    "entered": entered if k < 2 or stage != "Qualified" else 40,
                }
            )
    pd.DataFrame(rows).to_parquet(path)
    return path


def write_outputs(root: Path) -> None:
    """Run every command into ``root/<case>/``."""
    import pipesim
    import pipesim.datasets

    sys.path.insert(0, str(HERE))
    from crm_synth import pipeline_history

    root.mkdir(parents=True, exist_ok=True)
    demo = pipesim.demo_path()
    rich = rich_scenario(root / "_rich_scenario")
    t = "600"
    for engine in ("numba", "numpy", "fast"):
        _cli("run", demo, "--trials", t, "--seed", "3", "--engine", engine, "--quiet",
             "--out", root / f"run_demo_{engine}")  # fmt: skip
    _cli("run", demo, "--trials", t, "--seed", "5", "--by", "region,product_line", "--quiet",
         "--target", "3000000", "--out", root / "run_demo_by")  # fmt: skip
    for engine in ("numba", "fast"):
        _cli("run", rich, "--trials", t, "--seed", "11", "--by", "channel,country", "--quiet",
             "--engine", engine, "--out", root / f"run_rich_{engine}")  # fmt: skip
    _cli("report", root / "run_demo_by", "--out", root / "_report.html",
         "--csv", root / "report_csv")  # fmt: skip
    _cli("target", demo, "--revenue", "2500000", "--months", "6", "--trials", "400",
         "--seed", "2", "--by", "region", "--out", root / "target_demo")  # fmt: skip
    _cli("compare", demo, "--lever", "leads*1.1", "--lever", "conversion:Offer+0.05@region=North",
         "--lever", "dwell:Visited*0.8", "--trials", t, "--seed", "4",
         "--out", root / "compare_demo")  # fmt: skip
    _cli("sensitivity", rich, "--trials", "300", "--seed", "6",
         "--out", root / "sensitivity_rich")  # fmt: skip
    _cli("health", demo, "--revenue", "2000000", "--months", "6", "--trials", "300",
         "--seed", "8", "--actuals", actuals_file(root / "_actuals.parquet"),
         "--out", root / "health_demo")  # fmt: skip
    maven = Path(pipesim.datasets.__file__).parent / "maven_crm"
    _cli("calibrate", maven, "--format", "maven", "--as-of", "2017-06-30",
         "--segments", "product", "--out", root / "calibrate_maven")  # fmt: skip
    _cli("run", root / "calibrate_maven", "--trials", "300", "--seed", "1", "--quiet",
         "--out", root / "run_calibrate_maven")  # fmt: skip
    _cli("backtest", maven, "--format", "maven", "--cutoff", "2017-05-01",
         "--cutoff", "2017-08-01", "--horizon-months", "3", "--trials", "300",
         "--out", root / "backtest_maven")  # fmt: skip
    deals, events, _ = pipeline_history(seed=4, n=800, segments=["east", "west"])
    deals.to_csv(root / "_deals.csv", index=False)
    events.to_csv(root / "_events.csv", index=False)
    _cli("calibrate", root / "_deals.csv", "--events", root / "_events.csv",
         "--as-of", "2021-06-01", "--segments", "region", "--horizon-months", "6",
         "--out", root / "calibrate_synth")  # fmt: skip
    _cli("run", root / "calibrate_synth", "--trials", "300", "--seed", "2", "--quiet",
         "--by", "region", "--out", root / "run_calibrate_synth")  # fmt: skip
    _cli("init", root / "init_scenario")
    for scratch in root.glob("_*"):
        if scratch.is_dir():
            shutil.rmtree(scratch)
        else:
            scratch.unlink()


def paths_here(root: Path) -> dict[str, str]:
    """The paths that outputs written here quote: the output folder, the demo, the datasets."""
    import pipesim
    import pipesim.datasets

    return {
        "<out>": str(root),
        "<demo>": str(pipesim.demo_path()),
        "<datasets>": str(Path(pipesim.datasets.__file__).parent),
    }


def golden_paths() -> dict[str, str]:
    """The paths of the checkout that wrote ``tests/golden/`` (recorded beside it)."""
    import json

    return json.loads(PATHS.read_text())


def normalise(text: str, paths: dict[str, str], *, keep_version: bool = False) -> str:
    """The quoted paths as placeholders (``<out>``, ``<demo>``...); no version line."""
    for label, path in paths.items():
        text = text.replace(path, label)
    if keep_version:
        return text
    return "\n".join(line for line in text.split("\n") if "pipesim_version" not in line)


def comparable(path: Path, paths: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """A results file's table and its metadata less the keys that name the writer."""
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = {
        k.decode(): normalise(v.decode(), paths, keep_version=True)
        for k, v in (table.schema.metadata or {}).items()
        if k.decode() not in VOLATILE_KEYS
    }
    if "pipesim" in meta:
        inner = {k: v for k, v in json.loads(meta["pipesim"]).items() if k not in VOLATILE_KEYS}
        meta["pipesim"] = json.dumps(inner, sort_keys=True)
    return table.to_pandas(), meta


if __name__ == "__main__":
    import json

    if GOLDEN.exists():
        shutil.rmtree(GOLDEN)
    write_outputs(GOLDEN)
    PATHS.write_text(json.dumps(paths_here(GOLDEN), indent=1) + "\n")
    print(f"wrote {sum(1 for _ in GOLDEN.rglob('*') if _.is_file())} files under {GOLDEN}")
