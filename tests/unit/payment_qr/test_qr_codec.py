"""The QR provider wire format on transcripts: OPA-Auth request signing (vectors computed with the
openssl CLI, not with this code), request bodies, and decoding of the provider's answers."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from drivers.payment.qr import codec
from kiosk.ports import PaymentState

BODY = b'{"amount":{"amount":300,"currency":"JPY"},"merchantPaymentId":"tx-0001"}'
# printf '%s' 'application/json;charset=UTF-8<BODY>' | openssl dgst -md5 -binary | base64
BODY_HASH = "BRrv5T+qktze9N9AI7UKhg=="
# printf '/v2/codes\nPOST\nabcd1234\n1700000000\napplication/json;charset=UTF-8\n<BODY_HASH>' |
#   openssl dgst -sha256 -hmac demo-secret -binary | base64
POST_MAC = "6SCYz6sATqdL/RGzqXb3OkXjPA+hACurWw04fnBPQpw="
# printf '/v2/codes/payments/tx-0001\nGET\nn0nce\n1700000000\nempty\nempty' | openssl ... same
GET_MAC = "IG2D9tboHswEBbe7orj5F1fqnvvzMDmpVT9IAuHqp+g="


def test_body_hash_matches_md5_of_content_type_and_body() -> None:
    assert codec.body_hash(codec.CONTENT_TYPE_JSON, BODY) == BODY_HASH
    assert codec.body_hash(codec.CONTENT_TYPE_JSON, None) == "empty"
    assert codec.body_hash(codec.CONTENT_TYPE_JSON, b"") == "empty"


def test_auth_header_for_a_post_matches_the_openssl_transcript() -> None:
    header = codec.auth_header("demo-key", "demo-secret", "POST", "/v2/codes", BODY, "abcd1234", 1700000000)
    assert header == f"hmac OPA-Auth:demo-key:{POST_MAC}:abcd1234:1700000000:{BODY_HASH}"


def test_auth_header_for_a_bodyless_get_signs_empty_content_type_and_hash() -> None:
    header = codec.auth_header("demo-key", "demo-secret", "get", "/v2/codes/payments/tx-0001", None, "n0nce",
                               1700000000)
    assert header == f"hmac OPA-Auth:demo-key:{GET_MAC}:n0nce:1700000000:empty"


def test_verify_accepts_a_good_signature_and_reports_its_fields() -> None:
    header = codec.auth_header("demo-key", "demo-secret", "POST", "/v2/codes", BODY, "abcd1234", 1700000000)
    fields = codec.verify_auth(header, {"demo-key": "demo-secret"}, "POST", "/v2/codes", BODY,
                               codec.CONTENT_TYPE_JSON, 1700000030, 120)
    assert (fields.api_key, fields.nonce, fields.epoch) == ("demo-key", "abcd1234", 1700000000)


@pytest.mark.parametrize("change, problem", [
    (dict(secrets={"demo-key": "other-secret"}), "signature"),
    (dict(secrets={"someone": "demo-secret"}), "unknown API key"),
    (dict(body=BODY.replace(b"300", b"301")), "body hash"),
    (dict(path="/v2/refunds"), "signature"),
    (dict(method="DELETE"), "signature"),
    (dict(now=1700000000 + 121), "off the server clock"),
])
def test_verify_refuses_tampering_wrong_keys_and_stale_requests(change: dict, problem: str) -> None:
    header = codec.auth_header("demo-key", "demo-secret", "POST", "/v2/codes", BODY, "abcd1234", 1700000000)
    args = dict(secrets={"demo-key": "demo-secret"}, method="POST", path="/v2/codes", body=BODY, now=1700000000)
    args.update(change)
    with pytest.raises(ValueError, match=problem):
        codec.verify_auth(header, args["secrets"], args["method"], args["path"], args["body"],
                          codec.CONTENT_TYPE_JSON, args["now"], 120)


@pytest.mark.parametrize("header", [
    "Bearer abc",
    "hmac OPA-Auth:demo-key:mac:nonce:1700000000",
    "hmac OPA-Auth:demo-key:mac:nonce:soon:empty",
    "hmac OPA-Auth::mac:nonce:1700000000:empty",
])
def test_malformed_authorization_headers_are_refused(header: str) -> None:
    with pytest.raises(ValueError):
        codec.parse_auth_header(header)


def test_create_body_carries_the_key_as_merchant_payment_id_and_integer_yen() -> None:
    body = codec.create_code_body("tx-0001", 300, "住民票の写し 1通", 1700000000, 1700000180)
    assert body == {"merchantPaymentId": "tx-0001", "amount": {"amount": 300, "currency": "JPY"},
                    "codeType": "ORDER_QR", "orderDescription": "住民票の写し 1通", "isAuthorization": False,
                    "requestedAt": 1700000000, "expiryDate": 1700000180}
    assert codec.encode_json(body).decode("utf-8").count("住民票") == 1  # UTF-8, not \u escapes


@pytest.mark.parametrize("amount", [0, -300, 300.0, True, "300"])
def test_amounts_must_be_positive_integer_yen(amount: object) -> None:
    with pytest.raises(ValueError, match="positive integer of yen"):
        codec.create_code_body("tx-0001", amount, "", 0, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["", "x" * 65, "tx 0001\n", "取引"])
def test_merchant_ids_are_bounded_printable_ascii(key: str) -> None:
    with pytest.raises(ValueError, match="merchantPaymentId"):
        codec.create_code_body(key, 300, "", 0, 0)


def test_decode_code_created_transcript() -> None:
    env = codec.decode_envelope(201, (
        b'{"resultInfo":{"code":"SUCCESS","message":"Success","codeId":"08100001"},'
        b'"data":{"codeId":"C000000000001","merchantPaymentId":"tx-0001","url":"https://qr.example/C1",'
        b'"deeplink":"paypay://payment?link_key=C1","amount":{"amount":300,"currency":"JPY"},'
        b'"expiryDate":1700000180,"codeType":"ORDER_QR"}}'))
    assert env.result.ok and env.result.code_id == "08100001"
    code = codec.decode_code_created(env.data or {})
    assert code == codec.CodeCreated("C000000000001", "tx-0001", "https://qr.example/C1",
                                     "paypay://payment?link_key=C1", 300,
                                     datetime(2023, 11, 14, 22, 16, 20, tzinfo=timezone.utc))


def test_decode_completed_payment_details_transcript() -> None:
    env = codec.decode_envelope(200, (
        b'{"resultInfo":{"code":"SUCCESS","message":"Success","codeId":"08100001"},'
        b'"data":{"merchantPaymentId":"tx-0001","paymentId":"P000000000002","status":"COMPLETED",'
        b'"amount":{"amount":300,"currency":"JPY"},"requestedAt":1700000000,"acceptedAt":1700000042}}'))
    details = codec.decode_payment_details(env.data or {})
    assert details.state is PaymentState.PAID
    assert (details.payment_id, details.amount) == ("P000000000002", 300)
    assert details.accepted_at == datetime(2023, 11, 14, 22, 14, 2, tzinfo=timezone.utc)


@pytest.mark.parametrize("status, state", [
    ("CREATED", PaymentState.PENDING), ("COMPLETED", PaymentState.PAID), ("FAILED", PaymentState.FAILED),
    ("EXPIRED", PaymentState.FAILED), ("CANCELED", PaymentState.CANCELLED), ("REFUNDED", PaymentState.PAID),
])
def test_provider_states_map_onto_the_payment_port(status: str, state: PaymentState) -> None:
    data = {"merchantPaymentId": "tx-1", "status": status, "amount": {"amount": 200, "currency": "JPY"}}
    assert codec.decode_payment_details(data).state is state


def test_error_envelope_without_data_decodes() -> None:
    env = codec.decode_envelope(400, b'{"resultInfo":{"code":"DYNAMIC_QR_PAYMENT_NOT_FOUND",'
                                     b'"message":"The specified transaction is not found","codeId":"x"}}')
    assert not env.result.ok and env.data is None
    assert env.result.code == codec.DYNAMIC_QR_PAYMENT_NOT_FOUND


@pytest.mark.parametrize("body, problem", [
    (b"<html>502 Bad Gateway</html>", "not JSON"),
    (b'{"data":{}}', "no resultInfo"),
    (b'{"resultInfo":{"message":"x"}}', "no code"),
    (b'{"resultInfo":{"code":"SUCCESS"},"data":[1]}', "not an object"),
    (b"\xff\xfe", "not JSON"),
])
def test_malformed_envelopes_are_refused(body: bytes, problem: str) -> None:
    with pytest.raises(codec.MalformedProviderResponse, match=problem):
        codec.decode_envelope(200, body)


@pytest.mark.parametrize("data, problem", [
    ({"merchantPaymentId": "tx-1", "status": "PAID", "amount": {"amount": 1, "currency": "JPY"}}, "unknown payment"),
    ({"merchantPaymentId": "tx-1", "status": "CREATED", "amount": {"amount": 1, "currency": "USD"}}, "currency"),
    ({"merchantPaymentId": "tx-1", "status": "CREATED", "amount": {"amount": 1.5, "currency": "JPY"}}, "amount"),
    ({"merchantPaymentId": "tx-1", "status": "CREATED", "amount": {"amount": -1, "currency": "JPY"}}, "negative"),
    ({"merchantPaymentId": 7, "status": "CREATED", "amount": {"amount": 1, "currency": "JPY"}}, "merchantPaymentId"),
    ({"merchantPaymentId": "tx-1", "status": "COMPLETED", "amount": {"amount": 1, "currency": "JPY"},
      "acceptedAt": "yesterday"}, "acceptedAt"),
])
def test_payment_details_with_wrong_fields_are_refused(data: dict, problem: str) -> None:
    with pytest.raises(codec.MalformedProviderResponse, match=problem):
        codec.decode_payment_details(data)


def test_decode_refund_and_day_report_transcripts() -> None:
    refund = codec.decode_refund({"merchantRefundId": "tx-1-r1", "paymentId": "P2", "status": "COMPLETED",
                                  "amount": {"amount": 300, "currency": "JPY"}, "acceptedAt": 1700000100})
    assert (refund.status, refund.amount) == ("COMPLETED", 300)
    records = codec.decode_transactions({"date": "2023-11-15", "transactions": [
        {"kind": "capture", "merchantPaymentId": "tx-1", "paymentId": "P2",
         "amount": {"amount": 300, "currency": "JPY"}, "at": 1700000042},
        {"kind": "refund", "merchantPaymentId": "tx-1", "merchantRefundId": "tx-1-r1", "paymentId": "P2",
         "amount": {"amount": 300, "currency": "JPY"}, "at": 1700000100},
    ]})
    assert [(r.kind, r.amount, r.merchant_refund_id) for r in records] == [("capture", 300, ""),
                                                                          ("refund", 300, "tx-1-r1")]
    with pytest.raises(codec.MalformedProviderResponse, match="kind"):
        codec.decode_transactions({"transactions": [{"kind": "payout"}]})


def test_emulator_envelope_round_trips_through_the_decoder() -> None:
    env = codec.decode_envelope(202, codec.envelope(codec.REQUEST_ACCEPTED, "Request accepted"))
    assert env.result == codec.ResultInfo(codec.REQUEST_ACCEPTED, "Request accepted", "")
    assert env.result.ok
