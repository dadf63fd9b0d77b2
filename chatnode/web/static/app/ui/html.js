// htm bound to Preact: JSX-like templates with no build step.
import { h } from 'preact';
import { useLayoutEffect, useState } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

// Re-render the calling component whenever the chat state changes. A change between this
// render and the subscription (e.g. the cache finishing its boot first) would otherwise be
// missed for good, leaving "Loading…" on screen: the version seen at render catches it.
export function useChat(state) {
  const [, setVersion] = useState(0);
  const seen = state.version;
  useLayoutEffect(() => {
    const unsubscribe = state.subscribe(() => setVersion(state.version));
    if (state.version !== seen) setVersion(state.version);
    return unsubscribe;
  }, [state]);
  return state;
}
