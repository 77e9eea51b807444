from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import LocalCluster


@pytest.fixture
def local_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A started local cluster in a temporary config directory; stopped afterwards."""
    cluster = LocalCluster(config_dir=tmp_path / "cortex-config")
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()
