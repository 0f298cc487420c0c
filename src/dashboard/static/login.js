// The dashboard's login form: posts {password} as JSON to /admin/login (the
// relay sets the HttpOnly session cookie) and reloads /admin/ on success;
// shows the relay's error otherwise (wrong password, lock-out).

const form = document.getElementById('login-form');
const errorBox = document.getElementById('login-error');
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  errorBox.hidden = true;
  const password = document.getElementById('password').value;
  let message;
  try {
    const res = await fetch('/admin/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password }),
      credentials: 'same-origin',
    });
    if (res.ok) {
      location.replace('/admin/');
      return;
    }
    const body = await res.json().catch(() => ({}));
    message = body.message || `login failed (${res.status})`;
  } catch (err) {
    message = `login failed: ${err}`;
  }
  errorBox.textContent = message;
  errorBox.hidden = false;
});
