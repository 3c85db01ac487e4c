"""Settings: every bad value is refused with a message naming the setting."""

import pytest

from signet.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("SIGNET_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SIGNET_CONFIG", str(tmp_path / "signet.toml"))
    return tmp_path / "signet.toml"


def test_file_and_environment_are_read(clean_env, monkeypatch):
    clean_env.write_text(
        '[database]\nurl = "sqlite:///x.db"\n[hsm]\npin_file = "/p"\n[web]\nworkers = 3\n'
    )
    monkeypatch.setenv("SIGNET_WEB__WORKERS", "5")
    settings = load_settings()
    assert settings.database.url == "sqlite:///x.db"
    assert settings.hsm.pin_file == "/p"
    assert settings.web.workers == 5  # the environment wins over the file


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[database]\nurl = "mysql://x"\n[hsm]\npin_file="/p"\n', "database.url"),
        ('[hsm]\npin_file = "/p"\npin_env = "X"\n', "hsm"),
        ('[hsm]\npin_file = "/p"\n[web]\nlisten = "8080"\n', "web.listen"),
        ('[hsm]\npin_file = "/p"\n[web]\nworkers = 0\n', "web.workers"),
        ('[hsm]\npin_file = "/p"\n[notify]\nemail_backend = "pigeon"\n', "notify.email_backend"),
        ('[hsm]\npin_file = "/p"\n[sam]\notp_digits = 4\n', "sam.otp_digits"),
        ('[hsm]\npin_file = "/p"\nbogus = 1\n', "hsm.bogus"),
        ('[hsm]\npin_file = "/p"\n[nonsense]\na = 1\n', "nonsense"),
        ('[hsm]\npin_file = "/p"\n[client_certificates]\nenabled = true\n', "trust_anchors"),
        (
            '[hsm]\npin_file = "/p"\n[client_certificates]\nmapping = "cn"\n',
            "client_certificates.mapping",
        ),
        (
            '[hsm]\npin_file = "/p"\n[client_certificates]\ncard_policies = ["x.y"]\n',
            "client_certificates.card_policies",
        ),
        ('[hsm]\npin_file = "/p"\n[web]\ntls_client_ca = "/ca.pem"\n', "tls_certificate"),
        ('[hsm]\npin_file = "/p"\nsessions = 4\n', "hsm.thread_safe"),
        ('[hsm]\npin_file = "/p"\nsessions = 0\nthread_safe = true\n', "hsm.sessions"),
    ],
)
def test_bad_setting_is_named(clean_env, toml, named):
    clean_env.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert named in str(err.value)


def test_toml_syntax_error_is_clear(clean_env):
    clean_env.write_text("[database\nurl=")
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings()


def test_missing_config_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("SIGNET_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match="absent.toml"):
        load_settings()


def test_pin_never_from_the_database_only_file_or_env(clean_env, monkeypatch, tmp_path):
    clean_env.write_text('[hsm]\npin_env = "MY_PIN"\n')
    settings = load_settings()
    with pytest.raises(ConfigError, match=r"\$MY_PIN"):
        settings.hsm.read_pin()
    monkeypatch.setenv("MY_PIN", "1234")
    assert settings.hsm.read_pin() == "1234"
    clean_env.write_text(f'[hsm]\npin_file = "{tmp_path}/nope"\n')
    with pytest.raises(ConfigError, match="hsm.pin_file"):
        load_settings().hsm.read_pin()


def test_the_settings_digest_leaves_out_the_database_password():
    from signet.config import Settings, settings_digest

    def digest(url: str, **more) -> str:
        return settings_digest(Settings(database={"url": url}, hsm={"pin_env": "PIN"}, **more))

    base = "postgresql://signet:one@db/signet"
    assert digest(base) == digest("postgresql://signet:two@db/signet")
    assert digest(base) != digest("postgresql://signet:one@db2/signet")
    assert digest(base) != digest(base, sam={"otp_digits": 8})
    assert digest("postgresql://signet@db/signet?password=one") == digest(
        "postgresql://signet@db/signet?password=two"
    )
