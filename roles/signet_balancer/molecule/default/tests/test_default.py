"""signet_balancer: nginx terminates TLS for the public name and balances round robin over the
nodes; a node that stops answering is passed over, and the request that found it down is
answered by the other."""

CURL = "curl -s --cacert /root/balancer.crt --resolve signet.molecule.test:443:127.0.0.1"
URL = "https://signet.molecule.test/health"


def answers(host, count):
    return [host.check_output(f"{CURL} {URL}") for _ in range(count)]


def test_site_and_key(host):
    site = host.file("/etc/nginx/sites-enabled/signet-balancer.conf")
    assert site.is_symlink
    directives = [line.split("#")[0].strip() for line in site.content_string.splitlines()]
    # A POST that reached a node is never resent: no non_idempotent, no retry on its answers.
    assert [d for d in directives if d.startswith("proxy_next_upstream ")] == [
        "proxy_next_upstream error timeout;"
    ]
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    key = host.file("/etc/nginx/signet-tls/signet.key")
    assert (key.user, key.mode) == ("root", 0o600)
    assert host.service("nginx").is_running


def test_round_robin_over_both_nodes(host):
    assert set(answers(host, 4)) == {"node-a", "node-b"}
    header = host.check_output(f"{CURL} -D - -o /dev/null {URL}")
    assert "x-signet-node: 127.0.0.1:808" in header.lower()


def test_a_node_down_is_passed_over(host):
    host.run("systemctl stop standin-node-a")
    try:
        # The first request to find node A down is retried on node B (nothing reached A).
        assert answers(host, 6) == ["node-b"] * 6
    finally:
        host.run(
            "systemd-run --unit standin-node-a /usr/bin/python3 -m http.server "
            "--bind 127.0.0.1 --directory /srv/node-a 8081"
        )
