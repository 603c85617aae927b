"""The demo's two APIs answer like the small real services they stand for, and the payments
fault switch produces the incident bytewatch is there to catch: 200s that report failures."""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from probe.model import ResponseView
from probe.semantics import Classifier, SemanticRules
from tests.deploy.processes import Running, start_demo

PAYMENT = {"amount": 1299, "currency": "EUR", "card": "tok_4242"}


@pytest.fixture(scope="module")
def shop() -> Iterator[Running]:
    with start_demo("shop") as running:
        yield running


@pytest.fixture(scope="module")
def payments_server() -> Iterator[Running]:
    with start_demo("payments") as running:
        yield running


@pytest.fixture
def payments(payments_server: Running) -> Iterator[Running]:
    """The payments API, healed again after each test whatever the test switched on."""
    yield payments_server
    assert payments_server.call("POST", "/admin/fault", {"mode": "none"})[0] == 200


class Case(NamedTuple):
    method: str
    path: str
    body: object
    status: int
    expected: dict[str, Any]  # fields the answer must have, with these values


def field(body: object, name: str) -> Any:
    assert isinstance(body, dict), body
    return body.get(name)


SHOP_CASES = [
    pytest.param(Case("GET", "/health", None, 200, {"status": "ok"}), id="health answers ok"),
    pytest.param(
        Case("GET", "/products/sku-10003", None, 200, {"id": "sku-10003"}), id="a product"
    ),
    pytest.param(
        Case("GET", "/products/sku-99999", None, 404, {"error": "product_not_found"}),
        id="an unknown product is not found",
    ),
    pytest.param(
        Case(
            "POST",
            "/cart/cart-123456/items",
            {"product": "sku-10003", "quantity": 2},
            201,
            {"cart": "cart-123456", "items": 1},
        ),
        id="an item goes into a cart",
    ),
    pytest.param(
        Case(
            "POST",
            "/cart/cart-1/items",
            {"product": "sku-10003", "quantity": 0},
            400,
            {"error": "invalid_item"},
        ),
        id="a zero quantity is refused",
    ),
    pytest.param(
        Case(
            "POST",
            "/cart/cart-1/items",
            {"product": "sku-99999", "quantity": 1},
            404,
            {"error": "product_not_found"},
        ),
        id="an unknown product cannot be added",
    ),
    pytest.param(
        Case("POST", "/products/sku-10003", None, 405, {"error": "method_not_allowed"}),
        id="a product cannot be posted",
    ),
    pytest.param(Case("GET", "/nowhere", None, 404, {"error": "not_found"}), id="an unknown path"),
]


@pytest.mark.parametrize("case", SHOP_CASES)
def test_the_shop_answers(shop: Running, case: Case) -> None:
    status, got = shop.call(case.method, case.path, case.body)
    assert status == case.status
    assert {key: field(got, key) for key in case.expected} == case.expected


def test_the_shop_lists_twenty_products_unless_asked_for_more(shop: Running) -> None:
    assert field(shop.call("GET", "/products")[1], "count") == 20
    assert field(shop.call("GET", "/products?limit=48")[1], "count") == 48
    assert shop.call("GET", "/products?limit=0")[0] == 400


def test_a_cart_counts_its_items_and_totals_their_price(shop: Running) -> None:
    price = field(shop.call("GET", "/products/sku-10005")[1], "price_cents")
    shop.call("POST", "/cart/cart-777/items", {"product": "sku-10005", "quantity": 1})
    _, cart = shop.call("POST", "/cart/cart-777/items", {"product": "sku-10005", "quantity": 2})
    assert (field(cart, "items"), field(cart, "total_cents")) == (2, 3 * price)


def test_the_shop_refuses_a_body_that_is_not_json(shop: Running) -> None:
    status, body = shop.call("POST", "/cart/cart-1/items", raw=b"product=sku-10003")
    assert (status, field(body, "error")) == (400, "invalid_json")


