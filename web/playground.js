// playground.js: the side-by-side view. One prompt (chat or plain completion) with the same sampling settings
// goes to the base model and up to four adapters at once; each column streams its answer from
// /v1/chat/completions or /v1/completions (server-sent events read with fetch), with time to first token,
// output tokens/s and the token count. A column whose adapter is not resident yet (tier disk or loading in
// /v1/adapters) says it is loading until its first token; a failed request shows the server's message.
import { call, errorMessage, readEvents } from "./api.js";

export const MAX_ADAPTERS = 4;
const TIER_POLL_MS = 400;

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function formatMs(seconds) {
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}

// One column: its DOM and its stream's numbers. state: waiting, loading, streaming, done, error, stopped.
class Column {
  constructor(model, label, isBase) {
    this.model = model;
    this.isBase = isBase;
    this.text = "";
    this.tokens = 0;
    this.chunks = 0;
    this.t0 = performance.now();
    this.tFirst = 0;
    this.tLast = 0;
    this.node = el("article", "col");
    this.node.dataset.model = model;
    const head = el("header", "col-head");
    const title = el("h3", "col-title", label);
    title.title = model;
    this.badge = el("span", "tier");
    head.append(title, this.badge);
    this.meta = el("p", "meta");
    this.status = el("span", "status");
    this.ttft = el("span", "ttft");
    this.tps = el("span", "tps");
    this.count = el("span", "ntok");
    this.coldStart = false;
    this.meta.append(this.status, this.ttft, this.tps, this.count);
    this.out = el("pre", "out");
    this.out.tabIndex = 0;
    this.out.setAttribute("aria-label", `Answer of ${label}`);
    this.error = el("p", "err");
    this.error.setAttribute("role", "alert");
    this.error.hidden = true;
    this.node.append(head, this.meta, this.out, this.error);
    this.setTier(isBase ? "base" : "");
    this.setState("waiting", "waiting for the first token…");
  }

  setState(state, label) {
    this.state = state;
    this.node.dataset.state = state;
    this.node.setAttribute("aria-busy", String(state === "waiting" || state === "loading" || state === "streaming"));
    this.status.textContent = label;
  }

  setTier(tier) {
    this.tier = tier;
    this.badge.textContent = tier || "unlisted";
    this.badge.className = `tier tier-${tier || "unknown"}`;
    this.node.dataset.tier = tier || "";
    if (this.state === "waiting" && (tier === "disk" || tier === "loading")) {
      this.coldStart = true;
      this.setState("loading", `loading the adapter (${tier === "disk" ? "from disk" : "in progress"})…`);
    }
  }

  get pending() {
    return this.state === "waiting" || this.state === "loading";
  }

  // A token arrived (its text may be empty: an end-of-sequence token, or bytes of an unfinished character).
  tokenAt(now) {
    if (!this.tFirst) {
      this.tFirst = now;
      this.ttft.textContent = `TTFT ${formatMs((now - this.t0) / 1000)}`;
      this.setState("streaming", "streaming");
      if (this.coldStart) this.meta.append(el("span", "note", "adapter loaded on first use"));
    }
    this.tLast = now;
  }

  append(text, now) {
    this.tokenAt(now);
    this.chunks += 1;
    this.text += text;
    this.out.append(text);  // a text node per chunk: no re-rendering of what is already shown
    this.updateRate();
  }

  // The server's count of generated tokens so far (continuous usage stats).
  setTokens(n, now) {
    if (n > this.tokens) this.tokenAt(now);
    this.tokens = n;
    this.updateRate();
  }

  updateRate() {
    const n = this.tokens || this.chunks;
    this.count.textContent = `${n} token${n === 1 ? "" : "s"}`;
    const span = (this.tLast - this.tFirst) / 1000;
    if (n > 1 && span > 0) this.tps.textContent = `${((n - 1) / span).toFixed(1)} tok/s`;
  }

  finish(reason) {
    const why = reason === "length" ? "max tokens reached" : reason === "stop" ? "stopped at end of answer" : reason;
    this.setState("done", `done${why ? ": " + why : ""}`);
    if (!this.text) {
      this.out.textContent = "(empty answer)";
      this.out.classList.add("empty");
    }
  }

  fail(message) {
    this.setState("error", "failed");
    this.error.textContent = message;
    this.error.hidden = false;
    if (!this.text) this.out.hidden = true;
  }

  stopped() {
    this.setState("stopped", "stopped");
    if (!this.text) {
      this.out.textContent = "(stopped before the first token)";
      this.out.classList.add("empty");
    }
  }
}

