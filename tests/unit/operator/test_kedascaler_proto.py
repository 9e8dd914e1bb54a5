"""The committed protobuf stubs are exactly what protoc makes of the vendored .proto."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from grpc_tools import protoc

from jobqueue_operator.kedascaler import externalscaler_pb2 as pb

PACKAGE = Path(pb.__file__).resolve().parent
GENERATED = ("externalscaler_pb2.py", "externalscaler_pb2.pyi")


def test_committed_stubs_match_a_fresh_protoc_run(tmp_path: Path) -> None:
    shutil.copy(PACKAGE / "externalscaler.proto", tmp_path)
    code = protoc.main(
        [
            "protoc",
            f"-I{tmp_path}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(tmp_path / "externalscaler.proto"),
        ]
    )
    assert code == 0
    for name in GENERATED:
        fresh = (tmp_path / name).read_text()
        if fresh != (PACKAGE / name).read_text():
            pytest.fail(
                f"{name} is stale: regenerate it with `python -m grpc_tools.protoc -I. "
                "--python_out=. --pyi_out=. externalscaler.proto` in its directory"
            )


def test_the_service_keda_calls_is_the_one_we_serve() -> None:
    service = pb.DESCRIPTOR.services_by_name["ExternalScaler"]
    assert service.full_name == "externalscaler.ExternalScaler"
    methods = {m.name: (m.input_type.name, m.output_type.name) for m in service.methods}
    assert methods["IsActive"] == ("ScaledObjectRef", "IsActiveResponse")
    assert methods["StreamIsActive"] == ("ScaledObjectRef", "IsActiveResponse")
    assert methods["GetMetricSpec"] == ("ScaledObjectRef", "GetMetricSpecResponse")
    assert methods["GetMetrics"] == ("GetMetricsRequest", "GetMetricsResponse")
