"""The load benchmark still works end to end (tiny and short: speed is for bench/, not for tests).

What is asserted is behaviour, not speed: every ceremony and password login in the run
succeeded, every login's e-mail reached the SMTP server in the other process, and the flood of
unknown-customer guesses and maximum-size malformed bodies got only 4xx answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from softkey import SoftKey, b64url, b64url_decode

from bench.passkey import Assertions

ROOT = Path(__file__).resolve().parent.parent


def test_the_load_generators_assertion_is_softkeys_with_a_valid_signature():
    """bench/passkey.py's verify body is SoftKey.get()'s, byte for byte, but for ECDSA's random
    signature, which is a valid one over authenticatorData || SHA-256(clientDataJSON). (That the
    server accepts it is shown by the benchmark run below: its ceremonies use it.)"""
    key = SoftKey(origin="http://localhost:8123")
    key.user_handle = os.urandom(32)
    challenge = os.urandom(32)
    body = Assertions(key).body(challenge)
    signature = json.loads(body)["response"]["signature"]
    expected = key.get(challenge)
    expected["response"]["signature"] = signature
    assert body == json.dumps(expected, separators=(",", ":")).encode()
    response = expected["response"]
    signed = b64url_decode(response["authenticatorData"]) + hashlib.sha256(
        b64url_decode(response["clientDataJSON"])).digest()
    key.private_key.public_key().verify(b64url_decode(signature), signed, ec.ECDSA(hashes.SHA256()))
    assert json.loads(b64url_decode(response["clientDataJSON"]))["challenge"] == b64url(challenge)


def test_benchmark_runs_every_workload_without_errors(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "sqlite-1w", "--clients", "4", "--tail-clients", "6",
         "--attackers", "4", "--password-clients", "2", "--password-customers", "40", "--warmup", "0.5", "--attack-warmup", "0.5", "--attack-duration", "1.5",
         "--duration", "1.5", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    sqlite = results["runs"]["sqlite-1w"]
    runs = [sqlite["ceremonies"], sqlite["tail"]["ceremonies"], sqlite["under_attack"]["ceremonies"],
            sqlite["password_logins"]]
    for measured in runs:
        assert measured["errors"] == 0 and measured["timeouts"] == 0, measured["error_samples"]
        assert measured["completed"] > 0
        assert measured["mails_delivered"] == measured["mails_expected"] > 0
        assert measured["smtp_sink_cpu_ms_per_mail"] is not None
    for measured in runs[:3]:  # ceremonies: each notice timed from its verify answer to its arrival
        assert measured["notify_lags_measured"] > 0
        assert measured["notify_lag_p50_ms"] <= measured["notify_lag_p99_ms"]
    attack = sqlite["under_attack"]["ceremonies"]["attack_requests"]
    assert attack, "the attackers sent nothing"
    statuses = {int(key.rsplit("_", 1)[1]) for key in attack if key.rsplit("_", 1)[1].isdigit()}
    assert statuses and all(400 <= s < 500 for s in statuses), attack
    assert not [key for key in attack if key.startswith("attack_")], attack  # no dropped connections
    assert sqlite["floor"]["round_per_s"] > 0 and sqlite["ratio"] > 0
    summary = json.loads(run.stdout)
    assert set(summary["sqlite-1w"]) >= {"ceremonies_per_s", "ratio", "p99_ms", "kept_under_attack",
                                         "password_logins_per_server_cpu_s", "cores_needed_at_goal"}
    assert sqlite["goal_budget"]["cores_needed"] > 0


def test_the_goal_budget_is_the_goal_rate_times_all_cpu_per_ceremony():
    from bench.run import goal_budget

    floor = {"round_per_s": 10_000.0, "server_cpu_ms_per_round": 0.1}
    ceremonies = {"ceremony_per_s": 500.0, "server_cpu_ms_per_ceremony": 1.5, "client_cpu_ms_per_ceremony": 0.3,
                  "smtp_sink_cores_busy": 0.05}  # 0.1 ms per ceremony
    budget = goal_budget(floor, ceremonies, cores=2)
    assert budget["goal_ceremonies_per_s"] == 3500.0
    assert budget["cpu_ms_per_ceremony"] == {"server": 1.5, "load_generator": 0.3, "smtp_sink": 0.1}
    assert budget["cores_needed"] == 6.65  # 3,500/s x 1.9 ms
    assert budget["cpu_ms_per_ceremony_allowed"] == 0.571  # 2 cores / 3,500/s
    assert budget["three_bare_requests_ms"] == 0.15
