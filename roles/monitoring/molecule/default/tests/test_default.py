"""monitoring: logs reach the (stand-in) SIEM collectors, SNMP answers only whom it should."""

import time
import uuid

import pytest

SYSUPTIME = "1.3.6.1.2.1.1.3.0"
V3 = "-v3 -l authPriv -u signetmon -a SHA-256 -A molecule-auth-1 -x AES -X molecule-priv-1"


def wait_for(host, path, needle, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if host.file(path).exists and needle.encode() in host.file(path).content:
            return True
        time.sleep(1)
    return False


@pytest.mark.parametrize("collector", ["siem-udp", "siem-tcp", "siem-tls"])
def test_syslog_reaches_the_siem(host, collector):
    marker = f"signet-molecule-{uuid.uuid4()}"
    host.check_output("logger -t signet %s", marker)
    assert wait_for(host, f"/var/log/standin-{collector}.log", marker), collector


def test_forwarded_as_rfc5424(host):
    marker = f"rfc5424-{uuid.uuid4()}"
    host.check_output("logger -t signet %s", marker)
    assert wait_for(host, "/var/log/standin-siem-tcp.log", marker)
    line = next(l for l in host.file("/var/log/standin-siem-tcp.log").content_string.splitlines()
                if marker in l)
    # octet-counted framing, then "<PRI>1 TIMESTAMP HOST APP ..."
    assert " <" in line and ">1 " in line and " signet " in line


def test_rsyslog_config_valid(host):
    assert host.run("rsyslogd -N1").rc == 0


def test_snmpd_listens_on_loopback(host):
    assert host.service("snmpd").is_running
    assert host.socket("udp://127.0.0.1:161").is_listening


def test_snmpv3_user_reads(host):
    out = host.check_output(f"snmpget {V3} 127.0.0.1 {SYSUPTIME}")
    assert "Timeticks" in out


def test_snmpv3_wrong_passphrase_refused(host):
    cmd = host.run(f"snmpget -t 1 -r 0 {V3.replace('molecule-auth-1', 'wrong-auth-1')} 127.0.0.1 {SYSUPTIME}")
    assert cmd.rc != 0


def test_community_refused_outside_its_source_network(host):
    cmd = host.run(f"snmpget -v2c -c molecule-community -t 1 -r 0 127.0.0.1 {SYSUPTIME}")
    assert cmd.rc != 0
    assert "Timeout" in cmd.stderr


def test_credentials_private(host):
    creds = host.file("/etc/snmp/snmpd.conf.d/signet-credentials.conf")
    assert (creds.user, creds.mode) == ("root", 0o600)
    assert "molecule-auth-1" not in host.file("/etc/snmp/snmpd.conf").content_string


def test_trap_receiver_gets_coldstart(host):
    host.check_output("systemctl restart snmpd")
    assert wait_for(host, "/var/log/standin-snmp-traps.log", "molecule-traps")


def test_signet_mib_served_through_the_agent(host):
    text = host.file("/etc/snmp/snmpd.conf").content_string
    assert (
        "pass_persist .1.3.6.1.4.1.32473.1 /usr/bin/sudo -n -u signet "
        "/opt/signet/venv/bin/signet snmp-agent" in text
    )
    sudoers = host.file("/etc/sudoers.d/signet-snmp")
    assert (sudoers.user, sudoers.mode) == ("root", 0o440)
    assert host.run("visudo -cf /etc/sudoers.d/signet-snmp").rc == 0


def test_signet_snmp_settings_name_their_secrets(host):
    agent = host.file("/etc/signet/signet.toml.d/60-snmp.toml").content_string
    assert 'base_oid = "1.3.6.1.4.1.32473.1"' in agent
    # the trap receiver is a sink of Signet's event forwarder
    settings = host.file("/etc/signet/signet.toml.d/40-events.toml").content_string
    assert '[events.sinks.nms]\ntype = "snmp"' in settings
    assert 'auth_passphrase = "file:/etc/signet/snmp/nms.auth"' in settings
    assert "molecule-signet-auth" not in settings
    secret = host.file("/etc/signet/snmp/nms.auth")
    assert (secret.user, secret.group, secret.mode) == ("root", "signet", 0o640)
