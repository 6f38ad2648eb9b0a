"""``Retry-After`` on the operator's own API calls (kube.py), in process with a stand-in for the request:
how long a 429/503 asks to wait (capped), a call that waits and sends again within its timeout, and a
target that is not sent to again before its wait is over, whichever loop retries it. The end-to-end case
(the operator against the API mock) is test_operator_api_faults.test_own_writes_honour_retry_after."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import pytest
from energaizer_operator import kube


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    kube._not_before.clear()
    yield
    kube._not_before.clear()


def _answer(status: int, retry_after: str | None) -> kube.ApiException:
    exc = kube.ApiException(status=status, reason="injected")
    exc.headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return exc


@pytest.mark.parametrize(
    ("status", "header", "seconds"),
    [
        (429, "3", 3.0),
        (503, "2.5", 2.5),
        (429, "7200", kube.RETRY_AFTER_MAX_SECONDS),  # capped
        (429, "-4", 0.0),
        (500, "3", None),  # not a status that asks to come back later
        (429, None, None),
        (429, "soon", None),
        (429, "nan", None),
    ],
)
def test_retry_after_seconds(status: int, header: str | None, seconds: float | None) -> None:
    assert kube.retry_after_seconds(_answer(status, header)) == seconds


def test_retry_after_as_an_http_date_and_any_header_case() -> None:
    now = 1_800_000_000.0
    exc = kube.ApiException(status=429, reason="injected")
    exc.headers = {"retry-after": formatdate(now + 12, usegmt=True)}
    assert kube.retry_after_seconds(exc, now=now) == 12.0


class Sender:
    """Answers with ``answers`` in turn (an exception is raised), then ``"ok"``; records when it was called
    and the seconds left it was given."""

    def __init__(self, *answers: kube.ApiException) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[float, float]] = []

    def __call__(self, left: float) -> str:
        self.calls.append((time.monotonic(), left))
        if self.answers:
            raise self.answers.pop(0)
        return "ok"


def test_a_call_waits_and_sends_again_within_its_timeout() -> None:
    send = Sender(_answer(429, "1"))
    assert kube._call("PATCH /a", 10, send) == "ok"
    (first, _), (second, left) = send.calls
    assert second - first >= 1.0
    assert left <= 10 - 1.0  # the wait is part of the call's timeout


def test_a_wait_beyond_the_timeout_is_not_sent_again_until_it_is_over() -> None:
    """Retry-After 30 s on a call with a 2 s timeout: it raises at once; a retry of the same target (a loop's
    next window) raises without sending; another target is sent as usual."""
    send = Sender(_answer(503, "30"))
    with pytest.raises(kube.ApiException) as first:
        kube._call("POST /jobs", 2, send)
    assert first.value.status == 503 and len(send.calls) == 1
    with pytest.raises(kube.ApiException) as again:
        kube._call("POST /jobs", 2, send)
    assert again.value.status == 429 and "Retry-After" in str(again.value.reason)
    assert len(send.calls) == 1, "sent again before its Retry-After"
    other = Sender()
    assert kube._call("POST /other", 2, other) == "ok"


def test_a_later_call_waits_for_a_wait_that_fits() -> None:
    """Retry-After 1 s on a call with a 0.5 s timeout: that call gives up; the next one, with room for the
    rest of the wait, waits it out before sending."""
    send = Sender(_answer(429, "1"))
    with pytest.raises(kube.ApiException):
        kube._call("PATCH /b", 0.5, send)
    assert kube._call("PATCH /b", 10, send) == "ok"
    (first, _), (second, _) = send.calls
    assert second - first >= 1.0


def test_other_errors_are_raised_as_they_were() -> None:
    send = Sender(_answer(500, "1"))
    with pytest.raises(kube.ApiException) as exc:
        kube._call("PATCH /c", 10, send)
    assert exc.value.status == 500 and len(send.calls) == 1
    assert kube._call("PATCH /c", 10, send) == "ok"  # no wait recorded
