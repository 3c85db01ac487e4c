"""signet_app on SoftHSM + SQLite, checked as an operator would."""

import json

import pytest

# The certificate is verified: the self-signed one is its own trust anchor.
HEALTH = ("curl -sS --cacert /etc/signet/tls/signet.crt --resolve signet.molecule.test:443:127.0.0.1 "
          "-w '\\n%{http_code}' https://signet.molecule.test/health")


def test_installed_as_a_wheel_in_its_venv(host):
    out = host.check_output("/opt/signet/venv/bin/pip show signet")
    assert "Location: /opt/signet/venv/lib/python3.11/site-packages" in out
    assert host.file("/opt/signet/venv/bin/signet").is_file


def test_service_account(host):
    user = host.user("signet")
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == "/var/lib/signet"
    assert "softhsm" in user.groups


def test_settings_private_and_complete(host):
    conf = host.file("/etc/signet/signet.toml")
    assert (conf.user, conf.group, conf.mode) == ("root", "signet", 0o640)
    text = conf.content_string
    for section in ("[database]", "[hsm]", "[ca]", "[sam]", "[web]", "[audit]"):
        assert section in text
    assert 'url = "sqlite:////var/lib/signet/signet.db"' in text
    assert 'pin_file = "/etc/signet/hsm.pin"' in text
    assert 'checkpoint_file = "/var/lib/signet/audit-checkpoints.jsonl"' in text


def test_the_service_checkpointed_the_audit_trail_when_it_started(host):
    export = host.file("/var/lib/signet/audit-checkpoints.jsonl")
    assert (export.user, export.group, export.mode) == ("signet", "signet", 0o640)
    assert '"event":"audit.checkpoint"' in export.content_string


def test_service_running_hardened(host):
    service = host.service("signet")
    assert service.is_running
    assert service.is_enabled
    props = host.check_output(
        "systemctl show signet -p User -p ProtectSystem -p NoNewPrivileges -p PrivateTmp "
        "-p ProtectHome -p CapabilityBoundingSet -p ReadWritePaths"
    )
    assert "User=signet" in props
    assert "ProtectSystem=strict" in props
    assert "NoNewPrivileges=yes" in props
    assert "PrivateTmp=yes" in props
    assert "ProtectHome=yes" in props
    assert "CapabilityBoundingSet=\n" in props + "\n"
    assert "/var/lib/softhsm/tokens" in props


def test_sandbox_enforced(host):
    """The service's processes really see / read-only and the state directory writable."""
    pid = host.check_output("systemctl show -p MainPID --value signet")
    options = {}
    for line in host.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        fields = line.split()
        options[fields[4]] = fields[5].split(",")  # mount point -> per-mount options
    assert "ro" in options["/"]
    assert "rw" in options["/var/lib/signet"]
    assert "rw" in options["/var/lib/softhsm/tokens"]


def test_gunicorn_on_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:8080").is_listening
    assert not host.socket("tcp://0.0.0.0:8080").is_listening


def test_nginx_terminates_tls(host):
    assert host.service("nginx").is_running
    assert host.socket("tcp://0.0.0.0:443").is_listening
    key = host.file("/etc/signet/tls/signet.key")
    assert (key.user, key.mode) == ("root", 0o600)


def test_http_redirects_to_https(host):
    out = host.check_output("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' http://127.0.0.1/health")
    assert out.startswith("301 https://")


def test_health_200_through_https(host):
    out = host.check_output(HEALTH)
    body, status = out.rsplit("\n", 1)
    assert status == "200", body
    report = json.loads(body)
    assert report["status"] == "ok"


def test_logs_in_the_journal(host):
    assert "GET /health" in host.check_output("journalctl -u signet --no-pager -o cat")


@pytest.mark.parametrize("command", ["signet audit verify", "signet users list"])
def test_admin_cli_works_for_the_operator(host, command):
    cmd = host.run(f"runuser -u signet -- env SIGNET_CONFIG=/etc/signet/signet.toml /opt/signet/venv/bin/{command}")
    assert cmd.rc == 0, cmd.stderr


def test_declared_oauth2_clients_reach_signet(host):
    secret = host.file("/etc/signet/oauth2-client-acme-sign.secret")
    assert (secret.user, secret.group, secret.mode) == ("root", "signet", 0o640)
    assert "molecule-only-secret" not in host.file("/etc/signet/signet.toml").content_string
    cmd = host.run(
        "runuser -u signet -- env SIGNET_CONFIG=/etc/signet/signet.toml "
        "/opt/signet/venv/bin/signet oauth2-clients list --json"
    )
    assert cmd.rc == 0, cmd.stderr
    clients = {c["client_id"]: c for c in json.loads(cmd.stdout)}
    assert clients["acme-sign"]["source"] == "settings" and not clients["acme-sign"]["public"]
    assert clients["pocket"]["public"] and clients["pocket"]["redirect_uris"] == [
        "http://127.0.0.1:8765/cb"
    ]
