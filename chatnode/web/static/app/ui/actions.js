// What a form or a button does while it runs: busy, then its success line or its error.
// Shared by the sidebar's forms, the account settings and the admin's accounts.
import { useState } from 'preact/hooks';
import { html } from './html.js';

// A form's submit: busy while `action` runs, then `done()`, or the error (as `errorText`
// words it) for a role=alert line.
export function useSubmit(action, done = () => {}, errorText = (err) => err.message) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await action();
      done();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }
  return { error, busy, submit };
}

// One action's busy flag, its error and its success line. `doneText` may be a function of
// what the action returned (a count, a name).
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  async function run(action, doneText) {
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const result = await action();
      setDone(typeof doneText === 'function' ? doneText(result) : doneText);
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, done, run };
}

export function Outcome({ error, done, testid }) {
  return html`
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${done && html`<p class="done" role="status" data-testid=${testid}>${done}</p>`}`;
}
