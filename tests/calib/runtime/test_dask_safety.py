"""Dask, safely and quietly (issues 18.11 and 16.8).

The local cluster listens on loopback only and serves its HTTP dashboard only on request;
an address that is not a Dask scheduler fails with one line instead of hanging; ``--help``
says a scheduler must be trusted; a successful ``--workers`` run prints no Dask log lines
and no ``CommClosedError`` traceback.
"""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import calib.runtime.distributed as distributed
from calib.cli import main
from calib.errors import CalibError
from calib.runtime.distributed import cluster_client, parse_scheduler

EXAMPLE = Path(__file__).parents[3] / "datasets" / "examples" / "reram_pulse_response.h5"
LOOPBACK = {"127.0.0.1", "::1"}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on loopback that accepts connections and never answers (like an
    instrument waiting for a command)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()
    for conn in held:
        conn.close()


def _listening(proc: psutil.Process) -> list[tuple[str, int]]:
    out = []
    for p in [proc, *proc.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out += [(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def test_a_scheduler_that_is_not_dask_fails_with_one_line(silent_server, monkeypatch) -> None:
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 1.0)
    address = f"tcp://127.0.0.1:{silent_server}"
    with pytest.raises(CalibError, match=r"no Dask scheduler answered|cannot reach") as info:
        _ = cluster_client(address).__enter__()
    assert "\n" not in str(info.value)


def _status_page(port: int) -> int:
    """HTTP status of the dashboard's /status page on the scheduler's HTTP port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_local_cluster_is_loopback_only_and_has_no_dashboard_unless_asked() -> None:
    before = set(_listening(psutil.Process()))
    with cluster_client("local", 1) as client:
        new = [a for a in _listening(psutil.Process()) if a not in before]
        assert new and all(ip in LOOPBACK for ip, _ in new), new
        http_port = client.scheduler_info()["services"]["dashboard"]
        assert http_port != 8787 and _status_page(http_port) == 404
    spec = parse_scheduler("local", 1)
    spec = type(spec)(spec.kind, spec.workers, spec.address, dashboard=True)
    with cluster_client(spec) as client:
        port = client.scheduler_info()["services"]["dashboard"]
        addrs = [ip for ip, p in _listening(psutil.Process()) if p == port]
        assert addrs and all(ip in LOOPBACK for ip in addrs), addrs
        assert _status_page(port) == 200


@pytest.mark.parametrize("command", [["fit", "pulse-response"], ["fit-many"], ["validate"]])
def test_help_says_a_scheduler_must_be_trusted(command: list[str], capsys) -> None:
    assert main([*command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "must be trusted" in text and "unauthenticated pickle" in text
    assert "--dashboard" in text


def test_a_run_with_workers_prints_no_dask_chatter(tmp_path: Path, capfd) -> None:
    out = tmp_path / "p.json"
    assert main(["fit", "pulse-response", str(EXAMPLE), "-o", str(out), "--workers", "1"]) == 0
    err = capfd.readouterr().err  # file descriptors: worker processes' output too
    assert "distributed." not in err and "Traceback" not in err and "CommClosed" not in err, err
    assert out.exists()
