"""affectedge batch on a real multi-node Ray cluster on this machine (a head and a second node, on loopback).

The job's outputs equal the in-process run's, file for file; a worker process
killed mid-job loses nothing; a rerun after a killed driver resumes.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's single-machine mode: every server on 127.0.0.1
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from test_batch import archive, make_archive, outputs, reference  # noqa: E402,F401 (fixtures)

from affectedge import batch  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


def worker_pids():
    """PIDs of the batch actors' processes (Ray titles them ray::BatchWorker)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as fh:
                    cmd = fh.read()
            except OSError:
                continue
            if cmd.startswith(b"ray::BatchWorker"):
                pids.append(int(d))
    return pids


def same_outputs(a, b):
    assert outputs(a) == outputs(b)
    assert pq.read_table(a / "results.parquet").equals(pq.read_table(b / "results.parquet"))


def test_address_is_loopback(cluster):
    assert cluster.address.startswith("127.0.0.1:")


def test_two_node_cluster_equals_in_process(archive, reference, cluster, tmp_path):
    ref_out, ref = reference
    out = tmp_path / "ray"
    s = batch.run_batch(archive, batch.BatchOptions(out=str(out), ray=cluster.address, workers=2, progress=False))
    assert s["executor"] == "ray" and s["workers"] == 2 and s["ray_address"] == cluster.address
    assert len({w["node"] for w in s["worker_info"]}) == 2  # one actor on each node
    assert all(w["files"] > 0 for w in s["worker_info"])  # both worked
    assert s["done"] == ref["done"] and s["failed"] == ref["failed"] and s["skipped"] == ref["skipped"]
    assert s["speakers"] == ref["speakers"]
    same_outputs(ref_out, out)


def test_killed_worker_loses_nothing(archive, reference, cluster, tmp_path):
    ref_out, ref = reference
    out = tmp_path / "ray"
    killed = []

    def kill_one(info):
        if not killed:
            pids = worker_pids()
            assert len(pids) == 2
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    s = batch.run_batch(archive, batch.BatchOptions(out=str(out), ray=cluster.address, workers=2, progress=False,
                                                    on_file=kill_one))
    assert killed
    assert killed[0] not in [w["pid"] for w in s["worker_info"]]  # Ray restarted that actor in a new process
    assert s["done"] == ref["done"] and s["failed"] == ref["failed"]
    same_outputs(ref_out, out)


def test_rerun_after_a_killed_driver_resumes(shared_data, cluster, tmp_path):
    work = make_archive(shared_data, tmp_path / "archive", n_faces=40)
    ref_out = tmp_path / "ref"
    ref = batch.run_batch(work, batch.BatchOptions(out=str(ref_out), ray="none", progress=False, calibration="none"))
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "affectedge", "batch", str(work), "--out", str(out), "--ray", cluster.address,
           "--workers", "2", "--calibration", "none", "--quiet"]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and driver.poll() is None:
        if len(list((out / "files").rglob("*.jsonl"))) >= 3:
            break
        time.sleep(0.01)
    assert driver.poll() is None, "the driver ended before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    n_before = len(list((out / "files").rglob("*.jsonl")))
    assert 3 <= n_before < ref["done"]
    assert not (out / "summary.json").exists()
    # every output the killed driver left is whole: a header with its key and a summary line
    for p in (out / "files").rglob("*.jsonl"):
        lines = p.read_text().splitlines()
        assert json.loads(lines[0])["type"] == "session" and json.loads(lines[-1])["type"] == "summary"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr  # the archive's two bad files
    s = json.loads((out / "summary.json").read_text())
    assert s["resumed"] >= n_before and s["resumed"] + s["done"] == ref["done"] and s["failed"] == ref["failed"]
    assert not [p for p in out.rglob("*.tmp")]
    same_outputs(ref_out, out)
