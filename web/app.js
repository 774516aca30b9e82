// app.js: the page's start-up and shell. Loads the model list (/v1/models: the base model's names and every
// adapter) into the playground, switches between the two views by the URL's hash (#playground, #dashboard),
// asks for the API key when the server answers 401, shows whether the server is reachable, and drives the
// dashboard's once-a-second poll.
import { getJSON, hasApiKey, on, setApiKey } from "./api.js";
import { Dashboard } from "./dashboard.js";
import { Playground } from "./playground.js";

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
const VIEWS = ["playground", "dashboard"];

const state = {
  baseNames: [],
  adapterNames: [],
  needKey: false,
  listing: null,     // the last /v1/adapters answer and when it came
  listingAt: 0,
  listingPending: null,
};

function currentView() {
  const v = location.hash.slice(1);
  return VIEWS.includes(v) ? v : "playground";
}

function showView() {
  const view = currentView();
  for (const v of VIEWS) {
    $(`view-${v}`).hidden = v !== view;
    const tab = $(`tab-${v}`);
    tab.setAttribute("aria-selected", String(v === view));
    tab.tabIndex = v === view ? 0 : -1;
  }
  document.body.dataset.view = view;
  if (view === "dashboard") dashboard.tick();
}

// Left/right arrows move between the tabs (the ARIA tabs pattern); Enter or a click follows the link.
function tabKeys(e) {
  if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
  const i = VIEWS.indexOf(currentView());
  const next = VIEWS[(i + (e.key === "ArrowRight" ? 1 : VIEWS.length - 1)) % VIEWS.length];
  location.hash = next;
  $(`tab-${next}`).focus();
  e.preventDefault();
}

function setConnection(ok, text) {
  const conn = $("conn");
  conn.textContent = text;
  conn.dataset.ok = String(ok);
}

// /v1/adapters, shared by the playground (tiers) and the dashboard (table); at most one request in flight and
// answers younger than 300 ms reused.
async function adapters() {
  if (state.listing && performance.now() - state.listingAt < 300) return state.listing;
  if (!state.listingPending) {
    state.listingPending = getJSON("/v1/adapters").then((l) => {
      state.listing = l;
      state.listingAt = performance.now();
      return l;
    }).finally(() => {
      state.listingPending = null;
    });
  }
  return state.listingPending;
}

async function loadModels() {
  try {
    const list = await getJSON("/v1/models");
    state.baseNames = list.data.filter((m) => !m.parent).map((m) => m.id);
    state.adapterNames = list.data.filter((m) => m.parent).map((m) => m.id);
    $("model-id").textContent = state.baseNames[0] ? `serving ${state.baseNames[0]}` : "";
    playground.setModels(state.baseNames, state.adapterNames);
    $("key-form").hidden = true;
    $("api-key").value = "";
    setConnection(true, "connected");
    document.body.dataset.ready = "true";
    return true;
  } catch (e) {
    if (!state.needKey) setConnection(false, e.message);
    return false;
  }
}

function askForKey() {
  state.needKey = true;
  const form = $("key-form");
  if (form.hidden) {
    form.hidden = false;
    $("key-error").textContent = hasApiKey() ? "The server refused this key." : "";
    $("api-key").focus();
  }
  setConnection(false, "API key needed");
}

async function useKey(e) {
  e.preventDefault();
  setApiKey($("api-key").value.trim());
  state.needKey = false;
  $("key-error").textContent = "";
  if (await loadModels()) {
    $("prompt").focus();
  } else if (state.needKey) {
    $("key-error").textContent = "The server refused this key.";
  }
}

const playground = new Playground({
  refreshTiers: async () => new Map((await adapters()).data.map((a) => [a.name, a.tier])),
});
const dashboard = new Dashboard({
  visible: () => currentView() === "dashboard",
  baseName: () => state.baseNames[0] || "base",
  adapters,
  getJSON,
});

on("unauthorized", askForKey);
on("reachable", (ok) => {
  if (ok && !state.needKey) setConnection(true, "connected");
  if (!ok) setConnection(false, "server unreachable");
});
$("key-form").addEventListener("submit", useKey);
document.querySelector("[role=tablist]").addEventListener("keydown", tabKeys);
window.addEventListener("hashchange", showView);
for (let i = 1; i <= 4; ++i) $(`adapter-${i}`).addEventListener("focus", () => !state.needKey && loadModels());

showView();
(async function start() {
  while (!(await loadModels())) await new Promise((r) => setTimeout(r, 2000));
})();
setInterval(() => {
  if (!state.needKey) dashboard.tick();
}, POLL_MS);
