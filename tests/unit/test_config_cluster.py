"""The cluster settings: [store], [bus] and [cluster], from the file and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatnode.config import ConfigError, load_config


def test_without_cluster_settings_the_store_is_sqlite_and_the_defaults_hold() -> None:
    config = load_config(environ={})
    assert config.store.url is None
    assert config.store.pool_size == 10
    assert config.bus.url is None
    assert config.bus.prefix == "chatnode"
    assert config.cluster.presence_ttl_s == 60


@pytest.mark.parametrize("url", ["postgresql://chat:pw@db.example/chat",
                                 "postgres://db.example:5433/chat"])
def test_both_postgresql_schemes_are_accepted(url: str) -> None:
    assert load_config(environ={"CHATNODE_STORE_URL": url}).store.url == url


def test_the_environment_sets_every_cluster_setting() -> None:
    config = load_config(environ={
        "CHATNODE_STORE_URL": "postgresql://db/chat", "CHATNODE_STORE_POOL_SIZE": "3",
        "CHATNODE_BUS_URL": "rediss://cache:6380/0", "CHATNODE_BUS_PREFIX": "team",
        "CHATNODE_CLUSTER_PRESENCE_TTL_S": "15"})
    assert config.store.url == "postgresql://db/chat" and config.store.pool_size == 3
    assert config.bus.url == "rediss://cache:6380/0" and config.bus.prefix == "team"
    assert config.cluster.presence_ttl_s == 15


def test_the_file_sets_the_sections_and_the_environment_overrides_it(tmp_path: Path) -> None:
    path = tmp_path / "chatnode.toml"
    path.write_text('[store]\nurl = "postgresql://file/chat"\npool_size = 4\n'
                    '[bus]\nurl = "redis://file:6379"\n[cluster]\npresence_ttl_s = 30\n')
    config = load_config(path, environ={"CHATNODE_STORE_URL": "postgres://env/chat"})
    assert config.store.url == "postgres://env/chat" and config.store.pool_size == 4
    assert config.bus.url == "redis://file:6379" and config.cluster.presence_ttl_s == 30


@pytest.mark.parametrize("url", ["mysql://root:s3cret@db/chat", "sqlite:///tmp/x.db",
                                 "db.example/chat", "postgresql:/no-slashes",
                                 "POSTGRESQL://s3cret@db/chat", "s3cret@db://chat"])
def test_a_store_url_of_another_kind_is_one_line_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"CHATNODE_STORE_URL": url})
    message = str(caught.value)
    assert "[store] url must be a postgresql:// or postgres:// URL" in message
    assert "\n" not in message and "s3cret" not in message


def test_a_bus_url_that_is_not_redis_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[bus\] url must be a redis:// or rediss:// URL"):
        load_config(environ={"CHATNODE_BUS_URL": "http://cache:6379"})


def test_a_pool_size_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="pool_size"):
        load_config(environ={"CHATNODE_STORE_POOL_SIZE": "0"})
