"""Units and disbursements: create, update, bulk import (CSV, XLSX), and every bad input."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from aiohttp import FormData
from openpyxl import Workbook
from sqlalchemy import func, select

from store.db import SessionMaker, transaction
from store.models import Disbursement, Unit
from tests.api.conftest import CODE, Api

VALID_USCC = "91650100WRXK9TN79D"  # from the example's units.csv
UNITS = f"/api/projects/{CODE}/units"
DISB = f"/api/projects/{CODE}/disbursements"


async def _counts(sm: SessionMaker) -> tuple[int, int, int]:
    async with transaction(sm) as session:
        units = await session.scalar(select(func.count()).select_from(Unit))
        disb = await session.scalar(select(func.count()).select_from(Disbursement))
        total = await session.scalar(select(func.coalesce(func.sum(Disbursement.amount_fen), 0)))
    return int(units or 0), int(disb or 0), int(total or 0)


async def _make_room(sm: SessionMaker, fen: int = 1_000_000) -> None:
    """The example's ledger is fully paid out (disbursed = arrived): free ``fen`` by lowering one
    payment, so that a test may add payments without breaking the ledger invariants."""
    async with transaction(sm) as session:
        row = (
            (await session.execute(select(Disbursement).order_by(Disbursement.amount_fen.desc())))
            .scalars()
            .first()
        )
        assert row is not None and row.amount_fen > fen
        row.amount_fen -= fen


async def test_units_are_listed_and_a_new_one_is_created_and_updated(api: Api) -> None:
    status, body = await api.get(UNITS)
    assert status == 200 and len(body["data"]) == 121
    status, body = await api.post(
        UNITS,
        json={"key": "u900", "name": "新疆测试单位", "channel_kind": "email", "channel_address": "a@b.cn"},
    )
    assert status == 201, body
    assert body["data"]["key"] == "u900" and body["data"]["active"] is True
    status, body = await api.patch(f"{UNITS}/u900", json={"name": "改名单位", "active": False})
    assert status == 200 and body["data"]["name"] == "改名单位" and body["data"]["active"] is False
    status, body = await api.get(UNITS + "?active=false")
    assert [u["key"] for u in body["data"]] == ["u900"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"key": "u901", "name": "x", "uscc": "91650100WRXK9TN79A"}, "uscc"),
        ({"key": "bad key!", "name": "x"}, "key"),
        ({"key": "u901", "name": ""}, "name"),
        ({"key": "u901", "name": 5}, "name"),
        ({"key": "u901", "name": "x", "colour": "red"}, "colour"),
        ({"key": "u901", "name": "x", "channel_kind": "fax"}, "channel_kind"),
        ({"key": "u901", "name": "x", "channel_kind": "email", "channel_address": "nope"}, "channel_address"),
        ({"key": "u901", "name": "x", "channel_config": {"secret": "abc"}}, "channel_config"),
    ],
)
async def test_a_bad_unit_is_refused_naming_the_field_and_nothing_is_stored(
    api: Api, sessionmaker: SessionMaker, payload: dict, field: str
) -> None:
    before = await _counts(sessionmaker)
    status, body = await api.post(UNITS, json=payload)
    assert status == 400, body
    assert field in body["error"]["where"] or any(field in d["field"] for d in body["error"]["details"])
    assert body["error"]["message"] and body["error"]["message_en"]
    assert await _counts(sessionmaker) == before


async def test_an_existing_unit_key_is_a_conflict(api: Api) -> None:
    status, body = await api.post(UNITS, json={"key": "u001", "name": "重复"})
    assert status == 409 and body["error"]["where"] == "key"


async def test_malformed_json_and_oversized_bodies_get_clear_4xx(api: Api) -> None:
    status, body = await api.post(UNITS, data=b'{"key": "u9', headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"]["code"] == "malformed_json"
    status, body = await api.post(
        UNITS, data=io.BytesIO(b"x" * (3 * 1024 * 1024)), headers={"Content-Type": "application/json"}
    )
    assert status == 413 and body["ok"] is False
    status, body = await api.post(
        UNITS, data=b"key=u9", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 415


async def test_a_disbursement_is_created_with_yuan_text_and_updated(
    api: Api, sessionmaker: SessionMaker
) -> None:
    await _make_room(sessionmaker)
    status, body = await api.post(
        DISB, json={"unit": "u001", "amount": "1234.50", "paid_on": "2023-09-01", "batch": "5"}
    )
    assert status == 201, body
    d = body["data"]
    assert d["amount"] == "1234.50" and d["key"] == "u001/5/2023-09-01"
    async with transaction(sessionmaker) as session:
        row = await session.get(Disbursement, d["id"])
        assert row is not None and row.amount_fen == 123450
    status, body = await api.patch(f"{DISB}/{d['id']}", json={"amount": "1000"})
    assert status == 200 and body["data"]["amount"] == "1000.00"
    status, body = await api.get(DISB + "?unit=u001")
    assert "1000.00" in [x["amount"] for x in body["data"]]


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("-5.00", "invalid_input"),
        ("1.005", "invalid_input"),
        (12.5, "invalid_input"),
        ("abc", "invalid_input"),
    ],
)
async def test_a_bad_amount_is_refused_and_nothing_is_stored(
    api: Api, sessionmaker: SessionMaker, amount: object, code: str
) -> None:
    before = await _counts(sessionmaker)
    status, body = await api.post(DISB, json={"unit": "u001", "amount": amount, "paid_on": "2023-09-01"})
    assert status == 400 and body["error"]["code"] == code
    assert "amount" in body["error"]["where"]
    assert await _counts(sessionmaker) == before


async def test_a_disbursement_for_an_unknown_unit_is_refused(api: Api, sessionmaker: SessionMaker) -> None:
    before = await _counts(sessionmaker)
    status, body = await api.post(DISB, json={"unit": "u999", "amount": "1.00", "paid_on": "2023-09-01"})
    assert status == 400 and body["error"]["where"] == "unit" and "u999" in body["error"]["message_en"]
    assert await _counts(sessionmaker) == before
    status, body = await api.patch(f"{DISB}/999999", json={"amount": "1.00"})
    assert status == 404


CSV_UNITS = (
    "key,name,uscc,channel_kind,channel_address\nu001,改名的单位,,console,\nu950,新单位甲,,email,x@y.cn\n"
)


async def test_a_units_csv_creates_and_updates_and_reimporting_changes_nothing(api: Api) -> None:
    status, body = await api.post(
        f"{UNITS}/import", data=CSV_UNITS.encode(), headers={"Content-Type": "text/csv"}
    )
    assert status == 201, body
    assert body["data"] == {
        "created": 1,
        "updated": 1,
        "unchanged": 0,
        "rows": 2,
        "dry_run": False,
        "encoding": "UTF-8",
    }
    status, body = await api.post(
        f"{UNITS}/import", data=CSV_UNITS.encode(), headers={"Content-Type": "text/csv"}
    )
    assert body["data"]["unchanged"] == 2


async def test_a_gb18030_csv_from_excel_is_read(api: Api) -> None:
    data = "key,name\nu951,乌鲁木齐新单位\n".encode("gb18030")
    status, body = await api.post(f"{UNITS}/import", data=data, headers={"Content-Type": "text/csv"})
    assert status == 201 and body["data"]["created"] == 1
    status, body = await api.get(UNITS)
    assert "乌鲁木齐新单位" in [u["name"] for u in body["data"]]


BAD_DISB_CSV = (
    "unit,batch,amount,date,voucher\n"
    "u001,9,-5.00,2023-09-01,v1\n"  # row 2: negative
    "u002,9,100.00,2023-09-01,v2\n"  # row 3: fine
    "u003,9,1.005,2023-09-01,v3\n"  # row 4: 3 decimals
    "u999,9,1.00,2023-09-01,v4\n"  # row 5: unknown unit
    "u004,9,abc,2023-09-01,v5\n"  # row 6: not a number
    "u005,9,1.00,2023-13-45,v6\n"  # row 7: bad date
)


async def test_a_disbursements_csv_with_broken_rows_reports_every_row_and_imports_nothing(
    api: Api, sessionmaker: SessionMaker
) -> None:
    before = await _counts(sessionmaker)
    status, body = await api.post(
        f"{DISB}/import", data=BAD_DISB_CSV.encode(), headers={"Content-Type": "text/csv"}
    )
    assert status == 400 and body["error"]["code"] == "import_rejected"
    rows = sorted({d["row"] for d in body["error"]["details"]})
    assert rows == [2, 4, 5, 6, 7]
    by_row = {d["row"]: d for d in body["error"]["details"]}
    assert by_row[2]["code"] == "money_negative" and by_row[4]["code"] == "money_precision"
    assert by_row[5]["code"] == "unknown_unit" and by_row[6]["code"] == "money_invalid"
    assert by_row[7]["column"] == "date"
    assert "nothing was imported" in body["error"]["message_en"]
    assert await _counts(sessionmaker) == before


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


async def test_an_xlsx_upload_with_float_money_cells_is_imported_exactly(
    api: Api, sessionmaker: SessionMaker
) -> None:
    data = _xlsx(
        [
            ["unit", "batch", "amount", "date", "voucher"],
            ["u001", 7, 1.1, date(2023, 10, 1), "x1"],
            ["u002", 7, 2.25, date(2023, 10, 1), "x2"],
            ["u003", 7, "0.07", "2023-10-01", "x3"],
        ]
    )
    await _make_room(sessionmaker)
    _, _, total_before = await _counts(sessionmaker)
    form = FormData()
    form.add_field("file", data, filename="payments.xlsx")
    status, body = await api.post(f"{DISB}/import", data=form)
    assert status == 201, body
    assert body["data"]["created"] == 3
    _, _, total_after = await _counts(sessionmaker)
    assert total_after - total_before == 110 + 225 + 7
    status, body = await api.get(DISB + "?unit=u002")
    assert "2.25" in [d["amount"] for d in body["data"]]


async def test_an_xlsx_with_broken_rows_reports_sheet_row_numbers_and_imports_nothing(
    api: Api, sessionmaker: SessionMaker
) -> None:
    data = _xlsx(
        [
            ["unit", "amount", "date"],
            ["u001", 12.345, date(2023, 10, 1)],  # row 2: 3 decimals
            ["u002", 3, date(2023, 10, 1)],  # row 3: fine
            ["nobody", 3, date(2023, 10, 1)],  # row 4: unknown unit
            ["u003", -1, date(2023, 10, 1)],  # row 5: negative
        ]
    )
    before = await _counts(sessionmaker)
    status, body = await api.post(
        f"{DISB}/import",
        data=data,
        headers={"Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    )
    assert status == 400
    assert sorted({d["row"] for d in body["error"]["details"]}) == [2, 4, 5]
    assert await _counts(sessionmaker) == before


async def test_a_corrupt_xlsx_and_an_empty_upload_are_refused_clearly(api: Api) -> None:
    status, body = await api.post(
        f"{DISB}/import", data=b"PK\x03\x04garbage", headers={"Content-Type": "text/csv"}
    )
    assert status == 400 and "xlsx" in body["error"]["message_en"].lower()
    status, body = await api.post(f"{DISB}/import", data=b"", headers={"Content-Type": "text/csv"})
    assert status == 400
    status, body = await api.post(
        f"{DISB}/import", data=b"unit,amount\nu001,1\n", headers={"Content-Type": "text/csv"}
    )
    assert status == 400 and "date" in body["error"]["message_en"]


async def test_a_dry_run_checks_without_storing(api: Api, sessionmaker: SessionMaker) -> None:
    await _make_room(sessionmaker)
    before = await _counts(sessionmaker)
    csv = b"unit,amount,date\nu001,5.00,2023-11-01\n"
    status, body = await api.post(f"{DISB}/import?dry_run=1", data=csv, headers={"Content-Type": "text/csv"})
    assert status == 200 and body["data"]["created"] == 1 and body["data"]["dry_run"] is True
    assert await _counts(sessionmaker) == before


# ---- the ledger invariants hold on every path (the loader's own check, config.ledger)


async def test_an_import_that_pays_out_more_than_arrived_is_refused_and_nothing_is_stored(
    api: Api, sessionmaker: SessionMaker
) -> None:
    before = await _counts(sessionmaker)
    csv = b"unit,amount,date,batch\nu001,5.00,2023-11-01,9\nu002,7.00,2023-11-02,9\n"
    status, body = await api.post(f"{DISB}/import", data=csv, headers={"Content-Type": "text/csv"})
    assert status == 400, body
    [problem] = body["error"]["details"]
    assert problem["code"] == "disbursed_exceeds_arrived" and "到位资金合计" in problem["message"]
    assert "22448400.00" in problem["message"] and "exceeds arrivals" in problem["message_en"]
    assert await _counts(sessionmaker) == before


async def test_an_import_dated_outside_the_evaluation_period_names_its_row(
    api: Api, sessionmaker: SessionMaker
) -> None:
    await _make_room(sessionmaker)
    before = await _counts(sessionmaker)
    csv = b"unit,amount,date\nu001,5.00,2023-11-01\nu002,7.00,2024-02-01\n"
    status, body = await api.post(f"{DISB}/import", data=csv, headers={"Content-Type": "text/csv"})
    assert status == 400, body
    [problem] = body["error"]["details"]
    assert (problem["row"], problem["column"], problem["code"]) == (3, "date", "date_outside_period")
    assert "2023-01-01 至 2023-12-31" in problem["message"]
    assert await _counts(sessionmaker) == before


async def test_patching_a_disbursement_past_the_arrivals_is_refused(
    api: Api, sessionmaker: SessionMaker
) -> None:
    status, body = await api.get(DISB + "?unit=u001")
    first = body["data"][0]
    before = await _counts(sessionmaker)
    status, body = await api.patch(f"{DISB}/{first['id']}", json={"amount": "99999999.00"})
    assert status == 400 and body["error"]["details"][0]["code"] == "disbursed_exceeds_arrived"
    status, body = await api.patch(f"{DISB}/{first['id']}", json={"paid_on": "2022-12-31"})
    assert status == 400 and body["error"]["details"][0]["code"] == "date_outside_period"
    assert body["error"]["details"][0]["field"] == "paid_on"
    assert await _counts(sessionmaker) == before


async def test_creating_a_disbursement_beyond_the_arrivals_is_refused(
    api: Api, sessionmaker: SessionMaker
) -> None:
    before = await _counts(sessionmaker)
    status, body = await api.post(DISB, json={"unit": "u001", "amount": "0.01", "paid_on": "2023-09-01"})
    assert status == 400 and body["error"]["details"][0]["code"] == "disbursed_exceeds_arrived"
    assert await _counts(sessionmaker) == before


@pytest.mark.parametrize(
    ("encoding", "bom", "label"),
    [
        ("gbk", b"", "GB18030 (GBK)"),
        ("utf-16-le", b"\xff\xfe", "UTF-16"),
        ("utf-8", b"\xef\xbb\xbf", "UTF-8 (BOM)"),
    ],
    ids=["gbk as excel on chinese windows saves it", "utf-16 with bom", "utf-8 with bom"],
)
async def test_a_units_file_in_any_supported_encoding_is_imported_and_its_encoding_reported(
    api: Api, encoding: str, bom: bytes, label: str
) -> None:
    text = "key,name,channel_kind,channel_address\r\nu950,乌鲁木齐编码测试单位,email,u950@example.com\r\n"
    status, body = await api.post(
        f"{UNITS}/import", data=bom + text.encode(encoding), headers={"Content-Type": "text/csv"}
    )
    assert status == 201, body
    assert body["data"]["encoding"] == label and body["data"]["created"] == 1
    status, body = await api.get(UNITS)
    assert "乌鲁木齐编码测试单位" in [u["name"] for u in body["data"]]


async def test_an_undecodable_upload_names_the_encoding_problem_with_a_hint(api: Api) -> None:
    status, body = await api.post(
        f"{UNITS}/import", data=b"key,name\nu1,\x80\x80\xff\n", headers={"Content-Type": "text/csv"}
    )
    assert status == 400 and body["error"]["details"][0]["code"] == "encoding"
    assert "CSV UTF-8" in body["error"]["details"][0]["message"]


# ---- units: the loader's model (config.definition.UnitDef) is the one validation on every path

BAD_UNITS = [
    pytest.param({"uscc": "91650100WRXK9TN79A"}, "uscc", "uscc_checksum", id="a wrong uscc check digit"),
    pytest.param({"name": "长" * 201}, "name", "invalid_value", id="a name over 200 characters"),
    pytest.param({"channel_kind": "email", "channel_address": "nope"}, "channel_address", "channel_address",
                 id="an email channel without an address"),
    pytest.param({"channel_config": {"secret": "abc"}}, "channel_config", "channel_secret_inline",
                 id="a secret written inline"),
]  # fmt: skip


def _loader_codes(tmp_path, bad: dict) -> set[str]:
    import shutil

    from config.loader import DefinitionError, load_definition
    from tests.conftest import EXAMPLE_PROJECT

    project = tmp_path / "p"
    shutil.copytree(EXAMPLE_PROJECT, project)
    units = project / "units.csv"
    lines = units.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    cells = dict(zip(header, lines[1].split(","), strict=True))
    for name, value in bad.items():
        if name == "channel_config":
            for k, v in value.items():
                header.append(f"channel_{k}")
                cells[f"channel_{k}"] = v
        else:
            cells[name] = value
    lines[0] = ",".join(header)
    lines[1] = ",".join(cells.get(h, "") for h in header)
    units.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_definition(project)
    return {p.code for p in caught.value.problems}


@pytest.mark.parametrize(("bad", "field", "code"), BAD_UNITS)
async def test_a_unit_the_loader_refuses_is_refused_by_create_update_and_import_too(
    api: Api, sessionmaker: SessionMaker, tmp_path, bad: dict, field: str, code: str
) -> None:
    assert code in _loader_codes(tmp_path, bad)
    before = await _counts(sessionmaker)
    status, body = await api.post(UNITS, json={"key": "u990", "name": "新单位", **bad})
    assert status == 400 and field in {d["field"] for d in body["error"]["details"]}, body
    status, body = await api.patch(f"{UNITS}/u001", json=bad)
    assert status == 400 and field in {d["field"] for d in body["error"]["details"]}, body
    columns = {"key": "u991", "name": "新单位", **{k: v for k, v in bad.items() if k != "channel_config"}}
    columns.update({f"channel_{k}": v for k, v in bad.get("channel_config", {}).items()})
    csv = (",".join(columns) + "\n" + ",".join(columns.values()) + "\n").encode()
    status, body = await api.post(f"{UNITS}/import", data=csv, headers={"Content-Type": "text/csv"})
    assert status == 400 and code in {d["code"] for d in body["error"]["details"]}, body
    assert await _counts(sessionmaker) == before


async def test_control_characters_in_a_unit_name_sent_to_the_api_are_cleaned_like_the_importer_does(
    api: Api,
) -> None:
    """One rule (config.text.clean_text) for every path: the body layer does not refuse what the
    importer and the loader clean, and the store cleans it the same way."""
    status, body = await api.post(
        UNITS, json={"key": "u993", "name": " 乌鲁木齐\x08清理\x1b单位\t二部\n", "channel_address": "a\x00b"}
    )
    assert status == 201, body
    assert body["data"]["name"] == "乌鲁木齐清理单位 二部" and body["data"]["channel_address"] == "ab"
    status, body = await api.patch(f"{UNITS}/u993", json={"name": "新\x7f名\u0085称"})
    assert status == 200 and body["data"]["name"] == "新名称", body
    # A name with nothing left after the cleaning is refused by both layers alike.
    for empty in ("\x01\x02", " \u3000\t"):
        status, body = await api.post(UNITS, json={"key": "u994", "name": empty})
        assert status == 400 and body["error"]["where"] == "name", body


def test_the_visible_character_class_is_what_survives_the_one_rule_and_strip() -> None:
    from bot.api.common import VISIBLE
    from config.text import clean_text

    visible = re.compile(VISIBLE)
    for c in map(chr, range(0x110000)):
        survives = clean_text(c, multiline=False).strip() == c
        assert bool(visible.fullmatch(c)) == survives, hex(ord(c))


async def test_control_characters_in_an_imported_unit_name_are_cleaned_by_the_one_rule(api: Api) -> None:
    csv = "key,name\nu992,乌鲁木齐\x08清理\x1b单位\n".encode()
    status, body = await api.post(f"{UNITS}/import", data=csv, headers={"Content-Type": "text/csv"})
    assert status == 201, body
    status, body = await api.get(UNITS)
    assert "乌鲁木齐清理单位" in [u["name"] for u in body["data"]]
