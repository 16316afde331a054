"""validate-data: passes on the real tables, refuses corrupted copies naming file, column and row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pitwall_trainer.cli import main
from pitwall_trainer.data.loader import load_tables, read_raw_tables
from pitwall_trainer.data.schema import TABLES
from pitwall_trainer.data.validate import CAP, validate_tables
from pitwall_trainer.errors import DataError


def problems_of(folder: Path) -> list[str]:
    return validate_tables(folder, read_raw_tables(folder))


@pytest.fixture(scope="session")
def season_2024(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real tables cut to the 2024 races (lines kept byte for byte): small, fast, valid."""
    out = tmp_path_factory.mktemp("f1-2024")
    races = (data_dir / "races.csv").read_text().splitlines()
    keep = {line.split(",")[0] for line in races[1:] if line.split(",")[1] == "2024"}
    for table in TABLES.values():
        lines = (data_dir / table.file).read_text().splitlines()
        if "raceId" in table.column_names:
            at = table.column_names.index("raceId")
            lines = lines[:1] + [line for line in lines[1:] if line.split(",")[at] in keep]
        (out / table.file).write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture
def copy(season_2024: Path, tmp_path: Path) -> Path:
    """A private copy to corrupt."""
    return Path(shutil.copytree(season_2024, tmp_path / "data"))


def edit_lines(path: Path, change) -> None:
    lines = path.read_text().splitlines()
    change(lines)
    path.write_text("\n".join(lines) + "\n")


def set_cell(path: Path, line_no: int, column: str, value: str) -> None:
    def change(lines: list[str]) -> None:
        at = lines[0].split(",").index(column)
        cells = lines[line_no - 1].split(",")
        cells[at] = value
        lines[line_no - 1] = ",".join(cells)

    edit_lines(path, change)


def one(problems: list[str], *parts: str) -> str:
    """The problem that mentions every part; fails listing all problems otherwise."""
    found = [p for p in problems if all(part in p for part in parts)]
    assert found, f"no problem with {parts} in {problems}"
    return found[0]


def test_real_tables_are_valid(data_dir: Path) -> None:
    assert problems_of(data_dir) == []


def test_cut_copy_is_valid(season_2024: Path) -> None:
    assert problems_of(season_2024) == []


