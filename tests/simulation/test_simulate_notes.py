"""Notes a run gives about its inputs (printed by the CLI as `Note:` lines)."""

from __future__ import annotations

import pipesim
from pipesim.scenario.demo import demo_tables


def test_arrivals_ending_before_the_horizon_are_noted():
    t = demo_tables(n_deals=50)
    arrivals = t["arrivals"][t["arrivals"]["period"] < "2027-07"]
    sc = pipesim.make_scenario(
        t["stages"], t["deals"], arrivals, as_of="2027-01-01", horizon_months=12
    )
    notes = pipesim.simulate(sc, 10, seed=0).notes
    assert any(
        n.startswith("arrivals: no row for 2027-07 to 2027-12 (the horizon's last 6 month(s))")
        for n in notes
    )
    full = pipesim.make_scenario(
        t["stages"], t["deals"], t["arrivals"], as_of="2027-01-01", horizon_months=12
    )
    assert not any("no row for" in n for n in pipesim.simulate(full, 10, seed=0).notes)
