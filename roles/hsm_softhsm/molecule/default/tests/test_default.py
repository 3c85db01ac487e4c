"""hsm_softhsm, checked as an operator would: the token is there, its owner can log in, the PIN
file is private to the service group."""

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def test_package_installed(host):
    assert host.package("softhsm2").is_installed


def test_config_points_at_the_token_dir(host):
    conf = host.file("/etc/softhsm/softhsm2.conf")
    assert conf.mode == 0o644
    assert "directories.tokendir = /var/lib/softhsm/tokens/" in conf.content_string


def test_token_initialised_once_with_label(host):
    out = host.check_output("runuser -u signet -- softhsm2-util --show-slots")
    labels = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Label:" in line]
    assert labels.count("signet") == 1


def test_token_files_belong_to_the_service_account(host):
    tokens = host.check_output("find /var/lib/softhsm/tokens -mindepth 1 -maxdepth 1 -type d")
    assert tokens, "no token directory"
    for path in tokens.splitlines():
        assert host.file(path).user == "signet"


def test_user_pin_logs_in(host):
    cmd = host.run(
        "runuser -u signet -- pkcs11-tool --module %s --token-label signet --login "
        "--pin \"$(cat /etc/signet/hsm.pin)\" --list-objects",
        MODULE,
    )
    assert cmd.rc == 0, cmd.stderr


def test_pin_file_private(host):
    pin = host.file("/etc/signet/hsm.pin")
    assert pin.user == "root"
    assert pin.group == "signet"
    assert pin.mode == 0o640
    assert host.file("/etc/signet").mode == 0o750
