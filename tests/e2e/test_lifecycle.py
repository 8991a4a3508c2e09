"""The command line (vLLM's flags, --help, refusals) and the process lifecycle (API key from the
environment, graceful shutdown on SIGTERM / SIGINT with a grace period, exit code 0)."""
import json
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, MODEL, Server

FLAGS = ["--host", "--port", "--api-key", "--served-model-name", "--max-model-len", "--max-num-seqs",
         "--max-num-batched-tokens", "--block-size", "--enable-prefix-caching", "--no-enable-prefix-caching",
         "--gpu-memory-utilization", "--kv-cache-memory", "--kv-cache-dtype", "--dtype", "--device",
         "--tensor-parallel-size", "--seed", "--generation-config", "--chat-template", "--default-chat-template-kwargs",
         "--reasoning-parser", "--enable-auto-tool-choice", "--tool-call-parser", "--max-logprobs", "--load-format",
         "--threads", "--log-level"]


def run(*args):
    return subprocess.run([BIN, "serve", *args], capture_output=True, text=True, timeout=60)


def test_help_documents_every_flag():
    r = run("--help")
    assert r.returncode == 0
    for f in FLAGS:
        assert f in r.stdout, f


@pytest.mark.parametrize("args,fragment", [
    (["--bogus-flag"], "--bogus-flag"),
    (["--port", "http"], "--port"),
    (["--port", "70000"], "--port"),
    (["--block-size", "7"], "--block-size"),
    (["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization"),
    (["--kv-cache-memory", "lots"], "--kv-cache-memory"),
    (["--tensor-parallel-size", "0"], "--tensor-parallel-size"),
    (["--kv-cache-dtype", "fp8", "--device", "cpu"], "fp8"),
    (["--device", "tpu"], "--device"),
    (["--dtype", "float16"], "--dtype"),
    (["--reasoning-parser", "deepseek_r1"], "--reasoning-parser"),
    (["--tool-call-parser", "mistral"], "--tool-call-parser"),
    (["--enable-auto-tool-choice"], "--tool-call-parser"),
    (["--generation-config", "/nonexistent"], "--generation-config"),
    (["--default-chat-template-kwargs", "[1]"], "--default-chat-template-kwargs"),
    (["--load-format", "gguf"], "--load-format"),
    (["--log-level", "loud"], "--log-level"),
    (["--max-logprobs", "-1"], "--max-logprobs"),
    (["--chat-template", "/nonexistent/template.jinja"], "--chat-template"),
    (["--port"], "missing value"),
])
def test_bad_flags_are_refused(args, fragment):
    r = run(MODEL, *args)
    assert r.returncode == 2, r.stderr
    assert fragment in r.stderr


def test_missing_model_dir():
    r = run("/nonexistent/model")
    assert r.returncode == 1 and "/nonexistent/model" in r.stderr


def test_api_key_from_environment():
    s = Server(env={"VLLM_API_KEY": "from-env"})
    try:
        assert requests.get(s.url + "/v1/models").status_code == 401
        assert requests.get(s.url + "/v1/models", headers={"Authorization": "Bearer from-env"}).status_code == 200
    finally:
        s.stop()


def stream_in_thread(url, max_tokens, out):
    def go():
        r = requests.post(url + "/v1/completions", stream=True, timeout=120,
                          json={"prompt": "tell me", "max_tokens": max_tokens, "ignore_eos": True, "stream": True})
        out["status"] = r.status_code
        out["lines"] = [l for l in r.iter_lines() if l]
    t = threading.Thread(target=go)
    t.start()
    return t


def wait_running(s):
    deadline = time.time() + 30
    while time.time() < deadline and s.metric("pagellm:num_requests_running") < 1:
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_finishes_in_flight(sig):
    s = Server(["--shutdown-grace-period", "60"])
    out = {}
    t = stream_in_thread(s.url, 60, out)
    wait_running(s)
    s.proc.send_signal(sig)
    time.sleep(0.3)
    with pytest.raises(requests.ConnectionError):   # no longer accepting
        requests.get(s.url + "/health", timeout=2)
    t.join(60)
    assert s.proc.wait(timeout=60) == 0
    s.stop()
    assert out["status"] == 200 and out["lines"][-1] == b"data: [DONE]"
    last = json.loads(out["lines"][-2][6:])
    assert last["choices"][0]["finish_reason"] == "length"


def test_grace_period_expiry_aborts_with_error_event():
    s = Server(["--shutdown-grace-period", "0.5", "--max-model-len", "4096"])
    out = {}
    t = stream_in_thread(s.url, 4000, out)
    wait_running(s)
    s.proc.send_signal(signal.SIGTERM)
    t.join(60)
    assert s.proc.wait(timeout=60) == 0
    s.stop()
    assert out["status"] == 200 and out["lines"][-1] == b"data: [DONE]"
    err = json.loads(out["lines"][-2][6:])
    assert err["error"]["code"] == 503 and "shutting down" in err["error"]["message"]
