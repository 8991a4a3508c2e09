"""Structured outputs through the API (vLLM's response_format, guided_*, structured_outputs, and
tool_choice required / named): the engine's grammar masks make even the random-weight tiny
model's output follow the constraint."""
import json

import jsonschema

M = "tiny-qwen3"
MSGS = [{"role": "user", "content": "Pick one."}]
NO_THINK = {"chat_template_kwargs": {"enable_thinking": False}}
SCHEMA = {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}}, "required": ["color"],
          "additionalProperties": False}


def test_guided_choice_chat_and_completion(client):
    for seed in range(3):
        r = client.chat.completions.create(model=M, messages=MSGS, max_tokens=10, seed=seed,
                                           extra_body={"guided_choice": ["yes", "no"], **NO_THINK})
        assert r.choices[0].message.content in ("yes", "no") and r.choices[0].finish_reason == "stop"
    r = client.completions.create(model=M, prompt="Answer:", max_tokens=10,
                                  extra_body={"structured_outputs": {"choice": ["alpha", "beta"]}})
    assert r.choices[0].text in ("alpha", "beta")


def test_grammar_end_stops_under_ignore_eos(client):
    # ignore_eos cannot extend a grammar past its end: the completion stops (it used to fail
    # with a 500 once the finished grammar allowed no token at all)
    r = client.completions.create(model=M, prompt="Answer:", max_tokens=20,
                                  extra_body={"ignore_eos": True, "structured_outputs": {"choice": ["alpha", "beta"]}})
    assert r.choices[0].text in ("alpha", "beta") and r.choices[0].finish_reason == "stop"


def test_guided_regex_streaming(client):
    chunks = client.chat.completions.create(model=M, messages=MSGS, max_tokens=12, stream=True,
                                            extra_body={"guided_regex": "[0-9]{3}-[a-c]{2}", **NO_THINK})
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text) == 6 and text[:3].isdigit() and text[3] == "-" and set(text[4:]) <= set("abc")


def test_response_format_json_schema(client):
    r = client.chat.completions.create(model=M, messages=MSGS, max_tokens=120, temperature=0,
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "c", "schema": SCHEMA}},
                                       extra_body=NO_THINK)
    text = r.choices[0].message.content
    assert text.lstrip().startswith("{")
    if r.choices[0].finish_reason == "stop":
        jsonschema.validate(json.loads(text), SCHEMA)


def test_tool_choice_named_gives_a_tool_call(client):
    tools = [{"type": "function", "function": {"name": "pick", "parameters": SCHEMA}}]
    r = client.chat.completions.create(model=M, messages=MSGS, max_tokens=90, temperature=0, tools=tools,
                                       tool_choice={"type": "function", "function": {"name": "pick"}},
                                       extra_body=NO_THINK)
    calls = r.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "pick" and calls[0].id.startswith("chatcmpl-tool-")
    if r.choices[0].finish_reason == "stop":
        jsonschema.validate(json.loads(calls[0].function.arguments), SCHEMA)


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
# Forces the random model to write a hermes tool call, so that the auto tool parser's path through
# the real server is exercised end to end.
HERMES_REGEX = r'<tool_call>\n\{"name": "get_weather", "arguments": \{"city": "(Paris|Rome)"\}\}\n</tool_call>'


def test_auto_tool_call_parsed_streaming_and_not(client):
    kw = dict(model=M, messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, max_tokens=90,
              temperature=0, extra_body={"guided_regex": HERMES_REGEX, **NO_THINK})
    r = client.chat.completions.create(**kw)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls" and msg.content is None
    assert len(msg.tool_calls) == 1 and msg.tool_calls[0].function.name == "get_weather"
    assert msg.tool_calls[0].id.startswith("chatcmpl-tool-")
    args = msg.tool_calls[0].function.arguments
    assert json.loads(args)["city"] in ("Paris", "Rome")
    name, streamed_args, finish, content, first = None, "", None, "", None
    for chunk in client.chat.completions.create(stream=True, **kw):
        for ch in chunk.choices:
            content += ch.delta.content or ""
            for tc in ch.delta.tool_calls or []:
                assert tc.index == 0
                if tc.function.name:
                    assert name is None and not streamed_args, "the name comes first, once"
                    name, first = tc.function.name, tc.id
                streamed_args += tc.function.arguments or ""
            finish = ch.finish_reason or finish
    assert name == "get_weather" and first.startswith("chatcmpl-tool-")
    assert streamed_args == args and finish == "tool_calls" and content == ""


def test_reasoning_split_streaming_and_not(client):
    """Output forced to '<think>...</think>\\n\\nAnswer: ...': the reasoning parser splits it the
    same way whole and streamed."""
    kw = dict(model=M, messages=[{"role": "user", "content": "Yes or no?"}], max_tokens=60, temperature=0,
              extra_body={"guided_regex": r"<think>\nI think (yes|no)\.\n</think>\n\nAnswer: (yes|no)", **NO_THINK})
    r = client.chat.completions.create(**kw)
    msg = r.choices[0].message
    assert msg.model_extra["reasoning_content"] in ("\nI think yes.\n", "\nI think no.\n")
    assert msg.model_extra["reasoning"] == msg.model_extra["reasoning_content"]
    assert msg.content in ("\n\nAnswer: yes", "\n\nAnswer: no")
    reasoning, content = "", ""
    for chunk in client.chat.completions.create(stream=True, **kw):
        for ch in chunk.choices:
            reasoning += (ch.delta.model_extra or {}).get("reasoning_content") or ""
            content += ch.delta.content or ""
    assert reasoning == msg.model_extra["reasoning_content"] and content == msg.content