export class Playground {
  // app: { baseNames: [...], adapterNames: [...], refreshTiers(): Promise<Map name -> tier> }
  constructor(app) {
    this.app = app;
    this.form = $("pg-form");
    this.columnsEl = $("columns");
    this.message = $("pg-message");
    this.controller = null;
    this.prefilled = false;
    this.slots = [];
    for (let i = 0; i < MAX_ADAPTERS; ++i) {
      const wrap = el("div", "slot");
      const input = el("input");
      input.id = `adapter-${i + 1}`;
      input.setAttribute("list", "adapter-names");
      input.autocomplete = "off";
      input.spellcheck = false;
      input.placeholder = "(none)";
      const label = el("label", "", `Adapter ${i + 1}`);
      label.htmlFor = input.id;
      wrap.append(label, input);
      $("adapter-slots").append(wrap);
      this.slots.push(input);
    }
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.run();
    });
    $("stop").addEventListener("click", () => this.stop());
    this.form.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.run();
      }
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.controller) this.stop();
    });
  }

  // Fills the model pickers from /v1/models (keeps what the user already chose).
  setModels(baseNames, adapterNames) {
    const select = $("base-model");
    const chosen = select.value;
    select.replaceChildren(...baseNames.map((n) => new Option(n, n)));
    if (baseNames.includes(chosen)) select.value = chosen;
    $("adapter-names").replaceChildren(...adapterNames.map((n) => new Option(n)));
    if (!this.prefilled) {  // the first adapters, once: what the user clears later stays cleared
      this.prefilled = true;
      adapterNames.slice(0, MAX_ADAPTERS).forEach((name, i) => {
        this.slots[i].value = name;
      });
    }
  }

  targets() {
    const out = [];
    if ($("use-base").checked && $("base-model").value) out.push({ model: $("base-model").value, isBase: true });
    for (const slot of this.slots) {
      const name = slot.value.trim();
      if (name) out.push({ model: name, isBase: false });
    }
    return out;
  }

  requestBody(model) {
    const chat = this.form.elements.mode.value === "chat";
    const prompt = $("prompt").value;
    const body = chat ? { model, messages: [{ role: "user", content: prompt }] } : { model, prompt };
    const number = (id) => {
      const v = $(id).value.trim();
      return v === "" ? undefined : Number(v);
    };
    body.max_tokens = number("max-tokens");
    body.temperature = number("temperature");
    body.top_p = number("top-p");
    body.seed = number("seed");
    for (const k of Object.keys(body)) if (body[k] === undefined || Number.isNaN(body[k])) delete body[k];
    body.stream = true;
    body.stream_options = { include_usage: true, continuous_usage_stats: true };
    return { path: chat ? "/v1/chat/completions" : "/v1/completions", chat, body };
  }

  notice(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  async run() {
    this.stop();
    const targets = this.targets();
    if (!targets.length) return this.notice("Choose the base model or at least one adapter.");
    if (!$("prompt").value.trim()) {
      $("prompt").focus();
      return this.notice("Type a prompt first.");
    }
    this.notice("");
    const controller = new AbortController();
    this.controller = controller;
    $("stop").disabled = false;
    $("run").setAttribute("aria-busy", "true");
    const columns = targets.map((t) => new Column(t.model, t.isBase ? `${t.model} (base)` : t.model, t.isBase));
    this.columnsEl.dataset.count = String(columns.length);
    this.columnsEl.replaceChildren(...columns.map((c) => c.node));
    try {
      this.showTiers(columns, await this.app.refreshTiers());  // before the requests, to see which are cold
    } catch {
      // each column's own request reports why
    }
    const tierWatch = this.watchTiers(columns, controller.signal);
    await Promise.all(columns.map((c) => this.stream(c, controller.signal)));
    await tierWatch;
    if (this.controller === controller) {
      this.controller = null;
      $("stop").disabled = true;
      $("run").removeAttribute("aria-busy");
    }
    this.app.refreshTiers().then((tiers) => this.showTiers(columns, tiers), () => {});
  }

  stop() {
    if (!this.controller) return;
    this.controller.abort();
    this.controller = null;
    $("stop").disabled = true;
    $("run").removeAttribute("aria-busy");
  }

  showTiers(columns, tiers) {
    for (const c of columns) if (!c.isBase) c.setTier(tiers.get(c.model) || "");
  }

  // Shows each adapter's tier; while some column waits for its first token, asks again every TIER_POLL_MS so
  // that a column whose adapter is being loaded says so.
  async watchTiers(columns, signal) {
    while (!signal.aborted && columns.some((c) => c.pending)) {
      try {
        this.showTiers(columns, await this.app.refreshTiers());
      } catch {
        return;  // the columns' own requests report why
      }
      await new Promise((r) => setTimeout(r, TIER_POLL_MS));
    }
  }

  async stream(col, signal) {
    const { path, chat, body } = this.requestBody(col.model);
    col.t0 = performance.now();  // time to first token counts from the request
    let response;
    try {
      response = await call(path, { method: "POST", body, signal });
    } catch (e) {
      return e.name === "AbortError" ? col.stopped() : col.fail(e.message);
    }
    let done = false;
    let reason = "";
    try {
      await readEvents(response, (data) => {
        if (data === "[DONE]") {
          done = true;
          return;
        }
        if (data && data.error) {
          col.fail(errorMessage(data) || JSON.stringify(data.error));
          return;
        }
        for (const choice of (data && data.choices) || []) {
          const text = chat ? choice.delta && choice.delta.content : choice.text;
          if (text) col.append(text, performance.now());
          if (choice.finish_reason) reason = choice.finish_reason;
        }
        if (data && data.usage) col.setTokens(data.usage.completion_tokens, performance.now());
      });
    } catch (e) {
      if (e.name === "AbortError") return col.stopped();
      return col.fail(`The connection to the server was lost (${e.message}).`);
    }
    if (col.state === "error") return;
    if (!done) return col.fail("The stream ended before it was complete: the server closed the connection.");
    col.finish(reason);
  }
}
