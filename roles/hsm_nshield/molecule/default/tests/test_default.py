"""hsm_nshield without vendor media: what an operator can check before the HSM arrives."""

import json

CONFIG = "/opt/nfast/kmdata/config/config"


def test_signet_account_in_nfast_group(host):
    assert host.group("nfast").exists
    assert "nfast" in host.user("signet").groups


def test_hardserver_config_lists_both_hsms(host):
    config = host.file(CONFIG)
    assert config.mode == 0o644
    text = config.content_string
    assert text.startswith("syntax-version=1\n")
    entries = text.split("[nethsm_imports]", 1)[1].split("[rfs_sync_client]", 1)[0].split("-----")
    assert len(entries) == 2
    assert "remote_ip=192.0.2.10" in entries[0]
    assert "remote_esn=1A2B-3C4D-5E6F" in entries[0]
    assert "keyhash=0123456789abcdef0123456789abcdef01234567" in entries[0]
    assert "ntoken_esn=AAAA-BBBB-CCCC" in entries[1]
    assert "local_module=2" in entries[1]


def test_hardserver_config_is_well_formed(host):
    """Every line is a comment, a section header, a key=value or an entry separator."""
    for line in host.file(CONFIG).content_string.splitlines():
        stripped = line.strip()
        assert (not stripped or stripped.startswith("#") or stripped == "-----"
                or (stripped.startswith("[") and stripped.endswith("]")) or "=" in stripped), line


def test_rfs_client_configured(host):
    text = host.file(CONFIG).content_string
    assert "remote_ip=192.0.2.20" in text.split("[rfs_sync_client]", 1)[1]


def test_cknfastrc(host):
    rc = host.file("/opt/nfast/cknfastrc")
    assert "CKNFAST_LOADSHARING=1" in rc.content_string


def test_pin_file_private(host):
    pin = host.file("/etc/signet/hsm.pin")
    assert (pin.user, pin.group, pin.mode) == ("root", "signet", 0o640)


def test_media_steps_skipped(host):
    """No vendor software was installed without media (and nothing pretended to)."""
    assert not host.file("/opt/nfast/sbin/install").exists
    assert not host.service("nc_hardserver").is_running
    assert not host.file("/opt/nfast/kmdata/config/.enrolled-1A2B-3C4D-5E6F").exists


def test_published_pkcs11_settings(host):
    published = json.loads(host.file("/root/hsm_nshield_pkcs11.json").content_string)
    assert published["module"] == "/opt/nfast/toolkits/pkcs11/libcknfast.so"
    assert published["library_env"] == {"NFAST_HOME": "/opt/nfast"}
    assert "/opt/nfast/kmdata/local" in published["read_write_paths"]
