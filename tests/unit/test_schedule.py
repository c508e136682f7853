"""The fixed plan of the suite's pytest-xdist workers (tests/schedule.py): pure logic, no worker started."""

from __future__ import annotations

from tests.schedule import group_of, plan

UNITS = ["tests/unit/test_a.py::test_one", "tests/unit/test_a.py::test_two[a@b]", "tests/unit/test_b.py::test_three"]
ENGINE = ["tests/integration/test_apt.py::test_x@demo", "tests/integration/test_deps.py::test_y@shop",
          "tests/integration/test_roundtrip.py::test_z@demo", "tests/integration/test_new.py::test_w@test_new.py"]


def test_a_group_is_read_from_the_node_id_but_not_from_a_parameter() -> None:
    assert group_of("tests/integration/test_apt.py::test_x@demo") == "demo"
    assert group_of("tests/unit/test_a.py::test_two[a@b]") is None
    assert group_of("tests/unit/test_a.py::test_one") is None


def test_a_groups_tests_all_go_to_its_worker_and_the_rest_are_dealt_in_turn() -> None:
    planned = plan([*UNITS, *ENGINE], 2, {"demo": 1, "shop": 0}.get)
    assert planned[0][:2] == [0, 2] and planned[1][:1] == [1]  # unit tests dealt out, each worker's first
    assert {3, 5} <= set(planned[1]) and 4 in planned[0]  # demo's two files together, shop on its own
    assert sorted(planned[0] + planned[1]) == list(range(len(UNITS) + len(ENGINE)))  # every test once
    assert all(p == sorted(p) for p in planned)  # collection order kept: unit tests first, registry last


def test_a_group_the_table_does_not_name_gets_the_same_worker_every_run() -> None:
    first = plan(ENGINE, 2, {}.get)
    assert first == plan(ENGINE, 2, {}.get)
    assert [6 in p for p in plan([*UNITS, *ENGINE], 2, {}.get)] == [3 in p for p in first]


def test_one_worker_runs_everything() -> None:
    assert plan([*UNITS, *ENGINE], 1, {"demo": 1}.get) == [list(range(7))]
