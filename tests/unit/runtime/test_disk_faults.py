"""A bake whose adapter folder fills up or turns read-only fails cleanly: items back to pending,
the error recorded, nothing half-written left, and the next bake succeeds once there is room.

The adapter folder is a real size-limited filesystem (a tmpfs mounted on it). Mounting needs
root (CAP_SYS_ADMIN); elsewhere these tests are skipped with the reason.
"""

import os
import subprocess

import pytest

from agent.runtime.config import RuntimeConfig
from agent.runtime.worker import spawn_worker
from memory.store import MemoryStore
from tests.unit.tiny_bake import tiny_bake

TINY_BAKE = tiny_bake()


@pytest.fixture
def small_disk(tmp_path):
    """``tmp_path/adapters`` as a 1 MiB tmpfs; unmounted afterwards."""
    mount = tmp_path / "adapters"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount, leave_bytes: int) -> None:
    stat = os.statvfs(mount)
    free = stat.f_bavail * stat.f_frsize
    with open(mount / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))


def setup(tiny_model, tmp_path):
    config = RuntimeConfig(home=tmp_path, model=str(tiny_model), bake=TINY_BAKE, engine={"kind": "transformers"},
                           gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})
    store = MemoryStore(config.db_path)
    store.create_agent("ada")
    ids = [store.add("ada", text, "news").item.id for text in ("The tower is blue.", "The bridge is red.")]
    return config, store, ids


def check_failed_cleanly(config, store, ids, reason: str) -> None:
    run = store.runs("ada")[-1]
    assert run.status == "failed" and reason in run.error, run.error
    assert [store.get(i).status for i in ids] == ["pending", "pending"]
    assert store.adapters("ada") == []
    folder = config.adapters_dir / "ada"
    assert not folder.exists() or not any(".tmp-" in p.name or p.name.startswith("run-") for p in folder.iterdir())


def test_a_full_disk_fails_the_bake_cleanly_and_the_next_one_succeeds(tiny_model, tmp_path, small_disk):
    config, store, ids = setup(tiny_model, tmp_path)
    fill(small_disk, leave_bytes=4096)  # room for the folders, not for the weights
    assert spawn_worker(config, "ada").wait(timeout=300) != 0
    check_failed_cleanly(config, store, ids, "No space left on device")
    (small_disk / "filler").unlink()
    assert spawn_worker(config, "ada").wait(timeout=300) == 0
    assert sorted(store.adapters("ada")[-1].item_ids) == sorted(ids)


def test_a_read_only_adapter_folder_fails_the_bake_cleanly(tiny_model, tmp_path, small_disk):
    config, store, ids = setup(tiny_model, tmp_path)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    assert spawn_worker(config, "ada").wait(timeout=300) != 0
    check_failed_cleanly(config, store, ids, "not writable")
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert spawn_worker(config, "ada").wait(timeout=300) == 0
