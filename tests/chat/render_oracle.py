"""Reference renderer for chat templates: jinja2 set up the way transformers' apply_chat_template sets it up.

Reads a JSON job {"templates": {name: {"source": str, "special_tokens": {...}}}, "cases": [{"name", "messages",
"add_generation_prompt", "tools"?, "kwargs"?}] (plus a template's own "extra_cases"), "snippets": [{"source", "variables"}], "now": "YYYY-MM-DD HH:MM:SS"}
and writes {"templates": {template: {case: RESULT}}, "snippets": [RESULT]} where RESULT is {"ok": true, "text": str}
or {"ok": false, "error": str}. Snippets render with just their variables (no chat preprocessing).

What transformers does (utils/chat_template_utils.py and tokenization_utils_base.apply_chat_template), restated:
- ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols extension and a
  `{% generation %}...{% endgeneration %}` block that renders its body;
- filter tojson = json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False);
- globals raise_exception (TemplateError), strftime_now (local time; fixed here), dict, namespace (names
  starting with "_" rejected);
- message keys whose value is None are dropped; reasoning under reasoning_content/thinking/reasoning is copied
  to "thinking" (first key) and "reasoning_content";
- render(messages=..., tools=tools or None, documents=None, add_generation_prompt=..., **special tokens,
  **kwargs), kwargs overriding special tokens.
"""
import datetime
import json
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationBlock(jinja2.ext.Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


class CheckedNamespace(jinja2.utils.Namespace):
    def __init__(*args, **kwargs):
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for key in attrs:
            CheckedNamespace._check(key)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, key, value):
        CheckedNamespace._check(key)
        jinja2.utils.Namespace.__setitem__(self, key, value)

    @staticmethod
    def _check(key):
        if isinstance(key, str) and key.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"underscore-prefixed namespace attribute {key!r}")


def make_env(now):
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def dict_global(*args, **kwargs):
        return dict(*args, **kwargs)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: now.strftime(fmt)
    env.globals["dict"] = dict_global
    env.globals["namespace"] = CheckedNamespace
    return env


def prepare_messages(messages):
    out = []
    for message in messages:
        message = {k: v for k, v in message.items() if v is not None}
        reasoning = next(
            (message[k] for k in ("reasoning_content", "thinking", "reasoning") if message.get(k) is not None), None
        )
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


def main():
    job = json.load(open(sys.argv[1], encoding="utf-8"))
    now = datetime.datetime.strptime(job["now"], "%Y-%m-%d %H:%M:%S")
    env = make_env(now)
    results = {}
    for name, spec in job.get("templates", {}).items():
        per_case = results.setdefault(name, {})
        try:
            template = env.from_string(spec["source"])
        except Exception as e:  # a template that does not compile fails every case
            for case in job.get("cases", []) + spec.get("extra_cases", []):
                per_case[case["name"]] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            continue
        for case in job.get("cases", []) + spec.get("extra_cases", []):
            variables = {
                "messages": prepare_messages(case["messages"]),
                "tools": case.get("tools"),
                "documents": None,
                "add_generation_prompt": case.get("add_generation_prompt", False),
            }
            variables.update(spec.get("special_tokens", {}))
            variables.update(case.get("kwargs", {}))
            try:
                per_case[case["name"]] = {"ok": True, "text": template.render(**variables)}
            except Exception as e:
                per_case[case["name"]] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    snippets = []
    for snippet in job.get("snippets", []):
        try:
            snippets.append({"ok": True, "text": env.from_string(snippet["source"]).render(**snippet["variables"])})
        except Exception as e:
            snippets.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    out = {"templates": results, "snippets": snippets}
    json.dump(out, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)


if __name__ == "__main__":
    main()
