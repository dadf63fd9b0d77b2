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
