"""tokens.py: ES256 keys from settings or generated once (also when workers start together), settings checks."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tuskbase.config import Settings, SettingsError, load
from tuskbase.tokens import Signer, TokenError

SECRET = "s" * 40


def _kid(data_dir: str) -> str:
    return Signer.from_settings(Settings(jwt_secret=SECRET, jwt_algorithm="ES256", data_dir=Path(data_dir))).jwk["kid"]


def test_generated_key_is_shared_by_processes_starting_together(tmp_path):
    with ProcessPoolExecutor(4) as pool:
        kids = set(pool.map(_kid, [str(tmp_path)] * 8))
    assert len(kids) == 1
    assert (tmp_path / "jwt_es256.pem").stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_key_from_pem_text_or_file(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    (tmp_path / "key.pem").write_text(pem)
    for value in (pem, str(tmp_path / "key.pem")):
        signer = Signer.from_settings(Settings(jwt_secret=SECRET, jwt_algorithm="ES256", jwt_private_key=value,
                                               data_dir=tmp_path / "data"))
        token = signer.sign({"role": "anon", "exp": 4_000_000_000})
        assert jwt.decode(token, key.public_key(), algorithms=["ES256"])["role"] == "anon"
        assert signer.verify(token)["role"] == "anon"
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(SettingsError, match="TUSKBASE_JWT_PRIVATE_KEY"):
        Signer.from_settings(Settings(jwt_secret=SECRET, jwt_algorithm="ES256", jwt_private_key=p384))


def _pem(key, public: bool = False) -> str:
    if public:
        return key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_key_rotation_keeps_earlier_tokens_valid_until_the_old_key_is_dropped(tmp_path):
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    before = Signer.from_settings(Settings(jwt_secret=SECRET, jwt_algorithm="ES256", jwt_private_key=_pem(old)))
    token, api_key = before.sign({"role": "authenticated", "exp": 4_000_000_000}), before.api_key("anon")
    (tmp_path / "old.pub").write_text(_pem(old, public=True))
    rotated = Signer.from_settings(Settings(jwt_secret=SECRET, jwt_algorithm="ES256", jwt_private_key=_pem(new),
                                            jwt_previous_public_keys=str(tmp_path / "old.pub")))
    assert rotated.verify(token)["role"] == "authenticated"
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [rotated.jwk["kid"], before.jwk["kid"]]
    assert jwt.get_unverified_header(rotated.sign({"role": "anon", "exp": 4_000_000_000}))["kid"] == rotated.jwk["kid"]
    after = Signer.from_settings(Settings(jwt_secret=SECRET, jwt_algorithm="ES256", jwt_private_key=_pem(new)))
    with pytest.raises(TokenError):
        after.verify(token)
    assert after.verify(api_key)["role"] == "anon"  # API keys in shipped apps survive the rotation
    with pytest.raises(SettingsError, match="TUSKBASE_JWT_PREVIOUS_PUBLIC_KEYS"):
        Signer.from_settings(Settings(jwt_secret=SECRET, jwt_algorithm="ES256", jwt_private_key=_pem(new),
                                      jwt_previous_public_keys="-----BEGIN PUBLIC KEY-----\nnope\n"
                                                               "-----END PUBLIC KEY-----"))


def test_hs256_signer_refuses_es256_tokens(tmp_path):
    es = Signer.from_settings(Settings(jwt_secret=SECRET, jwt_algorithm="ES256", data_dir=tmp_path))
    hs = Signer.from_settings(Settings(jwt_secret=SECRET, data_dir=tmp_path))
    token = es.sign({"role": "authenticated", "exp": 4_000_000_000})
    with pytest.raises(TokenError):
        hs.verify(token)
    assert es.verify(hs.sign({"role": "anon", "exp": 4_000_000_000}))["role"] == "anon"


@pytest.mark.parametrize(("variable", "value"), [
    ("JWT_ALGORITHM", "RS256"), ("AUTH_PASSWORD_MIN_LENGTH", "3"), ("AUTH_PASSWORD_REQUIRED_CHARACTERS", "emoji"),
    ("AUTH_OTP_LENGTH", "4"), ("AUTH_RATE_LIMIT_PER_IP", "0"), ("SMTP_URL", "http://mail"),
    ("AUTH_OIDC_PROVIDERS", "not json"), ("AUTH_OIDC_PROVIDERS", json.dumps({"x": {"issuer": "http://i"}})),
    ("AUTH_ANONYMOUS_ENABLED", "maybe"),
])
def test_bad_auth_settings_name_the_variable(variable, value):
    with pytest.raises(SettingsError, match=f"TUSKBASE_{variable}"):
        load({f"TUSKBASE_{variable}": value})
