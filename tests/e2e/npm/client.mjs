// One call of the official Edge Impulse npm client (`edge-impulse-api`), used unchanged, for
// tests/e2e/test_npm_client.py.
//
//   node client.mjs <operation> '<json arguments>'     (env RELATCH_API = http://HOST:PORT/v1)
//
// Prints one JSON line: {"ok": true, "result": ...} or {"ok": false, "error": "<message>"},
// plus "calls": what went over the wire (method, path, status, request header names, cookie
// names): the client turns every failure into a bare Error and drops the HTTP status.
// Dates the client parsed into Date objects come back as {"$date": "<ISO>"}.

const calls = [];
const realFetch = globalThis.fetch;
// The client captures globalThis.fetch when it loads, so the recorder goes in first. It only
// observes: the request and the response pass through untouched.
globalThis.fetch = async (url, init = {}) => {
  const headers = init.headers || {};
  const cookie = Object.entries(headers).find(([k]) => k.toLowerCase() === 'cookie');
  const response = await realFetch(url, init);
  calls.push({
    method: init.method || 'GET',
    path: new URL(url).pathname,
    status: response.status,
    contentType: response.headers.get('content-type'),
    headers: Object.keys(headers).map((k) => k.toLowerCase()).sort(),
    // Names only: a test log must not carry the credential itself.
    cookies: cookie ? cookie[1].split(';').map((c) => c.trim().split('=')[0]) : [],
  });
  return response;
};

const { EdgeImpulseApi } = await import('edge-impulse-api');
// The enum of auth slots is not re-exported at the top (the package has no "exports" map).
const { UserApiApiKeys } = await import('edge-impulse-api/build/library/sdk/api/userApi.js');

function plain(value) {
  if (value instanceof Date) return { $date: value.toISOString() };
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

// The three ways the client authenticates a call; each one as its README or its types show.
async function authenticate(api, auth) {
  if (auth.apiKey) {
    await api.authenticate({ method: 'apiKey', apiKey: auth.apiKey }); // x-api-key header
  } else if (auth.jwtToken) {
    await api.authenticate({ method: 'jwtToken', jwtToken: auth.jwtToken }); // x-jwt-token
  } else if (auth.jwtCookie) {
    api.user.setApiKey(UserApiApiKeys.JWTAuthentication, auth.jwtCookie); // Cookie: jwt=...
  }
}

const operations = {
  createUser: (api, a) => api.user.createUser(a),
  requestResetPassword: (api, a) => api.user.requestResetPassword(a),
  verifyResetPassword: (api, a) => api.user.verifyResetPassword(a),
  resetPassword: (api, a) => api.user.resetPassword(a),
  login: (api, a) => api.login.login(a),
  getCurrentUser: async (api, a) => {
    await authenticate(api, a);
    return api.user.getCurrentUser(a.query);
  },
  activateCurrentUser: async (api, a) => {
    await authenticate(api, a);
    return api.user.activateCurrentUser({ code: a.code });
  },
  requestActivationCodeCurrentUser: async (api, a) => {
    await authenticate(api, a);
    return api.user.requestActivationCodeCurrentUser();
  },
  // The fresh JWT comes back in the `x-jwt-token` response header (the body schema has no
  // token); the client hands response headers to `responseHeadersCallback` on the next tick.
  changePasswordCurrentUser: async (api, a) => {
    await authenticate(api, a);
    let headers = {};
    const body = { currentPassword: a.currentPassword, newPassword: a.newPassword };
    const result = await api.user.changePasswordCurrentUser(body, {
      headers: {},
      responseHeadersCallback: (h) => {
        headers = h;
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    return { ...result, newToken: headers['x-jwt-token'] || null };
  },
};

const [operation, json] = process.argv.slice(2);
const endpoint = process.env.RELATCH_API;
let out;
try {
  if (!operations[operation]) throw new Error(`unknown operation ${operation}`);
  if (!endpoint) throw new Error('RELATCH_API is not set');
  const api = new EdgeImpulseApi({ endpoint });
  const result = await operations[operation](api, JSON.parse(json || '{}'));
  out = { ok: true, result: plain(result), calls };
} catch (err) {
  out = { ok: false, error: err && err.message ? err.message : String(err), calls };
}
process.stdout.write(JSON.stringify(out) + '\n');
