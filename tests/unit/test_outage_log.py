"""What a 503 writes to the operator's log (web.errors.log_outage): the cause's type and first line,
never the statement or its parameters (an address, a digest, a hash) that a driver error may carry."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError
from starlette.requests import Request

from threshold.core.errors import DependencyUnavailable
from threshold.web import errors


def _request(path: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""})


def _outage(cause: BaseException) -> DependencyUnavailable:
    try:
        try:
            raise cause
        except BaseException as error:
            raise DependencyUnavailable() from error
    except DependencyUnavailable as outage:
        return outage


def test_the_log_names_the_cause_and_never_the_statements_parameters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A wrapped driver error whose own cause was lost: SQLAlchemy's message then carries the SQL and the
    # parameters on the lines after its first.
    error = OperationalError(
        "SELECT * FROM users WHERE email_normalized = $1", ("ada@example.com",), Exception("server closed")
    )
    errors._outage_logged.clear()
    caplog.set_level(logging.WARNING, logger=errors.log.name)
    errors.log_outage(_request("/api/v1/login"), _outage(error))
    [line] = [r.getMessage() for r in caplog.records if r.name == errors.log.name]
    assert line.startswith("503 on POST /api/v1/login: sqlalchemy.exc.OperationalError: "), line
    assert "server closed" in line
    assert "ada@example.com" not in line and "SELECT" not in line, line


def test_one_line_per_cause_and_path_in_an_interval(caplog: pytest.LogCaptureFixture) -> None:
    errors._outage_logged.clear()
    caplog.set_level(logging.WARNING, logger=errors.log.name)
    for path in ("/a", "/a", "/b", "/a"):
        errors.log_outage(_request(path), _outage(ConnectionRefusedError(111, "refused")))
    errors.log_outage(_request("/a"), _outage(TimeoutError("slow")))
    lines = [r.getMessage() for r in caplog.records if r.name == errors.log.name]
    assert [line.split(":")[0] for line in lines] == ["503 on POST /a", "503 on POST /b", "503 on POST /a"]
