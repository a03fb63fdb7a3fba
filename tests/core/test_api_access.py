import pytest
from django.core.management import call_command

from core.models import ApiKey, hash_api_key

pytestmark = pytest.mark.django_db


def test_no_credentials_is_401_with_error_envelope(anon_api):
    response = anon_api.get("/api/v1/offers")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_wrong_key_is_401(anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer kota_nope")
    response = anon_api.get("/api/v1/offers")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_valid_key_is_accepted_and_stored_hashed(api, api_key):
    assert api.get("/api/v1/offers").status_code == 200
    stored = ApiKey.objects.get()
    assert stored.digest == hash_api_key(api_key)
    assert api_key not in (stored.digest, stored.prefix)


def test_revoked_key_is_refused(api, api_key):
    call_command("apikey", "revoke", ApiKey.objects.get().prefix)
    assert api.get("/api/v1/offers").status_code == 401


def test_apikey_create_command_prints_a_working_key(anon_api, capsys):
    call_command("apikey", "create", "--name", "ci")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("kota_")
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anon_api.get("/api/v1/customers").status_code == 200


def test_customer_user_session_cannot_use_the_operator_api(client, django_user_model):
    user = django_user_model.objects.create_user("someone", password="pw-123456789")
    client.force_login(user)
    response = client.get("/api/v1/customers")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_staff_session_can_use_the_api(client, staff_user):
    client.force_login(staff_user)
    assert client.get("/api/v1/customers").status_code == 200


def test_malformed_json_is_400(api):
    response = api.post("/api/v1/customers", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_schema_and_offline_docs_are_served(client, staff_user):
    client.force_login(staff_user)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/offers" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    # The UI's assets come from the sidecar package: no CDN is needed.
    assert b"cdn.jsdelivr" not in docs.content


def test_openapi_schema_is_valid_and_warning_free(tmp_path):
    # Catches views whose serializers the schema generator cannot describe.
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )
    assert "/api/v1/customers" in (tmp_path / "schema.yml").read_text()
