"""TGI's and LoRAX's clients (PyPI) against loraserve's TGI routes: huggingface_hub's
InferenceClient.text_generation with adapter_id (plain and streamed, as the TGI multi-LoRA blog does),
`text-generation` (TGI's client: generate and generate_stream with details), and `lorax-client` (generate and
generate_stream with adapter_id, details with LoRAX's fields). Greedy text must equal `loraserve generate`."""
import pytest
from huggingface_hub import InferenceClient
from lorax import Client as LoraxClient
from text_generation import Client as TgiClient

from conftest import TASKS, chatml, reference


@pytest.fixture(scope="module")
def hf(demo_server):
    return InferenceClient(base_url=demo_server.url, timeout=300)


@pytest.mark.parametrize("adapter", ["calc", "upper"])
def test_huggingface_hub_text_generation_with_adapter(hf, adapter):
    prompt = chatml(TASKS[adapter])
    text = hf.text_generation(prompt, adapter_id=adapter, max_new_tokens=32)
    assert text == reference(TASKS[adapter], adapter, 32, chat=True)
    details = hf.text_generation(prompt, adapter_id=adapter, max_new_tokens=32, details=True)
    assert details.generated_text == text
    assert details.details.generated_tokens == len(details.details.tokens)
    assert details.details.finish_reason in ("eos_token", "length")
    # As TGI does, a streamed special token (the end-of-sequence one) carries its text; generated_text has none.
    events = list(hf.text_generation(prompt, adapter_id=adapter, max_new_tokens=32, stream=True, details=True))
    assert "".join(e.token.text for e in events if not e.token.special) == text
    streamed = "".join(hf.text_generation(prompt, adapter_id=adapter, max_new_tokens=32, stream=True))
    assert streamed == "".join(e.token.text for e in events)
    assert events[-1].generated_text == text
    assert events[-1].details.generated_tokens == len(events)
    assert [e.token.id for e in events] == [t.id for t in details.details.tokens]


def test_huggingface_hub_base_model(hf):
    prompt = "def fibonacci(n):"
    assert hf.text_generation(prompt, max_new_tokens=24) == reference(prompt, None, 24)


def test_text_generation_client(demo_server):
    client = TgiClient(demo_server.url, timeout=300)
    prompt = "class Stack:"
    r = client.generate(prompt, max_new_tokens=20, decoder_input_details=True, top_n_tokens=2)
    assert r.generated_text == reference(prompt, None, 20)
    assert r.details.finish_reason.value in ("length", "eos_token")
    assert len(r.details.tokens) == r.details.generated_tokens == 20
    assert len(r.details.top_tokens) == 20 and all(len(t) == 2 for t in r.details.top_tokens)
    assert r.details.prefill[0].logprob is None and all(t.logprob is not None for t in r.details.prefill[1:])
    assert "".join(t.text for t in r.details.prefill) == prompt
    stream = list(client.generate_stream(prompt, max_new_tokens=20))
    assert "".join(s.token.text for s in stream if not s.token.special) == r.generated_text
    assert stream[-1].generated_text == r.generated_text
    assert stream[-1].details.generated_tokens == 20
    full = client.generate(prompt, max_new_tokens=5, return_full_text=True)
    assert full.generated_text.startswith(prompt)


def test_text_generation_client_sampling_with_best_of(demo_server):
    client = TgiClient(demo_server.url, timeout=300)
    r = client.generate("import", max_new_tokens=8, do_sample=True, best_of=2, temperature=0.9)
    assert len(r.details.best_of_sequences) == 1
    best = sum(t.logprob for t in r.details.tokens)
    other = sum(t.logprob for t in r.details.best_of_sequences[0].tokens)
    assert best >= other - 1e-6, "the returned sequence has the highest cumulative logprob"
    a = client.generate("import", max_new_tokens=8, do_sample=True, seed=7, temperature=0.9)
    b = client.generate("import", max_new_tokens=8, do_sample=True, seed=7, temperature=0.9)
    assert a.generated_text == b.generated_text and a.details.seed == 7


def test_lorax_client(demo_server):
    client = LoraxClient(demo_server.url, timeout=300)
    prompt = chatml(TASKS["reverse"])
    r = client.generate(prompt, adapter_id="reverse", max_new_tokens=32)
    assert r.generated_text == reference(TASKS["reverse"], "reverse", 32, chat=True)
    assert r.details.prompt_tokens > 0
    assert r.details.generated_tokens == len(r.details.tokens)
    stream = list(client.generate_stream(prompt, adapter_id="reverse", max_new_tokens=32))
    assert "".join(s.token.text for s in stream if not s.token.special) == r.generated_text
    assert stream[-1].details.prompt_tokens == r.details.prompt_tokens
    alternatives = client.generate(prompt, adapter_id="reverse", max_new_tokens=4, return_k_alternatives=2)
    assert all(len(t.alternative_tokens) == 2 for t in alternatives.details.tokens)
    # LoRAX's adapter_source: "local" names the adapter by its directory.
    from conftest import ADAPTERS
    local = client.generate(prompt, adapter_id=ADAPTERS["reverse"], adapter_source="local", max_new_tokens=32)
    assert local.generated_text == r.generated_text


def test_unknown_adapter_is_a_validation_error(demo_server, hf):
    from lorax.errors import ValidationError
    with pytest.raises(ValidationError) as e:
        LoraxClient(demo_server.url).generate("hi", adapter_id="nope", max_new_tokens=4)
    assert "adapter `nope` was not found" in str(e.value)
