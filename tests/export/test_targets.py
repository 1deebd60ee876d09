"""KIND=DEST parsing, checking and masking; the registry matches the known kinds."""

from __future__ import annotations

import pytest

from lens.export.registry import EXPORTERS
from lens.targets import EXPORT_KINDS, TargetError, mask_dest, parse_target


def test_the_registry_serves_exactly_the_known_kinds() -> None:
    assert set(EXPORTERS) == set(EXPORT_KINDS)


@pytest.mark.parametrize(
    "spec",
    [
        "csv=out/requests.csv",
        "prometheus=http://127.0.0.1:9091?job=lens&instance=ci",
        "prometheus=out/lens.prom",
        "influx=http://127.0.0.1:8086/write?db=lens",
        "influx=https://host:8086/api/v2/write?org=o&bucket=b&token=t",
        "junit=out/sla.xml",
        "markdown=summary.md",
    ],
)
def test_valid_targets(spec: str) -> None:
    target = parse_target(spec)
    assert f"{target.kind}={target.dest}" == spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "promethus=x",
            "unknown export kind 'promethus' (did you mean 'prometheus'?); known kinds: csv,",
        ),
        (
            "xml=x",
            "unknown export kind 'xml'; known kinds: csv, prometheus, influx, junit, markdown",
        ),
        ("out.csv", "expected KIND=DEST such as csv=out/requests.csv"),
        ("csv=", "csv= needs a destination"),
        ("csv=http://h/x", "csv writes a file; expected a path"),
        ("influx=out.lp", "influx needs an http(s) URL"),
        ("influx=http://h:8086/write", "needs ?db="),
        ("influx=http://h:8086/api/v2/write?org=o", "needs ?bucket="),
        ("influx=http://h:8086/api/v2/query?bucket=b", "should end in /write"),
    ],
)
def test_bad_targets_say_what_was_expected(spec: str, message: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(spec)
    assert message in str(info.value)


def test_credentials_are_masked_everywhere() -> None:
    dest = "https://me:hunter2@h:8086/api/v2/write?org=o&bucket=b&token=t%2Fk&p=pw"
    target = parse_target(f"influx={dest}")
    masked = "https://***:***@h:8086/api/v2/write?org=o&bucket=b&token=***&p=***"
    assert mask_dest(dest) == masked
    assert str(target) == f"influx={masked}"
    assert repr(target) == f"ExportTarget(influx={masked})"
    assert target.scrub("hunter2 and t/k and t%2Fk and pw") == "*** and *** and *** and ***"
    with pytest.raises(TargetError) as info:
        parse_target("influx=http://u:hunter2@h/x?token=zzz")
    assert "hunter2" not in str(info.value)
    assert "zzz" not in str(info.value)


def test_a_file_destination_is_never_masked() -> None:
    assert mask_dest("out/token=x.csv") == "out/token=x.csv"
