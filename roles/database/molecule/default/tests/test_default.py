"""database with a local PostgreSQL: what an operator checks after the role ran."""

import json
import urllib.parse

PASSWORD = "molecule 'quoted' p@ss/word"


def psql_as_signet(host, sql):
    return host.run(
        "PGPASSWORD=%s psql --no-psqlrc -tA 'host=127.0.0.1 dbname=signet user=signet' -c %s",
        PASSWORD, sql,
    )


def test_postgresql_running_and_enabled(host):
    service = host.service("postgresql@15-main")
    assert service.is_running
    assert service.is_enabled


def test_listens_on_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:5432").is_listening
    assert not host.socket("tcp://0.0.0.0:5432").is_listening


def test_signet_logs_in_with_password_into_its_schema(host):
    cmd = psql_as_signet(host, "SELECT current_schema()")
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.strip() == "signet"


def test_signet_can_create_tables_in_its_schema(host):
    cmd = psql_as_signet(host, "CREATE TABLE probe(id int); DROP TABLE probe;")
    assert cmd.rc == 0, cmd.stderr


def test_wrong_password_refused(host):
    cmd = host.run("PGPASSWORD=wrong psql -tA 'host=127.0.0.1 dbname=signet user=signet' -c 'select 1'")
    assert cmd.rc != 0
    assert "password authentication failed" in cmd.stderr


def test_published_url_round_trips_the_password(host):
    published = json.loads(host.file("/root/database_signet.json").content_string)
    url = urllib.parse.urlsplit(published["url"])
    assert url.scheme == "postgresql+psycopg"
    assert urllib.parse.unquote(url.password) == PASSWORD
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", 5432, "/signet")
    assert published["extras"] == []
