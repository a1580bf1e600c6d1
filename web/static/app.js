// hookd console: start-up, sign in and routing.
//
// Routes (the hash part of the URL, so the page works under any prefix):
//   #/                         subscriptions list and create form
//   #/subscriptions/{id}       one subscription: summary, exports, events
// Without a token every route shows the sign-in form; after signing in the
// requested route is shown.

import * as api from './api.js';
import { h, replace, startView, showError, clearMessages, busy, fieldSlot, formErrors } from './dom.js';
import { renderList } from './subs.js';
import { renderDetail } from './detail.js';

const uuidPattern = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

const main = document.getElementById('main');
const session = document.getElementById('session');
let sessionShown = false;
// Who signed in last, to prefill the form after the session ends (never the secret).
let last = { customer: '', clientId: '' };

function showSession() {
  document.getElementById('session-customer').textContent = `Customer ${api.customerId()}`;
  session.hidden = false;
  sessionShown = true;
}

function endSession() {
  api.signOut();
  session.hidden = true;
  sessionShown = false;
}

api.onSessionExpired(() => {
  if (!sessionShown) return;
  endSession();
  clearMessages();
  showError('Your session expired, sign in again.');
  route();
});

document.getElementById('signout').addEventListener('click', () => {
  endSession();
  clearMessages();
  route();
});

function route() {
  const view = startView();
  if (!api.signedIn()) {
    renderSignIn();
    return;
  }
  const detail = /^#\/subscriptions\/([^/?#]+)$/.exec(location.hash);
  if (detail) {
    renderDetail(view, main, decodeURIComponent(detail[1]));
  } else {
    renderList(view, main);
  }
  window.scrollTo(0, 0);
}

function renderSignIn() {
  const params = new URLSearchParams(location.search);
  const customer = h('input', {
    id: 'signin-customer', name: 'customer', 'data-testid': 'signin-customer', required: true,
    autocomplete: 'off', spellcheck: 'false', inputmode: 'text',
    placeholder: '00000000-0000-0000-0000-000000000000', value: params.get('customer') || last.customer,
  });
  const clientId = h('input', {
    id: 'signin-client-id', name: 'client_id', 'data-testid': 'signin-client-id', required: true,
    autocomplete: 'username', spellcheck: 'false', value: last.clientId,
  });
  const secret = h('input', {
    id: 'signin-client-secret', name: 'client_secret', type: 'password', 'data-testid': 'signin-client-secret',
    required: true, autocomplete: 'current-password',
  });
  const submit = h('button', { type: 'submit', id: 'signin-submit', class: 'btn btn-primary btn-block', 'data-testid': 'signin-submit' }, 'Sign in');

  const slots = {
    customer: fieldSlot(customer, 'signin-customer-error'),
    client_id: fieldSlot(clientId, 'signin-client-id-error'),
    client_secret: fieldSlot(secret, 'signin-client-secret-error'),
  };
  const general = fieldSlot(submit, 'signin-error');
  const errors = formErrors(slots, general);

  const form = h('form', { class: 'form', 'data-testid': 'signin-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'signin-customer' }, 'Customer id'), customer, slots.customer.el),
    h('div', { class: 'field' }, h('label', { for: 'signin-client-id' }, 'Client id'), clientId, slots.client_id.el),
    h('div', { class: 'field' }, h('label', { for: 'signin-client-secret' }, 'Client secret'), secret, slots.client_secret.el),
    general.el,
    submit);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    errors.clear();
    const cid = customer.value.trim();
    if (!uuidPattern.test(cid)) {
      slots.customer.set('Enter the customer UUID, like 0f8c2e1a-5b7d-4c3e-9a21-6d4b8e0f1c2a.');
      customer.focus();
      return;
    }
    if (!clientId.value.trim()) {
      slots.client_id.set('Enter the client id.');
      clientId.focus();
      return;
    }
    if (!secret.value) {
      slots.client_secret.set('Enter the client secret.');
      secret.focus();
      return;
    }
    await busy(submit, async () => {
      try {
        await api.signIn(cid, clientId.value.trim(), secret.value);
      } catch (err) {
        if (err.status === 401) {
          slots.client_secret.set('The client id or secret is not valid for this customer.');
          secret.select();
          secret.focus();
        } else if (err.status === 400 && err.params.length > 0) {
          errors.show(err, 'Sign in failed');
        } else {
          general.set(`Sign in failed: ${err.message}`);
        }
        return;
      }
      secret.value = '';
      last = { customer: cid, clientId: clientId.value.trim() };
      clearMessages();
      showSession();
      route();
    });
  });

  replace(main,
    h('section', { class: 'signin-wrap' },
      h('div', { class: 'panel signin' },
        h('h1', {}, 'Sign in'),
        h('p', { class: 'muted' },
          'Use a confidential client of your customer. The access token is kept in this tab only and is forgotten when you close or reload it.'),
        form)));
  const empty = [customer, clientId, secret].find((el) => !el.value);
  (empty || submit).focus();
}

// The API's OpenAPI description is served by hookd at the root, like the API itself.
document.getElementById('topnav').append(h('a', {
  href: '/openapi.json', class: 'api-link', 'data-testid': 'api-reference', target: '_blank', rel: 'noopener',
  title: 'The OpenAPI 3.1 description of every route of the API',
}, 'API reference'));

window.addEventListener('hashchange', route);
route();
