// chart.js: the dashboard's line chart, drawn as SVG by hand: one polyline per series over a time window that
// ends now, a y axis rounded up to a readable maximum with three grid lines, and the window's start, middle and
// end on the x axis. Colours come from the stylesheet (classes s0..s7).
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// The smallest of 1, 2, 2.5, 5 times a power of ten that is >= v (and >= 1).
export function niceMax(v) {
  if (!(v > 1)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function label(v) {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1).replace(/\.0$/, "") : String(+v.toFixed(2));
}

// series: [{name, cls, points: [[t, value], ...]}] with t in seconds on the same clock as now.
export function drawChart(root, series, now, windowSeconds) {
  const w = Math.max(200, Math.round(root.clientWidth || 600));
  const h = Math.max(120, Math.round(root.clientHeight || 180));
  const pad = { l: 42, r: 10, t: 10, b: 22 };
  const iw = w - pad.l - pad.r;
  const ih = h - pad.t - pad.b;
  root.setAttribute("viewBox", `0 0 ${w} ${h}`);
  let top = 0;
  for (const s of series) for (const [, v] of s.points) top = Math.max(top, v);
  top = niceMax(top);
  const x = (t) => pad.l + iw * (1 - Math.min(1, Math.max(0, (now - t) / windowSeconds)));
  const y = (v) => pad.t + ih * (1 - v / top);
  const nodes = [];
  for (const f of [0, 0.5, 1]) {
    const yy = y(top * f).toFixed(1);
    nodes.push(svg("line", { x1: pad.l, x2: w - pad.r, y1: yy, y2: yy, class: "grid" }));
    nodes.push(svg("text", { x: pad.l - 6, y: yy, class: "axis", "text-anchor": "end", "dominant-baseline": "middle" },
                   label(top * f)));
  }
  const ago = (sec) => (sec >= 120 ? `-${+(sec / 60).toFixed(1)} min` : `-${Math.round(sec)} s`);
  for (const [f, text] of [[0, ago(windowSeconds)], [0.5, ago(windowSeconds / 2)], [1, "now"]]) {
    nodes.push(svg("text", { x: pad.l + iw * f, y: h - 6, class: "axis",
                             "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle" }, text));
  }
  for (const s of series) {
    const pts = s.points.filter(([t]) => now - t <= windowSeconds);
    if (!pts.length) continue;
    const line = svg("polyline", {
      class: `line ${s.cls}`,
      points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
      "data-series": s.name,
    });
    line.append(svg("title", {}, s.name));
    nodes.push(line);
  }
  root.replaceChildren(...nodes);
}
