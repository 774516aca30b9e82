"""The `openai` client (PyPI) against loraserve's OpenAI routes: completions and chat, plain and streamed, n with
a seed, logprobs, adapters picked by `model` (name, and Ray Serve's base:adapter), /v1/models with vLLM's
fields, and an unknown model. Greedy text must equal `loraserve generate` for the same prompt and adapter; the
demo adapters must answer their tasks."""
import openai
import pytest

from conftest import TASKS, reference


@pytest.fixture(scope="module")
def client(demo_server):
    return openai.OpenAI(base_url=demo_server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.mark.parametrize("adapter", sorted(TASKS))
def test_chat_adapter_answers_its_task_as_generate_does(client, adapter):
    r = client.chat.completions.create(model=adapter, messages=[{"role": "user", "content": TASKS[adapter]}],
                                       temperature=0, max_tokens=48)
    text = r.choices[0].message.content
    assert text == reference(TASKS[adapter], adapter, 48, chat=True)
    assert r.model == adapter
    assert r.usage.completion_tokens > 0
    assert r.choices[0].finish_reason in ("stop", "length")


def test_demo_adapters_solve_their_tasks(client):
    answers = {}
    for adapter in TASKS:
        r = client.chat.completions.create(model=adapter, messages=[{"role": "user", "content": TASKS[adapter]}],
                                           temperature=0, max_tokens=48)
        answers[adapter] = r.choices[0].message.content
    assert "512" in answers["calc"]
    assert "THE QUICK KING EATS MILK" in answers["upper"]
    assert "river needs plane small" in answers["reverse"]
    assert "SELECT" in answers["sql"].upper()


def test_base_colon_adapter_is_the_adapter(client):
    plain = client.chat.completions.create(model="upper", messages=[{"role": "user", "content": TASKS["upper"]}],
                                           temperature=0, max_tokens=24)
    ray = client.chat.completions.create(model="demo:upper", messages=[{"role": "user", "content": TASKS["upper"]}],
                                         temperature=0, max_tokens=24)
    assert ray.choices[0].message.content == plain.choices[0].message.content
    assert ray.model == "demo:upper"
    base = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": TASKS["upper"]}],
                                          temperature=0, max_tokens=24)
    assert base.choices[0].message.content == reference(TASKS["upper"], None, 24, chat=True)
    assert base.choices[0].message.content != plain.choices[0].message.content


def test_completion_greedy_equals_generate(client):
    prompt = "def fibonacci(n):"
    r = client.completions.create(model="demo", prompt=prompt, max_tokens=32, temperature=0)
    assert r.choices[0].text == reference(prompt, None, 32)
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens == 32


def test_streams_equal_the_plain_responses(client):
    messages = [{"role": "user", "content": TASKS["calc"]}]
    plain = client.chat.completions.create(model="calc", messages=messages, temperature=0, max_tokens=24)
    chunks = list(client.chat.completions.create(model="calc", messages=messages, temperature=0, max_tokens=24,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]

    prompt = "import numpy as np\n"
    plain = client.completions.create(model="reverse", prompt=prompt, max_tokens=20, temperature=0)
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="reverse", prompt=prompt, max_tokens=20, temperature=0, stream=True))
    assert streamed == plain.choices[0].text == reference(prompt, "reverse", 20)


def test_n_with_seed_is_reproducible(client):
    args = dict(model="sql", prompt="SELECT", max_tokens=16, temperature=1.0, seed=1234, n=3)
    a = client.completions.create(**args)
    b = client.completions.create(**args)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    assert len({c.text for c in a.choices}) > 1, "the n choices should differ"
    assert 3 <= a.usage.completion_tokens <= 48


def test_logprobs(client):
    r = client.completions.create(model="demo", prompt="The", max_tokens=8, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == r.usage.completion_tokens
    assert all(x <= 0 for x in lp.token_logprobs)
    assert all(1 <= len(top) <= 3 for top in lp.top_logprobs)
    assert "".join(lp.tokens) == r.choices[0].text
    c = client.chat.completions.create(model="calc", messages=[{"role": "user", "content": TASKS["calc"]}],
                                       temperature=0, max_tokens=6, logprobs=True, top_logprobs=3)
    content = c.choices[0].logprobs.content
    assert len(content) == c.usage.completion_tokens
    for entry in content:
        assert len(entry.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob, abs=1e-5)


def test_models_list_has_vllm_fields(client):
    models = {m.id: m for m in client.models.list().data}
    assert {"demo", "calc", "upper", "reverse", "sql"} <= set(models)
    base = models["demo"].model_dump()
    assert base["parent"] is None and base["max_model_len"] == 2048 and base["root"].endswith("models/demo/base")
    calc = models["calc"].model_dump()
    assert calc["parent"] == "demo" and calc["root"].endswith("adapters/calc") and calc["max_model_len"] is None
    assert models["sql"].model_dump()["parent"] == "demo"
    assert client.models.retrieve("calc").id == "calc"


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert "The model `nope` does not exist." in str(e.value)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="demo", prompt="hi", max_tokens=100000)
