// dashboard.js: the live view of the server. Every second it reads GET /v1/stats (running and waiting requests,
// KV cache, tokens per adapter on the engine's clock) and keeps up to five minutes of it for the chart of output
// tokens/s per adapter; while the view is shown it also reads GET /v1/adapters (every known adapter with its
// tier, rank, size, requests and last use) and renders the cards and the adapter table (filter, sort; rows are
// kept and updated in place, so hundreds of adapters stay cheap).
import { drawChart } from "./chart.js";

const WINDOW_S = 300;       // the chart's history; its window grows from MIN_WINDOW_S to this
const MIN_WINDOW_S = 60;
const RATE_S = 5;          // the table's tok/s: over the last few seconds
const MAX_SERIES = 8;      // lines on the chart (the busiest adapters of the window)
export const BASE_KEY = "__base_model__";

const $ = (id) => document.getElementById(id);

function formatBytes(n) {
  if (!n) return "–";
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

function formatAge(seconds) {
  if (seconds < 1) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function formatRate(v) {
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

const TIER_ORDER = { base: 0, device: 1, host: 2, loading: 3, disk: 4, failed: 5 };

export class Dashboard {
  // app: { visible(): bool, baseName(): string, adapters(): Promise<listing>, setStatus(text, ok) }
  constructor(app) {
    this.app = app;
    this.history = [];           // [{clock, tokens: Map name -> generation tokens}]
    this.stats = null;
    this.listing = [];
    this.rows = new Map();       // name -> {tr, cells}
    this.colors = new Map();     // name -> index into the palette, kept while the page lives
    this.error = "";
    this.busy = false;
    $("filter").addEventListener("input", () => this.renderTable());
    $("sort").addEventListener("change", () => this.renderTable());
    window.addEventListener("resize", () => this.visible() && this.renderChart());
  }

  visible() {
    return this.app.visible();
  }

  // One poll: stats always (for the chart's history), the adapter list when shown.
  async tick() {
    if (this.busy) return;
    this.busy = true;
    try {
      const stats = await this.app.getJSON("/v1/stats");
      this.addSample(stats);
      if (this.visible()) this.listing = (await this.app.adapters()).data;
      this.error = "";
    } catch (e) {
      this.error = e.message;
    } finally {
      this.busy = false;
    }
    if (this.visible()) this.render();
  }

  addSample(stats) {
    this.stats = stats;
    const tokens = new Map(stats.adapters.map((a) => [a.name, a.generation_tokens]));
    const last = this.history[this.history.length - 1];
    if (last && stats.clock <= last.clock) return;
    this.history.push({ clock: stats.clock, tokens });
    while (this.history.length > 2 && stats.clock - this.history[1].clock > WINDOW_S) this.history.shift();
  }

  // Output tokens/s of name between history samples i-1 and i.
  rateAt(name, i) {
    const a = this.history[i - 1];
    const b = this.history[i];
    const dt = b.clock - a.clock;
    return dt > 0 ? Math.max(0, ((b.tokens.get(name) || 0) - (a.tokens.get(name) || 0)) / dt) : 0;
  }

  // Tokens/s of name over the last `seconds`.
  recentRate(name, seconds) {
    const h = this.history;
    if (h.length < 2) return 0;
    const end = h[h.length - 1];
    let i = h.length - 2;
    while (i > 0 && end.clock - h[i].clock < seconds) --i;
    const dt = end.clock - h[i].clock;
    return dt > 0 ? Math.max(0, ((end.tokens.get(name) || 0) - (h[i].tokens.get(name) || 0)) / dt) : 0;
  }

  displayName(name) {
    return name === BASE_KEY ? `${this.app.baseName()} (base)` : name;
  }

  render() {
    const banner = $("d-error");
    banner.textContent = this.error ? `Not updating: ${this.error}` : "";
    banner.hidden = !this.error;
    if (!this.stats) return;
    this.renderCards();
    this.renderChart();
    this.renderTable();
  }

  renderCards() {
    const s = this.stats;
    $("d-running").textContent = String(s.running);
    $("d-waiting").textContent = String(s.waiting);
    $("d-kv").textContent = `${(s.kv_usage * 100).toFixed(1)} %`;
    $("d-kv-meter").value = s.kv_usage;
    $("d-kv-sub").textContent = `${s.kv_blocks_used} of ${s.kv_blocks_total} blocks of ${s.kv_block_size} tokens`;
    let total = 0;
    for (const a of s.adapters) total += this.recentRate(a.name, RATE_S);
    $("d-tps").textContent = `${formatRate(total)} tok/s`;
    $("d-tokens").textContent = `${s.generation_tokens} tokens out, ${s.prompt_tokens} in, since start`;
    const tiers = {};
    for (const a of this.listing) tiers[a.tier] = (tiers[a.tier] || 0) + 1;
    $("d-adapters").textContent = String(this.listing.length);
    $("d-tiers").textContent = ["device", "host", "loading", "disk", "failed"]
      .filter((t) => tiers[t]).map((t) => `${tiers[t]} ${t}`).join(" · ") || "none known";
  }

  renderChart() {
    const h = this.history;
    if (h.length < 2) return drawChart($("chart"), [], h.length ? h[0].clock : 0, MIN_WINDOW_S);
    const now = h[h.length - 1].clock;
    const span = Math.min(WINDOW_S, Math.max(MIN_WINDOW_S, Math.ceil((now - h[0].clock) / 30) * 30));
    const totals = new Map();
    for (let i = 1; i < h.length; ++i) {
      for (const [name, v] of h[i].tokens) {
        const delta = v - (h[i - 1].tokens.get(name) || 0);
        if (delta > 0) totals.set(name, (totals.get(name) || 0) + delta);
      }
    }
    const names = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a)).slice(0, MAX_SERIES);
    for (const name of names) if (!this.colors.has(name)) this.colors.set(name, this.colors.size % MAX_SERIES);
    names.sort((a, b) => this.colors.get(a) - this.colors.get(b));
    const series = names.map((name) => {
      const points = [];
      for (let i = 1; i < h.length; ++i) points.push([h[i].clock, this.rateAt(name, i)]);
      return { name: this.displayName(name), cls: `s${this.colors.get(name)}`, points };
    });
    drawChart($("chart"), series, now, span);
    const legend = $("legend");
    legend.replaceChildren(...series.map((s) => {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = `swatch ${s.cls}`;
      li.append(sw, document.createTextNode(s.name));
      return li;
    }));
    if (!series.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No tokens generated in this window yet: run a comparison in the playground.";
      legend.append(li);
    }
  }

  rowData() {
    const byName = new Map(this.stats.adapters.map((a) => [a.name, a]));
    const base = byName.get(BASE_KEY) || {};
    const rows = [{
      name: BASE_KEY, tier: "base", rank: 0, bytes: 0, requests: base.requests || 0,
      tokens: base.generation_tokens || 0, last_used: 0, source: "the base model",
    }];
    for (const a of this.listing) {
      const s = byName.get(a.name) || {};
      rows.push({ name: a.name, tier: a.tier, rank: a.rank, bytes: a.bytes, requests: a.requests,
                  tokens: s.generation_tokens || 0, last_used: a.last_used, source: a.source });
    }
    return rows;
  }

  renderTable() {
    if (!this.stats) return;
    const filter = $("filter").value.trim().toLowerCase();
    const sort = $("sort").value;
    const all = this.rowData();
    const rows = all.filter((r) => !filter || this.displayName(r.name).toLowerCase().includes(filter));
    const cmp = {
      name: (a, b) => 0,
      tier: (a, b) => (TIER_ORDER[a.tier] ?? 9) - (TIER_ORDER[b.tier] ?? 9),
      requests: (a, b) => b.requests - a.requests,
      tokens: (a, b) => b.tokens - a.tokens,
      last_used: (a, b) => b.last_used - a.last_used,
    }[sort];
    rows.sort((a, b) => (a.name === BASE_KEY ? -1 : b.name === BASE_KEY ? 1 : 0) || cmp(a, b) ||
                        a.name.localeCompare(b.name));
    const clock = this.stats.clock;
    const trs = rows.map((r) => {
      const row = this.row(r.name);
      const set = (i, text) => {
        if (row.cells[i].textContent !== text) row.cells[i].textContent = text;
      };
      const label = r.name === BASE_KEY ? this.app.baseName() : r.name;  // the tier column says "base"
      set(0, label);
      row.cells[0].title = label;
      set(1, r.tier);
      row.cells[1].className = `tier tier-${r.tier}`;
      set(2, r.rank ? String(r.rank) : "–");
      set(3, formatBytes(r.bytes));
      set(4, String(r.requests));
      set(5, String(r.tokens));
      set(6, formatRate(this.recentRate(r.name, RATE_S)));
      set(7, r.name === BASE_KEY ? "–" : r.last_used > 0 ? formatAge(clock - r.last_used) : "never");
      set(8, r.source);
      row.tr.dataset.tier = r.tier;
      return row.tr;
    });
    const tbody = $("adapters").tBodies[0];
    const same = trs.length === tbody.children.length && trs.every((tr, i) => tbody.children[i] === tr);
    if (!same) tbody.replaceChildren(...trs);
    $("d-count").textContent = filter ? `${rows.length} of ${all.length} shown` : `${all.length - 1} adapters`;
  }

  row(name) {
    let row = this.rows.get(name);
    if (row) return row;
    const tr = document.createElement("tr");
    tr.dataset.name = name;
    const cells = [];
    for (let i = 0; i < 9; ++i) {
      const td = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) td.scope = "row";
      if (i >= 2 && i <= 6) td.className = i === 2 || i === 3 || i === 6 ? "num opt" : "num";
      if (i === 8) td.className = "wide";
      tr.append(td);
      if (i === 1) {
        const badge = document.createElement("span");
        td.append(badge);
        cells.push(badge);
      } else {
        cells.push(td);
      }
    }
    row = { tr, cells };
    this.rows.set(name, row);
    return row;
  }
}
