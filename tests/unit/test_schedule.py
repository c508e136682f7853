"""The fixed plan of the suite's pytest-xdist workers (tests/schedule.py, tests/conftest.py): no worker started."""

from __future__ import annotations

from tests.conftest import GROUPS, WORKER, worker_of
from tests.schedule import plan

UNITS = ["tests/unit/test_a.py::test_one", "tests/unit/test_a.py::test_two[a]", "tests/unit/test_b.py::test_three"]
ENGINE = ["tests/integration/test_apt.py::test_x", "tests/integration/test_deps.py::test_y",
          "tests/integration/test_roundtrip.py::test_z[p]", "tests/integration/test_new.py::test_w"]


def test_files_that_share_an_export_share_a_worker_and_unit_tests_have_none() -> None:
    for files in GROUPS.values():
        assert len({worker_of(f"tests/integration/{name}::test_x") for name in files}) == 1, files
    assert worker_of("tests/integration/test_apt.py::test_x") != worker_of("tests/integration/test_deps.py::test_y")
    assert worker_of("tests/unit/test_a.py::test_one") is None
    assert worker_of("tests/integration/test_new.py::test_w") == worker_of("tests/integration/test_new.py::test_v")


def test_every_engine_test_file_has_its_worker_in_the_table() -> None:
    from pathlib import Path

    files = {p.name for p in (Path(__file__).parents[1] / "integration").glob("test_*.py")}
    grouped = {name for names in GROUPS.values() for name in names}
    assert files - grouped <= set(WORKER), files - grouped - set(WORKER)


def test_a_groups_tests_all_go_to_its_worker_and_the_rest_are_dealt_in_turn() -> None:
    table = {"test_apt.py": 1, "test_deps.py": 0, "test_roundtrip.py": 1, "test_new.py": 3}
    planned = plan([*UNITS, *ENGINE], 2, lambda nodeid: table.get(nodeid.split("::")[0].rsplit("/", 1)[-1]))
    assert planned[0][:2] == [0, 2] and planned[1][:1] == [1]  # unit tests dealt out, each worker's first
    assert {3, 5, 6} <= set(planned[1]) and 4 in planned[0]  # test_apt and test_roundtrip together; 3 % 2 == 1
    assert sorted(planned[0] + planned[1]) == list(range(len(UNITS) + len(ENGINE)))  # every test once
    assert all(p == sorted(p) for p in planned)  # collection order kept: unit tests first, registry last


def test_one_worker_runs_everything() -> None:
    assert plan([*UNITS, *ENGINE], 1, worker_of) == [list(range(7))]
