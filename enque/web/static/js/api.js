// The public /v1 API: envelope unwrapping, the bearer token, and feature detection.

const TOKEN_KEY = "enque.token";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  },
  me: null, // {agent, workspace, role}
};

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function query(params) {
  const usp = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => usp.append(key, v));
    else usp.append(key, value);
  }
  const s = usp.toString();
  return s ? `?${s}` : "";
}

export async function request(method, path, { body, params, headers = {}, raw = false } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (session.token) init.headers.Authorization = `Bearer ${session.token}`;
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/v1${path}${query(params)}`, init);
  if (raw && response.ok) return response;
  if (response.status === 204) return { data: null, meta: null };
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok || (payload && payload.success === false)) {
    const err = payload?.error || {};
    if (response.status === 401 && session.token && !path.startsWith("/auth/login")) onUnauthorized();
    throw new ApiError(response.status, err.code, err.message, err.details);
  }
  return { data: payload?.data ?? null, meta: payload?.meta ?? null };
}

export const api = {
  get: (path, params) => request("GET", path, { params }).then((r) => r.data),
  page: (path, params) => request("GET", path, { params }),
  post: (path, body) => request("POST", path, { body }).then((r) => r.data),
  patch: (path, body, headers) => request("PATCH", path, { body, headers }).then((r) => r.data),
  put: (path, body) => request("PUT", path, { body }).then((r) => r.data),
  del: (path) => request("DELETE", path).then((r) => r.data),
};

// Every page of a list (bounded).
export async function all(path, params = {}, maxPages = 10) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < maxPages; i += 1) {
    const { data, meta } = await api.page(path, { limit: 200, ...params, cursor });
    items.push(...data);
    cursor = meta?.nextCursor;
    if (!cursor) break;
  }
  return items;
}

// Which routes the server has, from its OpenAPI document (fetched once, lazily):
// panels for features not yet on this server are hidden instead of failing.
let featurePromise = null;
export function features() {
  if (!featurePromise) {
    // The route list (not the whole document) is kept for the tab's session.
    const kept = sessionStorage.getItem("enque.routes");
    featurePromise = kept
      ? Promise.resolve(new Set(JSON.parse(kept)))
      : fetch("/v1/openapi.json")
        .then((r) => (r.ok ? r.json() : { paths: {} }))
        .then((doc) => {
          const paths = Object.keys(doc.paths || {});
          if (paths.length) sessionStorage.setItem("enque.routes", JSON.stringify(paths));
          return new Set(paths);
        })
        .catch(() => new Set());
  }
  return featurePromise;
}

export async function has(path) {
  return (await features()).has(path);
}

// Shared look-ups (agents, teams, categories, mailboxes), cached for the session.
const lookups = new Map();
export function lookup(name) {
  if (!lookups.has(name)) {
    lookups.set(name, all(`/${name}`).catch((e) => {
      lookups.delete(name);
      if (e.status === 404 || e.status === 403) return [];
      throw e;
    }));
  }
  return lookups.get(name);
}
export function forget(name) {
  if (name) lookups.delete(name);
  else lookups.clear();
}

export const STATUSES = ["Unread", "Open", "In Progress", "With User", "Closed"];
export const PRIORITIES = ["Low", "Medium", "High", "Critical"];
export const OPEN_STATUSES = ["Unread", "Open", "In Progress"];
