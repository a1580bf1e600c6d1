// hookd console: the client of hookd's public API.
//
// The access token lives only in this module's memory: it is never put in
// web storage or a cookie, so closing or reloading the page signs out.

let token = null;
let customer = null;
let expiredHandler = () => {};

/** ApiError is a failed call: an HTTP error with its problem JSON, or a network error (status 0). */
export class ApiError extends Error {
  constructor(status, title, details, params) {
    super(details ? `${title}: ${details}` : title);
    this.name = 'ApiError';
    this.status = status;
    this.title = title;
    this.details = details;
    this.params = params || [];
  }
}

/** SessionExpired is thrown after a 401 or 403; the expired handler has already run. */
export class SessionExpired extends Error {
  constructor() {
    super('session expired, sign in again');
    this.name = 'SessionExpired';
  }
}

/** onSessionExpired registers the function that runs when a call answers 401 or 403. */
export function onSessionExpired(fn) {
  expiredHandler = fn;
}

/** signedIn reports whether a token is held. */
export function signedIn() {
  return token !== null;
}

/** customerId is the customer the session belongs to. */
export function customerId() {
  return customer;
}

/** signOut forgets the token. */
export function signOut() {
  token = null;
  customer = null;
}

/** webhooksPath is the path of a webhooks resource of the signed-in customer. */
export function webhooksPath(rest) {
  return `/${encodeURIComponent(customer)}/webhooks${rest}`;
}

/** subscriptionPath is the path of a subscription or one of its resources. */
export function subscriptionPath(sid, rest = '') {
  return webhooksPath(`/subscriptions/${encodeURIComponent(sid)}${rest}`);
}

async function send(path, init) {
  try {
    return await fetch(path, { cache: 'no-store', credentials: 'same-origin', ...init });
  } catch (err) {
    throw new ApiError(0, 'Network error', `could not reach hookd (${err.message || err})`);
  }
}

/** problem turns an error response into an ApiError, reading its problem JSON when there is one. */
async function problem(res) {
  let body = null;
  const text = await res.text().catch(() => '');
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (body && typeof body === 'object') {
    const title = body.title || `${res.status} ${res.statusText || 'Error'}`.trim();
    const details = body.details || body.detail || '';
    const params = Array.isArray(body['invalid-body-params']) ? body['invalid-body-params'] : [];
    return new ApiError(res.status, title, details, params);
  }
  return new ApiError(res.status, `${res.status} ${res.statusText || 'Error'}`.trim(), text.trim().slice(0, 300));
}

/**
 * signIn exchanges client credentials for an access token of the customer
 * and keeps it in memory. The credentials go in the form (client_id,
 * client_secret), not with HTTP Basic, and the request carries no browser
 * credentials: a refusal is then a plain 401 the page shows itself, never a
 * Basic challenge that would make the browser open its own login box.
 */
export async function signIn(cid, clientId, clientSecret) {
  const form = new URLSearchParams({
    grant_type: 'client_credentials', scope: '*:webhooks/**', client_id: clientId, client_secret: clientSecret,
  });
  const res = await send(`/${encodeURIComponent(cid)}/login/token`, {
    method: 'POST',
    credentials: 'omit',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: form.toString(),
  });
  if (!res.ok) throw await problem(res);
  const body = await res.json();
  if (!body.access_token) throw new ApiError(res.status, 'Sign in failed', 'no access token in the answer');
  token = body.access_token;
  customer = cid;
}

/**
 * raw calls the API with the bearer token and returns the successful
 * Response. Errors become ApiError; 401 and 403 end the session.
 */
export async function raw(method, path, { json, contentType, headers } = {}) {
  if (!token) {
    expiredHandler();
    throw new SessionExpired();
  }
  const init = { method, headers: { Authorization: `Bearer ${token}`, ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['Content-Type'] = contentType || 'application/json';
  }
  const res = await send(path, init);
  if (res.status === 401 || res.status === 403) {
    signOut();
    expiredHandler();
    throw new SessionExpired();
  }
  if (!res.ok) throw await problem(res);
  return res;
}

/** call is raw for JSON answers: it returns the decoded body, or null for an empty one. */
export async function call(method, path, opts) {
  const res = await raw(method, path, { ...opts, headers: { Accept: 'application/json' } });
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'Unexpected answer', 'the API did not answer JSON');
  }
}

/** filenameFrom extracts a safe file name from a Content-Disposition header. */
export function filenameFrom(disposition, fallback) {
  let name = '';
  if (disposition) {
    const star = /filename\*\s*=\s*(?:UTF-8|utf-8)?''([^;]+)/.exec(disposition);
    const quoted = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/.exec(disposition);
    const bare = /filename\s*=\s*([^;"\s]+)/.exec(disposition);
    try {
      if (star) name = decodeURIComponent(star[1].trim());
    } catch {
      name = '';
    }
    if (!name && quoted) name = quoted[1].replace(/\\(.)/g, '$1');
    if (!name && bare) name = bare[1];
  }
  name = name.replace(/[/\\]/g, '_').replace(/^\.+/, '').trim();
  return name || fallback;
}
