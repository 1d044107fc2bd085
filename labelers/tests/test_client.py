import pytest
import urllib3

from labelers.client import (
    AuthenticationError,
    LabelClient,
    LabelRequest,
    MalformedResponseError,
    PermanentLabelError,
    TransientLabelError,
    ValidationError,
    parse_retry_after,
)

REQUEST = LabelRequest(content_text="I hate you conf=0.87", criteria_text="Label hate")


@pytest.fixture
def api(fake_api_server):
    fake_api_server.reset()
    client = LabelClient(
        base_url=fake_api_server.url, api_key="test-key", connect_timeout=1, read_timeout=0.5
    )
    return fake_api_server, client


def test_it_returns_a_validated_label(api):
    fake, client = api
    result = client.label(REQUEST)
    assert (result.label, result.confidence, result.compute_time) == ("1", 0.87, 0.01)
    assert result.violation_score == pytest.approx(0.87)
    assert fake.calls[0]["criteria_text"] == "Label hate"


def test_violation_score_of_a_zero_is_one_minus_confidence(api):
    _, client = api
    result = client.label(LabelRequest(content_text="nice day conf=0.55", criteria_text="x"))
    assert result.label == "0"
    assert result.violation_score == pytest.approx(0.45)


def test_it_sends_labeler_id_with_latest_version_by_default(api):
    fake, client = api
    client.label(LabelRequest(content_text="hello", labeler_id="lab_1"))
    assert fake.calls[0]["labeler_id"] == "lab_1"
    assert fake.calls[0]["criteria_text"] is None


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"label": "2", "confidence": 0.9, "compute_time": 0.1}',
        '{"label": 1, "confidence": 0.9, "compute_time": 0.1}',
        '{"label": "1", "confidence": 0.3, "compute_time": 0.1}',
        '{"label": "1", "confidence": "0.9", "compute_time": 0.1}',
        '{"label": "1", "confidence": 0.9}',
        "[1, 2]",
    ],
)
def test_a_200_with_a_broken_body_is_an_error_not_a_label(api, body):
    fake, client = api
    fake.configure(malformed=body)
    with pytest.raises(MalformedResponseError):
        client.label(REQUEST)


def test_401_is_an_authentication_error_without_the_key_in_it(api):
    fake, _ = api
    client = LabelClient(base_url=fake.url, api_key="sk-very-secret-wrong")
    with pytest.raises(AuthenticationError) as caught:
        client.label(REQUEST)
    assert "sk-very-secret-wrong" not in str(caught.value)
    assert "sk-very-secret-wrong" not in repr(client)


def test_422_keeps_the_apis_message(api):
    _, client = api
    with pytest.raises(ValidationError) as caught:
        client.label(LabelRequest(content_text="x", criteria_text="c", model="cope-z"))
    assert "unknown model cope-z" in str(caught.value)


def test_429_with_retry_after_is_transient_and_carries_it(api):
    fake, client = api
    fake.configure(script=[429], retry_after="7")
    with pytest.raises(TransientLabelError) as caught:
        client.label(REQUEST)
    assert caught.value.status == 429
    assert caught.value.retry_after == 7


def test_429_without_retry_after_is_transient(api):
    fake, client = api
    fake.configure(script=[429])
    with pytest.raises(TransientLabelError) as caught:
        client.label(REQUEST)
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
def test_server_errors_are_transient(api, status):
    fake, client = api
    fake.configure(script=[status])
    with pytest.raises(TransientLabelError):
        client.label(REQUEST)


def test_a_hang_past_the_read_timeout_is_transient(api):
    fake, client = api
    fake.configure(hang=1.5)
    with pytest.raises(TransientLabelError, match="timeout"):
        client.label(REQUEST)


def test_a_dropped_connection_is_transient(api):
    fake, client = api
    fake.configure(drop=True)
    with pytest.raises(TransientLabelError, match="connection"):
        client.label(REQUEST)


def test_no_key_is_an_authentication_error_without_a_call(api):
    fake, _ = api
    with pytest.raises(AuthenticationError):
        LabelClient(base_url=fake.url, api_key="").label(REQUEST)
    assert fake.calls == []


def test_retry_after_parses_seconds_and_dates():
    assert parse_retry_after("3") == 3
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("999999") == 3600


def test_a_403_fails_that_call_but_is_not_a_refused_key(api):
    fake, client = api
    fake.configure(script=[403])
    with pytest.raises(PermanentLabelError) as caught:
        client.label(REQUEST)
    assert not isinstance(caught.value, AuthenticationError)


def test_a_refused_connection_is_transient_and_not_a_timeout():
    # Port 9 (discard) is closed here: the connection is refused at once.
    client = LabelClient(base_url="http://127.0.0.1:9", api_key="test-key", connect_timeout=1)
    with pytest.raises(TransientLabelError, match="connection error"):
        client.label(REQUEST)


def test_it_goes_through_the_environments_proxy_unless_no_proxy_names_the_host(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = LabelClient(base_url="https://api.example", api_key="k")
    assert isinstance(proxied.pool, urllib3.ProxyManager)
    assert proxied.pool.proxy.host == "proxy.example"
    monkeypatch.setenv("NO_PROXY", "api.example")
    direct = LabelClient(base_url="https://api.example", api_key="k")
    assert not isinstance(direct.pool, urllib3.ProxyManager)
