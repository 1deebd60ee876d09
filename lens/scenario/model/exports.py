"""``export:`` entries: ``KIND=DEST`` targets, checked and described in the JSON Schema."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from lens.targets import EXPORT_KINDS, TargetError, parse_target


def check_export_target(text: str) -> str:
    try:
        parse_target(text)
    except TargetError as exc:  # its message masks credentials; pydantic positions it
        raise ValueError(str(exc)) from None
    return text


def export_json_schema(kinds: tuple[str, ...]) -> WithJsonSchema:
    """The schema checks the shape only (one of ``kinds``); lens also checks each kind's
    destination."""
    return WithJsonSchema(
        {
            "type": "string",
            "pattern": rf"^\s*({'|'.join(kinds)})\s*=.*\S",
            "description": "KIND=DEST, e.g. csv=out/requests.csv, junit=out/sla.xml, "
            "prometheus=http://127.0.0.1:9091?job=lens, "
            "influx=http://127.0.0.1:8086/write?db=lens",
        }
    )


ExportEntry = Annotated[str, AfterValidator(check_export_target), export_json_schema(EXPORT_KINDS)]
