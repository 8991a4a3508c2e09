"""`pagellm bench serve` against a scripted OpenAI-style server with known delays.

The scripted server streams each completion as: wait TTFT, first chunk, then (N-1) chunks ITL
apart, then a usage chunk and [DONE]. The benchmark's TTFT / ITL / TPOT / E2EL must come out
within tolerance of those scripted values, token counts must come from the usage chunk, and a
request the server fails must be counted as failed, not as a success.
"""
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

BIN = os.environ.get("PAGELLM_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "pagellm"))
TTFT, ITL = 0.30, 0.05
SLOW = os.environ.get("PAGELLM_SANITIZED") == "1"


class Scripted(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fail_every = 0  # fail request number k when k % fail_every == 0 (0 = never)
    count = 0
    lock = threading.Lock()

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Scripted.lock:
            Scripted.count += 1
            k = Scripted.count
        if Scripted.fail_every and k % Scripted.fail_every == 0:
            msg = json.dumps({"error": {"message": "scripted failure", "type": "InternalServerError",
                                        "param": None, "code": 500}}).encode()
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        n = body["max_tokens"] if "max_tokens" in body else body["max_completion_tokens"]
        prompt = body.get("prompt")
        prompt_tokens = len(prompt) if isinstance(prompt, list) else 7
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(obj):
            data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        time.sleep(TTFT)
        for i in range(n):
            if i:
                time.sleep(ITL)
            send({"id": "cmpl-1", "object": "text_completion", "model": body["model"],
                  "choices": [{"index": 0, "text": f"t{i}", "finish_reason": None if i < n - 1 else "length"}]})
        send({"id": "cmpl-1", "object": "text_completion", "model": body["model"], "choices": [],
              "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}})
        send(b"[DONE]")
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture()
def scripted_server():
    Scripted.count = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def run_bench(url, tmp_path, *extra):
    out = tmp_path / "result.json"
    cmd = [BIN, "bench", "serve", "--base-url", url, "--model", "scripted", "--num-prompts", "8",
           "--max-concurrency", "4", "--random-input-len", "16", "--random-output-len", "10",
           "--no-progress", "--save-result", str(out), *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return p, (json.loads(out.read_text()) if out.exists() else None)


def test_metrics_match_scripted_delays(scripted_server, tmp_path):
    Scripted.fail_every = 0
    p, r = run_bench(scripted_server, tmp_path)
    assert p.returncode == 0, p.stderr
    assert r["completed"] == 8 and r["failed"] == 0
    assert r["total_output_tokens"] == 80            # from the usage chunks
    assert r["total_input_tokens"] == 8 * 16         # token-id prompts, exact lengths
    tol = 3 if SLOW else 1
    assert abs(r["ttft_ms"]["median"] - TTFT * 1000) < 60 * tol, r["ttft_ms"]
    assert abs(r["itl_ms"]["median"] - ITL * 1000) < 15 * tol, r["itl_ms"]
    assert abs(r["tpot_ms"]["median"] - ITL * 1000) < 15 * tol, r["tpot_ms"]
    e2el = (TTFT + 9 * ITL) * 1000
    assert abs(r["e2el_ms"]["median"] - e2el) < 120 * tol, r["e2el_ms"]
    assert r["itl_ms"]["n"] == 8 * 9                  # one ITL per chunk after the first
    # 8 requests, 4 at a time, each ~0.75 s: about 1.5 s in all
    assert 1.4 < r["duration"] < 1.5 + 1.5 * tol
    assert "Mean TTFT (ms):" in p.stdout and "P99 ITL (ms):" in p.stdout


def test_failures_are_counted(scripted_server, tmp_path):
    Scripted.fail_every = 4
    p, r = run_bench(scripted_server, tmp_path)
    Scripted.fail_every = 0
    assert r["completed"] == 6 and r["failed"] == 2
    assert "HTTP 500" in p.stdout and "scripted failure" in p.stdout


def test_goodput_and_rate(scripted_server, tmp_path):
    Scripted.fail_every = 0
    # TTFT SLO of 1 ms: no request meets it; e2el SLO of 60 s: all do.
    p, r = run_bench(scripted_server, tmp_path, "--goodput", "ttft:1", "--request-rate", "20")
    assert p.returncode == 0, p.stderr
    assert r["request_goodput"] == 0
    p, r = run_bench(scripted_server, tmp_path, "--goodput", "e2el:60000")
    assert r["request_goodput"] > 0


def test_bad_flags_are_rejected(tmp_path):
    for args, needle in ((["--model", "m", "--num-prompts", "0"], "--num-prompts"),
                         (["--model", "m", "--frobnicate"], "--frobnicate"),
                         (["--num-prompts", "3"], "--model"),
                         (["--model", "m", "--endpoint", "/v2/x"], "--endpoint")):
        p = subprocess.run([BIN, "bench", "serve", *args], capture_output=True, text=True)
        assert p.returncode == 2 and needle in p.stderr, (args, p.stderr)


def test_smoke_against_real_server(server, tmp_path):
    """bench serve against the real `pagellm serve` on the tiny model: both endpoints, exact
    token counts from the server's usage (ignore_eos, token-id prompts)."""
    from conftest import API_KEY
    for endpoint in ("/v1/completions", "/v1/chat/completions"):
        out = tmp_path / "real.json"
        p = subprocess.run([BIN, "bench", "serve", "--base-url", server.url, "--model", "tiny-qwen3",
                            "--api-key", API_KEY, "--endpoint", endpoint, "--num-prompts", "6",
                            "--max-concurrency", "3", "--random-input-len", "12", "--random-output-len", "5",
                            "--ignore-eos", "--no-progress", "--save-result", str(out)],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        r = json.loads(out.read_text())
        assert r["completed"] == 6 and r["failed"] == 0, r
        assert r["total_output_tokens"] == 30
        if endpoint == "/v1/completions":
            assert r["total_input_tokens"] == 6 * 12
        assert r["ttft_ms"]["median"] > 0 and r["e2el_ms"]["median"] >= r["ttft_ms"]["median"]


def test_extra_body_reaches_the_server(server, tmp_path):
    """--extra-body is merged into every request: a structured-output choice caps what the tiny
    model may say (one short word, then EOS), and max_tokens from the extra body overrides the
    dataset's; a non-object is refused."""
    from conftest import API_KEY
    out = tmp_path / "extra.json"
    extra = json.dumps({"max_tokens": 2, "structured_outputs": {"choice": ["yes", "no"]}})
    p = subprocess.run([BIN, "bench", "serve", "--base-url", server.url, "--model", "tiny-qwen3",
                        "--api-key", API_KEY, "--num-prompts", "4", "--random-input-len", "8",
                        "--random-output-len", "50", "--no-progress", "--extra-body", extra,
                        "--save-result", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(out.read_text())
    assert r["completed"] == 4 and r["failed"] == 0, r
    assert 4 <= r["total_output_tokens"] <= 8, r["total_output_tokens"]   # "yes"/"no" (+EOS), not 50
    p = subprocess.run([BIN, "bench", "serve", "--model", "m", "--extra-body", "[1]"], capture_output=True, text=True)
    assert p.returncode == 2 and "--extra-body" in p.stderr


def test_offline_benches_on_tiny_model(tmp_path):
    """bench throughput / latency run the in-process engine and count every token."""
    model = os.path.join(os.path.dirname(__file__), "..", "..", "models", "tiny-qwen3")
    out = tmp_path / "t.json"
    p = subprocess.run([BIN, "bench", "throughput", model, "--num-prompts", "5", "--input-len", "9",
                        "--output-len", "4", "--threads", "1", "--kv-cache-memory", "64MiB", "--no-progress",
                        "--log-level", "error", "--output-json", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["num_requests"] == 5 and r["total_num_tokens"] == 5 * (9 + 4)
    p = subprocess.run([BIN, "bench", "latency", model, "--batch-size", "3", "--input-len", "9", "--output-len", "4",
                        "--num-iters-warmup", "1", "--num-iters", "3", "--threads", "1", "--kv-cache-memory", "64MiB",
                        "--no-progress", "--log-level", "error", "--output-json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert len(r["latencies"]) == 3 and all(t > 0 for t in r["latencies"])
    assert r["percentiles"]["10"] <= r["percentiles"]["50"] <= r["percentiles"]["99"]


def test_offline_throughput_with_json_schema(tmp_path):
    """bench throughput --json-schema constrains every output: an enum document ends after a few
    tokens (EOS is allowed only there and not ignored), where unconstrained outputs run to
    --output-len; a file that is not JSON, or a schema keyword the grammar cannot enforce, is an
    error naming it."""
    model = os.path.join(os.path.dirname(__file__), "..", "..", "models", "tiny-qwen3")
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"enum": ["yes", "no"]}))
    out = tmp_path / "t.json"
    common = ["--num-prompts", "6", "--input-len", "9", "--output-len", "40", "--threads", "1",
              "--kv-cache-memory", "64MiB", "--no-progress", "--log-level", "error"]
    p = subprocess.run([BIN, "bench", "throughput", model, *common, "--json-schema", str(schema),
                        "--output-json", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["json_schema"] == str(schema) and r["num_requests"] == 6
    outputs = r["total_num_tokens"] - 6 * 9
    assert 6 <= outputs <= 6 * 8, outputs  # '"yes"' / '"no"' in a few tokens each, then EOS
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = subprocess.run([BIN, "bench", "throughput", model, *common, "--json-schema", str(bad)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and str(bad) in p.stderr, p.stderr
    unsupported = tmp_path / "u.json"
    unsupported.write_text(json.dumps({"type": "string", "format": "hostname"}))
    p = subprocess.run([BIN, "bench", "throughput", model, *common, "--json-schema", str(unsupported)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "hostname" in p.stderr, p.stderr