PAYMENTS_CASES = [
    pytest.param(Case("GET", "/health", None, 200, {"status": "ok"}), id="health answers ok"),
    pytest.param(Case("GET", "/admin/fault", None, 200, {"mode": "none"}), id="no fault at start"),
    pytest.param(
        Case("POST", "/payments", {**PAYMENT, "amount": -5}, 400, {"error": "invalid_request"}),
        id="a negative amount is refused",
    ),
    pytest.param(
        Case(
            "POST", "/payments", {**PAYMENT, "currency": "XXX"}, 400, {"error": "invalid_request"}
        ),
        id="an unknown currency is refused",
    ),
    pytest.param(
        Case("GET", "/payments/pay_0000000000000000", None, 404, {"error": "payment_not_found"}),
        id="an unknown payment is not found",
    ),
    pytest.param(
        Case("POST", "/admin/fault", {"mode": "explode"}, 400, {"error": "invalid_mode"}),
        id="an unknown fault mode is refused",
    ),
    pytest.param(
        Case("GET", "/payments", None, 405, {"error": "method_not_allowed"}), id="no listing"
    ),
    pytest.param(Case("DELETE", "/payments", None, 501, {}), id="an unsupported method"),
]


@pytest.mark.parametrize("case", PAYMENTS_CASES)
def test_payments_answer(payments: Running, case: Case) -> None:
    status, got = payments.call(case.method, case.path, case.body)
    assert status == case.status
    assert {key: field(got, key) for key in case.expected} == case.expected


def test_a_payment_is_created_and_can_be_read_back(payments: Running) -> None:
    status, created = payments.call("POST", "/payments", PAYMENT)
    assert status == 201
    assert (field(created, "status"), field(created, "amount")) == ("succeeded", 1299)
    status, read = payments.call("GET", f"/payments/{field(created, 'id')}")
    assert (status, read) == (200, created)


def test_payments_keep_the_connection_alive_over_http_1_1(payments: Running) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", payments.port, timeout=10)
    try:
        for _ in range(3):
            connection.request("POST", "/payments", body=json.dumps(PAYMENT))
            response = connection.getresponse()
            response.read()
            assert (response.status, response.version) == (201, 11)
            assert not response.will_close
    finally:
        connection.close()


def test_the_silent_200_fault_answers_200_with_an_error_and_no_payment(payments: Running) -> None:
    assert payments.call("POST", "/admin/fault", {"mode": "silent-200"}) == (
        200,
        {"mode": "silent-200"},
    )
    answers = [payments.call("POST", "/payments", PAYMENT) for _ in range(10)]
    assert {status for status, _ in answers} == {200}
    types = Counter(field(body, "error") for _, body in answers)
    assert types["insufficient_balance"] > types["card_declined"] > 0
    assert set(types) == {"insufficient_balance", "card_declined", "processor_unavailable"}
    assert all(field(body, "id") is None for _, body in answers)
    assert payments.call("GET", "/admin/fault") == (200, {"mode": "silent-200"})


def test_healing_the_fault_brings_real_payments_back(payments: Running) -> None:
    payments.call("POST", "/admin/fault", {"mode": "silent-200"})
    assert payments.call("POST", "/payments", PAYMENT)[0] == 200
    payments.call("POST", "/admin/fault", {"mode": "none"})
    status, body = payments.call("POST", "/payments", PAYMENT)
    assert (status, field(body, "status")) == (201, "succeeded")


def _verdict(body: object, status: int) -> tuple[bool, str | None]:
    view = ResponseView(
        service="payments",
        route="/payments",
        method="POST",
        status=status,
        headers=(("content-type", "application/json"),),
        body=json.dumps(body).encode(),
    )
    verdict = Classifier(SemanticRules()).classify(view)
    return verdict.business_error, verdict.error_type


def test_bytewatch_sees_the_incident_bodies_as_business_errors_and_real_payments_as_clean(
    payments: Running,
) -> None:
    _, good = payments.call("POST", "/payments", PAYMENT)
    payments.call("POST", "/admin/fault", {"mode": "silent-200"})
    bad = [payments.call("POST", "/payments", PAYMENT)[1] for _ in range(5)]
    assert _verdict(good, 201) == (False, None)
    assert {_verdict(body, 200) for body in bad} == {
        (True, "insufficient_balance"),
        (True, "card_declined"),
        (True, "processor_unavailable"),
    }
