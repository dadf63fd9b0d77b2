// htm bound to Preact: JSX-like templates with no build step.
import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

// Re-render the calling component whenever the chat state changes.
export function useChat(state) {
  const [, setVersion] = useState(0);
  useEffect(() => state.subscribe(() => setVersion((v) => v + 1)), [state]);
  return state;
}
