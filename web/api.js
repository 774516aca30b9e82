// api.js: the page's only way to the server. call() is fetch() with the API key (when the server needs one) as
// a Bearer header, that turns a failed request into an ApiError carrying the server's own message (either API
// family's error shape) or saying that the server cannot be reached; readEvents() reads a server-sent event
// stream. The key lives in this module and in sessionStorage (this tab only), never in the page's URL.

const KEY_STORAGE = "loraserve.apiKey";
let apiKey = sessionStorage.getItem(KEY_STORAGE) || "";
const listeners = { unauthorized: [], reachable: [] };

export function setApiKey(key) {
  apiKey = key;
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export function hasApiKey() {
  return apiKey !== "";
}

// event: "unauthorized" (a request was refused for want of a good key) or "reachable" (with true or false).
export function on(event, fn) {
  listeners[event].push(fn);
}

function emit(event, arg) {
  for (const fn of listeners[event]) fn(arg);
}

export class ApiError extends Error {
  // status: the HTTP status, or 0 when the server could not be reached.
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

// The message of an error body: OpenAI's {"error": {"message"}}, TGI's {"error": "..."}, vLLM's {"message"}.
export function errorMessage(body) {
  if (body && typeof body === "object") {
    const e = body.error;
    if (e && typeof e === "object" && typeof e.message === "string") return e.message;
    if (typeof e === "string") return e;
    if (typeof body.message === "string") return body.message;
  }
  return "";
}

async function errorOf(response) {
  const text = await response.text().catch(() => "");
  let message = "";
  try {
    message = errorMessage(JSON.parse(text));
  } catch {
    message = text.trim().slice(0, 500);
  }
  if (response.status === 401) message = (message || "Unauthorized") + ": enter the server's API key above";
  return new ApiError(`${response.status} ${message || response.statusText || "error"}`, response.status);
}

// fetch(path) on this server. body: an object sent as JSON. Resolves to the Response when it is 2xx; throws
// ApiError otherwise (and an AbortError when signal aborts it).
export async function call(path, { method = "GET", body, signal } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (apiKey) headers["Authorization"] = "Bearer " + apiKey;
  let response;
  try {
    response = await fetch(path, {
      method, headers, signal, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    emit("reachable", false);
    throw new ApiError(`The server cannot be reached (${e.message}). Is it still running?`, 0);
  }
  emit("reachable", true);
  if (response.status === 401) emit("unauthorized");
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function getJSON(path, options) {
  return (await call(path, options)).json();
}

// Reads an event stream to its end, calling onData with each event's data: parsed JSON, or the raw text when it
// is not JSON (OpenAI's closing "[DONE]"). Comment lines (keep-alives) are skipped. Throws when the connection
// breaks (a TypeError from the reader) or the signal aborts it.
export async function readEvents(response, onData) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const dispatch = (block) => {
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
    }
    if (!data.length) return;
    const text = data.join("\n");
    let value = text;
    try {
      value = JSON.parse(text);
    } catch {
      // not JSON: passed on as text
    }
    onData(value);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
  buffer += decoder.decode();
  if (buffer.trim()) dispatch(buffer);
}
