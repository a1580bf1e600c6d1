// hookd console: the subscription form, shared by "New subscription" and
// the in-place editor. Errors show under the field they concern; the
// filter is checked as JSON before anything is sent; a subscription
// without event types needs a confirmation.

import { h, fieldSlot, formErrors, confirmDialog, busy } from './dom.js';

/** eventTypes are the entity events a subscription can ask for. */
export const eventTypes = ['entityCreated', 'entityUpdated', 'entityDeleted'];

const filterPlaceholder = '{"properties": {"entityUpdated": {"properties": {"entityType": {"const": "user"}}}}}';

/**
 * subscriptionForm builds the form. prefix names its element ids and test
 * ids ("create" or "edit"); sub, when given, fills it in (editing; the
 * enabled box is then left out: the switch does that). onSubmit receives
 * the fields as {title, endpoint, events, enabled?, filter} (filter null
 * when empty) and returns a promise; if it throws an ApiError, the error
 * is shown next to the fields it names.
 */
export function subscriptionForm({ prefix, sub = null, submitLabel, onSubmit, onCancel = null }) {
  const id = (name) => `${prefix}-${name}`;
  const title = h('input', {
    id: id('title'), name: 'title', 'data-testid': id('title'), required: true, maxlength: '200', autocomplete: 'off',
    value: sub ? sub.title : '',
  });
  const endpoint = h('input', {
    id: id('endpoint'), name: 'endpoint', type: 'url', 'data-testid': id('endpoint'), required: true,
    placeholder: 'https://listener.example.com/hooks', autocomplete: 'off', spellcheck: 'false',
    value: sub ? sub.endpoint : '',
  });
  const boxes = eventTypes.map((type) => h('input', {
    type: 'checkbox', id: id(`event-${type}`), name: 'events', value: type, 'data-testid': id(`event-${type}`),
    checked: Boolean(sub && (sub.events || []).includes(type)),
  }));
  const enabled = !sub && h('input', { type: 'checkbox', id: id('enabled'), name: 'enabled', checked: true, 'data-testid': id('enabled') });
  const filter = h('textarea', {
    id: id('filter'), name: 'filter', rows: sub && sub.filter ? '8' : '4', class: 'mono', 'data-testid': id('filter'),
    spellcheck: 'false', placeholder: filterPlaceholder, 'aria-describedby': id('filter-help'),
  });
  filter.value = sub && sub.filter ? JSON.stringify(sub.filter, null, 2) : '';
  const submit = h('button', { type: 'submit', id: id('submit'), class: 'btn btn-primary', 'data-testid': id('submit') }, submitLabel);
  const cancel = onCancel && h('button', { type: 'button', class: 'btn', 'data-testid': id('cancel'), onclick: onCancel }, 'Cancel');

  const eventsSet = h('fieldset', { class: 'field checks', id: id('events') },
    h('legend', {}, 'Events'),
    boxes.map((box) => h('label', { class: 'check', for: box.id }, box, box.value)));
  const noEvents = h('p', { class: 'field-warning', 'data-testid': id('events-warning'), role: 'status' },
    'No event types: this subscription will receive no notifications until you tick one.');
  const updateWarning = () => {
    noEvents.hidden = boxes.some((b) => b.checked);
  };
  for (const b of boxes) b.addEventListener('change', updateWarning);
  updateWarning();

  const slots = {
    title: fieldSlot(title, id('title-error')),
    endpoint: fieldSlot(endpoint, id('endpoint-error')),
    events: fieldSlot(eventsSet, id('events-error')),
    filter: fieldSlot(filter, id('filter-error')),
  };
  const general = fieldSlot(submit, id('error'));
  const errors = formErrors(slots, general);
  eventsSet.append(noEvents, slots.events.el);

  const form = h('form', { class: 'form', 'data-testid': id('form'), novalidate: true },
    h('div', { class: 'field' }, h('label', { for: title.id }, 'Title'), title, slots.title.el),
    h('div', { class: 'field' }, h('label', { for: endpoint.id }, 'Endpoint URL'), endpoint, slots.endpoint.el),
    eventsSet,
    enabled && h('div', { class: 'field' }, h('label', { class: 'check', for: enabled.id }, enabled, 'Enabled')),
    h('div', { class: 'field' },
      h('label', { for: filter.id }, 'Filter ', h('span', { class: 'muted' }, '(optional)')),
      filter,
      slots.filter.el,
      h('p', { id: id('filter-help'), class: 'help' },
        'A JSON Schema (draft-07) matched against {"<event type>": <event>}. Events it rejects are not recorded.')),
    general.el,
    h('div', { class: 'form-actions' }, submit, cancel));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    errors.clear();
    const fields = {
      title: title.value,
      endpoint: endpoint.value.trim(),
      events: boxes.filter((b) => b.checked).map((b) => b.value),
      filter: null,
    };
    if (enabled) fields.enabled = enabled.checked;
    const text = filter.value.trim();
    if (text) {
      try {
        fields.filter = JSON.parse(text);
      } catch (err) {
        slots.filter.set(`Not valid JSON: ${err.message}`);
        filter.focus();
        return;
      }
      if (!fields.filter || typeof fields.filter !== 'object' || Array.isArray(fields.filter)) {
        slots.filter.set('Must be a JSON object (a JSON Schema).');
        filter.focus();
        return;
      }
    }
    if (fields.events.length === 0) {
      const ok = await confirmDialog(
        'No event types are ticked: the subscription will receive no notifications until you add some.',
        sub ? 'Save anyway' : 'Create anyway', { title: 'No event types', danger: false });
      if (!ok) {
        boxes[0].focus();
        return;
      }
    }
    await busy(submit, async () => {
      try {
        await onSubmit(fields);
      } catch (err) {
        // A taken title is a 409 that names no parameter: it still belongs under the title.
        if (err && err.status === 409 && /titled/.test(err.details || '')) {
          slots.title.set(err.details);
          title.focus();
        } else {
          errors.show(err, sub ? 'Save' : 'Create subscription');
        }
      }
    });
  });

  return {
    form,
    reset() {
      form.reset();
      if (enabled) enabled.checked = true;
      errors.clear();
      updateWarning();
    },
  };
}
