"""`pagellm serve --tensor-parallel-size 2 --device cpu`: the model split over two simulated ranks
(two CPU backends sharing --threads, the in-process communicator) behind the one server.

Greedy completions, their logprobs, and streamed chat equal the session server's (TP=1, same
flags), through the official openai client and plain HTTP; a size that does not divide the
model's heads is refused at start-up naming the field. The GPU version of the same check is
scripts/tp_check.sh (NCCL, one GPU per rank)."""
import subprocess

import openai
import pytest

from conftest import API_KEY, BIN, MAIN_FLAGS, MODEL, Server

M = "tiny-qwen3"


@pytest.fixture(scope="module")
def tp_server():
    # --threads 2 split over 2 ranks: one thread each, as the session server's --threads 1.
    s = Server([*MAIN_FLAGS, "--tensor-parallel-size", "2", "--threads", "2"])
    yield s
    s.stop()


def oa(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


PROMPTS = [f"Prompt {i}: the {w} is" for i, w in enumerate(["cat", "river", "engine", "violin", "harbor"])]


def test_greedy_completions_equal_tp1(server, tp_server):
    a_cl, b_cl = oa(server), oa(tp_server)
    for p in PROMPTS:
        kw = dict(model=M, prompt=p, max_tokens=12, temperature=0, logprobs=3, extra_body={"ignore_eos": True})
        a, b = a_cl.completions.create(**kw), b_cl.completions.create(**kw)
        assert b.choices[0].text == a.choices[0].text, p
        assert b.usage == a.usage
        la, lb = a.choices[0].logprobs, b.choices[0].logprobs
        assert lb.tokens == la.tokens
        for x, y in zip(la.token_logprobs, lb.token_logprobs):
            assert abs(x - y) < 1e-3, (p, la.token_logprobs, lb.token_logprobs)


def test_batched_requests_equal_tp1(server, tp_server):
    """One request with n=1 over several prompts at once: the ranks run mixed batches."""
    a_cl, b_cl = oa(server), oa(tp_server)
    kw = dict(model=M, prompt=PROMPTS, max_tokens=8, temperature=0, extra_body={"ignore_eos": True})
    a, b = a_cl.completions.create(**kw), b_cl.completions.create(**kw)
    assert sorted((c.index, c.text) for c in b.choices) == sorted((c.index, c.text) for c in a.choices)


def test_streamed_chat_equals_tp1(server, tp_server):
    for p in PROMPTS[:3]:
        outs = []
        for s in (server, tp_server):
            text = ""
            for ev in oa(s).chat.completions.create(
                    model=M, messages=[{"role": "user", "content": p}], max_tokens=8, temperature=0, stream=True,
                    extra_body={"ignore_eos": True, "chat_template_kwargs": {"enable_thinking": False}}):
                for ch in ev.choices:
                    text += ch.delta.content or ""
            outs.append(text)
        assert outs[1] == outs[0], p


def test_size_not_dividing_heads_is_refused():
    # tiny-qwen3 has 4 query heads: 3 ranks cannot split them
    r = subprocess.run([BIN, "serve", MODEL, "--device", "cpu", "-tp", "3", "--port", "0"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "num_attention_heads" in r.stderr, r.stderr