def test_cli_passes_on_real_tables(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate-data", "--data-dir", str(data_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["valid"] is True and result["rows"]["results"] == 26759


def test_missing_column(copy: Path) -> None:
    def drop_grid(lines: list[str]) -> None:
        at = lines[0].split(",").index("grid")
        lines[:] = [",".join(c for i, c in enumerate(line.split(",")) if i != at) for line in lines]

    edit_lines(copy / "results.csv", drop_grid)
    one(problems_of(copy), "results.csv", "column grid", "row 1", "missing from the header")


def test_duplicate_key(copy: Path) -> None:
    lines = (copy / "drivers.csv").read_text().splitlines()
    edit_lines(copy / "drivers.csv", lambda ls: ls.append(ls[1]))
    one(
        problems_of(copy),
        "drivers.csv",
        "column driverId",
        f"row {len(lines) + 1}",
        "duplicate key driverId=1",
        "first at row 2",
    )


@pytest.mark.parametrize(
    ("file", "line_no", "column", "value", "says"),
    [
        ("results.csv", 6, "grid", "P3", "'P3' is not an integer"),
        ("results.csv", 6, "points", "ten", "'ten' is not a number"),
        ("races.csv", 3, "date", '"2024-02-30"', "not a date"),
        ("races.csv", 3, "time", '"1pm"', "not a time"),
        ("results.csv", 2, "driverId", "99999", "99999 is not a driverId in drivers.csv"),
        ("results.csv", 3, "positionOrder", "1", "2 winners"),
        ("results.csv", 4, "statusId", r"\N", "missing value"),
    ],
)
def test_bad_cell(copy: Path, file: str, line_no: int, column: str, value: str, says: str) -> None:
    set_cell(copy / file, line_no, column, value)
    one(problems_of(copy), file, f"column {column}", f"row {line_no}", says)


def test_truncated_file(copy: Path) -> None:
    path = copy / "results.csv"
    text = path.read_text()
    cut = text[: len(text) - 40]  # in the middle of the last line
    path.write_text(cut)
    last_line = cut.count("\n") + 1
    problems = problems_of(copy)
    one(problems, "results.csv", f"row {last_line}", "does not end with a newline")
    one(problems, "results.csv", "column statusId", f"row {last_line}", "missing value")


def test_empty_file(copy: Path) -> None:
    (copy / "races.csv").write_text("")
    one(problems_of(copy), "races.csv", "row 1", "the file is empty")


def test_missing_file(copy: Path) -> None:
    (copy / "results.csv").unlink()
    one(problems_of(copy), "results.csv", "required file is missing")


def test_missing_optional_file_is_fine(copy: Path) -> None:
    (copy / "pit_stops.csv").unlink()
    assert problems_of(copy) == []


def test_race_outside_its_season(copy: Path) -> None:
    set_cell(copy / "races.csv", 2, "date", '"2019-03-02"')
    problems = problems_of(copy)
    one(problems, "races.csv", "column date", "row 2", "not in season 2024")
    one(problems, "races.csv", "column fp1_date", "row 2", "days before the race")


def test_many_bad_rows_are_capped(copy: Path) -> None:
    def all_text(lines: list[str]) -> None:
        at = lines[0].split(",").index("laps")
        for n in range(1, len(lines)):
            cells = lines[n].split(",")
            cells[at] = "x"
            lines[n] = ",".join(cells)

    edit_lines(copy / "results.csv", all_text)
    laps = [p for p in problems_of(copy) if "column laps" in p]
    assert len(laps) == CAP + 1
    assert laps[-1].startswith("results.csv, column laps: ... and ") and laps[-1].endswith("more like this")


def test_all_problems_reported_at_once(copy: Path) -> None:
    set_cell(copy / "results.csv", 6, "grid", "P3")
    (copy / "qualifying.csv").write_text("")
    set_cell(copy / "drivers.csv", 4, "dob", '"1750-01-01"')
    problems = problems_of(copy)
    one(problems, "results.csv", "column grid")
    one(problems, "qualifying.csv", "empty")
    one(problems, "drivers.csv", "column dob", "row 4", "implausible")


def test_cli_exit_2_names_file_column_row(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_cell(copy / "results.csv", 6, "grid", "P3")
    assert main(["validate-data", "--data-dir", str(copy), "--json"]) == 2
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["valid"] is False
    one(result["problems"], "results.csv", "column grid", "row 6")
    assert "results.csv, column grid, row 6" in err


def test_loader_refuses_bad_data(copy: Path) -> None:
    (copy / "status.csv").unlink()
    with pytest.raises(DataError) as caught:
        load_tables(copy)
    assert "status.csv" in str(caught.value) and caught.value.exit_code == 2


def test_truncated_inside_a_quoted_field(copy: Path) -> None:
    path = copy / "races.csv"
    text = path.read_text()
    cut = text[: text.index("https://en.wikipedia.org/wiki/2024_Chinese")]  # the file ends inside quotes
    path.write_text(cut)
    one(problems_of(copy), "races.csv", f"row {cut.count(chr(10)) + 1}", "cannot be read as CSV")


def test_header_only_required_table(copy: Path) -> None:
    path = copy / "results.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    one(problems_of(copy), "results.csv", "row 2", "header but no rows")


def test_blank_line_keeps_line_numbers(copy: Path) -> None:
    edit_lines(copy / "results.csv", lambda ls: ls.insert(10, ""))
    problems = problems_of(copy)
    one(problems, "results.csv", "column resultId", "row 11", "missing value")
    set_cell(copy / "results.csv", 20, "grid", "P3")
    one(problems_of(copy), "results.csv", "column grid", "row 20", "'P3'")


def test_every_ragged_line_is_named_not_only_the_first(data_dir: Path, tmp_path: Path) -> None:
    """A file pandas cannot parse: each line whose fields do not add up is reported."""
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    lines = (copy / "results.csv").read_text().splitlines(keepends=True)
    for number in (100, 200, 300):  # 1-based line numbers
        lines[number - 1] = lines[number - 1].rstrip("\n") + ",extra\n"
    (copy / "results.csv").write_text("".join(lines))
    problems = validate_tables(copy, read_raw_tables(copy))
    for number in (100, 200, 300):
        assert any(p.startswith(f"results.csv, column -, row {number}:") for p in problems), problems
