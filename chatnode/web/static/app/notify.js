// Browser notifications for messages that arrive while the tab is hidden, if the user allowed
// them. Browsers offer notifications only on https or localhost, and ask only after a click.

export function notificationsSupported() {
  return 'Notification' in window && window.isSecureContext;
}

export function notificationsAllowed() {
  return notificationsSupported() && Notification.permission === 'granted';
}

export async function askForNotifications() {
  if (!notificationsSupported()) return 'unsupported';
  return Notification.requestPermission();
}

export function notify(title, body, tag, onClick) {
  if (!document.hidden || !notificationsAllowed()) return;
  const notification = new Notification(title, { body, tag, icon: '/static/icons/icon-192.png' });
  notification.onclick = () => {
    window.focus();
    onClick();
    notification.close();
  };
}

// Web Push: with the user's permission, the browser's push service wakes the service worker
// (sw.js) when a message comes while no tab of the app is open. The subscription is tied to the
// node's VAPID key and handed to the node as this device's push target; it is refreshed at every
// start (a browser may renew it), and the node forgets it when this device logs out.
export function pushSupported() {
  return notificationsSupported() && 'serviceWorker' in navigator && 'PushManager' in window;
}

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

export async function subscribeToPush(api) {
  if (!pushSupported() || Notification.permission !== 'granted') return false;
  try {
    const { vapid_public_key: key } = await api.pushKey();
    const registration = await navigator.serviceWorker.ready;
    let subscription = await registration.pushManager.getSubscription();
    if (subscription) {
      const current = new Uint8Array(subscription.options.applicationServerKey ?? []);
      if (current.join() !== keyBytes(key).join()) {
        await subscription.unsubscribe(); // made for another node's key
        subscription = null;
      }
    }
    subscription ??= await registration.pushManager.subscribe(
      { userVisibleOnly: true, applicationServerKey: keyBytes(key) });
    await api.setPushTarget({ kind: 'webpush', ...subscription.toJSON() });
    return true;
  } catch (err) {
    // No push service reachable (some browsers, closed networks) or push turned off on the
    // node: notifications still work while a tab is open.
    console.warn('push notifications unavailable:', err.message ?? err);
    return false;
  }
}

export async function unsubscribeFromPush() {
  if (!pushSupported()) return;
  try {
    const registration = await navigator.serviceWorker.getRegistration();
    await (await registration?.pushManager.getSubscription())?.unsubscribe();
  } catch { /* nothing to undo */ }
}
